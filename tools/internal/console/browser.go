// Package console drives the chi-admin example over HTTP and as a process,
// for the tools that measure it (loadtest) and break what it stands on
// (drill): it builds and starts the binary, reads its output, logs users in
// and steps them up at its development IdP as a browser would, reading the
// one-time code from the IdP's page. It imports none of the example's
// code: the tools measure the binary a user runs, and their module does not
// inherit the example's dependencies.
package console

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// What the tools know of the console and its dev IdP, which they drive
// over HTTP only.
const (
	// SessionCookie is the console's session cookie (scs's Cookie.Name in
	// its app.go).
	SessionCookie = "chi_admin_session"
	// devPassword is every demo user's password, which the console prints
	// at start and the IdP's sign-in page shows.
	devPassword = "password"
	// StrongACR is the dev IdP's acr for a login with the one-time code,
	// which the console's admin scope requires by default.
	StrongACR = "urn:stepup:dev:mfa"
)

// devCodeRE reads the current one-time code that the dev IdP's code page
// shows in #dev-code.
var devCodeRE = regexp.MustCompile(`<p id="dev-code">Current code for [^:<]+: <code>(\d{6})</code>`)

// Browser is a browser stand-in: a cookie jar, HTML accepted, redirects
// followed, except to URLs that Hold names.
type Browser struct {
	http *http.Client
	// Hold, when set, stops at a redirect whose target it accepts: the
	// request returns the redirect itself, and Page.Location is its target.
	Hold func(*url.URL) bool
}

// Page is a response as the browser ended on it.
type Page struct {
	Status   int
	URL      *url.URL
	Body     string
	Location *url.URL // a redirect's target, when Hold stopped there
}

// NewBrowser returns a browser with an empty cookie jar.
func NewBrowser() *Browser {
	jar, _ := cookiejar.New(nil)
	b := &Browser{}
	b.http = &http.Client{Jar: jar, Timeout: 20 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if b.Hold != nil && b.Hold(req.URL) {
			return http.ErrUseLastResponse
		}
		if len(via) >= 10 {
			return fmt.Errorf("stopped after 10 redirects")
		}
		return nil
	}}
	return b
}

// Close closes the browser's idle connections.
func (b *Browser) Close() { b.http.CloseIdleConnections() }

// Do sends one request, with form as its urlencoded body when not nil, and
// follows redirects.
func (b *Browser) Do(ctx context.Context, method, target string, form url.Values) (Page, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return Page{}, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Accept", "text/html")
	resp, err := b.http.Do(req)
	if err != nil {
		return Page{}, err
	}
	defer resp.Body.Close()
	s, err := io.ReadAll(resp.Body)
	p := Page{Status: resp.StatusCode, URL: resp.Request.URL, Body: string(s)}
	if resp.StatusCode/100 == 3 {
		p.Location, _ = resp.Location()
	}
	return p, err
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// hidden returns a page's hidden form fields.
func (p Page) hidden() url.Values {
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(p.Body, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

// SignIn completes the dev IdP's password form on p, and its one-time-code
// form, with the code the page shows, when the IdP asks for one.
func (b *Browser) SignIn(ctx context.Context, p Page, user string) (Page, error) {
	if !strings.Contains(p.Body, `name="step" value="password"`) {
		return p, fmt.Errorf("expected the IdP's sign-in form, got %d %s", p.Status, p.URL)
	}
	f := p.hidden()
	f.Set("username", user)
	f.Set("password", devPassword)
	p, err := b.Do(ctx, http.MethodPost, p.URL.String(), f)
	if err != nil || !strings.Contains(p.Body, `name="step" value="otp"`) {
		return p, err
	}
	m := devCodeRE.FindStringSubmatch(p.Body)
	if m == nil {
		return p, fmt.Errorf("the IdP's one-time code page at %s shows no code", p.URL)
	}
	f = p.hidden()
	f.Set("otp", m[1])
	return b.Do(ctx, http.MethodPost, p.URL.String(), f)
}

// LogIn logs user in at the console at baseURL (its primary login, at the
// dev IdP, with the password only).
func (b *Browser) LogIn(ctx context.Context, baseURL, user string) error {
	p, err := b.Do(ctx, http.MethodGet, baseURL+"/login", nil)
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if p, err = b.SignIn(ctx, p, user); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if p.Status != http.StatusOK || p.URL.Path != "/" {
		return fmt.Errorf("login ended at %d %s", p.Status, p.URL)
	}
	return nil
}

// StartStepUp opens /admin, whose guard challenges the logged-in session:
// the browser follows the redirect to the IdP and returns its sign-in page.
// The challenge is then pending in the session.
func (b *Browser) StartStepUp(ctx context.Context, baseURL string) (Page, error) {
	p, err := b.Do(ctx, http.MethodGet, baseURL+"/admin", nil)
	if err != nil {
		return p, fmt.Errorf("step-up: %w", err)
	}
	return p, nil
}

// StepUp steps the logged-in session up for the admin scope: the IdP asks
// for the password again and the one-time code, and the browser lands on
// the admin page.
func (b *Browser) StepUp(ctx context.Context, baseURL, user string) error {
	p, err := b.StartStepUp(ctx, baseURL)
	if err != nil {
		return err
	}
	if p, err = b.SignIn(ctx, p, user); err != nil {
		return fmt.Errorf("step-up: %w", err)
	}
	if p.Status != http.StatusOK || p.URL.Path != "/admin" || !strings.Contains(p.Body, `id="admin-title"`) {
		return fmt.Errorf("step-up ended at %d %s, not on the admin page", p.Status, p.URL)
	}
	return nil
}

// Cookie returns the session cookie's value for baseURL, or "".
func (b *Browser) Cookie(baseURL string) string {
	u, _ := url.Parse(baseURL)
	for _, c := range b.http.Jar.Cookies(u) {
		if c.Name == SessionCookie {
			return c.Value
		}
	}
	return ""
}

// LoggedIn logs user in at the console and returns the session cookie's
// value: a session with a user and no elevation.
func LoggedIn(ctx context.Context, baseURL, user string) (string, error) {
	b := NewBrowser()
	defer b.Close()
	if err := b.LogIn(ctx, baseURL, user); err != nil {
		return "", err
	}
	if c := b.Cookie(baseURL); c != "" {
		return c, nil
	}
	return "", fmt.Errorf("no %s cookie after the login", SessionCookie)
}

// Elevate logs user in at the console, steps the session up for the admin
// scope with the password and the one-time code, and returns the session
// cookie's value.
func Elevate(ctx context.Context, baseURL, user string) (string, error) {
	b := NewBrowser()
	defer b.Close()
	if err := b.LogIn(ctx, baseURL, user); err != nil {
		return "", err
	}
	if err := b.StepUp(ctx, baseURL, user); err != nil {
		return "", err
	}
	if c := b.Cookie(baseURL); c != "" {
		return c, nil
	}
	return "", fmt.Errorf("no %s cookie after the step-up", SessionCookie)
}

// CheckPong sends one request as wrk does (the session cookie, no Accept
// header, no redirects followed) and wants 200 "pong".
func CheckPong(ctx context.Context, target, cookie string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Cookie", SessionCookie+"="+cookie)
	client := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK || string(body) != "pong\n" {
		return fmt.Errorf("GET %s answered %d %q, want 200 \"pong\\n\"", target, resp.StatusCode, body)
	}
	return nil
}
