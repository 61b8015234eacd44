package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oidc-stepup/stepup/examples/chi-admin/internal/devidp"
	"github.com/oidc-stepup/stepup/internal/testkit"
	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

// balancer stands for the load balancer in front of the replicas: every
// request goes to the replica the test picks.
type balancer struct {
	*httptest.Server
	target atomic.Pointer[url.URL]
}

func newBalancer(t *testing.T) *balancer {
	lb := &balancer{}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(lb.target.Load())
		r.Out.Host = r.In.Host // the replicas see the external host, as behind a real balancer
	}}
	lb.Server = httptest.NewServer(proxy)
	t.Cleanup(lb.Close)
	return lb
}

func (lb *balancer) to(in *instance) {
	u, _ := url.Parse(in.URL)
	lb.target.Store(u)
}

// stepUpThroughReplicas logs a new browser in and steps it up, starting
// each redirect round trip on one replica and finishing it on the other.
func stepUpThroughReplicas(t *testing.T, lb *balancer, idp *devidp.IdP, a, b *instance) *client {
	t.Helper()
	lbURL, _ := url.Parse(lb.URL)
	// The browser stops at every redirect back to the balancer, so that the
	// test picks which replica receives it.
	c := newClient(t, func(r *http.Request) bool { return r.URL.Host == lbURL.Host })

	lb.to(a)
	p := c.get(lb.URL + "/admin")
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.header.Get("Location"), "/login?return_to=") {
		t.Fatalf("a visitor who is not logged in: %d %q, want a redirect to /login", p.status, p.header.Get("Location"))
	}
	p = c.get(lb.URL + p.header.Get("Location"))
	p = c.signIn(idp, p, "alice")
	if p.location().Path != "/auth/callback" {
		t.Fatalf("primary login ended at %s -> %s", p.url, p.location())
	}
	lb.to(b) // the login started on A completes on B
	p = c.get(p.location().String())
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/admin" {
		t.Fatalf("primary login callback on B: %d %q\n%s", p.status, p.header.Get("Location"), p.body)
	}

	lb.to(a) // the step-up challenge starts on A ...
	p = c.get(lb.URL + "/admin")
	if !strings.Contains(p.body, `value="otp"`) && !strings.Contains(p.body, `value="password"`) {
		t.Fatalf("A did not challenge: %d %s\n%s", p.status, p.url, p.body)
	}
	p = c.signIn(idp, p, "alice")
	if p.location().Path != "/stepup/callback" {
		t.Fatalf("step-up ended at %s -> %s", p.url, p.location())
	}
	lb.to(b) // ... and completes on B
	p = c.get(p.location().String())
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/admin" {
		t.Fatalf("step-up callback on B: %d %q\n%s", p.status, p.header.Get("Location"), p.body)
	}
	return c
}

