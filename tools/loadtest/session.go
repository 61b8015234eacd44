package main

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

// What the load test knows of the console and its dev IdP, which it drives
// over HTTP only.
const (
	// sessionCookie is the console's session cookie (scs's Cookie.Name in
	// its app.go).
	sessionCookie = "chi_admin_session"
	// devPassword is every demo user's password, which the console prints
	// at start and the IdP's sign-in page shows.
	devPassword = "password"
)

// devCodeRE reads the current one-time code that the dev IdP's code page
// shows in #dev-code.
var devCodeRE = regexp.MustCompile(`<p id="dev-code">Current code for [^:<]+: <code>(\d{6})</code>`)

// browser is a browser stand-in: a cookie jar, HTML accepted, redirects
// followed.
type browser struct {
	http *http.Client
}

type page struct {
	status int
	url    *url.URL
	body   string
}

func newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{http: &http.Client{Jar: jar, Timeout: 20 * time.Second}}
}

func (b *browser) do(ctx context.Context, method, target string, form url.Values) (page, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return page{}, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Accept", "text/html")
	resp, err := b.http.Do(req)
	if err != nil {
		return page{}, err
	}
	defer resp.Body.Close()
	s, err := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, url: resp.Request.URL, body: string(s)}, err
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// hidden returns a page's hidden form fields.
func (p page) hidden() url.Values {
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(p.body, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

// signIn completes the dev IdP's password form on p, and its one-time-code
// form, with the code the page shows, when the IdP asks for one.
func (b *browser) signIn(ctx context.Context, p page, user string) (page, error) {
	if !strings.Contains(p.body, `name="step" value="password"`) {
		return p, fmt.Errorf("expected the IdP's sign-in form, got %d %s", p.status, p.url)
	}
	f := p.hidden()
	f.Set("username", user)
	f.Set("password", devPassword)
	p, err := b.do(ctx, http.MethodPost, p.url.String(), f)
	if err != nil || !strings.Contains(p.body, `name="step" value="otp"`) {
		return p, err
	}
	m := devCodeRE.FindStringSubmatch(p.body)
	if m == nil {
		return p, fmt.Errorf("the IdP's one-time code page at %s shows no code", p.url)
	}
	f = p.hidden()
	f.Set("otp", m[1])
	return b.do(ctx, http.MethodPost, p.url.String(), f)
}

// elevate logs user in at the console, steps the session up for the admin
// scope with the password and the one-time code, and returns the session
// cookie's value.
func elevate(ctx context.Context, baseURL, user string) (string, error) {
	b := newBrowser()
	defer b.http.CloseIdleConnections()
	p, err := b.do(ctx, http.MethodGet, baseURL+"/login", nil)
	if err != nil {
		return "", fmt.Errorf("login: %w", err)
	}
	if p, err = b.signIn(ctx, p, user); err != nil {
		return "", fmt.Errorf("login: %w", err)
	}
	if p.status != http.StatusOK || p.url.Path != "/" {
		return "", fmt.Errorf("login ended at %d %s", p.status, p.url)
	}
	// The admin scope wants the strong acr: the IdP asks for the password
	// again, then the one-time code.
	if p, err = b.do(ctx, http.MethodGet, baseURL+"/admin", nil); err != nil {
		return "", fmt.Errorf("step-up: %w", err)
	}
	if p, err = b.signIn(ctx, p, user); err != nil {
		return "", fmt.Errorf("step-up: %w", err)
	}
	if p.status != http.StatusOK || p.url.Path != "/admin" || !strings.Contains(p.body, `id="admin-title"`) {
		return "", fmt.Errorf("step-up ended at %d %s, not on the admin page", p.status, p.url)
	}
	u, _ := url.Parse(baseURL)
	for _, c := range b.http.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			return c.Value, nil
		}
	}
	return "", fmt.Errorf("no %s cookie after the step-up", sessionCookie)
}

// checkPong sends one request as wrk does (the session cookie, no Accept
// header, no redirects followed) and wants 200 "pong".
func checkPong(ctx context.Context, target, cookie string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Cookie", sessionCookie+"="+cookie)
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
