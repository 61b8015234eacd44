package stepup

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestElevationRoundTrips(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		el   Elevation
	}{
		{"EveryField", Elevation{
			ID: "id", Scope: "admin", Issuer: "https://idp.test", Subject: "248289761001",
			ACR: "http://schemas.openid.net/pape/policies/2007/06/multi-factor", AMR: []string{"pwd", "otp", "hwk"},
			AuthTime: time.Unix(1_800_000_000, 0), IDTokenExpiry: time.Unix(1_800_000_600, 0),
			SessionExpiry: time.Unix(1_800_000_300, 0), GrantedAt: time.Unix(1_800_000_001, 0),
			Deadline: time.Unix(1_800_000_300, 0), Bound: BoundSessionExpiry,
			sidTag: sidTag("https://idp.test", "f47ac10b-58cc-4372-a567-0e02b2c3d479"), generation: 7,
		}},
		{"OptionalFieldsEmpty", Elevation{
			ID: "id2", Scope: "billing", Issuer: "https://idp.test", Subject: "bob",
			AuthTime: time.Unix(1_800_000_000, 0), IDTokenExpiry: time.Unix(1_800_000_600, 0),
			GrantedAt: time.Unix(1_800_000_001, 0), Deadline: time.Unix(1_800_000_100, 0), Bound: BoundLifetime,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			el := tc.el
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
			if err != nil || h.deadline != el.Deadline.Unix() || h.issuerTag != issuerTag(el.Issuer) || h.subject != el.Subject || h.id != el.ID ||
				h.generation != el.generation || h.sidTag != el.sidTag || h.authTime != el.AuthTime.Unix() {
				t.Errorf("head %+v, %v", h, err)
			}
		})
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
	if _, err := decodeElevation(good, "admin"); err != nil {
		t.Fatalf("decodeElevation(%q): %v", good, err)
	}
	// with returns good with its field i replaced by v: damage to one
	// field of a record that is otherwise well formed.
	with := func(i int, v string) string {
		f := strings.Split(good, string(fieldSep))
		f[i] = v
		return strings.Join(f, string(fieldSep))
	}
	for _, tc := range []struct {
		name string
		bad  string
	}{
		{"Empty", ""},
		{"PreReleaseTagAlone", "e1"},
		{"TagAlone", "e2"},
		{"FutureFormat", "e3" + good[2:]},
		{"FieldAppended", good + "\x1fextra"},
		{"LastFieldMissing", good[:strings.LastIndexByte(good, fieldSep)]},
		{"NoIssuerTag", with(2, "")},
		{"AuthTimeNotANumber", with(10, "soon")},
		{"NegativeDeadline", with(1, "-5")},
		{"ZeroDeadline", with(1, "0")},
		{"UnknownBound", with(7, "q")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := decodeElevation(tc.bad, "admin"); err == nil {
				t.Errorf("decodeElevation(%q) accepted damage", tc.bad)
			}
		})
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
	if _, err := decodePending("p2\x1eS\x1fN\x1fV\x1fa\x1f1\x1f/\x1f\x1f"); err != nil {
		t.Fatalf("a well-formed list: %v", err)
	}
	for _, tc := range []struct {
		name string
		bad  string
	}{
		{"PreReleaseFormat", "p1"},
		{"ItemWithoutModeAndRef", "p2\x1eS\x1fN\x1fV\x1fa\x1f1\x1f/"},
		{"EmptyState", "p2\x1e\x1fN\x1fV\x1fa\x1f1\x1f/\x1f\x1f"},
		{"TruncatedItem", "p2\x1eS\x1fN"},
		{"UnknownMode", "p2\x1eS\x1fN\x1fV\x1fa\x1f1\x1f/\x1fq\x1f"},
		{"RefWithoutPopup", "p2\x1eS\x1fN\x1fV\x1fa\x1f1\x1f/\x1f\x1fref-without-popup"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := decodePending(tc.bad); err == nil {
				t.Errorf("decodePending(%q) accepted damage", tc.bad)
			}
		})
	}
}

