package stepup

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// jwksServer publishes keys and counts the fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fail    bool
	fetches atomic.Int32
}

func newJWKSServer(t *testing.T) *jwksServer {
	t.Helper()
	j := &jwksServer{}
	j.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		j.fetches.Add(1)
		j.mu.Lock()
		defer j.mu.Unlock()
		if j.fail {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: j.keys})
	}))
	t.Cleanup(j.Close)
	return j
}

// signer is a key the test signs with, published or not.
type signer struct {
	key *ecdsa.PrivateKey
	kid string
}

func newSigner(t *testing.T, kid string) signer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signer{key, kid}
}

func (s signer) public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: &s.key.PublicKey, KeyID: s.kid, Algorithm: string(jose.ES256), Use: "sig"}
}

func (s signer) sign(t *testing.T, kid string) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: s.key, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := sig.Sign([]byte(`{"iss":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

// TestKeySetFetchesOnlyForAnUnknownKidAndAtMostEvery30s: the key list is
// fetched at the first token, again for a kid it lacks (an honest
// rotation is picked up at once), and then not again for 30 s whatever
// arrives; a failed signature under a known kid never fetches, and a
// failed fetch counts too, so that an IdP that is down is not called once
// per forged token.
func TestKeySetFetchesOnlyForAnUnknownKidAndAtMostEvery30s(t *testing.T) {
	t.Parallel()
	j := newJWKSServer(t)
	idp, forger := newSigner(t, "k1"), newSigner(t, "k1")
	j.keys = []jose.JSONWebKey{idp.public()}
	now := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	ks := newKeySet(j.URL, j.Client(), clock)
	ctx := t.Context()
	step := func(name string, token string, wantOK bool, wantFetches int32) {
		t.Helper()
		_, err := ks.VerifySignature(ctx, token)
		if (err == nil) != wantOK || j.fetches.Load() != wantFetches {
			t.Fatalf("%s: err %v, %d fetches; want ok %v and %d fetches", name, err, j.fetches.Load(), wantOK, wantFetches)
		}
	}
	step("the first token", idp.sign(t, "k1"), true, 1)
	step("a forgery under the known kid", forger.sign(t, "k1"), false, 1)
	step("a token without kid", idp.sign(t, ""), true, 1)

	rotated := newSigner(t, "k2")
	j.mu.Lock()
	j.keys = []jose.JSONWebKey{rotated.public(), idp.public()}
	j.mu.Unlock()
	step("the first token of a rotated key", rotated.sign(t, "k2"), true, 2)
	step("a forgery under an unknown kid right after", forger.sign(t, "k3"), false, 2)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { ks.VerifySignature(ctx, forger.sign(t, "k4")) })
	}
	wg.Wait()
	step("50 concurrent forgeries under unknown kids", forger.sign(t, "k5"), false, 2)
	advance(29 * time.Second)
	step("29 s later", forger.sign(t, "k6"), false, 2)
	advance(time.Second)
	step("30 s later", forger.sign(t, "k7"), false, 3)

	j.mu.Lock()
	j.fail = true
	j.mu.Unlock()
	advance(30 * time.Second)
	step("the IdP is down", forger.sign(t, "k8"), false, 4)
	step("a forgery while the IdP is down", forger.sign(t, "k9"), false, 4)
	step("the cached keys still verify while it is down", rotated.sign(t, "k2"), true, 4)
}

// TestKeySetRefusesNoneAndSharedSecretAlgorithms: a token with alg none,
// or HS256 keyed with the public key (the algorithm confusion attack),
// is refused before any key is fetched.
func TestKeySetRefusesNoneAndSharedSecretAlgorithms(t *testing.T) {
	t.Parallel()
	j := newJWKSServer(t)
	idp := newSigner(t, "k1")
	j.keys = []jose.JSONWebKey{idp.public()}
	ks := newKeySet(j.URL, j.Client(), time.Now)
	pub, _ := idp.public().MarshalJSON()
	hs, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: pub}, nil)
	if err != nil {
		t.Fatal(err)
	}
	jws, _ := hs.Sign([]byte(`{"iss":"x"}`))
	hsToken, _ := jws.CompactSerialize()
	for _, tc := range []struct{ name, token string }{
		{"AlgNone", "eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0."},
		{"HS256WithThePublicKey", hsToken},
		{"NotAJWS", "garbage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ks.VerifySignature(t.Context(), tc.token); err == nil {
				t.Fatal("accepted")
			}
			if n := j.fetches.Load(); n != 0 {
				t.Errorf("%d fetches, want 0", n)
			}
		})
	}
}
