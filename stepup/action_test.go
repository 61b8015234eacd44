package stepup

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func deleteBob() Action {
	return Action{Type: "urn:stepup:example:user", Actions: []string{"delete"}, Identifier: "bob", Text: "Delete user bob"}
}

func TestActionsAreValidatedBeforeTheyTravel(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Action)
		ok   bool
	}{
		{"delete bob", func(*Action) {}, true},
		{"no identifier", func(a *Action) { a.Identifier = "" }, true},
		{"no type", func(a *Action) { a.Type = "" }, false},
		{"no actions", func(a *Action) { a.Actions = nil }, false},
		{"an empty action", func(a *Action) { a.Actions = []string{""} }, false},
		{"a repeated action", func(a *Action) { a.Actions = []string{"delete", "delete"} }, false},
		{"nine actions", func(a *Action) { a.Actions = strings.Split("a,b,c,d,e,f,g,h,i", ",") }, false},
		{"no text", func(a *Action) { a.Text = "" }, false},
		{"a control in the identifier", func(a *Action) { a.Identifier = "bob\x1falice" }, false},
		{"a bidi override in the text", func(a *Action) { a.Text = "Delete user \u202ebob" }, false},
		{"an oversized identifier", func(a *Action) { a.Identifier = strings.Repeat("b", maxActionIdent+1) }, false},
		{"an oversized type", func(a *Action) { a.Type = strings.Repeat("t", maxActionType+1) }, false},
		{"an oversized text", func(a *Action) { a.Text = strings.Repeat("t", maxActionText+1) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := deleteBob()
			tc.edit(&a)
			if got := validAction(a); got != tc.ok {
				t.Fatalf("validAction = %v, want %v", got, tc.ok)
			}
		})
	}
}

func TestActionIdentityIgnoresOrderAndText(t *testing.T) {
	a := Action{Type: "urn:t", Actions: []string{"read", "write"}, Identifier: "x", Text: "one"}
	for _, tc := range []struct {
		name string
		b    Action
		same bool
	}{
		{"actions reordered, other text", Action{Type: "urn:t", Actions: []string{"write", "read"}, Identifier: "x", Text: "two"}, true},
		{"another identifier", Action{Type: "urn:t", Actions: []string{"read", "write"}, Identifier: "y", Text: "one"}, false},
		{"fewer actions", Action{Type: "urn:t", Actions: []string{"read"}, Identifier: "x", Text: "one"}, false},
		{"another type", Action{Type: "urn:u", Actions: []string{"read", "write"}, Identifier: "x", Text: "one"}, false},
		{"identifier moved into the type", Action{Type: "urn:t\x00x", Actions: []string{"read", "write"}, Text: "one"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := a.digest() == tc.b.digest(); got != tc.same {
				t.Fatalf("same = %v, want %v", got, tc.same)
			}
		})
	}
}

func TestGrantedDetailsMustBeWhatWasRequested(t *testing.T) {
	parse := func(s string) any {
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	a := deleteBob()
	for _, tc := range []struct {
		name             string
		granted          any
		present, matches bool
	}{
		{"as requested", parse(a.authorizationDetails()), true, true},
		{"absent", nil, false, false},
		{"empty array", parse(`[]`), true, false},
		{"identifier dropped", parse(`[{"type":"urn:stepup:example:user","actions":["delete"]}]`), true, false},
		{"identifier changed", parse(`[{"type":"urn:stepup:example:user","actions":["delete"],"identifier":"bob2"}]`), true, false},
		{"an action added", parse(`[{"type":"urn:stepup:example:user","actions":["delete","read"],"identifier":"bob"}]`), true, false},
		{"an action repeated", parse(`[{"type":"urn:stepup:example:user","actions":["delete","delete"],"identifier":"bob"}]`), true, false},
		{"actions not strings", parse(`[{"type":"urn:stepup:example:user","actions":[1],"identifier":"bob"}]`), true, false},
		{"type not a string", parse(`[{"type":7,"actions":["delete"],"identifier":"bob"}]`), true, false},
		{"a string", "[]", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			present, ok := grantedDetailsMatch(a, tc.granted)
			if present != tc.present || ok != tc.matches {
				t.Fatalf("got present %v match %v, want %v %v", present, ok, tc.present, tc.matches)
			}
		})
	}
}

func TestActionRecordsRoundTrip(t *testing.T) {
	plain := pending{state: "s", nonce: "n", verifier: "v", scope: "admin", started: 5, returnTo: "/admin"}
	withAction := plain
	withAction.action = encodeAction(deleteBob())
	if got := encodePending([]pending{plain}); strings.Count(got, string(fieldSep)) != 7 {
		t.Fatalf("a challenge without action must be stored as v0.1.0 stored it: %q", got)
	}
	list, err := decodePending(encodePending([]pending{plain, withAction}))
	if err != nil || len(list) != 2 || list[0] != plain || list[1] != withAction {
		t.Fatalf("pending round trip: %+v %v", list, err)
	}
	if a, ok := decodeAction(list[1].action); !ok || a.digest() != deleteBob().digest() || a.Text != "Delete user bob" {
		t.Fatalf("action: %+v %v", a, ok)
	}
	if _, err := decodePending(encodePending([]pending{plain}) + string(fieldSep)); err == nil {
		t.Fatal("an empty action field decoded")
	}
	aps := []approval{{id: "E;a", digest: "d", scope: "delete", until: 9}, {id: "E;b", digest: "e", scope: "delete", until: 10}}
	back, err := decodeApprovals(encodeApprovals(aps))
	if err != nil || len(back) != 2 || back[1] != aps[1] {
		t.Fatalf("approvals round trip: %+v %v", back, err)
	}
	rec := &approvalRecord{until: 9, digest: "d", scope: "delete", subject: "alice", generation: 2, sidTag: "x", authTime: 3, used: true, action: withAction.action}
	got, err := decodeApprovalRecord(encodeApprovalRecord(rec))
	if err != nil || *got != *rec {
		t.Fatalf("approval record round trip: %+v %v", got, err)
	}
	for _, bad := range []string{"", "g1", "g1\x1e\x1fd\x1fs\x1f9", "x1\x1eE;a\x1fd\x1fs\x1f9"} {
		if _, err := decodeApprovals(bad); err == nil && bad != "" {
			t.Errorf("approvals %q decoded", bad)
		}
	}
	if _, err := decodeApprovalRecord("a1\x1f9\x1fd\x1fs\x1falice\x1f\x1f\x1f\x1fX\x1f{}"); err == nil {
		t.Error("an approval record with a bad used flag decoded")
	}
}

func TestActionWindowIsValidated(t *testing.T) {
	for _, d := range []time.Duration{5 * time.Second, 2 * time.Hour, 1500 * time.Millisecond * 10} {
		cfg := Config{Provider: offlineProvider(), Issuer: testIssuer, ClientID: "c", RedirectURL: "https://app.test/cb",
			SessionManager: newSessions(), Scopes: map[string]Scope{"delete": {ACR: []string{"urn:test:mfa"}, ActionWindow: d}}}
		_, err := New(cfg)
		if ce, ok := err.(*ConfigError); (d%time.Second == 0 && d >= 10*time.Second && d <= time.Hour) != (err == nil) || (err != nil && (!ok || ce.Field != `Scopes["delete"].ActionWindow`)) {
			t.Errorf("ActionWindow %v: %v", d, err)
		}
	}
}
