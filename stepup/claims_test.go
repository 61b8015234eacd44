package stepup

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseUnixSeconds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		raw     string
		want    int64
		present bool
		ok      bool
	}{
		{"Absent", "", 0, false, true},
		{"Null", "null", 0, false, true},
		{"Seconds", "1800000000", 1_800_000_000, true, true},
		{"FirstAcceptedInstant", "1000000000", 1_000_000_000, true, true},
		{"LastAcceptedInstant", "9999999999", 9_999_999_999, true, true},
		{"Milliseconds", "1800000000000", 0, true, false},
		{"FirstInstantPastTheRange", "10000000000", 0, true, false},
		{"DurationJustBelowTheRange", "999999999", 0, true, false}, // a duration, not an instant
		{"DurationOfAnHour", "3600", 0, true, false},
		{"Negative", "-1800000000", 0, true, false},
		{"Fraction", "1800000000.5", 0, true, false},
		{"ZeroFraction", "1800000000.0", 0, true, false},
		{"Exponent", "1.8e9", 0, true, false},
		{"String", `"1800000000"`, 0, true, false},
		{"Boolean", "true", 0, true, false},
		{"Array", "[1800000000]", 0, true, false},
		{"Zero", "0", 0, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, present, err := parseUnixSeconds(json.RawMessage(tc.raw))
			if got != tc.want || present != tc.present || (err == nil) != tc.ok {
				t.Errorf("parseUnixSeconds(%s) = %d, %v, %v", tc.raw, got, present, err)
			}
		})
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
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := idClaims{ACR: json.RawMessage(tc.acr), ACRs: json.RawMessage(tc.acrs)}
			got, ok, err := acceptedACR(&c, accept)
			if got != tc.want || ok != tc.ok || (err != nil) != tc.err {
				t.Errorf("got %q, %v, %v", got, ok, err)
			}
		})
	}
}

// FuzzParseUnixSeconds checks that a NumericDate is accepted only as plain
// digits in [minUnix, maxUnix), read as strconv and encoding/json read it,
// and never as a fraction, an exponent, a sign or a string.
func FuzzParseUnixSeconds(f *testing.F) {
	for _, s := range []string{
		"", "null", "1800000000", "1000000000", "999999999", "9999999999", "10000000000", "01800000000",
		"1800000000000", "18000000000000000000000", "-1800000000", "+1800000000", "1800000000.5",
		"1800000000.0", "1.8e9", "1.8E+09", "18e8", `"1800000000"`, "true", "false", "[1800000000]",
		`{"t":1800000000}`, "0", "00000000000", " 1800000000", "1800000000 ", "NaN", "Infinity", "0x6b49d200",
		"1_800_000_000", "１８００００００００", "nul", "null ",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkUnixSeconds(t, raw)
		// As the callback reads it: a claim decoded from the ID token's
		// JSON, which encoding/json hands over trimmed.
		var cl idClaims
		if json.Unmarshal([]byte(`{"auth_time":`+string(raw)+`}`), &cl) != nil {
			return
		}
		secs, present, err := checkUnixSeconds(t, cl.AuthTime)
		if present && err == nil {
			var n int64
			if jerr := json.Unmarshal(cl.AuthTime, &n); jerr != nil || n != secs {
				t.Errorf("auth_time %s: parsed as %d, encoding/json reads %d (%v)", cl.AuthTime, secs, n, jerr)
			}
		}
	})
}

