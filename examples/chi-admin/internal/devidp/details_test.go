package devidp

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestParseDetails: the authorization_details the IdP accepts, the line its
// pages show for them, and what it refuses as invalid_authorization_details
// (RFC 9396 §5).
func TestParseDetails(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, raw, text string
	}{
		{"none", ``, ``},
		{"delete user bob", `[{"type":"urn:stepup:example:user","actions":["delete"],"identifier":"bob"}]`, "Delete user bob"},
		{"two actions", `[{"type":"urn:stepup:example:user","actions":["suspend","delete"],"identifier":"bob"}]`, "Suspend and delete user bob"},
		{"three actions", `[{"type":"urn:stepup:example:user","actions":["read","suspend","delete"],"identifier":"bob"}]`, "Read, suspend and delete user bob"},
		{"user type without identifier", `[{"type":"urn:stepup:example:user","actions":["list"]}]`, "urn:stepup:example:user: list"},
		{"other type", `[{"type":"urn:other","actions":["read","write"],"identifier":"x"}]`, "urn:other: read and write on x"},
		{"other type, type only", `[{"type":"payment_initiation","locations":["https://bank.example"]}]`, "payment_initiation"},
		{"two objects", `[{"type":"urn:stepup:example:user","actions":["delete"],"identifier":"bob"},{"type":"urn:stepup:example:user","actions":["delete"],"identifier":"carol"}]`, "Delete user bob; Delete user carol"},
		{"empty actions", `[{"type":"urn:other","actions":[],"identifier":"x"}]`, "urn:other on x"},
		{"whitespace around", " [ {\"type\" : \"urn:other\"} ]\n", "urn:other"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ds, err := parseDetails(tt.raw)
			if err != nil {
				t.Fatalf("parseDetails(%q): %v", tt.raw, err)
			}
			if got := ds.text(); got != tt.text {
				t.Errorf("text = %q, want %q", got, tt.text)
			}
		})
	}

	for _, tt := range []struct{ name, raw string }{
		{"not JSON", `[{"type":`},
		{"an object, not an array", `{"type":"urn:stepup:example:user","actions":["delete"],"identifier":"bob"}`},
		{"a string", `"[{\"type\":\"urn:other\"}]"`},
		{"empty array", `[]`},
		{"null", `null`},
		{"null element", `[null]`},
		{"not an object", `["urn:other"]`},
		{"no type", `[{"actions":["delete"],"identifier":"bob"}]`},
		{"empty type", `[{"type":"","actions":["delete"]}]`},
		{"type not a string", `[{"type":7}]`},
		{"actions not an array", `[{"type":"urn:other","actions":"delete"}]`},
		{"actions null", `[{"type":"urn:other","actions":null}]`},
		{"an action not a string", `[{"type":"urn:other","actions":[1]}]`},
		{"an empty action", `[{"type":"urn:other","actions":[""]}]`},
		{"identifier not a string", `[{"type":"urn:other","identifier":["bob"]}]`},
		{"empty identifier", `[{"type":"urn:other","identifier":""}]`},
		{"bidi override in the identifier", `[{"type":"urn:stepup:example:user","actions":["delete"],"identifier":"\u202ebob"}]`},
		{"newline in an action", `[{"type":"urn:stepup:example:user","actions":["delete\nall"],"identifier":"bob"}]`},
		{"control in the type", `[{"type":"urn:\u0007"}]`},
		{"invalid UTF-8", "[{\"type\":\"urn:\xff\"}]"},
		{"trailing garbage", `[{"type":"urn:other"}] x`},
		{"oversized", `[{"type":"urn:stepup:example:user","actions":["delete"],"identifier":"` + strings.Repeat("b", maxDetailsBytes) + `"}]`},
	} {
		t.Run("refused/"+tt.name, func(t *testing.T) {
			t.Parallel()
			if ds, err := parseDetails(tt.raw); err == nil {
				t.Errorf("parseDetails(%.60q) = %v, want an error", tt.raw, ds)
			}
		})
	}
}

// TestDetailsSizeBound: 4 KiB of details are read, one byte more is
// refused.
func TestDetailsSizeBound(t *testing.T) {
	t.Parallel()
	frame := `[{"type":"urn:other","identifier":""}]`
	fill := strings.Repeat("x", maxDetailsBytes-len(frame))
	at := `[{"type":"urn:other","identifier":"` + fill + `"}]`
	if len(at) != maxDetailsBytes {
		t.Fatalf("built %d bytes", len(at))
	}
	if _, err := parseDetails(at); err != nil {
		t.Errorf("%d bytes refused: %v", len(at), err)
	}
	over := `[{"type":"urn:other","identifier":"` + fill + `x"}]`
	if _, err := parseDetails(over); err == nil {
		t.Errorf("%d bytes accepted", len(over))
	}
}

// TestDetailsTokenResponse: the token response's authorization_details are
// a JSON array of the objects the page showed, every member kept; a
// member the request repeated appears once, with the value the page
// showed.
func TestDetailsTokenResponse(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, raw, want string }{
		{"none", ``, ``},
		{"delete user bob", `[{"type":"urn:stepup:example:user","actions":["delete"],"identifier":"bob"}]`,
			`[{"actions":["delete"],"identifier":"bob","type":"urn:stepup:example:user"}]`},
		{"other members kept", `[{"type":"urn:other","locations":["https://rs.example"],"x":{"y":1}}]`,
			`[{"locations":["https://rs.example"],"type":"urn:other","x":{"y":1}}]`},
		{"repeated member", `[{"type":"urn:stepup:example:user","actions":["delete"],"identifier":"alice","identifier":"bob"}]`,
			`[{"actions":["delete"],"identifier":"bob","type":"urn:stepup:example:user"}]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ds, err := parseDetails(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			got := ds.tokenResponse()
			if string(got) != tt.want {
				t.Errorf("token response details = %s, want %s", got, tt.want)
			}
			if tt.want != "" && ds.text() != "" {
				var arr []any
				if json.Unmarshal(got, &arr) != nil || len(arr) != len(ds) {
					t.Errorf("not a JSON array of %d objects: %s", len(ds), got)
				}
			}
		})
	}
}
