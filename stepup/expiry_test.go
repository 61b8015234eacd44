package stepup

import (
	"testing"
)

func TestBoundsDeadlineIsTheEarliestBound(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		b     bounds
		want  int64
		bound Bound
		ok    bool
	}{
		{"exp only", bounds{exp: 100}, 100, BoundExp, true},
		{"session_expiry before exp", bounds{exp: 100, sessionExpiry: 90}, 90, BoundSessionExpiry, true},
		{"exp before session_expiry", bounds{exp: 80, sessionExpiry: 90}, 80, BoundExp, true},
		{"tie goes to session_expiry", bounds{exp: 90, sessionExpiry: 90}, 90, BoundSessionExpiry, true},
		{"lifetime cap wins", bounds{exp: 100, sessionExpiry: 90, lifetime: 50}, 50, BoundLifetime, true},
		{"max_age wins", bounds{exp: 100, lifetime: 50, maxAge: 40}, 40, BoundMaxAge, true},
		{"exp ignored, lifetime only", bounds{lifetime: 50}, 50, BoundLifetime, true},
		{"no bound at all", bounds{}, 0, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, bound, ok := tc.b.deadline()
			if got != tc.want || bound != tc.bound || ok != tc.ok {
				t.Errorf("deadline() = %d, %q, %v; want %d, %q, %v", got, bound, ok, tc.want, tc.bound, tc.ok)
			}
		})
	}
}

// TestFreshAtTheBoundaries walks the clock across the deadline with the
// default skew and with none: an elevation ends skew seconds early, never
// late.
func TestFreshAtTheBoundaries(t *testing.T) {
	t.Parallel()
	const deadline = 1_800_000_600
	for _, sk := range []struct {
		name string
		skew int64
	}{
		{"DefaultSkew", 30},
		{"NoSkew", 0},
	} {
		skew := sk.skew
		t.Run(sk.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range []struct {
				name string
				now  int64
				want bool
			}{
				{"deadline - skew - 1s", deadline - skew - 1, true},
				{"deadline - skew", deadline - skew, false},
				{"deadline", deadline, false},
				{"deadline + 1s", deadline + 1, false},
			} {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					if got := fresh(tc.now, skew, deadline); got != tc.want {
						t.Errorf("skew %ds: fresh = %v, want %v", skew, got, tc.want)
					}
				})
			}
		})
	}
}

func TestBornExpired(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                     string
		deadline, now, iat, skew int64
		want                     bool
	}{
		{"comfortably in the future", 1000, 100, 100, 30, false},
		{"one second past now + skew", 131, 100, 100, 30, false},
		{"exactly now + skew", 130, 100, 100, 30, true},
		{"already past", 50, 100, 100, 30, true},
		{"iat ahead of now counts", 131, 100, 110, 30, true},
		{"no skew, one second left", 101, 100, 100, 0, false},
		{"no skew, deadline now", 100, 100, 100, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := bornExpired(tc.deadline, tc.now, tc.iat, tc.skew); got != tc.want {
				t.Errorf("bornExpired = %v, want %v", got, tc.want)
			}
		})
	}
}