func TestStorable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		s    string
		want bool
	}{
		{"Plain", "alice", true},
		{"SpaceAndNonASCII", "urn:x:y ü", true},
		{"UnitSeparator", "a\x1fb", false},
		{"RecordSeparator", "a\x1eb", false},
		{"Newline", "a\nb", false},
		{"DEL", "\x7f", false},
		{"InvalidUTF8", "\xff", false},
		{"C1NextLine", "a\u0085b", false},
		{"LineSeparator", "a\u2028b", false},
		{"AtMaxField", strings.Repeat("a", maxField), true},
		{"OneByteOverMaxField", strings.Repeat("a", maxField+1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := storable(tc.s); got != tc.want {
				t.Errorf("storable(%q) = %v", tc.s, got)
			}
		})
	}
}

// TestPrintableRefusesLogAndDisplaySpoofing: a value that reaches an audit
// log or a page must not be able to start a new log line, reverse the text
// around it, or hide a character that makes it another value.
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
		// A second "alice": characters that show as nothing
		// (issue 17: each was accepted as a user name).
		{"ZeroWidthSpace", "alice\u200b", false},
		{"ZeroWidthJoiner", "alice\u200d", false},
		{"ByteOrderMark", "alice\ufeff", false},
		{"SoftHyphen", "ali\u00adce", false},
		{"CombiningGraphemeJoiner", "alice\u034f", false},
		{"HangulChoseongFiller", "alice\u115f", false},
		{"HangulFiller", "alice\u3164", false},
		{"MongolianVowelSeparator", "alice\u180e", false},
		{"InterlinearAnnotationAnchor", "alice\ufff9", false},
		{"TagLatinCapitalA", "alice\U000E0041", false},
		{"VariationSelector16", "alice\ufe0f", false},
		{"WordJoiner", "al\u2060ice", false},
		{"Hangul", "한국어", true},
		{"Devanagari", "देवनागरी", true},
		{"Emoji", "alice🔑", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Printable(tc.s); got != tc.want {
				t.Errorf("Printable(%q) = %v, want %v", tc.s, got, tc.want)
			}
		})
	}
}

// fuzzElevations are realistic elevations whose encodings seed
// FuzzDecodeElevation.
func fuzzElevations() []Elevation {
	at := func(n int64) time.Time { return time.Unix(n, 0) }
	return []Elevation{
		{
			ID: "ZQ4XJ2N3KFTTQ7ILGHXGMDB3TU", Scope: "admin", Issuer: "https://idp.test", Subject: "248289761001",
			ACR: "http://schemas.openid.net/pape/policies/2007/06/multi-factor", AMR: []string{"pwd", "otp", "hwk"},
			AuthTime: at(1_800_000_000), IDTokenExpiry: at(1_800_000_600), SessionExpiry: at(1_800_000_300),
			GrantedAt: at(1_800_000_001), Deadline: at(1_800_000_300), Bound: BoundSessionExpiry,
			sidTag: sidTag("https://idp.test", "f47ac10b-58cc-4372-a567-0e02b2c3d479"), generation: 12,
		},
		{
			ID: "id2", Scope: "admin", Issuer: "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
			Subject: "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", ACR: "c1", AMR: []string{"mfa"},
			AuthTime: at(1_800_000_000), IDTokenExpiry: at(1_800_003_600), GrantedAt: at(1_800_000_001),
			Deadline: at(1_800_000_100), Bound: BoundLifetime,
		},
		{
			ID: "x", Scope: "admin", Issuer: "i", Subject: "ünïcødé ☃", ACR: "urn:mfa",
			AuthTime: at(1_000_000_000), IDTokenExpiry: at(9_999_999_999), GrantedAt: at(1_000_000_001),
			Deadline: at(9_999_999_999), Bound: BoundExp,
		},
		{
			ID: "y", Scope: "admin", Issuer: "https://idp.test", Subject: "s", ACR: "phrh", AMR: []string{""},
			AuthTime: at(1_800_000_000), GrantedAt: at(1_800_000_010), Deadline: at(1_800_000_300), Bound: BoundMaxAge,
		},
	}
}

