package stepup_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"go.uber.org/goleak"

	"github.com/oidc-stepup/stepup/stepup"
)

// The tests in this file inject faults into the IdP's token and JWKS
// endpoints and into the session store. Each fault must fail closed: no
// elevation, a clear error response that holds no code or state, an audit
// event, and no goroutine left behind.
//
// They are not parallel: the goroutine check compares the whole process
// before and after each case, so it is only meaningful while no other test
// runs. Top-level tests that call t.Parallel wait until every sequential
// test has finished, so these run alone.

// memstoreCleanup is the goroutine scs.New starts for its default memstore.
// newApp replaces that store without stopping it, so it outlives every app
// by design; it is the one goroutine the leak check ignores.
const memstoreCleanup = "github.com/alexedwards/scs/v2/memstore.(*MemStore).startCleanup"

// leakChecked runs fn as the subtest name, and once the subtest and all its
// cleanups (the IdP, the app server, every client's idle connections) have
// returned, fails t if a goroutine started during it is still running.
// goleak.Find itself retries for about two seconds; on a loaded machine
// connections can take longer to wind down, so it is asked again for up to
// ten seconds before a goroutine counts as leaked.
func leakChecked(t *testing.T, name string, fn func(t *testing.T)) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Run(name, fn)
	giveUp := time.Now().Add(10 * time.Second)
	for {
		err := goleak.Find(before, goleak.IgnoreTopFunction(memstoreCleanup))
		if err == nil {
			return
		}
		if time.Now().After(giveUp) {
			t.Errorf("%s leaked goroutines: %v", name, err)
			return
		}
	}
}

// fault answers one request to the IdP in place of the real transport.
type fault func(req *http.Request, next http.RoundTripper) (*http.Response, error)

// faultTransport is the RP's transport to the IdP. It passes requests to a
// transport of its own, except those whose path has a fault. It counts the
// requests for each path, and keeps how long the last fault took and the
// error it returned.
type faultTransport struct {
	next *http.Transport
	// tokenPath and jwksPath are the provider's token and JWKS endpoints,
	// as its discovery document names them.
	tokenPath, jwksPath string

	mu     sync.Mutex
	faults map[string]fault
	hits   map[string]int
	last   map[string]faultResult
}

type faultResult struct {
	took time.Duration
	err  error
}

func newFaultTransport() *faultTransport {
	return &faultTransport{
		next:   http.DefaultTransport.(*http.Transport).Clone(),
		faults: map[string]fault{},
		hits:   map[string]int{},
		last:   map[string]faultResult{},
	}
}

func (f *faultTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	path := req.URL.Path
	f.mu.Lock()
	fn := f.faults[path]
	f.hits[path]++
	f.mu.Unlock()
	if fn == nil {
		return f.next.RoundTrip(req)
	}
	began := time.Now()
	resp, err := fn(req, f.next)
	f.mu.Lock()
	f.last[path] = faultResult{took: time.Since(began), err: err}
	f.mu.Unlock()
	return resp, err
}

// CloseIdleConnections lets newApp close the connections when the test ends.
func (f *faultTransport) CloseIdleConnections() { f.next.CloseIdleConnections() }

func (f *faultTransport) inject(path string, fn fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fn == nil {
		delete(f.faults, path)
		return
	}
	f.faults[path] = fn
}

func (f *faultTransport) count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[path]
}

func (f *faultTransport) lastFault(path string) faultResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last[path]
}

// A RoundTripper must close the request body, even on errors.
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// hangCap ends a hang that no deadline ended, so that a missing timeout
// fails the test instead of blocking it.
const hangCap = 20 * time.Second

var errHungUp = errors.New("faults_test: no deadline ended the request")

// hang blocks until the request's context ends, as an endpoint that
// accepted the connection and never answers.
func hang(req *http.Request, _ http.RoundTripper) (*http.Response, error) {
	closeBody(req)
	select {
	case <-req.Context().Done():
		return nil, req.Context().Err()
	case <-time.After(hangCap):
		return nil, errHungUp
	}
}

