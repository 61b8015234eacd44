package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/oidc-stepup/stepup/internal/testkit"
)

// TestRedisStoreURLNamesUserPasswordAndDatabase: -session-store takes a
// Redis URL as redigo's DialURL reads it, an ACL user and its password
// included; the sessions land in the URL's database; a wrong password fails
// at start with an error that does not show it.
func TestRedisStoreURLNamesUserPasswordAndDatabase(t *testing.T) {
	t.Parallel()
	addr := testkit.StartRedis(t)
	if reply, err := testkit.RedisCommand(addr, "ACL", "SETUSER", "console", "on", ">s3cret-pw", "~*", "+@all"); err != nil || reply != "OK" {
		t.Fatalf("ACL SETUSER: %q, %v", reply, err)
	}
	spec := "redis://console:s3cret-pw@" + addr + "/3"
	store, closeStore, err := openStore(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	if err := store.Commit("tok", []byte("v"), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if b, found, err := store.Find("tok"); err != nil || !found || !bytes.Equal(b, []byte("v")) {
		t.Fatalf("Find: %q %v %v", b, found, err)
	}
	for db, want := range map[string]int{"3": 1, "0": 0} {
		conn, err := redis.DialURL("redis://console:s3cret-pw@" + addr + "/" + db)
		if err != nil {
			t.Fatal(err)
		}
		n, err := redis.Int(conn.Do("EXISTS", "scs:session:tok"))
		conn.Close()
		if err != nil || n != want {
			t.Errorf("database %s holds the session %d times (%v), want %d", db, n, err, want)
		}
	}

	_, _, err = openStore("redis://console:wrong-pw@" + addr + "/3")
	if err == nil {
		t.Fatal("a wrong password was accepted")
	}
	if strings.Contains(err.Error(), "wrong-pw") {
		t.Errorf("the error shows the password: %v", err)
	}
}

func TestStoreSpecErrors(t *testing.T) {
	t.Parallel()
	for _, spec := range []string{"redis:s3cret@host", "memcached://host", "redis://127.0.0.1:1/notanumber"} {
		_, _, err := openStore(spec)
		if err == nil {
			t.Errorf("%q: no error", spec)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: the error shows the password: %v", spec, err)
		}
	}
}