// canonicalInts reports whether each of fields[i] for i in idx is written
// as the encoder writes a number: empty for 0, else no sign or leading zero.
func canonicalInts(fields []string, idx ...int) bool {
	for _, i := range idx {
		f := fields[i]
		if f == "" {
			continue
		}
		if f[0] < '1' || f[0] > '9' || strings.Trim(f, "0123456789") != "" {
			return false
		}
	}
	return true
}

// canonicalDeltas reports whether each of fields[i] for i in idx is written
// as the encoder writes an instant's offset from the deadline: empty for
// the zero time, else a signed number without a plus sign or leading zero.
func canonicalDeltas(fields []string, idx ...int) bool {
	for _, i := range idx {
		f := strings.TrimPrefix(fields[i], "-")
		if fields[i] == "" || fields[i] == "0" {
			continue
		}
		if f == "" || f[0] < '1' || f[0] > '9' || strings.Trim(f, "0123456789") != "" {
			return false
		}
	}
	return true
}

// FuzzDecodeElevation checks that the guard's head read and the full decode
// agree on every record, and that a decoded record re-encodes to a record
// that decodes to the same elevation, byte for byte when it was canonical
// and in the one format there is (e2). Pre-release formats are refused.
// testdata/fuzz/FuzzDecodeElevation/8ab70b5bf26519c5: empty auth_time and
// granted_at re-encoded as -62135596800 (fixed in c264fb0); since the record
// holds issuer and acr tags that input is refused earlier, and
// absent-instants carries the same case in the current format.
func FuzzDecodeElevation(f *testing.F) {
	for _, el := range fuzzElevations() {
		rec := encodeElevation(&el)
		f.Add(rec)
		f.Add(rec + "\x1f")
		f.Add(rec[:len(rec)-1])
		f.Add(strings.Replace(rec, "\x1f", "\x1e", 1))
	}
	for _, s := range []string{
		"", "e1", "e2", "e3\x1f1800000000\x1fi\x1fs\x1fx\x1f\x1f\x1fe\x1f\x1f\x1f1800000000\x1f\x1f\x1f1800000000",
		"e2\x1f1800000000\x1fi\x1fs\x1fx\x1fe\x1f\x1f\x1f1800000000\x1f\x1f\x1f1800000000", // e1's field count
		"e2\x1f1800000000\x1fi\x1fs\x1fx\x1f-1\x1fsid\x1fe\x1fa\x1f\x1f1800000000\x1f\x1f\x1f1800000000",
		"e2\x1f1800000000\x1fi\x1fs\x1fx\x1f007\x1fsid\x1fe\x1fa\x1f\x1f1800000000\x1f\x1f\x1f1800000000",
		"e1\x1f-5\x1fi\x1fs\x1fx\x1fe\x1f\x1f\x1f1\x1f\x1f\x1f1",
		"e1\x1f0\x1fi\x1fs\x1fx\x1fe\x1f\x1f\x1f1\x1f\x1f\x1f1",
		"e1\x1f\x1fi\x1fs\x1fx\x1fe\x1f\x1f\x1f1\x1f\x1f\x1f1",
		"e1\x1f100\x1fi\x1fs\x1fx\x1fq\x1f\x1f\x1f1\x1f\x1f\x1f1",
		"e1\x1f+100\x1fi\x1fs\x1fx\x1fe\x1f\x1f\x1f0001\x1f-0\x1f\x1f1",
		"e1\x1f9223372036854775807\x1fi\x1fs\x1fx\x1fl\x1fa\x1fb\x1e\x1e\x1f9223372036854775807\x1f1\x1f1\x1f1",
		"e1\x1f9223372036854775808\x1fi\x1fs\x1fx\x1fl\x1f\x1f\x1f1\x1f\x1f\x1f1",
		"e1\x1f1800000000\x1fi\x1e\x1fs\n\x1f\x1fm\x1f\xff\x1f\x1e\x1f1800000000\x1f\x1f\x1f1800000000",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rec string) {
		el, err := decodeElevation(rec, "admin")
		h, herr := readElevationHead(rec)
		if (err == nil) != (herr == nil) {
			t.Fatalf("decodeElevation and readElevationHead disagree on %q: %v vs %v", rec, err, herr)
		}
		if err != nil {
			if !reflect.DeepEqual(el, Elevation{}) || h != (elevationHead{}) {
				t.Errorf("refused %q but returned %+v / %+v", rec, el, h)
			}
			return
		}
		if h.deadline != el.Deadline.Unix() || h.issuerTag != el.issuerTag || el.Issuer != "" || el.ACR != "" || el.acrTag == "" ||
			h.subject != el.Subject || h.id != el.ID || h.generation != el.generation || h.sidTag != el.sidTag || h.authTime != el.AuthTime.Unix() {
			t.Errorf("head %+v disagrees with the full decode %+v", h, el)
		}
		fields := strings.Split(rec, string(fieldSep))
		if len(fields) != 14 || fields[0] != elevationTag {
			t.Fatalf("accepted %q with %d fields", rec, len(fields))
		}
		if el.Scope != "admin" || h.deadline <= 0 || el.Deadline.IsZero() || el.Bound == "" || !el.Ends.IsZero() {
			t.Errorf("accepted %q as %+v", rec, el)
		}
		re := encodeElevation(&el)
		again, err := decodeElevation(re, "admin")
		if err != nil {
			t.Fatalf("%q decodes to %+v, whose encoding %q does not decode: %v", rec, el, re, err)
		}
		if !reflect.DeepEqual(again, el) {
			t.Fatalf("round trip of %q\n got %+v\nwant %+v", rec, again, el)
		}
		if re2 := encodeElevation(&again); re2 != re {
			t.Errorf("the encoder's own output %q re-encodes as %q", re, re2)
		}
		// A record re-encodes to itself when its numbers are canonical.
		if canonicalInts(fields, 1, 5) && canonicalDeltas(fields, 10, 11, 12, 13) && re != rec {
			t.Errorf("canonical record %q re-encodes as %q", rec, re)
		}
	})
}

