package main

import (
	"crypto/rand"
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// The primary login: an ordinary OIDC authorization-code flow at normal
// strength. It is the app's own business, not stepup's; stepup only needs
// its result, the subject, through Config.Subject.

const (
	keySub          = "sub"
	keyPendingLogin = "login.pending"
)

func (a *app) subject(r *http.Request) (string, bool) {
	sub := a.sessions.GetString(r.Context(), keySub)
	return sub, sub != ""
}

// localPath accepts only a same-origin relative path.
func localPath(s string) string {
	if s == "" || s[0] != '/' || strings.HasPrefix(s, "//") || strings.ContainsAny(s, "\\\x00\t\r\n") {
		return "/"
	}
	if u, err := url.Parse(s); err != nil || u.Host != "" || u.Scheme != "" {
		return "/"
	}
	return s
}

func (a *app) login(w http.ResponseWriter, r *http.Request) {
	returnTo := localPath(r.URL.Query().Get("return_to"))
	if _, ok := a.subject(r); ok {
		http.Redirect(w, r, returnTo, http.StatusSeeOther)
		return
	}
	state, nonce, verifier := rand.Text(), rand.Text(), oauth2.GenerateVerifier()
	a.sessions.Put(r.Context(), keyPendingLogin, strings.Join([]string{state, nonce, verifier, returnTo}, "\n"))
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)}
	if a.cfg.loginACR != "" {
		opts = append(opts, oauth2.SetAuthURLParam("acr_values", a.cfg.loginACR))
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, a.login0.AuthCodeURL(state, opts...), http.StatusSeeOther)
}

func (a *app) loginCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	pending := strings.Split(a.sessions.PopString(ctx, keyPendingLogin), "\n")
	q := r.URL.Query()
	if len(pending) != 4 || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(pending[0])) != 1 {
		a.message(w, http.StatusBadRequest, "Login failed", "This login response does not belong to a login started here. Try again.")
		return
	}
	if q.Get("error") != "" {
		a.message(w, http.StatusForbidden, "Login failed", "The identity provider did not log you in.")
		return
	}
	tok, err := a.login0.Exchange(oidc.ClientContext(ctx, a.httpClient), q.Get("code"), oauth2.VerifierOption(pending[2]))
	if err != nil {
		a.logf("primary login: code exchange: %v", err)
		a.message(w, http.StatusBadGateway, "Login failed", "The identity provider refused the login.")
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := a.verifier.Verify(ctx, raw)
	if err != nil || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(pending[1])) != 1 {
		a.logf("primary login: ID token: %v", err)
		a.message(w, http.StatusForbidden, "Login failed", "The identity provider's ID token was not valid.")
		return
	}
	// A new login is a change of privilege: new session token.
	if err := a.sessions.RenewToken(ctx); err != nil {
		a.sessionError(w, r, err)
		return
	}
	a.sessions.Put(ctx, keySub, idt.Subject)
	http.Redirect(w, r, pending[3], http.StatusSeeOther)
}

func (a *app) logout(w http.ResponseWriter, r *http.Request) {
	// Revoke the elevations first: a request in flight could otherwise
	// write the destroyed session, elevation included, back to the store.
	a.su.DropAll(r)
	if err := a.sessions.Destroy(r.Context()); err != nil {
		a.sessionError(w, r, err)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// unauthenticated sends a visitor who is not logged in through /login and
// back, or answers 401 to anything that cannot follow a redirect.
func (a *app) unauthenticated(w http.ResponseWriter, r *http.Request) {
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.Contains(r.Header.Get("Accept"), "text/html") {
		http.Redirect(w, r, "/login?return_to="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	w.Write([]byte(`{"error":"login_required","login_url":"/login"}` + "\n"))
}
