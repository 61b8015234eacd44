package stepup

import (
	"encoding/json"
	"testing"
)

func TestParseUnixSeconds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw     string
		want    int64
		present bool
		ok      bool
	}{
		{"", 0, false, true},
		{"null", 0, false, true},
		{"1800000000", 1_800_000_000, true, true},
		{"1000000000", 1_000_000_000, true, true},
		{"9999999999", 9_999_999_999, true, true},
		{"1800000000000", 0, true, false}, // milliseconds
		{"10000000000", 0, true, false},
		{"999999999", 0, true, false}, // a duration, not an instant
		{"3600", 0, true, false},
		{"-1800000000", 0, true, false},
		{"1800000000.5", 0, true, false},
		{"1800000000.0", 0, true, false},
		{"1.8e9", 0, true, false},
		{`"1800000000"`, 0, true, false},
		{"true", 0, true, false},
		{"[1800000000]", 0, true, false},
		{"0", 0, true, false},
	} {
		got, present, err := parseUnixSeconds(json.RawMessage(tc.raw))
		if got != tc.want || present != tc.present || (err == nil) != tc.ok {
			t.Errorf("parseUnixSeconds(%s) = %d, %v, %v", tc.raw, got, present, err)
		}
	}
}

func TestAcceptedACR(t *testing.T) {
	t.Parallel()
	accept := []string{"urn:hw", "urn:mfa"}
	for _, tc := range []struct {
		name, acr, acrs string
		want            string
		ok, err         bool
	}{
		{"acr accepted", `"urn:mfa"`, ``, "urn:mfa", true, false},
		{"acr downgrade", `"urn:pwd"`, ``, "urn:pwd", false, false},
		{"no acr at all", ``, ``, "", false, false},
		{"Entra acrs, preference order", ``, `["c1","urn:mfa","urn:hw"]`, "urn:hw", true, false},
		{"acrs without an accepted value", `"c1"`, `["c1","c2"]`, "c1", false, false},
		{"acr as a number", `2`, ``, "", false, true},
		{"acr as an array", `["urn:mfa"]`, ``, "", false, true},
		{"acrs as a string", ``, `"urn:mfa"`, "", false, true},
		{"acrs holding numbers", ``, `[1,2]`, "", false, true},
		{"acrs holding null", ``, `[null,"urn:mfa"]`, "", false, true},
	} {
		c := idClaims{ACR: json.RawMessage(tc.acr), ACRs: json.RawMessage(tc.acrs)}
		got, ok, err := acceptedACR(&c, accept)
		if got != tc.want || ok != tc.ok || (err != nil) != tc.err {
			t.Errorf("%s: got %q, %v, %v", tc.name, got, ok, err)
		}
	}
}