// FuzzDecodePending checks that every accepted pending list has one
// well-formed challenge per item and round-trips through encodePending.
func FuzzDecodePending(f *testing.F) {
	for _, list := range [][]pending{
		{{state: "S1", nonce: "N1", verifier: "V1", scope: "admin", started: 1_800_000_000, returnTo: "/admin?x=1"}},
		{
			{state: "JBSWY3DPEHPK3PXPJBSWY3DPEH", nonce: "KRUGS4ZANFZSAYJAORSXG5AK", verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", scope: "admin", started: 1_800_000_000, returnTo: "/"},
			{state: "S2", nonce: "N2", verifier: "V2", scope: "billing ü", started: 1_800_000_005, returnTo: "/billing/ünï?a=b#c"},
			{state: "S3", nonce: "", verifier: "", scope: "", started: 1, returnTo: ""},
			{state: "S4", nonce: "N4", verifier: "V4", scope: "admin", started: 1_800_000_009, returnTo: "/admin/users", popup: true, ref: "r-9_x"},
		},
		{{state: "S5", nonce: "N5", verifier: "V5", scope: "delete", started: 1_800_000_010, returnTo: "/users/delete",
			action: encodeAction(Action{Type: "urn:t", Actions: []string{"delete"}, Identifier: "bob", Text: "Delete bob"})}},
	} {
		s := encodePending(list)
		f.Add(s)
		f.Add(s + "\x1e")
		f.Add(s[:len(s)-1])
	}
	for _, s := range []string{
		"", "p1", "p1\x1e", "p2\x1eS\x1fN\x1fV\x1fa\x1f1\x1f/", "p3\x1eS\x1fN\x1fV\x1fa\x1f1\x1f/\x1f\x1f", "p1\x1e\x1fN\x1fV\x1fa\x1f1\x1f/", "p1\x1eS\x1fN",
		"p2\x1eS\x1fN\x1fV\x1fa\x1f1\x1f/\x1fp\x1fref-1", "p2\x1eS\x1fN\x1fV\x1fa\x1f1\x1f/\x1fq\x1f", "p2\x1eS\x1fN\x1fV\x1fa\x1f1\x1f/\x1f\x1fref",
		"p1\x1eS\x1fN\x1fV\x1fa\x1f0\x1f/", "p1\x1eS\x1fN\x1fV\x1fa\x1f-1\x1f/", "p1\x1eS\x1fN\x1fV\x1fa\x1f+1\x1f/",
		"p1\x1eS\x1fN\x1fV\x1fa\x1f007\x1f/", "p1\x1eS\x1fN\x1fV\x1fa\x1f1\x1f/\x1fx",
		"p1\x1eS\x1fN\x1fV\x1fa\x1f1\x1f/\x1e\x1e", "p1\x1fS\x1fN\x1fV\x1fa\x1f1\x1f/",
		"p1\x1eS\n\x1f\xff\x1f\x00\x1f\x7f\x1f9223372036854775807\x1f/\t",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		list, err := decodePending(s)
		if err != nil {
			if list != nil {
				t.Errorf("refused %q but returned %+v", s, list)
			}
			return
		}
		if s == "" {
			if list != nil {
				t.Errorf("empty record decodes as %+v", list)
			}
			return
		}
		items := strings.Split(s, string(listSep))
		if items[0] != pendingTag || len(items)-1 != len(list) || len(list) == 0 {
			t.Fatalf("accepted %q as %d challenges", s, len(list))
		}
		canonical := true
		for i, p := range list {
			fields := strings.Split(items[i+1], string(fieldSep))
			withAction := len(fields) == 9 && p.action == fields[8] && validStoredAction(p.action)
			if (len(fields) != 8 && !withAction) || p.state == "" || p.started <= 0 || (!p.popup && p.ref != "") {
				t.Errorf("accepted item %q as %+v", items[i+1], p)
				continue
			}
			canonical = canonical && canonicalInts(fields, 4)
		}
		re := encodePending(list)
		again, err := decodePending(re)
		if err != nil {
			t.Fatalf("%q decodes to %+v, whose encoding %q does not decode: %v", s, list, re, err)
		}
		if !reflect.DeepEqual(again, list) {
			t.Fatalf("round trip of %q\n got %+v\nwant %+v", s, again, list)
		}
		if re2 := encodePending(again); re2 != re {
			t.Errorf("the encoder's own output %q re-encodes as %q", re, re2)
		}
		if canonical && re != s {
			t.Errorf("canonical record %q re-encodes as %q", s, re)
		}
	})
}