func checkUnixSeconds(t *testing.T, raw []byte) (int64, bool, error) {
	t.Helper()
	secs, present, err := parseUnixSeconds(raw)
	absent := len(raw) == 0 || string(raw) == "null"
	if present == absent {
		t.Errorf("parseUnixSeconds(%q): present = %v", raw, present)
	}
	if (!present || err != nil) && secs != 0 {
		t.Errorf("parseUnixSeconds(%q) = %d, %v, %v: a refused or absent claim must read as 0", raw, secs, present, err)
	}
	if !present {
		if err != nil {
			t.Errorf("parseUnixSeconds(%q): absent claim with error %v", raw, err)
		}
		return secs, present, err
	}
	digits := len(raw) > 0 && !slices.ContainsFunc(raw, func(c byte) bool { return c < '0' || c > '9' })
	n, perr := strconv.ParseInt(string(raw), 10, 64)
	inRange := perr == nil && n >= minUnix && n < maxUnix
	switch {
	case err == nil && !digits:
		t.Errorf("parseUnixSeconds(%q) = %d: accepted something other than plain digits", raw, secs)
	case err == nil && (perr != nil || n != secs):
		t.Errorf("parseUnixSeconds(%q) = %d, strconv.ParseInt reads %d (%v)", raw, secs, n, perr)
	case err == nil && !inRange:
		t.Errorf("parseUnixSeconds(%q) = %d: outside [%d, %d)", raw, secs, int64(minUnix), int64(maxUnix))
	case err != nil && digits && inRange && raw[0] != '0':
		// A leading zero is not JSON; a claim never arrives with one.
		t.Errorf("parseUnixSeconds(%q) refused an in-range whole number: %v", raw, err)
	}
	var fl float64
	if json.Unmarshal(raw, &fl) == nil && fl != math.Trunc(fl) && err == nil {
		t.Errorf("parseUnixSeconds(%q) accepted a number with a fraction", raw)
	}
	var v any
	if json.Unmarshal(raw, &v) == nil {
		if _, num := v.(float64); !num && err == nil {
			t.Errorf("parseUnixSeconds(%q) accepted a JSON %T", raw, v)
		}
	}
	return secs, present, err
}

// acrAcceptables are the scope configurations FuzzAcceptedACR tries each
// input against. Config.validate guarantees non-empty values.
var acrAcceptables = [][]string{
	{"urn:hw", "urn:mfa"},
	{"urn:mfa"},
	{"phrh", "phr", "c1"},
	{"http://schemas.openid.net/pape/policies/2007/06/multi-factor"},
}

// FuzzAcceptedACR checks that acceptedACR errs exactly when encoding/json
// reads acr as other than a string or acrs as other than an array of
// strings, and otherwise grants only a value the scope accepts and the token
// asserts: the acr claim first, then the scope's order in acrs.
// testdata/fuzz/FuzzAcceptedACR/acrs-null-element: a null element that
// json.Unmarshal into []string reads as "" (fixed in 3a5ca83).
func FuzzAcceptedACR(f *testing.F) {
	for _, c := range [][2]string{
		{`"urn:mfa"`, ``},
		{`"urn:pwd"`, ``},
		{``, ``},
		{`null`, `null`},
		{``, `["c1","urn:mfa","urn:hw"]`},
		{`"c1"`, `["c1","c2"]`},
		{`"urn:pwd"`, `["urn:mfa"]`},
		{`""`, `[""]`},
		{`2`, ``},
		{`true`, `[]`},
		{`["urn:mfa"]`, ``},
		{``, `"urn:mfa"`},
		{``, `[1,2]`},
		{``, `[["urn:mfa"]]`},
		{``, `{"0":"urn:mfa"}`},
		{`"urn:\u006dfa"`, `[]`},
		{`"urn:mfa\u0000"`, ``},
		{`"\ud800"`, `["\udfff"]`},
		{` "urn:mfa"`, `[ "urn:mfa" ] `},
		{`"urn:mfa"x`, ``},
		{`"urn:mfa`, `["urn:mfa"`},
		{`nul`, ``},
		{"\"urn:mfa\"", "[\"phr\",\"phrh\"]"},
	} {
		f.Add([]byte(c[0]), []byte(c[1]))
	}
	f.Fuzz(func(t *testing.T, acr, acrs []byte) {
		// The raw claims as given.
		checkACR(t, idClaims{ACR: acr, ACRs: acrs}, false)
		// As go-oidc hands them over: decoded from the token's JSON.
		if (len(acr) > 0 && !json.Valid(acr)) || (len(acrs) > 0 && !json.Valid(acrs)) {
			return
		}
		var parts []string
		if len(acr) > 0 {
			parts = append(parts, `"acr":`+string(acr))
		}
		if len(acrs) > 0 {
			parts = append(parts, `"acrs":`+string(acrs))
		}
		var cl idClaims
		if err := json.Unmarshal([]byte("{"+strings.Join(parts, ",")+"}"), &cl); err != nil {
			t.Fatalf("valid claims did not decode: %v", err)
		}
		checkACR(t, cl, true)
	})
}

