package stepup_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"

	"github.com/oidc-stepup/stepup/stepup"
	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

// This example runs the whole step-up on a standard library mux: a
// development IdP in-process, an app whose /admin route is guarded, and a
// browser with a cookie jar.
func Example() {
	idp, err := stepuptest.New(stepuptest.Config{
		Authenticate: func(r stepuptest.AuthRequest) stepuptest.Login {
			return stepuptest.Login{Subject: "alice", ACR: "urn:example:mfa", AMR: []string{"pwd", "otp"}}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer idp.Close()

	sessions := scs.New()
	sessions.Store = memstore.NewWithCleanupInterval(0)
	mux := http.NewServeMux()
	app := httptest.NewServer(sessions.LoadAndSave(mux))
	defer app.Close()
	idp.AddClient(stepuptest.Client{ID: "console", Secret: "s3cret", RedirectURIs: []string{app.URL + "/stepup/callback"}})

	su, err := stepup.New(stepup.Config{
		Issuer:         idp.Issuer(),
		ClientID:       "console",
		ClientSecret:   "s3cret",
		RedirectURL:    app.URL + "/stepup/callback",
		SessionManager: sessions,
		Subject: func(r *http.Request) (string, bool) {
			sub := sessions.GetString(r.Context(), "sub") // set by the app's own login
			return sub, sub != ""
		},
		Scopes: map[string]stepup.Scope{
			"admin": {ACR: []string{"urn:example:mfa"}, Lifetime: 2 * time.Minute},
		},
		Auditor: stepup.AuditorFunc(func(_ context.Context, e stepup.Event) {
			fmt.Println(strings.TrimSpace(fmt.Sprintln("audit:", e.Type, e.Scope, e.ACR)))
		}),
	})
	if err != nil {
		log.Fatal(err)
	}
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		sessions.Put(r.Context(), "sub", "alice") // stands in for the primary login
	})
	mux.Handle("GET /stepup/start", su.StartHandler())
	mux.Handle("GET /stepup/callback", su.CallbackHandler())
	mux.Handle("GET /admin", su.RequireStepUp("admin")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		el, _ := su.Elevation(r, "admin")
		fmt.Fprintf(w, "admin console for %s (acr %s, bound %s)", el.Subject, el.ACR, el.Bound)
	})))

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	defer browser.CloseIdleConnections()
	get := func(path string) string {
		req, _ := http.NewRequest("GET", app.URL+path, nil)
		req.Header.Set("Accept", "text/html")
		resp, err := browser.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, body)
	}
	get("/login")
	fmt.Println(get("/admin"))
	// Output:
	// audit: challenge admin
	// audit: granted admin urn:example:mfa
	// 200 admin console for alice (acr urn:example:mfa, bound lifetime)
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
	idp, err := stepuptest.New(stepuptest.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer idp.Close()
	sessions := scs.New()
	sessions.Store = memstore.NewWithCleanupInterval(0)
	su, err := stepup.New(stepup.Config{
		Issuer:         idp.Issuer(),
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
