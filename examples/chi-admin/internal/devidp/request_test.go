package devidp

import (
	"testing"
	"time"

	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

func TestWantsStrong(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		req  stepuptest.AuthRequest
		want bool
	}{
		{"nothing", stepuptest.AuthRequest{}, false},
		{"basic acr_values", stepuptest.AuthRequest{ACRValues: []string{BasicACR}}, false},
		{"strong acr_values", stepuptest.AuthRequest{ACRValues: []string{StrongACR}}, true},
		{"strong among acr_values", stepuptest.AuthRequest{ACRValues: []string{BasicACR, StrongACR}}, true},
		{"unknown acr_values", stepuptest.AuthRequest{ACRValues: []string{"urn:other:gold"}}, false},
		{"essential values", stepuptest.AuthRequest{Claims: `{"id_token":{"acr":{"essential":true,"values":["urn:stepup:dev:mfa"]}}}`}, true},
		{"essential value", stepuptest.AuthRequest{Claims: `{"id_token":{"acr":{"essential":true,"value":"urn:stepup:dev:mfa"}}}`}, true},
		{"voluntary values", stepuptest.AuthRequest{Claims: `{"id_token":{"acr":{"values":["urn:stepup:dev:mfa"]}}}`}, false},
		{"essential basic", stepuptest.AuthRequest{Claims: `{"id_token":{"acr":{"essential":true,"values":["urn:stepup:dev:pwd"]}}}`}, false},
		{"userinfo member", stepuptest.AuthRequest{Claims: `{"userinfo":{"acr":{"essential":true,"values":["urn:stepup:dev:mfa"]}}}`}, false},
		{"malformed claims", stepuptest.AuthRequest{Claims: `{"id_token":`}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wantsStrong(tt.req); got != tt.want {
				t.Errorf("wantsStrong = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCanSSO(t *testing.T) {
	t.Parallel()
	authTime := time.Unix(1_700_000_000, 0)
	now := authTime.Add(10 * time.Minute)
	basic := &session{user: demoUsers[0], loginTime: authTime, authTime: authTime, acr: BasicACR, amr: []string{"pwd"}, sid: "s"}
	strong := basic.clone()
	strong.acr, strong.amr = StrongACR, []string{"pwd", "otp"}
	age := func(n uint) *uint { return &n }
	tests := []struct {
		name string
		s    *session
		req  stepuptest.AuthRequest
		want bool
	}{
		{"no session", nil, stepuptest.AuthRequest{}, false},
		{"plain request", basic, stepuptest.AuthRequest{}, true},
		{"prompt=login", basic, stepuptest.AuthRequest{Prompt: []string{"login"}}, false},
		{"prompt=consent", basic, stepuptest.AuthRequest{Prompt: []string{"consent"}}, true},
		{"max_age not reached", basic, stepuptest.AuthRequest{MaxAge: age(601)}, true},
		{"max_age exactly reached", basic, stepuptest.AuthRequest{MaxAge: age(600)}, true},
		{"max_age passed", basic, stepuptest.AuthRequest{MaxAge: age(599)}, false},
		{"max_age=0", basic, stepuptest.AuthRequest{MaxAge: age(0)}, false},
		{"login_hint same user", basic, stepuptest.AuthRequest{LoginHint: "alice"}, true},
		{"login_hint other user", basic, stepuptest.AuthRequest{LoginHint: "bob"}, false},
		{"login_hint unknown", basic, stepuptest.AuthRequest{LoginHint: "mallory"}, false},
		{"strong request, basic session", basic, stepuptest.AuthRequest{ACRValues: []string{StrongACR}}, false},
		{"strong request, strong session", strong, stepuptest.AuthRequest{ACRValues: []string{StrongACR}}, true},
		{"basic request, strong session", strong, stepuptest.AuthRequest{ACRValues: []string{BasicACR}}, true},
		{"unknown acr, basic session", basic, stepuptest.AuthRequest{ACRValues: []string{"urn:other:gold"}}, true},
		{"authorization_details, strong session", strong, stepuptest.AuthRequest{ACRValues: []string{StrongACR}, AuthorizationDetails: `[{"type":"urn:stepup:example:user","actions":["delete"],"identifier":"bob"}]`}, false},
		{"essential strong claim, basic session", basic, stepuptest.AuthRequest{Claims: `{"id_token":{"acr":{"essential":true,"values":["urn:stepup:dev:mfa"]}}}`}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := canSSO(tt.s, tt.req, now); got != tt.want {
				t.Errorf("canSSO = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWithinMaxAgeClockSetBack(t *testing.T) {
	t.Parallel()
	authTime := time.Unix(1_700_000_000, 0)
	if !withinMaxAge(authTime, 60, authTime.Add(-time.Hour)) {
		t.Error("an authentication in the future is refused for max_age=60")
	}
	if withinMaxAge(authTime, 0, authTime) {
		t.Error("max_age=0 is satisfied without re-authentication")
	}
	if !withinMaxAge(authTime, ^uint(0), authTime.Add(1000*time.Hour)) {
		t.Error("the largest max_age is refused")
	}
}

func TestSessionStoreLogin(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_700_000_000, 0)
	st := newSessionStore(time.Hour)
	id1, s1 := st.login("", demoUsers[0], BasicACR, []string{"pwd"}, t0)
	id2, s2 := st.login(id1, demoUsers[0], StrongACR, []string{"pwd", "otp"}, t0.Add(time.Minute))
	if id2 == id1 {
		t.Error("re-authentication kept the cookie value")
	}
	if st.get(id1, t0.Add(time.Minute)) != nil {
		t.Error("the old cookie value still names a session")
	}
	if s2.sid != s1.sid || !s2.loginTime.Equal(t0) || !s2.authTime.Equal(t0.Add(time.Minute)) || s2.acr != StrongACR {
		t.Errorf("same-user re-authentication: got %+v, want sid %q, loginTime %v, new authTime and acr", s2, s1.sid, t0)
	}
	id3, s3 := st.login(id2, demoUsers[1], BasicACR, []string{"pwd"}, t0.Add(2*time.Minute))
	if s3.sid == s1.sid || !s3.loginTime.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("another user's login continued the session: %+v", s3)
	}
	if st.get(id3, t0.Add(2*time.Minute+time.Hour)) != nil {
		t.Error("a session outlives SessionExpiry")
	}
}