// startReplicas starts an IdP whose client is the console behind lb
// (redirect and back-channel logout URIs at lb), with ID tokens of ttl (0:
// the default), and two replicas of the console on the session store at
// storeURL.
func startReplicas(t *testing.T, lb *balancer, ttl time.Duration, storeURL string) (idp *devidp.IdP, a, b *instance) {
	t.Helper()
	idp, err := devidp.Start(devidp.Config{
		Addr: testkit.FreeAddr(t),
		Clients: []stepuptest.Client{{
			ID: "console", Secret: "console-secret", RedirectURIs: []string{lb.URL + "/auth/callback", lb.URL + "/stepup/callback"},
			BackChannelLogoutURI: lb.URL + "/backchannel-logout",
		}},
		IDTokenTTL: ttl,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	args := []string{
		"-addr", "127.0.0.1:0", "-base-url", lb.URL, "-issuer", idp.Issuer(),
		"-client-id", "console", "-client-secret", "console-secret", "-acr", devidp.StrongACR,
		"-skew", "1s", "-session-store", storeURL,
	}
	return idp, startApp(t, args...), startApp(t, args...)
}

func TestTwoReplicasShareOneRedis(t *testing.T) {
	redisAddr := testkit.StartRedis(t)
	lb := newBalancer(t)
	idp, a, b := startReplicas(t, lb, 6*time.Second, "redis://"+redisAddr+"/0")

	// Two browsers, each stepped up through both replicas.
	first := stepUpThroughReplicas(t, lb, idp, a, b)
	second := stepUpThroughReplicas(t, lb, idp, a, b)
	for _, in := range []*instance{a, b} {
		lb.to(in)
		for _, c := range []*client{first, second} {
			if p := c.get(lb.URL + "/admin"); p.status != http.StatusOK || !strings.Contains(p.body, `id="admin-title"`) {
				t.Fatalf("the elevation is not honoured on %s: %d %s", in.URL, p.status, p.url)
			}
		}
	}

	// Expiry is enforced on both: after the deadline, the first browser is
	// challenged by A and the second by B, and each replica audits it.
	granted := auditEvents(t, b, stepup.EventGranted)
	if len(granted) != 2 || granted[0].Bound != stepup.BoundExp {
		t.Fatalf("B's granted events: %+v", granted)
	}
	ends := granted[1].Deadline.Add(-time.Second) // deadline minus the 1s skew
	time.Sleep(time.Until(ends) + 100*time.Millisecond)
	for _, tc := range []struct {
		c  *client
		in *instance
	}{{first, a}, {second, b}} {
		lb.to(tc.in)
		p := tc.c.do("GET", lb.URL+"/admin/users", nil, "application/json")
		if p.status != http.StatusUnauthorized || !strings.Contains(p.header.Get("WWW-Authenticate"), `acr_values="`+devidp.StrongACR+`"`) {
			t.Errorf("after expiry %s answered %d %q", tc.in.URL, p.status, p.header.Get("WWW-Authenticate"))
		}
		if got := auditEvents(t, tc.in, stepup.EventExpired); len(got) != 1 {
			t.Errorf("%s audited %d expired events, want 1", tc.in.URL, len(got))
		}
	}
}

// auditEvents reads the events of one type (every event for "") from an
// instance's standard output, where the console prints them as JSON lines.
func auditEvents(t *testing.T, in *instance, typ stepup.EventType) []stepup.Event {
	t.Helper()
	var out []stepup.Event
	sc := bufio.NewScanner(strings.NewReader(in.stdout.String()))
	for sc.Scan() {
		var e stepup.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("standard output holds a line that is not an audit event: %q", sc.Text())
		}
		if typ == "" || e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// TestLogoutTokenReceivedByOneReplicaEndsTheElevationUsedOnTheOther: two
// replicas share a real Redis, or a real PostgreSQL. The browser steps up
// and uses its elevation on B; "Sign out everywhere" at the IdP sends the
// logout token through the balancer to A; B refuses the elevation at the
// browser's next request, and audits why.
func TestLogoutTokenReceivedByOneReplicaEndsTheElevationUsedOnTheOther(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func(t *testing.T) string // the -session-store URL of a fresh server
	}{
		{"redis", func(t *testing.T) string { return "redis://" + testkit.StartRedis(t) + "/0" }},
		{"postgres", func(t *testing.T) string { return testkit.StartPostgres(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := tc.store(t)
			lb := newBalancer(t)
			idp, a, b := startReplicas(t, lb, 0, store)
			c := stepUpThroughReplicas(t, lb, idp, a, b)
			lb.to(b)
			if p := c.do("GET", lb.URL+"/admin/users", nil, "application/json"); p.status != http.StatusOK {
				t.Fatalf("the elevation is not honoured on B: %d", p.status)
			}

			lb.to(a) // the IdP's logout token reaches A
			p := c.do("POST", idp.AccountURL(), url.Values{"step": {"signout"}}, "text/html")
			if !strings.Contains(p.body, "Logout token to console: 200 OK.") {
				t.Fatalf("Sign out everywhere at the IdP:\n%s", p.body)
			}
			if len(auditEvents(t, a, stepup.EventRevoked)) != 1 || len(auditEvents(t, b, stepup.EventRevoked)) != 0 {
				t.Fatalf("revoked events: A %d, B %d; want the logout on A only", len(auditEvents(t, a, stepup.EventRevoked)), len(auditEvents(t, b, stepup.EventRevoked)))
			}

			lb.to(b) // the browser's next request reaches B
			p = c.do("GET", lb.URL+"/admin/users", nil, "application/json")
			if p.status != http.StatusUnauthorized || !strings.Contains(p.header.Get("WWW-Authenticate"), "insufficient_user_authentication") {
				t.Errorf("B after the logout on A: %d %q, want the step-up challenge", p.status, p.header.Get("WWW-Authenticate"))
			}
			requireAudited(t, b, stepup.EventDropped, stepup.ReasonBackChannelLogout, "alice")
		})
	}
}
