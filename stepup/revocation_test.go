package stepup

import (
	"net/http/httptest"
	"testing"
)

// The revocation record's races (a request in flight across Drop or
// DropAll, on the memory store and on Redis) and its failures are tested
// at the repository's root, through real step-ups.

func TestElevationIDsCannotBeSessionTokens(t *testing.T) {
	t.Parallel()
	id := newElevationID()
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", "session="+id)
	if c, err := r.Cookie("session"); err == nil && c.Value == id {
		t.Errorf("the elevation id %q can be sent as a session cookie", id)
	}
}