// jsonKind tells what encoding/json makes of a claim: absent (missing or
// null), a string, an array of strings, or what else it is. Unlike
// json.Unmarshal into []string, it does not read a null element as "".
func jsonKind(raw []byte) (kind string, str string, list []string) {
	if len(raw) == 0 {
		return kindAbsent, "", nil
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return "invalid JSON", "", nil
	}
	switch v := v.(type) {
	case nil:
		return kindAbsent, "", nil
	case string:
		return kindString, v, nil
	case []any:
		list = []string{}
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return "an array holding " + jsonType(e), "", nil
			}
			list = append(list, s)
		}
		return kindStrings, "", list
	}
	return jsonType(v), "", nil
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	}
	return "an object"
}

const (
	kindAbsent  = "absent"
	kindString  = "a string"
	kindStrings = "an array of strings"
)

// checkACR checks acceptedACR on c against every configuration. decoded
// says c came from encoding/json, so its raw values are trimmed valid JSON
// and the error must match encoding/json's view of the types exactly.
func checkACR(t *testing.T, c idClaims, decoded bool) {
	t.Helper()
	acrKind, single, _ := jsonKind(c.ACR)
	acrsKind, _, many := jsonKind(c.ACRs)
	// Raw values with surrounding space never come out of encoding/json;
	// for them only fail-closed behaviour is checked below.
	exact := decoded || (bytes.Equal(bytes.TrimSpace(c.ACR), c.ACR) && bytes.Equal(bytes.TrimSpace(c.ACRs), c.ACRs))
	wantErr := (acrKind != kindAbsent && acrKind != kindString) || (acrsKind != kindAbsent && acrsKind != kindStrings)
	for _, acceptable := range acrAcceptables {
		got, ok, err := acceptedACR(&c, acceptable)
		if err != nil {
			if got != "" || ok {
				t.Errorf("acceptedACR(acr=%s, acrs=%s) = %q, %v with error %v", c.ACR, c.ACRs, got, ok, err)
			}
			if exact && !wantErr {
				t.Errorf("acceptedACR(acr=%s, acrs=%s): error %v, but encoding/json reads acr as %s and acrs as %s", c.ACR, c.ACRs, err, acrKind, acrsKind)
			}
			continue
		}
		if wantErr {
			t.Errorf("acceptedACR(acr=%s, acrs=%s, %q) = %q, %v: no error, but encoding/json reads acr as %s and acrs as %s", c.ACR, c.ACRs, acceptable, got, ok, acrKind, acrsKind)
			return
		}
		if !exact {
			continue
		}
		// The oracle: the acr claim if acceptable, else the most preferred
		// acceptable value in acrs, else a downgrade reported with the acr
		// claim (for the audit event).
		want, wantOK := single, false
		if single != "" && slices.Contains(acceptable, single) {
			wantOK = true
		} else if i := slices.IndexFunc(acceptable, func(a string) bool { return slices.Contains(many, a) }); i >= 0 {
			want, wantOK = acceptable[i], true
		}
		if got != want || ok != wantOK {
			t.Errorf("acceptedACR(acr=%s, acrs=%s, %q) = %q, %v; want %q, %v", c.ACR, c.ACRs, acceptable, got, ok, want, wantOK)
		}
		if ok && (!slices.Contains(acceptable, got) || (got != single && !slices.Contains(many, got))) {
			t.Errorf("acceptedACR(acr=%s, acrs=%s, %q) granted %q, which the token does not assert or the scope does not accept", c.ACR, c.ACRs, acceptable, got)
		}
	}
}

// claimCase is one ID token that reached the claim rules: go-oidc's Verify
// accepted it (signature, iss, aud, exp), so only what Verify leaves to the
// caller can be wrong. Each case is named after the attack or failure it
// stands for; a case without a reason is granted.
type claimCase struct {
	name     string
	edit     func(c *claimInput)
	reason   Reason
	bound    Bound // for a grant: the bound that sets the deadline
	deadline int64 // for a grant: the deadline, in seconds after now
}

// claimInput is what checkClaims receives.
type claimInput struct {
	tok    idToken
	ch     pending
	scope  Scope
	rc     ruleContext
	claims map[string]any // the raw claims go-oidc does not parse, as JSON values
}

const claimNow = int64(1_800_000_000)