// TestPreReleaseRecordFormatsFailClosed: v0.1.0 reads one format per
// record. An elevation or a pending list in a format only a pre-release
// build wrote (e1, before the sid and the generation were stored; p1,
// before the popup mode) is refused as corrupt, so the guard drops it and
// challenges: it never grants on a record it cannot fully read.
func TestPreReleaseRecordFormatsFailClosed(t *testing.T) {
	t.Parallel()
	el := fuzzElevations()[1]
	fields := strings.Split(encodeElevation(&el), string(fieldSep))
	e1 := strings.Join(append(append([]string{"e1"}, fields[1:5]...), fields[7:]...), string(fieldSep))
	if _, err := decodeElevation(e1, "admin"); !errors.Is(err, ErrCorruptRecord) {
		t.Errorf("decodeElevation(e1 record) = %v, want ErrCorruptRecord", err)
	}
	if _, err := readElevationHead(e1); !errors.Is(err, ErrCorruptRecord) {
		t.Errorf("readElevationHead(e1 record) = %v, want ErrCorruptRecord", err)
	}
	p1 := "p1\x1eS\x1fN\x1fV\x1fadmin\x1f1800000000\x1f/admin"
	if _, err := decodePending(p1); !errors.Is(err, ErrCorruptRecord) {
		t.Errorf("decodePending(p1 list) = %v, want ErrCorruptRecord", err)
	}
}
