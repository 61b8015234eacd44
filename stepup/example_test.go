package stepup_test

import (
	"context"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"html/template"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/oidc-stepup/stepup/stepup"
)

// This example guards /admin on a standard library mux. A browser that is
// not elevated is sent to the IdP with an authorization-code request: PKCE
// S256, a fresh state and nonce, and the scope's acr_values and max_age.
// (The whole round trip through an IdP runs in the example of the
// stepuptest package, the test kit.)
func Example() {
	// Discovery is the usual way: stepup.Config{Issuer: ...}. A provider
	// configured by hand needs no network, as here.
	provider := (&oidc.ProviderConfig{
		IssuerURL: "https://idp.example.com",
		AuthURL:   "https://idp.example.com/authorize",
		TokenURL:  "https://idp.example.com/token",
		JWKSURL:   "https://idp.example.com/keys",
	}).NewProvider(context.Background())

	sessions := scs.New()
	sessions.Store = memstore.NewWithCleanupInterval(0)
	su, err := stepup.New(stepup.Config{
		Provider:       provider,
		Issuer:         "https://idp.example.com",
		ClientID:       "console",
		ClientSecret:   "s3cret",
		RedirectURL:    "https://app.example.com/stepup/callback",
		SessionManager: sessions,
		Subject: func(r *http.Request) (string, bool) {
			sub := sessions.GetString(r.Context(), "sub") // set by the app's own login
			return sub, sub != ""
		},
		Scopes: map[string]stepup.Scope{
			"admin": {ACR: []string{"urn:example:mfa"}, Lifetime: 15 * time.Minute},
		},
		Auditor: stepup.AuditorFunc(func(_ context.Context, e stepup.Event) {
			fmt.Println("audit:", e.Type, e.Scope, e.Subject)
		}),
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /stepup/start", su.StartHandler())
	mux.Handle("GET /stepup/callback", su.CallbackHandler())
	mux.Handle("/admin/", su.RequireStepUp("admin")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "admin console")
	})))
	app := sessions.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sessions.Put(r.Context(), "sub", "alice") // stands in for the primary login
		mux.ServeHTTP(w, r)
	}))

	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/admin/users", nil)
	r.Header.Set("Accept", "text/html")
	app.ServeHTTP(w, r)
	loc, _ := url.Parse(w.Header().Get("Location"))
	q := loc.Query()
	fmt.Println(w.Code, loc.Host+loc.Path)
	for _, k := range []string{"response_type", "client_id", "redirect_uri", "scope", "acr_values", "max_age", "code_challenge_method"} {
		fmt.Printf("  %s=%s\n", k, q.Get(k))
	}
	fmt.Println("  state, nonce and code_challenge are fresh:", q.Get("state") != "" && q.Get("nonce") != "" && q.Get("code_challenge") != "")
	// Output:
	// audit: challenge admin alice
	// 303 idp.example.com/authorize
	//   response_type=code
	//   client_id=console
	//   redirect_uri=https://app.example.com/stepup/callback
	//   scope=openid
	//   acr_values=urn:example:mfa
	//   max_age=0
	//   code_challenge_method=S256
	//   state, nonce and code_challenge are fresh: true
}

// New refuses a bad configuration at startup, naming the field.
func ExampleNew() {
	_, err := stepup.New(stepup.Config{
		Issuer:         "https://idp.example.com",
		ClientID:       "console",
		RedirectURL:    "https://app.example.com/stepup/callback",
		SessionManager: scs.New(),
		Scopes: map[string]stepup.Scope{
			"admin": {ACR: []string{"urn:example:mfa"}, IgnoreIDTokenExpiry: true},
		},
	})
	fmt.Println(err)
	// Output:
	// stepup: config: Scopes["admin"].IgnoreIDTokenExpiry: needs Lifetime or MaxAge: an elevation must always have a finite deadline
}

// An API client (or a form POST) that is not elevated gets an RFC 9470
// challenge instead of a redirect, so no request body is lost.
func ExampleStepUp_RequireStepUp() {
	sessions := scs.New()
	sessions.Store = memstore.NewWithCleanupInterval(0)
	su, err := stepup.New(stepup.Config{
		Provider: (&oidc.ProviderConfig{
			IssuerURL: "https://idp.example.com",
			AuthURL:   "https://idp.example.com/authorize",
			TokenURL:  "https://idp.example.com/token",
			JWKSURL:   "https://idp.example.com/keys",
		}).NewProvider(context.Background()),
		Issuer:         "https://idp.example.com",
		ClientID:       "console",
		RedirectURL:    "https://app.example.com/stepup/callback",
		SessionManager: sessions,
		Scopes: map[string]stepup.Scope{
			"admin": {ACR: []string{"urn:example:mfa", "urn:example:hwk"}},
		},
		Auditor: stepup.AuditorFunc(func(context.Context, stepup.Event) {}),
	})
	if err != nil {
		log.Fatal(err)
	}
	guarded := sessions.LoadAndSave(su.RequireStepUp("admin")(http.NotFoundHandler()))

	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/admin/users", strings.NewReader("name=bob"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	guarded.ServeHTTP(w, r)
	fmt.Println(w.Code)
	fmt.Println(w.Header().Get("WWW-Authenticate"))
	fmt.Println(w.Body.String())
	// Output:
	// 401
	// Bearer error="insufficient_user_authentication", error_description="A stronger or more recent authentication is required", acr_values="urn:example:mfa urn:example:hwk", max_age=0
	// {"error":"insufficient_user_authentication","error_description":"A stronger or more recent authentication is required","acr_values":"urn:example:mfa urn:example:hwk","max_age":0,"step_up_url":"/stepup/start?return_to=%2Fadmin%2Fusers\u0026scope=admin"}
}

