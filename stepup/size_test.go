package stepup

import (
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
)

// TestElevationAddsAtMost200Bytes measures what one elevation adds to the
// gob-encoded session scs stores and loads on every request, for claims as
// real IdPs issue them, the sid of the IdP session included (a 36-character
// GUID at Keycloak and Entra ID).
func TestElevationAddsAtMost200Bytes(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		idp                   string
		issuer, sub, sid, acr string
		amr                   []string
		exp, sessionExpiry    time.Duration
		deadline              time.Duration
		bound                 Bound
	}{
		{"Keycloak", "https://sso.example.com/realms/corporate", "f47ac10b-58cc-4372-a567-0e02b2c3d479", "6b1d6f0c-2f4e-4a8b-9a3e-5c7d8e9f0a1b", "gold", []string{"pwd", "otp"}, 5 * time.Minute, 0, 5 * time.Minute, BoundExp},
		{"Entra ID", "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0", "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", "00b9c5e2-7a41-4f3e-8c6d-2e1f0a9b8c7d", "c1", []string{"pwd", "mfa"}, time.Hour, 0, 15 * time.Minute, BoundLifetime},
		{"Auth0", "https://example.eu.auth0.com/", "auth0|64f1c0e2a3b4c5d6e7f80910", "HDCe0CH-r6Dj2iyhTnjsFps9a_INrE_c", "http://schemas.openid.net/pape/policies/2007/06/multi-factor", []string{"pwd", "mfa"}, 10 * time.Hour, 4 * time.Hour, 15 * time.Minute, BoundLifetime},
		{"Okta", "https://example.okta.com/oauth2/default", "00u1a2b3c4d5e6f7g8h9", "102Xbc9aQ2WRpiv8DAzjU2x1A", "urn:okta:loa:2fa:any", []string{"pwd", "otp", "mfa"}, time.Hour, 0, time.Hour, BoundExp},
	} {
		t.Run(tc.idp, func(t *testing.T) {
			t.Parallel()
			el := Elevation{
				ID: newElevationID(), Issuer: tc.issuer, Subject: tc.sub, ACR: tc.acr, AMR: tc.amr,
				AuthTime: now.Add(-3 * time.Second), IDTokenExpiry: now.Add(tc.exp), GrantedAt: now,
				Deadline: now.Add(tc.deadline), Bound: tc.bound,
				sidTag: sidTag(tc.issuer, tc.sid), generation: 3,
			}
			if tc.sessionExpiry > 0 {
				el.SessionExpiry = now.Add(tc.sessionExpiry)
			}
			base := map[string]interface{}{"sub": tc.sub}
			with := map[string]interface{}{"sub": tc.sub, "stepup.elevation.admin": encodeElevation(&el)}
			a, err := scs.GobCodec{}.Encode(now, base)
			if err != nil {
				t.Fatal(err)
			}
			b, err := scs.GobCodec{}.Encode(now, with)
			if err != nil {
				t.Fatal(err)
			}
			added := len(b) - len(a)
			t.Logf("%-8s: the elevation adds %d bytes to the encoded session (record %d bytes)", tc.idp, added, len(encodeElevation(&el)))
			if added > 200 {
				t.Errorf("%s: an elevation adds %d bytes, over the 200-byte budget", tc.idp, added)
			}
		})
	}
}
