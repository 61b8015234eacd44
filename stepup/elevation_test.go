package stepup

import (
	"net/http"
	"slices"
	"testing"
	"time"
)

func TestElevationReadsWithoutEnforcing(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	el := h.elevation(t0.Add(time.Hour))
	el.SessionExpiry = t0.Add(2 * time.Hour)
	var got Elevation
	var ok, okExpired bool
	h.serve(navigation("GET", "/", "alice"),
		map[string]any{"stepup.elevation.admin": encodeElevation(&el)},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, ok = h.su.Elevation(r, "admin")
			h.advance(time.Hour)
			_, okExpired = h.su.Elevation(r, "admin")
			if !h.sm.Exists(r.Context(), "stepup.elevation.admin") {
				t.Error("Elevation removed an expired elevation")
			}
		}))
	if got.ACR != "urn:test:mfa" || got.Issuer != testIssuer {
		t.Errorf("Elevation named acr %q, issuer %q; want them resolved from the record's tags", got.ACR, got.Issuer)
	}
	if !got.Ends.Equal(el.Deadline.Add(-30 * time.Second)) {
		t.Errorf("Ends = %v, want the deadline minus the skew", got.Ends)
	}
	if !ok || got.Subject != "alice" || !got.Deadline.Equal(el.Deadline) || !got.SessionExpiry.Equal(el.SessionExpiry) || !slices.Equal(got.AMR, el.AMR) {
		t.Errorf("Elevation = %+v, %v", got, ok)
	}
	if okExpired {
		t.Error("Elevation reported an expired elevation")
	}
	if len(h.audit.Events()) != 0 {
		t.Errorf("Elevation audited %v", h.audit.Events())
	}
}

func TestDropEndsTheElevation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	el := h.elevation(t0.Add(time.Hour))
	w := h.serve(navigation("GET", "/admin", "alice"),
		map[string]any{"stepup.elevation.admin": encodeElevation(&el)},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.su.Drop(r, "admin")
			h.su.Drop(r, "admin") // a second drop does nothing
			h.su.RequireStepUp("admin")(okHandler).ServeHTTP(w, r)
		}))
	if w.Code != http.StatusSeeOther {
		t.Fatalf("after Drop: status %d, want 303", w.Code)
	}
	ev := h.audit.Events()
	if len(ev) != 2 || ev[0].Type != EventDropped || ev[0].Reason != ReasonDropped || ev[0].Elevation != "elev-1" {
		t.Errorf("audit %+v", ev)
	}
}