// SlogAuditor writes one line per event; denied events at WARN.
func ExampleSlogAuditor() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "event_time" {
				return slog.Attr{} // keep the example's output stable
			}
			return a
		},
	}))
	a := stepup.SlogAuditor{Logger: logger}
	a.Audit(context.Background(), stepup.Event{
		Type: stepup.EventDenied, Scope: "admin", Subject: "alice",
		Reason: stepup.ReasonACRNotSatisfied, ACR: "urn:example:pwd", Method: "GET", Route: "/stepup/callback",
	})
	// Output:
	// level=WARN msg="stepup denied" event=denied scope=admin subject=alice acr=urn:example:pwd reason=acr_not_satisfied method=GET route=/stepup/callback
}

// An application's own login can send users back with the same rules
// stepup applies to return_to.
func ExampleSafeReturnTo() {
	for _, target := range []string{"/admin/users?page=2", "//evil.example", "https://evil.example/", "/\\evil.example", "/admin\nSet-Cookie:"} {
		path, ok := stepup.SafeReturnTo(target)
		if !ok {
			path = "/"
		}
		fmt.Printf("%q -> %q\n", target, path)
	}
	// Output:
	// "/admin/users?page=2" -> "/admin/users?page=2"
	// "//evil.example" -> "/"
	// "https://evil.example/" -> "/"
	// "/\\evil.example" -> "/"
	// "/admin\nSet-Cookie:" -> "/"
}

// An application's own login can choose between a redirect and a 401 as
// the guard does.
func ExampleIsNavigation() {
	page := httptest.NewRequest("GET", "/admin", nil)
	page.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	page.Header.Set("Sec-Fetch-Mode", "navigate")
	fetch := httptest.NewRequest("GET", "/admin/users.json", nil)
	fetch.Header.Set("Accept", "*/*")
	fetch.Header.Set("Sec-Fetch-Mode", "cors")
	form := httptest.NewRequest("POST", "/admin/users", nil)
	form.Header.Set("Accept", "text/html")
	fmt.Println(stepup.IsNavigation(page), stepup.IsNavigation(fetch), stepup.IsNavigation(form))
	// Output:
	// true false false
}

// Printable is the rule stepup applies to everything it stores or logs;
// an application can apply it to its own names.
func ExamplePrintable() {
	fmt.Println(stepup.Printable("alice"), stepup.Printable("alice\u202eecila"), stepup.Printable("alice\nforged log line"))
	// Output:
	// true false false
}

// ScriptHandler serves stepup.js, the client that steps up in a popup.
// Browsers revalidate it with its ETag at each use (Cache-Control:
// no-cache), so a new version is picked up at once, and a match costs a
// 304 without a body. The tag that loads it carries ScriptIntegrity, so
// the browser runs only the script this version of stepup embeds.
func ExampleScriptHandler() {
	mux := http.NewServeMux()
	mux.Handle("GET /stepup/stepup.js", stepup.ScriptHandler())
	page := template.Must(template.New("page").Parse(
		`<script type="module" src="/stepup/stepup.js" integrity="{{.}}"></script>`))

	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "/stepup/stepup.js", nil))
	fmt.Println(w.Code)
	for _, k := range []string{"Content-Type", "Cache-Control", "X-Content-Type-Options"} {
		fmt.Printf("  %s: %s\n", k, w.Header().Get(k))
	}
	sum := sha512.Sum384(w.Body.Bytes())
	fmt.Println("  the body matches ScriptIntegrity:", "sha384-"+base64.StdEncoding.EncodeToString(sum[:]) == stepup.ScriptIntegrity())

	r := httptest.NewRequest("GET", "/stepup/stepup.js", nil)
	r.Header.Set("If-None-Match", w.Header().Get("ETag"))
	w = httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	fmt.Println(w.Code, "with its ETag,", w.Body.Len(), "bytes")

	var tag strings.Builder
	if err := page.Execute(&tag, stepup.ScriptIntegrity()); err != nil {
		log.Fatal(err)
	}
	// The integrity value changes with each version of the script: it is
	// hidden in this output.
	fmt.Println(regexp.MustCompile(`sha384-[^"]+`).ReplaceAllString(tag.String(), "sha384-***"))
	// Output:
	// 200
	//   Content-Type: text/javascript; charset=utf-8
	//   Cache-Control: no-cache
	//   X-Content-Type-Options: nosniff
	//   the body matches ScriptIntegrity: true
	// 304 with its ETag, 0 bytes
	// <script type="module" src="/stepup/stepup.js" integrity="sha384-***"></script>
}