// validClaims is an honest token for alice, from a login ten seconds ago,
// answering a challenge started a minute ago, with a five-minute exp.
func validClaims() *claimInput {
	return &claimInput{
		tok: idToken{
			subject:  "alice",
			audience: []string{"client"},
			nonce:    "NONCE",
			issuedAt: claimNow,
			expiry:   claimNow + 300,
		},
		ch:    pending{state: "STATE", nonce: "NONCE", scope: "admin", started: claimNow - 60, returnTo: "/admin"},
		scope: Scope{ACR: []string{"urn:test:mfa", "urn:test:hw"}},
		rc:    ruleContext{clientID: "client", issuer: testIssuer, skew: 30, now: claimNow, subject: "alice", checkSub: true},
		claims: map[string]any{
			"acr":       "urn:test:mfa",
			"amr":       []string{"pwd", "otp"},
			"auth_time": claimNow - 10,
		},
	}
}

func (c *claimInput) idClaims(t *testing.T) idClaims {
	t.Helper()
	b, err := json.Marshal(c.claims)
	if err != nil {
		t.Fatal(err)
	}
	var cl idClaims
	if err := json.Unmarshal(b, &cl); err != nil {
		t.Fatal(err)
	}
	return cl
}

// raw is a claim value written as JSON text, for values json.Marshal
// would not produce from a Go value (a fraction, a number too large for
// float64 precision).
type raw string

func (r raw) MarshalJSON() ([]byte, error) { return []byte(r), nil }

