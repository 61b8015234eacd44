package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

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
	if code, refused := tokenRefusal(err); refused {
		a.logf("primary login refused: the token endpoint refused the code: %s", code)
		a.message(w, http.StatusForbidden, "Login failed", "The identity provider refused the login.")
		return
	}
	if err != nil {
		a.logf("primary login failed: %s", tokenEndpointFailure(err))
		a.message(w, http.StatusBadGateway, "Login failed", "The identity provider could not be reached. Try again in a moment.")
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := a.verifier.Verify(ctx, raw)
	if err != nil {
		a.logf("primary login refused: %s", idTokenProblem(raw, err))
		a.message(w, http.StatusForbidden, "Login failed", "The identity provider's ID token was not valid.")
		return
	}
	// go-oidc leaves the nonce to the caller (OIDC Core §3.1.3.7, step 11).
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(pending.nonce)) != 1 {
		a.logf("primary login refused: the ID token's nonce is not this login's (a substituted token?)")
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

// tokenRefusal reports whether err is the token endpoint refusing the code:
// an OAuth error response (RFC 6749 §5.2: invalid_grant, invalid_client,
// ...) with a 4xx status. That is the IdP's answer, not its failure; a
// forged or replayed code gets it. It returns the error code when it is
// safe to log.
func tokenRefusal(err error) (code string, refused bool) {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode == "" || re.Response == nil || re.Response.StatusCode/100 != 4 {
		return "", false
	}
	if len(re.ErrorCode) > 64 || strings.IndexFunc(re.ErrorCode, func(c rune) bool { return !(c == '_' || 'a' <= c && c <= 'z') }) >= 0 {
		return "(an error code that is not RFC 6749's)", true
	}
	return re.ErrorCode, true
}

// tokenEndpointFailure says why a code exchange failed other than by a
// refusal, without quoting the error, which may hold the response body.
func tokenEndpointFailure(err error) string {
	var re *oauth2.RetrieveError
	var ue *url.Error
	switch {
	case errors.As(err, &re) && re.Response != nil:
		return fmt.Sprintf("the token endpoint failed: HTTP %d", re.Response.StatusCode)
	case errors.As(err, &ue) && ue.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return "the token endpoint timed out"
	case errors.As(err, &ue):
		return "the token endpoint could not be reached"
	}
	return "the token endpoint's answer could not be used"
}

// idTokenProblem says why Verify refused an ID token, without quoting the
// error.
func idTokenProblem(raw string, err error) string {
	var expired *oidc.TokenExpiredError
	switch {
	case raw == "":
		return "the token response has no ID token"
	case errors.As(err, &expired):
		return "the ID token has expired"
	}
	return "the ID token did not verify (signature, issuer, audience or algorithm)"
}
