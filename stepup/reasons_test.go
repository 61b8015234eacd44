package stepup

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// reasonConsts parses the package's non-test files and returns, for each
// file, the Reason constants it declares.
func reasonConsts(t *testing.T) map[string][]string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "Reason" {
					for _, n := range vs.Names {
						out[f] = append(out[f], n.Name)
					}
				}
			}
		}
	}
	return out
}

// TestEveryReasonIsDeclaredInReasonsGoWithItsDefaults: a reason, its
// status and its text live in one file, so that a reviewer reads them in
// one place and a new reason cannot ship without a default answer.
func TestEveryReasonIsDeclaredInReasonsGoWithItsDefaults(t *testing.T) {
	t.Parallel()
	consts := reasonConsts(t)
	for file, names := range consts {
		if file != "reasons.go" {
			t.Errorf("%s declares Reason constants %v: every Reason belongs in reasons.go", file, names)
		}
	}
	names := consts["reasons.go"]
	if len(names) < 40 {
		t.Fatalf("found %d Reason constants in reasons.go: the parser missed them", len(names))
	}
	if len(reasonDefaults) != len(names) {
		t.Errorf("reasonDefaults has %d rows for %d Reason constants", len(reasonDefaults), len(names))
	}
	seen := map[Reason]bool{}
	for r, d := range reasonDefaults {
		if seen[r] {
			t.Errorf("%s: two reasons share the value", r)
		}
		seen[r] = true
		switch d.status {
		case 0, http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusAccepted,
			http.StatusInternalServerError, http.StatusBadGateway:
		default:
			t.Errorf("%s: unexpected default status %d", r, d.status)
		}
		if d.status >= 400 && d.status != http.StatusBadRequest && d.text == "" {
			t.Errorf("%s: a denial a person sees has no text", r)
		}
	}
}

// TestDenialStatusAndText: the default answer of each kind of denial,
// and the fallback for a reason stepup does not know.
func TestDenialStatusAndText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		reason Reason
		status int
		text   string
	}{
		{ReasonBadRequest, http.StatusBadRequest, "The step-up response was malformed."},
		{ReasonUnauthenticated, http.StatusUnauthorized, "Log in first."},
		{ReasonSessionError, http.StatusInternalServerError, "Your session could not be saved."},
		{ReasonTokenExchange, http.StatusBadGateway, "The identity provider could not be reached. Try again in a moment."},
		{ReasonACRNotSatisfied, http.StatusForbidden, "The login was not strong enough for this action."},
		{ReasonBackChannelLogout, http.StatusForbidden, "You were signed out at the identity provider. Log in again."},
		{"no_such_reason", http.StatusForbidden, "Step-up authentication failed."},
	} {
		t.Run(string(tc.reason), func(t *testing.T) {
			d := &Denial{Reason: tc.reason}
			if d.Status() != tc.status || d.Text() != tc.text {
				t.Errorf("Status, Text = %d, %q; want %d, %q", d.Status(), d.Text(), tc.status, tc.text)
			}
		})
	}
}