// refuse fails as a dial to a port nobody listens on.
func refuse(req *http.Request, _ http.RoundTripper) (*http.Response, error) {
	closeBody(req)
	return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
}

// respond answers with a canned response.
func respond(status int, contentType, body string) fault {
	return func(req *http.Request, _ http.RoundTripper) (*http.Response, error) {
		closeBody(req)
		return cannedResponse(req, status, contentType, []byte(body)), nil
	}
}

func cannedResponse(req *http.Request, status int, contentType string, body []byte) *http.Response {
	return &http.Response{
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {contentType}, "Cache-Control": {"no-store"}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// withoutIDToken redeems the code at the real token endpoint and drops the
// id_token from its honest 200 response.
func withoutIDToken(req *http.Request, next http.RoundTripper) (*http.Response, error) {
	resp, err := next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var tok map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK {
		return nil, errors.New("faults_test: the real token endpoint did not answer 200 with JSON")
	}
	if _, ok := tok["id_token"]; !ok {
		return nil, errors.New("faults_test: the honest token response had no id_token to remove")
	}
	delete(tok, "id_token")
	b, _ := json.Marshal(tok)
	return cannedResponse(req, http.StatusOK, "application/json", b), nil
}

// newFaultApp starts an app whose StepUp reaches the IdP through a
// faultTransport, with an empty JWKS cache, so that the first callback
// fetches the JWKS through the faultTransport. A non-zero timeout becomes
// Config.HTTPClient.Timeout once New has discovered the IdP; until then,
// and when it is zero, the timeout is 10s.
func newFaultApp(t *testing.T, timeout time.Duration) (*app, *faultTransport) {
	t.Helper()
	return newFaultAppWith(t, appOptions{idpTimeout: timeout})
}

// newFaultAppWith is newFaultApp with other options; idpTransport is the
// fault transport.
func newFaultAppWith(t *testing.T, opts appOptions) (*app, *faultTransport) {
	t.Helper()
	ft := newFaultTransport()
	opts.idpTransport = ft
	a := newApp(t, opts)
	resp, err := (&http.Client{Transport: ft, Timeout: 10 * time.Second}).Get(a.idp.Issuer() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var meta struct {
		Token string `json:"token_endpoint"`
		JWKS  string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&meta); err != nil {
		t.Fatal(err)
	}
	tu, err1 := url.Parse(meta.Token)
	ju, err2 := url.Parse(meta.JWKS)
	if err1 != nil || err2 != nil || tu.Path == "" || ju.Path == "" || tu.Path == ju.Path {
		t.Fatalf("discovery: token_endpoint %q, jwks_uri %q", meta.Token, meta.JWKS)
	}
	ft.tokenPath, ft.jwksPath = tu.Path, ju.Path
	return a, ft
}

// signWithUnpublishedKey signs claims with a fresh RSA key under a new kid
// that the IdP's JWKS does not publish.
func signWithUnpublishedKey(claims map[string]any) (string, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: rand.Text()}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// TestIdPFaultsFailClosed: the token endpoint or the JWKS endpoint fails
// while a callback is redeemed. Each fault is denied with its reason, a
// status that says so, no code or state in the body, a denied audit event
// and no elevation; the challenge is consumed, and no goroutine outlives
// the case.
func TestIdPFaultsFailClosed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration // Config.HTTPClient.Timeout, which must end a hang; default 10s
		token   fault         // injected at the token endpoint
		jwks    fault         // injected at the JWKS endpoint
		idToken func(claims map[string]any) (string, error)
		reason  stepup.Reason
		status  int
	}{
		{name: "TokenEndpointTimesOut", timeout: 300 * time.Millisecond, token: hang, reason: stepup.ReasonTokenExchange, status: http.StatusBadGateway},
		{name: "TokenEndpointDown", token: refuse, reason: stepup.ReasonTokenExchange, status: http.StatusBadGateway},
		{name: "TokenEndpointServerError", token: respond(500, "application/json", `{"error":"server_error","error_description":"database unavailable"}`), reason: stepup.ReasonTokenExchange, status: http.StatusBadGateway},
		{name: "TokenResponseInvalidJSON", token: respond(200, "application/json", `{"access_token":"at","token_type":"Bearer","id_token":`), reason: stepup.ReasonTokenExchange, status: http.StatusBadGateway},
		{name: "TokenResponseWithoutIDTokenKey", token: withoutIDToken, reason: stepup.ReasonMissingIDToken, status: http.StatusForbidden},
		{name: "JWKSEndpointDown", jwks: refuse, reason: stepup.ReasonInvalidIDToken, status: http.StatusForbidden},
		{name: "JWKSEndpointServerError", jwks: respond(500, "text/plain", "internal error"), reason: stepup.ReasonInvalidIDToken, status: http.StatusForbidden},
		// go-oidc fetches the JWKS on a goroutine of its own, with no
		// deadline but the client's: it must end too. The timeout also
		// bounds the real token exchange before it, hence 2s.
		{name: "JWKSEndpointTimesOut", timeout: 2 * time.Second, jwks: hang, reason: stepup.ReasonInvalidIDToken, status: http.StatusForbidden},
		{name: "JWKSNotJSON", jwks: respond(200, "application/json", "<html>maintenance</html>"), reason: stepup.ReasonInvalidIDToken, status: http.StatusForbidden},
		{name: "IDTokenSignedWithUnpublishedKey", idToken: signWithUnpublishedKey, reason: stepup.ReasonInvalidIDToken, status: http.StatusForbidden},
	} {
		leakChecked(t, tc.name, func(t *testing.T) {
			a, ft := newFaultApp(t, tc.timeout)
			if tc.idToken != nil {
				a.idp.RewriteNextIDToken(tc.idToken)
			}
			ft.inject(ft.tokenPath, tc.token)
			ft.inject(ft.jwksPath, tc.jwks)
			b := a.loggedIn(t, "alice")

			u := b.callback(t)
			honest := *u
			events := len(a.audit.all())
			began := time.Now()
			r := b.peek(t, u.String())
			took := time.Since(began)

			if r.status != tc.status {
				t.Errorf("status %d, want %d (body %q)", r.status, tc.status, r.body)
			}
			if !strings.Contains(r.body, string(tc.reason)) {
				t.Errorf("the body %q does not name the reason %s", r.body, tc.reason)
			}
			wantNoSecrets(t, a, r, &honest)
			if ev := a.audit.all()[events:]; len(ev) != 1 || ev[0].Type != stepup.EventDenied || ev[0].Reason != tc.reason || ev[0].Scope != "admin" {
				t.Errorf("audit events %+v, want one denied/%s for scope admin", ev, tc.reason)
			}
			if tc.timeout != 0 {
				path := ft.jwksPath
				if tc.token != nil {
					path = ft.tokenPath
				}
				// The configured deadline ended the hang: not the cap, and
				// not newFaultApp's 10s default. 5s is room for a late timer
				// on a loaded machine.
				if f := ft.lastFault(path); !errors.Is(f.err, context.DeadlineExceeded) || f.took < tc.timeout || f.took > tc.timeout+5*time.Second {
					t.Errorf("the hang ended after %v with %v, want the %v deadline", f.took, f.err, tc.timeout)
				}
				if took >= hangCap {
					t.Errorf("the callback took %v", took)
				}
			}
			switch {
			case tc.token != nil && ft.count(ft.tokenPath) != 1:
				t.Errorf("the token endpoint was called %d times, want 1", ft.count(ft.tokenPath))
			case tc.token == nil && ft.count(ft.jwksPath) != 1:
				// go-oidc's cache starts empty: one fetch, which fails or
				// lacks the token's kid.
				t.Errorf("the JWKS was fetched %d times, want 1", ft.count(ft.jwksPath))
			}
			if b.elevated(t) {
				t.Fatal("elevated after the IdP failed")
			}
			b.peek(t, honest.String())
			if e := a.audit.latest(); e.Type != stepup.EventDenied || e.Reason != stepup.ReasonUnknownState {
				t.Errorf("replaying the callback: %s/%s, want denied/unknown_state", e.Type, e.Reason)
			}
		})
	}
}

// TestKeyRotationMidFlightIsGranted: the IdP rotates its signing key between
// the challenge and the callback. The verifier's cached key set lacks the
// new kid, so go-oidc fetches the JWKS again, finds it and verifies: an
// honest rotation (OIDC Core §10.1.1) must not lock users out.
func TestKeyRotationMidFlightIsGranted(t *testing.T) {
	leakChecked(t, "RotateKeyBetweenChallengeAndCallback", func(t *testing.T) {
		a, ft := newFaultApp(t, 0)
		// Prime the verifier's key cache with one step-up.
		b := a.loggedIn(t, "alice")
		if r := b.peek(t, b.callback(t).String()); r.status != http.StatusSeeOther || !b.elevated(t) {
			t.Fatalf("priming step-up: status %d", r.status)
		}
		if n := ft.count(ft.jwksPath); n != 1 {
			t.Fatalf("the JWKS was fetched %d times while priming, want 1", n)
		}
		oldKID := a.idp.KeyID()

		// A second browser session, not elevated, on the same StepUp.
		b = a.loggedIn(t, "alice")
		if b.elevated(t) {
			t.Fatal("the new session is elevated before stepping up")
		}
		u := b.callback(t)
		if err := a.idp.RotateKey(); err != nil {
			t.Fatal(err)
		}
		if a.idp.KeyID() == oldKID {
			t.Fatal("RotateKey kept the kid")
		}
		if r := b.peek(t, u.String()); r.status != http.StatusSeeOther {
			t.Fatalf("status %d (body %q), want 303: an honest key rotation was refused", r.status, r.body)
		}
		if e := a.audit.latest(); e.Type != stepup.EventGranted || e.Subject != "alice" {
			t.Errorf("last audit event %s/%s, want granted for alice", e.Type, e.Reason)
		}
		if n := ft.count(ft.jwksPath); n != 2 {
			t.Errorf("the JWKS was fetched %d times in all, want 2 (one refetch for the new kid)", n)
		}
		if !b.elevated(t) {
			t.Error("not elevated after the rotated key's token was granted")
		}
	})
}

// TestSessionStoreFaultsFailClosed: the session store fails outside the
// callback's grant (which TestStoreFailureDuringGrantFailsClosed covers).
func TestSessionStoreFaultsFailClosed(t *testing.T) {
	// scsErrors replaces scs's default ErrorFunc, which logs err, with one
	// that keeps it. The answer is the default's: 500 and a generic body.
	scsErrors := func(a *app) *atomic.Value {
		var got atomic.Value
		a.sessions.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
			got.Store(err)
			http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		}
		return &got
	}
	gotStoreDown := func(t *testing.T, got *atomic.Value) {
		t.Helper()
		if err, _ := got.Load().(error); !errors.Is(err, errStoreDown) {
			t.Errorf("scs ErrorFunc got %v, want the store's error", err)
		}
	}

	// The store fails on Find: scs cannot load the session, answers 500
	// itself, and neither stepup nor the guarded handler runs.
	for _, elevated := range []bool{false, true} {
		name := "FindFailsOnGuardedRequest"
		if elevated {
			name += "WhileElevated"
		}
		leakChecked(t, name, func(t *testing.T) {
			a, _ := newFaultApp(t, 0)
			got := scsErrors(a)
			b := a.loggedIn(t, "alice")
			if elevated {
				if r := b.peek(t, b.callback(t).String()); r.status != http.StatusSeeOther || !b.elevated(t) {
					t.Fatalf("step-up: status %d", r.status)
				}
			}
			events := len(a.audit.all())
			idpCalls := len(a.idp.Requests())

			// A navigation: the browser would follow a challenge to the
			// IdP, and stops at the callback.
			a.store.failFind.Store(true)
			r := b.do(t, b.toCallback, http.MethodGet, "/admin", nil, nil)
			a.store.failFind.Store(false)

			if r.status != http.StatusInternalServerError || r.body != "Internal Server Error\n" {
				t.Errorf("status %d body %q, want scs's 500", r.status, r.body)
			}
			gotStoreDown(t, got)
			if strings.Contains(r.body, "admin ok") {
				t.Error("the guarded handler ran without a session")
			}
			if ev := a.audit.all()[events:]; len(ev) != 0 {
				t.Errorf("stepup ran without a session: audit %+v", ev)
			}
			if n := len(a.idp.Requests()); n != idpCalls {
				t.Errorf("a challenge reached the IdP without a session (%d requests)", n-idpCalls)
			}
			// The outage neither granted nor removed anything.
			if b.elevated(t) != elevated {
				t.Errorf("after the store recovered, elevated = %v, want %v", b.elevated(t), elevated)
			}
		})
	}

	// The store fails on Commit while a challenge starts: stepup saves the
	// challenge itself before answering, sees the failure, audits the
	// challenge as not issued (session_error) and answers through OnError.
	// The browser is not sent to the IdP.
	startFailingCommit := func(t *testing.T) (a *app, b *browser, r response) {
		t.Helper()
		a, _ = newFaultApp(t, 0)
		got := scsErrors(a)
		b = a.loggedIn(t, "alice")
		events := len(a.audit.all())
		a.store.failCommit.Store(true)
		r = b.do(t, b.toCallback, http.MethodGet, "/stepup/start?scope=admin&return_to=%2Fadmin", nil, nil)
		a.store.failCommit.Store(false)
		gotStoreDown(t, got)
		if ev := a.audit.all()[events:]; len(ev) != 1 || ev[0].Type != stepup.EventChallenge || ev[0].Reason != stepup.ReasonSessionError {
			t.Errorf("audit events %+v, want one challenge/session_error", ev)
		}
		return a, b, r
	}

	leakChecked(t, "CommitFailsWhileStartingChallenge", func(t *testing.T) {
		a, b, r := startFailingCommit(t)
		if r.status != http.StatusInternalServerError {
			t.Fatalf("status %d, want scs's 500 (body %q)", r.status, r.body)
		}
		if !strings.HasPrefix(r.body, "Internal Server Error\n") {
			t.Errorf("body %q, want scs's error first", r.body)
		}
		// Were the authorization URL leaked anyway, a user who followed it
		// would log in at the IdP and the callback would find no
		// challenge: unknown_state, no elevation.
		if location := r.header.Get("Location"); location != "" {
			cb := b.authorize(t, location)
			r := b.peek(t, cb.String())
			if e := a.audit.latest(); r.status != http.StatusForbidden || e.Type != stepup.EventDenied || e.Reason != stepup.ReasonUnknownState {
				t.Errorf("the lost challenge's callback: status %d, audit %s/%s, want 403 denied/unknown_state", r.status, e.Type, e.Reason)
			}
			wantNoSecrets(t, a, r, cb)
		}
		if b.elevated(t) {
			t.Fatal("elevated after the challenge failed to start")
		}
		// The store recovered: a new step-up works.
		if r := b.peek(t, b.callback(t).String()); r.status != http.StatusSeeOther || !b.elevated(t) {
			t.Errorf("step-up after the store recovered: status %d", r.status)
		}
	})

	// The failed challenge must not hand out its authorization URL (state,
	// nonce, code_challenge) in the error response.
	leakChecked(t, "CommitFailsWhileStartingChallengeAnswersWithoutTheAuthorizationURL", func(t *testing.T) {
		_, _, r := startFailingCommit(t)
		if r.status != http.StatusInternalServerError {
			t.Fatalf("status %d, want 500", r.status)
		}
		if location := r.header.Get("Location"); location != "" {
			t.Errorf("the 500 carries Location %q to the IdP for a challenge that was never saved", location)
		}
		for _, param := range []string{"state=", "nonce=", "code_challenge=", "/authorize"} {
			if strings.Contains(r.body, param) {
				t.Errorf("the 500 body holds the authorization URL (%s...): %q", param, r.body)
				break
			}
		}
	})
}
