// Command minimal guards one page, /admin, with an OIDC step-up at an
// external identity provider (IdP). It is the smallest complete use of
// stepup, meant to be copied:
//
//	OIDC_CLIENT_SECRET=... go run ./examples/minimal \
//		-issuer https://idp.example.com -client-id my-app -acr urn:example:mfa
//
// Register http://127.0.0.1:8080/stepup/callback (-base-url + /stepup/callback)
// as a redirect URI of the client at the IdP.
package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/oidc-stepup/stepup/stepup"
)

// config is what the flags say.
type config struct {
	issuer, clientID, clientSecret string
	acr                            []string // acceptable acr values, most preferred first
	addr, baseURL                  string
	now                            func() time.Time // the clock; nil is time.Now (tests set a fake one)
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		log.Fatalf("minimal: %v (run with -h for help)", err)
	}
	h, err := newHandler(cfg)
	if err != nil {
		log.Fatalf("minimal: %v", err)
	}
	srv := &http.Server{
		Addr:              cfg.addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	log.Printf("minimal: serving %s", cfg.baseURL)
	log.Fatal(srv.ListenAndServe())
}

// parseFlags reads the command line; getenv supplies OIDC_CLIENT_SECRET.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("minimal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.issuer, "issuer", "", "the IdP's issuer URL (required)")
	fs.StringVar(&cfg.clientID, "client-id", "", "this application's client ID at the IdP (required)")
	fs.StringVar(&cfg.clientSecret, "client-secret", "", "the client secret (default $OIDC_CLIENT_SECRET; empty for a public client)")
	acr := fs.String("acr", "", "acceptable acr value(s) for /admin, comma-separated, most preferred first (required)")
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&cfg.baseURL, "base-url", "", "the URL browsers reach this server at (default http://<addr>)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	cfg.acr = strings.FieldsFunc(*acr, func(r rune) bool { return r == ',' || r == ' ' })
	switch {
	case fs.NArg() > 0:
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case cfg.issuer == "":
		return config{}, errors.New("-issuer is required")
	case cfg.clientID == "":
		return config{}, errors.New("-client-id is required")
	case len(cfg.acr) == 0:
		return config{}, errors.New("-acr is required: the acr value(s) the IdP asserts for a strong login")
	}
	cfg.clientSecret = cmp.Or(cfg.clientSecret, getenv("OIDC_CLIENT_SECRET")) // the environment keeps it out of ps
	cfg.baseURL = strings.TrimSuffix(cmp.Or(cfg.baseURL, "http://"+cfg.addr), "/")
	return cfg, nil
}

// newHandler builds the application. It fetches the IdP's discovery
// document, so it fails here, at startup, when the IdP is unreachable.
func newHandler(cfg config) (http.Handler, error) {
	// scs.New keeps sessions in memory, in this process. With several
	// replicas, set sessions.Store to a shared stepup.AtomicStore, such as
	// the Redis adapter github.com/oidc-stepup/stepup/stores/redisstore.
	sessions := scs.New()
	sessions.Cookie.Secure = strings.HasPrefix(cfg.baseURL, "https://")
	su, err := stepup.New(stepup.Config{
		Issuer:         cfg.issuer,
		ClientID:       cfg.clientID,
		ClientSecret:   cfg.clientSecret,
		RedirectURL:    cfg.baseURL + "/stepup/callback",
		SessionManager: sessions,
		// Subject is nil: an elevation belongs to the browser session. An
		// application with its own login sets Subject to return the logged-in
		// user's sub at this IdP, so that an elevation is granted and honoured
		// only for that user.
		Scopes: map[string]stepup.Scope{
			"admin": {ACR: cfg.acr, Lifetime: 15 * time.Minute},
		},
		Now: cfg.now,
	})
	if err != nil {
		return nil, err // a *stepup.ConfigError names the field
	}

	mux := http.NewServeMux()
	mux.Handle("GET /stepup/start", su.StartHandler())
	mux.Handle("GET /stepup/callback", su.CallbackHandler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { render(w, homePage, nil) })
	mux.Handle("GET /admin", su.RequireStepUp("admin")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e, ok := su.Elevation(r, "admin")
		if !ok { // it ended between the guard and here: be challenged again
			http.Redirect(w, r, r.URL.Path, http.StatusSeeOther)
			return
		}
		render(w, adminPage, e)
	})))
	return sessions.LoadAndSave(mux), nil
}

var (
	homePage  = template.Must(template.New("home").Parse(`<!doctype html><title>Home</title><h1>Home</h1><p><a href="/admin">Admin</a> (asks for a step-up)`))
	adminPage = template.Must(template.New("admin").Parse(`<!doctype html><title>Admin</title><h1>Admin</h1>
<p>Admin mode: acr <code>{{.ACR}}</code>, ends {{.Ends.UTC.Format "2006-01-02 15:04:05 MST"}}.
<p><a href="/">Home</a>`))
)

// render writes a page that no cache keeps: what /admin shows is for this
// session, while it is elevated.
func render(w http.ResponseWriter, t *template.Template, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := t.Execute(w, data); err != nil {
		log.Printf("minimal: render %s: %v", t.Name(), err)
	}
}