var claimCases = []claimCase{
	// What go-oidc leaves out, OIDC Core §3.1.3.7.
	{name: "TokenSubstitutionWrongNonce", edit: func(c *claimInput) { c.tok.nonce = "another-challenges-nonce" }, reason: ReasonNonceMismatch},
	{name: "TokenSubstitutionNoNonce", edit: func(c *claimInput) { c.tok.nonce = "" }, reason: ReasonNonceMismatch},
	{name: "TokenSubstitutionNoncePrefix", edit: func(c *claimInput) { c.tok.nonce = "NONC" }, reason: ReasonNonceMismatch},
	{name: "AudienceConfusionWithoutAZP", edit: func(c *claimInput) { c.tok.audience = []string{"client", "other-app"} }, reason: ReasonAZPMismatch},
	{name: "AZPNamesAnotherClient", edit: func(c *claimInput) { c.claims["azp"] = "other-app" }, reason: ReasonAZPMismatch},
	{name: "AZPWrongType", edit: func(c *claimInput) { c.claims["azp"] = 7 }, reason: ReasonAZPMismatch},
	{name: "AZPNamesThisClientWithSeveralAudiences", edit: func(c *claimInput) {
		c.tok.audience = []string{"client", "other-app"}
		c.claims["azp"] = "client"
	}, bound: BoundExp, deadline: 300},
	{name: "IATInTheFuture", edit: func(c *claimInput) { c.tok.issuedAt = claimNow + 31 }, reason: ReasonInvalidIAT},
	{name: "IATAheadWithinSkew", edit: func(c *claimInput) { c.tok.issuedAt = claimNow + 30; c.tok.expiry = claimNow + 600 }, bound: BoundExp, deadline: 600},
	{name: "IATFrom1970", edit: func(c *claimInput) { c.tok.issuedAt = 5 }, reason: ReasonInvalidIAT},
	{name: "MissingIAT", edit: func(c *claimInput) { c.tok.issuedAt = 0 }, reason: ReasonInvalidIAT},
	{name: "EndlessElevationFromExpInMilliseconds", edit: func(c *claimInput) { c.tok.expiry = (claimNow + 3600) * 1000 }, reason: ReasonInvalidClaims},
	{name: "EmptySubject", edit: func(c *claimInput) { c.tok.subject = ""; c.rc.checkSub = false }, reason: ReasonInvalidClaims},
	{name: "SubjectWithControlCharacters", edit: func(c *claimInput) { c.tok.subject = "alice\x1fe1" }, reason: ReasonInvalidClaims},
	{name: "SubjectWithBidiOverride", edit: func(c *claimInput) { c.tok.subject = "alice\u202eecila" }, reason: ReasonInvalidClaims},
	{name: "OversizedSubjectBloatingEverySession", edit: func(c *claimInput) { c.tok.subject = strings.Repeat("a", maxField+1) }, reason: ReasonInvalidClaims},
	{name: "SIDWrongType", edit: func(c *claimInput) { c.claims["sid"] = 42 }, reason: ReasonInvalidClaims},
	{name: "SIDWithLineBreak", edit: func(c *claimInput) { c.claims["sid"] = "s1\nforged" }, reason: ReasonInvalidClaims},
	{name: "SIDKeptAsADigest", edit: func(c *claimInput) { c.claims["sid"] = "6b1d6f0c-2f4e-4a8b-9a3e-5c7d8e9f0a1b" }, bound: BoundExp, deadline: 300},
	{name: "AMRWrongType", edit: func(c *claimInput) { c.claims["amr"] = "otp" }, reason: ReasonInvalidClaims},
	{name: "AMRWithNull", edit: func(c *claimInput) { c.claims["amr"] = []any{"pwd", nil} }, reason: ReasonInvalidClaims},
	{name: "AMRTooManyMethods", edit: func(c *claimInput) { c.claims["amr"] = slices.Repeat([]string{"otp"}, 33) }, reason: ReasonInvalidClaims},
	{name: "AMRMethodTooLong", edit: func(c *claimInput) { c.claims["amr"] = []string{strings.Repeat("m", 65)} }, reason: ReasonInvalidClaims},
	{name: "AMRWithLineBreak", edit: func(c *claimInput) { c.claims["amr"] = []string{"otp\nforged"} }, reason: ReasonInvalidClaims},
	{name: "AMRAbsent", edit: func(c *claimInput) { delete(c.claims, "amr") }, bound: BoundExp, deadline: 300},

	// RFC 9470 §4: the acr must be one the scope accepts.
	{name: "ACRDowngrade", edit: func(c *claimInput) { c.claims["acr"] = "urn:test:pwd" }, reason: ReasonACRNotSatisfied},
	{name: "ACRMissing", edit: func(c *claimInput) { delete(c.claims, "acr") }, reason: ReasonACRNotSatisfied},
	{name: "ACRWrongType", edit: func(c *claimInput) { c.claims["acr"] = 3 }, reason: ReasonInvalidClaims},
	{name: "ACRCaseChanged", edit: func(c *claimInput) { c.claims["acr"] = "URN:TEST:MFA" }, reason: ReasonACRNotSatisfied},
	{name: "ACRWithControlCharacter", edit: func(c *claimInput) { c.claims["acr"] = "urn:test:mfa\x1f" }, reason: ReasonInvalidClaims},
	{name: "ACRSecondChoice", edit: func(c *claimInput) { c.claims["acr"] = "urn:test:hw" }, bound: BoundExp, deadline: 300},
	{name: "EntraACRsArray", edit: func(c *claimInput) {
		delete(c.claims, "acr")
		c.claims["acrs"] = []string{"c1", "urn:test:hw"}
	}, bound: BoundExp, deadline: 300},
	{name: "EntraACRsWithoutAnAcceptedValue", edit: func(c *claimInput) {
		delete(c.claims, "acr")
		c.claims["acrs"] = []string{"c1", "c2"}
	}, reason: ReasonACRNotSatisfied},

	// §3.1.3.7 (13): a login after the challenge began, within MaxAge.
	{name: "StaleAuthTimeFromIdPIgnoringMaxAge", edit: func(c *claimInput) { c.claims["auth_time"] = claimNow - 91 }, reason: ReasonStaleAuthTime},
	{name: "AuthTimeBeforeChallengeWithinSkew", edit: func(c *claimInput) { c.claims["auth_time"] = claimNow - 90 }, bound: BoundExp, deadline: 300},
	{name: "AuthTimeOlderThanMaxAge", edit: func(c *claimInput) {
		c.scope.MaxAge, c.scope.PromptLogin = 2*time.Minute, true
		c.ch.started = claimNow - 600
		c.claims["auth_time"] = claimNow - 121
	}, reason: ReasonStaleAuthTime},
	{name: "AuthTimeInTheFuture", edit: func(c *claimInput) { c.claims["auth_time"] = claimNow + 31 }, reason: ReasonAuthTimeInFuture},
	{name: "AuthTimeAheadWithinSkew", edit: func(c *claimInput) { c.claims["auth_time"] = claimNow + 30 }, bound: BoundExp, deadline: 300},
	{name: "MissingAuthTime", edit: func(c *claimInput) { delete(c.claims, "auth_time") }, reason: ReasonMissingAuthTime},
	{name: "NullAuthTime", edit: func(c *claimInput) { c.claims["auth_time"] = nil }, reason: ReasonMissingAuthTime},
	{name: "AuthTimeAsString", edit: func(c *claimInput) { c.claims["auth_time"] = "1800000000" }, reason: ReasonInvalidAuthTime},
	{name: "AuthTimeInMilliseconds", edit: func(c *claimInput) { c.claims["auth_time"] = (claimNow - 10) * 1000 }, reason: ReasonInvalidAuthTime},
	{name: "AuthTimeWithFraction", edit: func(c *claimInput) { c.claims["auth_time"] = raw("1799999990.5") }, reason: ReasonInvalidAuthTime},

	// The IdP authenticated the logged-in user.
	{name: "SubjectSwitchAtIdP", edit: func(c *claimInput) { c.tok.subject = "mallory" }, reason: ReasonSubjectMismatch},
	{name: "SubjectUncheckedWithoutConfigSubject", edit: func(c *claimInput) { c.tok.subject = "mallory"; c.rc.checkSub = false }, bound: BoundExp, deadline: 300},

	// IPSIE session_expiry: strict whole Unix seconds.
	{name: "SessionExpiryAsString", edit: func(c *claimInput) { c.claims["session_expiry"] = "1800000000" }, reason: ReasonInvalidSessionExpiry},
	{name: "SessionExpiryWithFraction", edit: func(c *claimInput) { c.claims["session_expiry"] = raw("1800003600.5") }, reason: ReasonInvalidSessionExpiry},
	{name: "SessionExpiryNegative", edit: func(c *claimInput) { c.claims["session_expiry"] = -(claimNow + 3600) }, reason: ReasonInvalidSessionExpiry},
	{name: "SessionExpiryInMilliseconds", edit: func(c *claimInput) { c.claims["session_expiry"] = (claimNow + 3600) * 1000 }, reason: ReasonInvalidSessionExpiry},
	{name: "SessionExpiryAsDuration", edit: func(c *claimInput) { c.claims["session_expiry"] = 3600 }, reason: ReasonInvalidSessionExpiry},

	// Login-time lockout: an elevation born expired is refused, not granted
	// into a challenge loop.
	{name: "LoginTimeLockoutSessionExpiryInThePast", edit: func(c *claimInput) { c.claims["session_expiry"] = claimNow - 60 }, reason: ReasonCeilingInPast},
	{name: "LoginTimeLockoutSessionExpiryWithinSkew", edit: func(c *claimInput) { c.claims["session_expiry"] = claimNow + 30 }, reason: ReasonCeilingInPast},
	{name: "SessionExpiryJustBeyondSkew", edit: func(c *claimInput) { c.claims["session_expiry"] = claimNow + 31 }, bound: BoundSessionExpiry, deadline: 31},
	{name: "LoginTimeLockoutIDTokenExpiringWithinSkew", edit: func(c *claimInput) { c.tok.expiry = claimNow + 20 }, reason: ReasonCeilingInPast},
	{name: "LoginTimeLockoutMeasuredFromALaterIAT", edit: func(c *claimInput) {
		c.tok.issuedAt, c.tok.expiry = claimNow+20, claimNow+50
	}, reason: ReasonCeilingInPast},

	// Which bound sets the deadline.
	{name: "GrantUntilIDTokenExp", bound: BoundExp, deadline: 300},
	{name: "SessionExpiryBeforeExp", edit: func(c *claimInput) { c.claims["session_expiry"] = claimNow + 120 }, bound: BoundSessionExpiry, deadline: 120},
	{name: "SessionExpiryOnExpIsReportedFirst", edit: func(c *claimInput) { c.claims["session_expiry"] = claimNow + 300 }, bound: BoundSessionExpiry, deadline: 300},
	{name: "LifetimeCap", edit: func(c *claimInput) { c.scope.Lifetime = time.Minute }, bound: BoundLifetime, deadline: 60},
	{name: "MaxAgeFromAuthTime", edit: func(c *claimInput) {
		c.scope.MaxAge, c.scope.PromptLogin = 2*time.Minute, true
	}, bound: BoundMaxAge, deadline: 110},
	{name: "IgnoredIDTokenExpiryLeavesLifetime", edit: func(c *claimInput) {
		c.scope.IgnoreIDTokenExpiry, c.scope.Lifetime = true, 15*time.Minute
	}, bound: BoundLifetime, deadline: 900},
	{name: "NoClockSkew", edit: func(c *claimInput) {
		c.rc.skew = 0
		c.tok.expiry = claimNow + 1
	}, bound: BoundExp, deadline: 1},
}

