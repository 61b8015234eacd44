package devidp

import (
	"crypto/subtle"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

// Form steps: the value of the hidden "step" field of each POST to /login.
const (
	stepPassword = "password" // the sign-in form: username, password
	stepOTP      = "otp"      // the one-time code form: token, otp
	stepCode     = "code"     // the OTP page's script refreshing its dev hint: token

	// The account page's forms (account.go), which belong to no
	// authorization request.
	stepAccount   = "account"    // the account page's sign-in: username, password
	stepSignOut   = "signout"    // "Sign out everywhere"
	stepResetCode = "reset-code" // "Reset my one-time code"
	stepLock      = "lock"       // "Lock account"
	stepUnlock    = "unlock"     // "Unlock account"
)

// lockedMessage is what a locked user's sign-in gets.
const lockedMessage = "This account is locked. Unlock it on your account page at the IdP."

// maxFormBytes bounds a POSTed form.
const maxFormBytes = 16 << 10

// serveLogin is the provider's [stepuptest.Config.LoginHandler]. The
// provider routes exactly Issuer()+"/login" to it, nothing below, so every
// page lives there: GET ?id=<auth request id> answers by single sign-on or
// shows the sign-in form, GET without an id shows the account page, and
// every form POSTs back to /login with a "step" field naming the form (and,
// for the sign-in forms, the id in a hidden field).
func (i *IdP) serveLogin(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		i.begin(w, r)
	case http.MethodPost:
		i.submit(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// begin handles the browser's arrival from the authorization endpoint.
func (i *IdP) begin(w http.ResponseWriter, r *http.Request) {
	p := i.Provider()
	id := r.URL.Query().Get("id")
	if id == "" {
		i.accountPage(w, r, nil, "")
		return
	}
	req, ok := p.AuthRequest(id)
	if !ok {
		unknownRequest(w)
		return
	}
	if _, err := parseDetails(req.AuthorizationDetails); err != nil {
		// RFC 9396 §5: refuse before any page, with the error to the RP.
		p.Finish(w, r, id, detailsRefused)
		return
	}
	now := i.cfg.Now()
	s := i.sessions.get(sessionID(r), now)
	if s != nil && i.Locked(s.user.Name) {
		s = nil // a locked account signs on nowhere
	}
	if canSSO(s, req, now) {
		p.Finish(w, r, id, i.loginFor(s, req))
		return
	}
	if slices.Contains(req.Prompt, "none") {
		// OIDC Core §3.1.2.6: prompt=none and the user would have to log in.
		p.Finish(w, r, id, stepuptest.Login{Error: "login_required", ErrorDescription: "the user must sign in at the IdP"})
		return
	}
	selected := ""
	if u, ok := userNamed(req.LoginHint); ok {
		selected = u.Name
	} else if s != nil {
		selected = s.user.Name
	}
	i.renderSignIn(w, req, selected, "")
}

// submit handles every form POST.
func (i *IdP) submit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	p := i.Provider()
	form := r.PostForm
	switch step := form.Get("step"); step {
	case stepAccount, stepSignOut, stepResetCode, stepLock, stepUnlock:
		i.accountAction(w, r, step)
		return
	}
	req, ok := p.AuthRequest(form.Get("id"))
	if !ok {
		unknownRequest(w)
		return
	}
	now := i.cfg.Now()
	token := form.Get("token")
	if form.Get("cancel") != "" {
		if _, ok := i.pending.get(token, req.ID, now); ok {
			i.pending.remove(token)
		}
		// RFC 6749 §4.1.2.1: the resource owner denied the request.
		p.Finish(w, r, req.ID, stepuptest.Login{Error: "access_denied", ErrorDescription: "the user cancelled the sign-in"})
		return
	}
	switch form.Get("step") {
	case stepPassword:
		i.checkPassword(w, r, req, now)
	case stepOTP:
		i.checkOTP(w, r, req, token, now)
	case stepCode:
		i.serveHint(w, req, token, now)
	default:
		http.Error(w, "bad form", http.StatusBadRequest)
	}
}

// checkPassword handles the sign-in form. A request for the strong acr
// moves on to the one-time code; any other is done.
func (i *IdP) checkPassword(w http.ResponseWriter, r *http.Request, req stepuptest.AuthRequest, now time.Time) {
	name := r.PostForm.Get("username")
	u, ok := userNamed(name)
	if !ok || subtle.ConstantTimeCompare([]byte(r.PostForm.Get("password")), []byte(Password)) != 1 {
		i.renderSignIn(w, req, name, "Unknown user or wrong password.")
		return
	}
	if i.Locked(u.Name) {
		i.renderSignIn(w, req, u.Name, lockedMessage)
		return
	}
	if wantsStrong(req) {
		token := i.pending.add(req.ID, u, now)
		i.renderOTP(w, req, u, token, now, "")
		return
	}
	i.complete(w, r, req, u, BasicACR, []string{"pwd"}, now)
}

// checkOTP handles the one-time code form of a pending login.
func (i *IdP) checkOTP(w http.ResponseWriter, r *http.Request, req stepuptest.AuthRequest, token string, now time.Time) {
	pl, ok := i.pending.get(token, req.ID, now)
	if !ok {
		i.renderSignIn(w, req, "", "The one-time code step has expired. Sign in again.")
		return
	}
	code := strings.Join(strings.Fields(r.PostForm.Get("otp")), "") // "123 456" is fine
	if !i.validCode(pl.user.Name, code, now) {
		if i.pending.fail(token) {
			i.renderOTP(w, req, pl.user, token, now, "Wrong code. Enter the current code.")
		} else {
			i.renderSignIn(w, req, pl.user.Name, "Too many wrong codes. Sign in again.")
		}
		return
	}
	if !i.pending.remove(token) { // a concurrent submission won
		i.renderSignIn(w, req, pl.user.Name, "The one-time code step has expired. Sign in again.")
		return
	}
	i.complete(w, r, req, pl.user, StrongACR, []string{"pwd", "otp"}, now)
}

// serveHint returns the pending user's current code as text, for the OTP
// page's script. It reveals nothing the page itself does not.
func (i *IdP) serveHint(w http.ResponseWriter, req stepuptest.AuthRequest, token string, now time.Time) {
	pl, ok := i.pending.get(token, req.ID, now)
	if !ok {
		http.Error(w, "gone", http.StatusGone)
		return
	}
	code, err := i.codeAt(pl.user.Name, now)
	if err != nil {
		http.Error(w, "no code", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, code)
}

// complete ends an interactive login: it starts or refreshes the IdP session,
// moves it to a fresh cookie, and finishes the authorization request. A
// user whose account was locked on the way gets the sign-in form again.
func (i *IdP) complete(w http.ResponseWriter, r *http.Request, req stepuptest.AuthRequest, u User, acr string, amr []string, now time.Time) {
	if i.Locked(u.Name) {
		i.renderSignIn(w, req, u.Name, lockedMessage)
		return
	}
	s := i.startSession(w, r, u, acr, amr, now)
	i.Provider().Finish(w, r, req.ID, i.loginFor(s, req))
}

// startSession records an interactive authentication of u in the
// browser's IdP session, or a new one, and moves it to a fresh cookie.
func (i *IdP) startSession(w http.ResponseWriter, r *http.Request, u User, acr string, amr []string, now time.Time) *session {
	id, s := i.sessions.login(sessionID(r), u, acr, amr, now)
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    id,
		Path:     "/",
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
	return s
}

// sessionID is the browser's IdP session cookie value, or "".
func sessionID(r *http.Request) string {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

// codeAt is the user's TOTP code at t.
func (i *IdP) codeAt(user string, t time.Time) (string, error) {
	secret, ok := i.secret(user)
	if !ok {
		return "", errUnknownUser
	}
	return totp.GenerateCodeCustom(secret, t, totpOpts)
}

func unknownRequest(w http.ResponseWriter) {
	http.Error(w, "Unknown authorization request. Start the sign-in again from the application.", http.StatusBadRequest)
}
