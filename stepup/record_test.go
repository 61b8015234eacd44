package stepup

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestElevationRoundTrips(t *testing.T) {
	t.Parallel()
	for _, el := range []Elevation{
		{
			ID: "id", Scope: "admin", Issuer: "https://idp.test", Subject: "248289761001",
			ACR: "http://schemas.openid.net/pape/policies/2007/06/multi-factor", AMR: []string{"pwd", "otp", "hwk"},
			AuthTime: time.Unix(1_800_000_000, 0), IDTokenExpiry: time.Unix(1_800_000_600, 0),
			SessionExpiry: time.Unix(1_800_000_300, 0), GrantedAt: time.Unix(1_800_000_001, 0),
			Deadline: time.Unix(1_800_000_300, 0), Bound: BoundSessionExpiry,
		},
		{
			ID: "id2", Scope: "billing", Issuer: "https://idp.test", Subject: "bob",
			AuthTime: time.Unix(1_800_000_000, 0), IDTokenExpiry: time.Unix(1_800_000_600, 0),
			GrantedAt: time.Unix(1_800_000_001, 0), Deadline: time.Unix(1_800_000_100, 0), Bound: BoundLifetime,
		},
	} {
		rec := encodeElevation(&el)
		got, err := decodeElevation(rec, el.Scope)
		if err != nil {
			t.Fatalf("decode(%q): %v", rec, err)
		}
		// The record keeps tags of the issuer and the acr, not the values.
		if got.issuerTag != issuerTag(el.Issuer) || got.Issuer != "" || got.acrTag != acrTag(el.ACR) || got.ACR != "" {
			t.Errorf("tags: issuer %q (%q), acr %q (%q)", got.issuerTag, got.Issuer, got.acrTag, got.ACR)
		}
		got.Issuer, got.issuerTag, got.ACR, got.acrTag = el.Issuer, "", el.ACR, ""
		if !reflect.DeepEqual(got, el) {
			t.Errorf("round trip\n got %+v\nwant %+v", got, el)
		}
		h, err := readElevationHead(rec)
		if err != nil || h.deadline != el.Deadline.Unix() || h.issuerTag != issuerTag(el.Issuer) || h.subject != el.Subject || h.id != el.ID {
			t.Errorf("head %+v, %v", h, err)
		}
	}
}

func TestReadElevationHeadDoesNotAllocate(t *testing.T) {
	el := Elevation{ID: "x", Issuer: "https://idp.test", Subject: "alice", Deadline: time.Unix(1_800_000_000, 0), Bound: BoundExp, AuthTime: time.Unix(1_800_000_000, 0), GrantedAt: time.Unix(1_800_000_000, 0)}
	rec := encodeElevation(&el)
	if n := testing.AllocsPerRun(100, func() { readElevationHead(rec) }); n != 0 {
		t.Errorf("readElevationHead allocates %v times", n)
	}
}

func TestDecodeElevationRefusesDamage(t *testing.T) {
	t.Parallel()
	el := Elevation{ID: "x", Issuer: "i", Subject: "s", Deadline: time.Unix(1_800_000_000, 0), Bound: BoundExp, AuthTime: time.Unix(1, 0), GrantedAt: time.Unix(1, 0)}
	good := encodeElevation(&el)
	for _, bad := range []string{
		"", "e1", "e2" + good[2:], good + "\x1fextra", good[:strings.LastIndexByte(good, fieldSep)],
		"e1\x1f100\x1f\x1fs\x1fx\x1fe\x1f\x1f\x1f1\x1f\x1f\x1f1",     // no issuer tag
		"e1\x1f100\x1fi\x1fs\x1fx\x1fe\x1f\x1f\x1fsoon\x1f\x1f\x1f1", // an instant that is not a number
		"e1\x1f-5\x1fi\x1fs\x1fx\x1fe\x1f\x1f\x1f1\x1f\x1f\x1f1",
		"e1\x1f0\x1fi\x1fs\x1fx\x1fe\x1f\x1f\x1f1\x1f\x1f\x1f1",
		"e1\x1f100\x1fi\x1fs\x1fx\x1fq\x1f\x1f\x1f1\x1f\x1f\x1f1",
	} {
		if _, err := decodeElevation(bad, "admin"); err == nil {
			t.Errorf("decodeElevation(%q) accepted damage", bad)
		}
	}
}

func TestPendingRoundTrips(t *testing.T) {
	t.Parallel()
	list := []pending{
		{state: "S1", nonce: "N1", verifier: "V1", scope: "admin", started: 1_800_000_000, returnTo: "/admin?x=1"},
		{state: "S2", nonce: "N2", verifier: "V2", scope: "billing", started: 1_800_000_005, returnTo: "/"},
	}
	got, err := decodePending(encodePending(list))
	if err != nil || !reflect.DeepEqual(got, list) {
		t.Fatalf("got %+v, %v", got, err)
	}
	if s := encodePending(nil); s != "" {
		t.Errorf("empty list encodes as %q", s)
	}
	for _, bad := range []string{"p1", "p2\x1eS\x1fN\x1fV\x1fa\x1f1\x1f/", "p1\x1e\x1fN\x1fV\x1fa\x1f1\x1f/", "p1\x1eS\x1fN"} {
		if _, err := decodePending(bad); err == nil {
			t.Errorf("decodePending(%q) accepted damage", bad)
		}
	}
}

func TestStorable(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"alice":                          true,
		"urn:x:y ü":                      true,
		"a\x1fb":                         false,
		"a\x1eb":                         false,
		"a\nb":                           false,
		"\x7f":                           false,
		"\xff":                           false,
		"a\u0085b":                       false,
		"a\u2028b":                       false,
		string(make([]byte, maxField+1)): false,
	} {
		if got := storable(s); got != want {
			t.Errorf("storable(%q) = %v", s, got)
		}
	}
}

// TestPrintableRefusesLogAndDisplaySpoofing: a value that reaches an audit
// log or a page must not be able to start a new log line or reverse the
// text around it.
func TestPrintableRefusesLogAndDisplaySpoofing(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    string
		want bool
	}{
		{"Plain", "alice@example.com", true},
		{"Accented", "zoë", true},
		{"CJK", "管理者", true},
		{"Empty", "", true},
		{"NUL", "alice\x00", false},
		{"Newline", "alice\nforged line", false},
		{"DEL", "alice\x7f", false},
		{"C1NextLine", "alice\u0085forged", false},
		{"LineSeparator", "alice\u2028forged", false},
		{"ParagraphSeparator", "alice\u2029forged", false},
		{"RightToLeftOverride", "alice\u202Eecila", false},
		{"RightToLeftIsolate", "\u2067admin\u2069", false},
		{"LeftToRightMark", "alice\u200e", false},
		{"ArabicLetterMark", "alice\u061c", false},
		{"InvalidUTF8", "alice\xff", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Printable(tc.s); got != tc.want {
				t.Errorf("Printable(%q) = %v, want %v", tc.s, got, tc.want)
			}
		})
	}
}