// TestClaimRules runs every claim rule on plain values: no IdP, no HTTP.
// The rules that need a provider (state, iss, the code exchange,
// signatures, keys) are tested end to end in the root module.
func TestClaimRules(t *testing.T) {
	t.Parallel()
	for _, tc := range claimCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := validClaims()
			if tc.edit != nil {
				tc.edit(in)
			}
			in.tok.claims = in.idClaims(t)
			p := newPolicy("admin", in.scope, "stepup.")
			el, reason, e := checkClaims(in.tok, in.ch, p, in.rc)
			if reason != tc.reason {
				t.Fatalf("reason = %q, want %q", reason, tc.reason)
			}
			if !storable(e.ACR) || slices.ContainsFunc(e.AMR, func(m string) bool { return !storable(m) }) {
				t.Errorf("an unstorable claim reached the audit event: %+v", e)
			}
			if tc.reason != "" {
				if el.ID != "" || !el.Deadline.IsZero() {
					t.Errorf("a denial returned an elevation: %+v", el)
				}
				return
			}
			if want := time.Unix(claimNow+tc.deadline, 0); !el.Deadline.Equal(want) || el.Bound != tc.bound {
				t.Errorf("deadline %v (%s), want %v (%s)", el.Deadline.Unix()-claimNow, el.Bound, tc.deadline, tc.bound)
			}
			if !e.Deadline.Equal(el.Deadline) || e.Bound != el.Bound || e.ACR != el.ACR {
				t.Errorf("event %+v does not describe the elevation %+v", e, el)
			}
			if sid, _ := in.claims["sid"].(string); el.sidTag != sidTag(testIssuer, sid) || (sid != "" && len(el.sidTag) != 16) {
				t.Errorf("sid %q kept as %q", sid, el.sidTag)
			}
			if !strings.HasPrefix(el.ID, "E;") || el.Scope != "admin" || el.Issuer != testIssuer ||
				el.Subject != in.tok.subject || !el.GrantedAt.Equal(time.Unix(claimNow, 0)) ||
				!el.IDTokenExpiry.Equal(time.Unix(in.tok.expiry, 0)) || !slices.Contains(in.scope.ACR, el.ACR) {
				t.Errorf("elevation %+v", el)
			}
		})
	}
}

