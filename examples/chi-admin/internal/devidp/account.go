package devidp

import (
	"cmp"
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

// The account page (GET /login without an authorization request) is what a
// newcomer needs to watch an IdP end an application's elevation. A user
// signed in at the IdP can
//
//   - sign out everywhere: the IdP ends the user's IdP sessions in every
//     browser and sends a logout token naming each session to every client
//     that received an ID token from it (OIDC Back-Channel Logout 1.0, via
//     [stepuptest.Provider.LogOut]);
//   - reset their one-time code: a new TOTP secret, and a CAEP
//     credential-change event pushed to each [Config.Receivers];
//   - lock their account: every sign-in is refused, by password and by
//     single sign-on, until they unlock it, and a CAEP session-revoked event
//     is pushed to each receiver.
//
// Each is a POST form, behind the same cross-origin protection as the
// sign-in forms. A locked user can still sign in to this page, and only to
// it, so that they can unlock: this is a development IdP.

// pushTimeout bounds each delivery of a security event to a receiver.
const pushTimeout = 10 * time.Second

// accountPage shows the browser's account at the IdP, or a sign-in form
// when it has no IdP session, with notices about what was just done.
func (i *IdP) accountPage(w http.ResponseWriter, r *http.Request, notices []string, errMsg string) {
	now := i.cfg.Now()
	data := page{Title: accountTitle, Error: errMsg, Notices: notices, Users: i.Users(), Password: Password}
	if s := i.sessions.get(sessionID(r), now); s != nil {
		data.User = s.user
		data.Locked = i.Locked(s.user.Name)
		data.Code, _ = i.codeAt(s.user.Name, now)
	}
	render(w, "account", data)
}

// accountAction handles the account page's forms.
func (i *IdP) accountAction(w http.ResponseWriter, r *http.Request, step string) {
	now := i.cfg.Now()
	if step == stepAccount {
		u, ok := userNamed(r.PostForm.Get("username"))
		if !ok || subtle.ConstantTimeCompare([]byte(r.PostForm.Get("password")), []byte(Password)) != 1 {
			i.accountPage(w, r, nil, "Unknown user or wrong password.")
			return
		}
		i.startSession(w, r, u, BasicACR, []string{"pwd"}, now)
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	s := i.sessions.get(sessionID(r), now)
	if s == nil {
		i.accountPage(w, r, nil, "You are not signed in at the IdP any more. Sign in first.")
		return
	}
	u := s.user
	ctx := r.Context()
	var notices []string
	switch step {
	case stepSignOut:
		// The IdP's own sessions end first, so that no single sign-on can
		// follow the logout tokens.
		i.sessions.endUser(u)
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
		notices = append([]string{"You are signed out of the IdP, in every browser."}, i.sendLogoutTokens(ctx, u)...)
	case stepResetCode:
		if err := i.newSecret(u.Name); err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		notices = append([]string{"Your one-time code has a new secret: the codes of the old one no longer work."},
			i.push(ctx, u, "credential-change", stepuptest.CAEPCredentialChange,
				// CAEP 1.0 §3.2: an authenticator app's secret was replaced.
				map[string]any{"credential_type": "app", "change_type": "update", "initiating_entity": "user"})...)
	case stepLock:
		i.setLocked(u.Name, true)
		notices = append([]string{"Your account is locked: the IdP refuses your sign-ins until you unlock it."},
			i.push(ctx, u, "session-revoked", stepuptest.CAEPSessionRevoked, map[string]any{"initiating_entity": "user"})...)
	case stepUnlock:
		i.setLocked(u.Name, false)
		notices = []string{"Your account is unlocked: you can sign in again."}
	}
	i.accountPage(w, r, notices, "")
}

// sendLogoutTokens ends the provider sessions of u and sends their logout
// tokens (Back-Channel Logout §2.5), and describes each delivery. Like a
// real OP, it does not retry.
func (i *IdP) sendLogoutTokens(ctx context.Context, u User) []string {
	ds := i.Provider().LogOut(ctx, u.Subject)
	if len(ds) == 0 {
		return []string{"No application had a session of yours to log out."}
	}
	slices.SortFunc(ds, func(a, b stepuptest.LogoutDelivery) int {
		return cmp.Or(cmp.Compare(a.ClientID, b.ClientID), cmp.Compare(a.SessionID, b.SessionID))
	})
	var out []string
	for _, d := range ds {
		if d.Err != nil {
			out = append(out, fmt.Sprintf("Logout token to %s: not delivered (the application could not be reached).", d.ClientID))
			continue
		}
		out = append(out, fmt.Sprintf("Logout token to %s: %d %s.", d.ClientID, d.Status, http.StatusText(d.Status)))
	}
	return out
}

// push sends a CAEP event about u, of type eventType, to every receiver
// (RFC 8935), and describes each answer. event_timestamp is the IdP's
// clock, the clock of auth_time, so that the receiver can tell the logins
// before the event from those after it.
func (i *IdP) push(ctx context.Context, u User, name, eventType string, event map[string]any) []string {
	if len(i.cfg.Receivers) == 0 {
		return []string{"No Shared Signals receiver is configured: no application was told."}
	}
	p := i.Provider()
	client := &http.Client{Timeout: pushTimeout}
	defer client.CloseIdleConnections()
	var out []string
	for _, rc := range i.cfg.Receivers {
		set, err := p.SecurityEventToken(stepuptest.SecurityEvent{
			Audience:  rc.Audience,
			Subject:   stepuptest.UserSubject(p.Issuer(), u.Subject),
			Type:      eventType,
			Event:     event,
			EventTime: i.cfg.Now(),
		})
		if err != nil {
			out = append(out, fmt.Sprintf("%s event for %s: could not be signed.", name, rc.URL))
			continue
		}
		status, _, err := stepuptest.PushSecurityEvent(ctx, client, rc.URL, set, "")
		if err != nil {
			out = append(out, fmt.Sprintf("%s event to %s: not delivered (the receiver could not be reached).", name, rc.URL))
			continue
		}
		out = append(out, fmt.Sprintf("%s event to %s: %d %s.", name, rc.URL, status, http.StatusText(status)))
	}
	return out
}
