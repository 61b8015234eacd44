package main

import (
	"crypto/rand"
	"crypto/subtle"
	"net/http"
	"net/url"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/oidc-stepup/stepup/stepup"
)

// The primary login: an ordinary OIDC authorization-code flow at normal
// strength. It is the app's own business, not stepup's; stepup only needs
// its result, the subject, through Config.Subject.

const keySub = "sub"

func (a *app) subject(r *http.Request) (string, bool) {
	sub := a.sessions.GetString(r.Context(), keySub)
	return sub, sub != ""
}

// login starts the primary login. It writes nothing to the session: the
// login's state travels in a short-lived cookie (pending.go), so that an
// anonymous visitor costs no session and no memory. A return_to that
// stepup.SafeReturnTo refuses (another origin, control characters, over
// 2 KiB) falls back to "/".
func (a *app) login(w http.ResponseWriter, r *http.Request) {
	returnTo, ok := stepup.SafeReturnTo(r.URL.Query().Get("return_to"))
	if !ok {
		returnTo = "/"
	}
	if _, ok := a.subject(r); ok {
		http.Redirect(w, r, returnTo, http.StatusSeeOther)
		return
	}
	p := pendingLogin{
		started: a.now().Unix(), state: rand.Text(), nonce: rand.Text(), verifier: oauth2.GenerateVerifier(), returnTo: returnTo,
	}
	a.loginSealer.set(w, p)
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(p.verifier), oidc.Nonce(p.nonce)}
	if a.cfg.loginACR != "" {
		opts = append(opts, oauth2.SetAuthURLParam("acr_values", a.cfg.loginACR))
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, a.login0.AuthCodeURL(p.state, opts...), http.StatusSeeOther)
}

func (a *app) loginCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	pending, ok := a.loginSealer.take(w, r, a.now())
	q := r.URL.Query()
	if !ok || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(pending.state)) != 1 {
		a.message(w, http.StatusBadRequest, "Login failed", "This login response does not belong to a login started here in the last ten minutes. Try again.")
		return
	}
	if q.Get("error") != "" {
		a.message(w, http.StatusForbidden, "Login failed", "The identity provider did not log you in.")
		return
	}
	tok, err := a.login0.Exchange(oidc.ClientContext(ctx, a.httpClient), q.Get("code"), oauth2.VerifierOption(pending.verifier))
	if err != nil {
		a.logf("primary login: code exchange: %v", err)
		a.message(w, http.StatusBadGateway, "Login failed", "The identity provider refused the login.")
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := a.verifier.Verify(ctx, raw)
	if err != nil || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(pending.nonce)) != 1 {
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
	http.Redirect(w, r, pending.returnTo, http.StatusSeeOther)
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
// It tells the two apart as the guard does, with stepup.IsNavigation.
func (a *app) unauthenticated(w http.ResponseWriter, r *http.Request) {
	if stepup.IsNavigation(r) {
		http.Redirect(w, r, "/login?return_to="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	w.Write([]byte(`{"error":"login_required","login_url":"/login"}` + "\n"))
}