// TestClaimRulesReportWhatTheTokenAsserted: a denial after the acr was
// read names the asserted acr and amr in the audit event, so an operator
// sees what the IdP did instead.
func TestClaimRulesReportWhatTheTokenAsserted(t *testing.T) {
	t.Parallel()
	in := validClaims()
	in.claims["acr"] = "urn:test:pwd"
	in.claims["amr"] = []string{"pwd"}
	in.tok.claims = in.idClaims(t)
	_, reason, e := checkClaims(in.tok, in.ch, newPolicy("admin", in.scope, "stepup."), in.rc)
	if reason != ReasonACRNotSatisfied || e.ACR != "urn:test:pwd" || !slices.Equal(e.AMR, []string{"pwd"}) {
		t.Errorf("reason %q, event %+v", reason, e)
	}
}

func TestACRClaimsRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		claim  string
		values []string
		want   string
	}{
		{"ACROneValue", "acr", []string{"urn:mfa"}, `{"id_token":{"acr":{"essential":true,"values":["urn:mfa"]}}}`},
		{"ACRTwoValues", "acr", []string{"urn:hw", "urn:mfa"}, `{"id_token":{"acr":{"essential":true,"values":["urn:hw","urn:mfa"]}}}`},
		{"ACRSOneValue", "acrs", []string{"c1"}, `{"id_token":{"acrs":{"essential":true,"value":"c1"}}}`},
		{"ACRSTwoValues", "acrs", []string{"c1", "c2"}, `{"id_token":{"acrs":{"essential":true,"values":["c1","c2"]}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := acrClaimsRequest(tc.claim, tc.values); got != tc.want {
				t.Errorf("acrClaimsRequest(%q, %q) = %s, want %s", tc.claim, tc.values, got, tc.want)
			}
		})
	}
}
