package devidp

import (
	"bytes"
	"html/template"
	"log/slog"
	"net/http"
	"time"

	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

// page is what the templates render.
type page struct {
	Title  string
	Error  string // shown in #error when set
	ID     string // the authorization request, posted back in every form
	Client string // the RP's client_id
	Strong bool   // the request wants StrongACR
	// Approve is what the request's authorization_details ask the user to
	// approve (RFC 9396), as one line; shown in #approve-text when set.
	Approve string

	// The sign-in form.
	Users    []User
	Selected string // the preselected user's Name
	Password string

	// The one-time code form.
	User  User
	Token string // the pending login
	Code  string // the user's current code: the dev hint

	// The account page: User is the signed-in user, none when nobody is.
	Notices []string // what the last action did, shown in #notice
	Locked  bool     // the user's account is locked
}

const accountTitle = "Dev IdP — your account"

var pages = template.Must(template.New("").Parse(`
{{define "head"}}<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body{margin:0;font-family:system-ui,sans-serif;background:#eef0f4;color:#1d2330}
main{max-width:26rem;margin:3rem auto;padding:1.5rem 2rem;background:#fff;border-radius:8px;box-shadow:0 1px 4px rgba(0,0,0,.15)}
h1{margin-top:0;font-size:1.3rem}
.dev{padding:.5rem .75rem;border:1px solid #e0c060;border-radius:4px;background:#fff4ce;font-size:.9rem}
label{display:block;margin:1rem 0 .25rem;font-weight:600}
select,input{box-sizing:border-box;width:100%;padding:.45rem;font-size:1rem}
.actions{display:flex;gap:.5rem;margin-top:1.25rem}
button{padding:.5rem 1rem;border-radius:4px;font-size:1rem;cursor:pointer}
#login,#verify{border:0;background:#2456c7;color:#fff}
#cancel{border:1px solid #999;background:none}
#account-signin,#sign-out-everywhere,#reset-code,#lock-account,#unlock-account{border:0;background:#2456c7;color:#fff}
#lock-account{background:#a40000}
.account form{margin:1.25rem 0}
.hint{margin:.35rem 0 0;color:#555;font-size:.9rem}
#notice{padding:.5rem .75rem .5rem 1.75rem;border-radius:4px;background:#e8f5e9;color:#1b5e20}
#locked{padding:.5rem .75rem;border-radius:4px;background:#fde8e8;color:#a40000}
#error{padding:.5rem .75rem;border-radius:4px;background:#fde8e8;color:#a40000}
#approve-text{padding:.5rem .75rem;border:1px solid #2456c7;border-radius:4px;background:#eaf0fd}
code{font-size:1.05rem;letter-spacing:.08em}
</style>
</head>
<body>
<main>
<h1>{{.Title}}</h1>
<p class="dev">Development identity provider. Not for production.</p>
{{if .Error}}<p id="error" role="alert">{{.Error}}</p>{{end}}
{{end}}

{{define "approve"}}{{if .Approve}}<p id="approve-text"><strong>{{.Client}}</strong> asks you to approve: <strong>{{.Approve}}</strong></p>
{{end}}{{end}}

{{define "foot"}}</main>
</body>
</html>
{{end}}

{{define "signin"}}{{template "head" .}}
{{template "approve" .}}<p><strong>{{.Client}}</strong> asks you to sign in with {{if .Strong}}your password and a one-time code{{else}}your password{{end}}.</p>
<p>Demo users: {{range $n, $u := .Users}}{{if $n}}, {{end}}<strong>{{$u.Name}}</strong>{{end}}. Password for all: <code>{{.Password}}</code></p>
<form method="post" action="/login">
<input type="hidden" name="id" value="{{.ID}}">
<input type="hidden" name="step" value="password">
<label for="username">User</label>
<select id="username" name="username">
{{range .Users}}<option value="{{.Name}}"{{if eq .Name $.Selected}} selected{{end}}>{{.Name}}</option>
{{end}}</select>
<label for="password">Password</label>
<input id="password" type="password" name="password" autocomplete="current-password" required autofocus>
<div class="actions">
<button id="login" type="submit">Sign in</button>
<button id="cancel" name="cancel" value="1" formnovalidate>Cancel</button>
</div>
</form>
{{template "foot"}}{{end}}

{{define "account"}}{{template "head" .}}
{{with .Notices}}<ul id="notice" role="status">{{range .}}<li>{{.}}</li>{{end}}</ul>{{end}}
{{if .User.Name}}<div class="account">
<p id="account-user">Signed in at the IdP as <strong>{{.User.Name}}</strong>.</p>
{{if .Locked}}<p id="locked">Your account is locked: the IdP refuses your sign-ins, by password and by single sign-on, until you unlock it.</p>{{end}}
<p id="account-code">Current code for {{.User.Name}}: <code>{{.Code}}</code></p>
<form method="post" action="/login" id="sign-out-form">
<input type="hidden" name="step" value="signout">
<button id="sign-out-everywhere" type="submit">Sign out everywhere</button>
<p class="hint">Ends your sessions at this IdP in every browser, and sends a logout token to every application you signed in to (OpenID Connect Back-Channel Logout).</p>
</form>
<form method="post" action="/login" id="reset-code-form">
<input type="hidden" name="step" value="reset-code">
<button id="reset-code" type="submit">Reset my one-time code</button>
<p class="hint">Gives your one-time code a new secret, and tells the applications (a CAEP credential-change event).</p>
</form>
{{if .Locked}}<form method="post" action="/login" id="unlock-form">
<input type="hidden" name="step" value="unlock">
<button id="unlock-account" type="submit">Unlock account</button>
</form>
{{else}}<form method="post" action="/login" id="lock-form">
<input type="hidden" name="step" value="lock">
<button id="lock-account" type="submit">Lock account</button>
<p class="hint">Refuses your sign-ins until you unlock it, and tells the applications (a CAEP session-revoked event).</p>
</form>
{{end}}</div>
{{else}}<p>You are not signed in at the IdP. Demo users: {{range $n, $u := .Users}}{{if $n}}, {{end}}<strong>{{$u.Name}}</strong>{{end}}. Password for all: <code>{{.Password}}</code></p>
<form method="post" action="/login" id="account-signin-form">
<input type="hidden" name="step" value="account">
<label for="account-username">User</label>
<select id="account-username" name="username">
{{range .Users}}<option value="{{.Name}}">{{.Name}}</option>
{{end}}</select>
<label for="account-password">Password</label>
<input id="account-password" type="password" name="password" autocomplete="current-password" required>
<div class="actions">
<button id="account-signin" type="submit">Sign in</button>
</div>
</form>
{{end}}
{{template "foot"}}{{end}}

{{define "otp"}}{{template "head" .}}
{{template "approve" .}}<p>Password accepted for <strong>{{.User.Name}}</strong>. <strong>{{.Client}}</strong> also needs the one-time code from your authenticator.</p>
<p id="dev-code">Current code for {{.User.Name}}: <code>{{.Code}}</code></p>
<form method="post" action="/login">
<input type="hidden" name="id" value="{{.ID}}">
<input type="hidden" name="step" value="otp">
<input type="hidden" name="token" value="{{.Token}}">
<label for="otp">One-time code</label>
<input id="otp" name="otp" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]*" maxlength="7" required autofocus>
<div class="actions">
<button id="verify" type="submit">Verify</button>
<button id="cancel" name="cancel" value="1" formnovalidate>Cancel</button>
</div>
</form>
<script>
// Codes roll over every 30 s: refresh the hint above (never the input).
(function () {
  var form = document.querySelector("form");
  var hint = document.querySelector("#dev-code code");
  setInterval(function () {
    var body = new URLSearchParams();
    body.set("id", form.elements.namedItem("id").value);
    body.set("token", form.elements.namedItem("token").value);
    body.set("step", "code");
    fetch("/login", {method: "POST", body: body})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (code) { if (code) { hint.textContent = code; } })
      .catch(function () {});
  }, 10000);
})();
</script>
{{template "foot"}}{{end}}
`))

func (i *IdP) renderSignIn(w http.ResponseWriter, req stepuptest.AuthRequest, selected, errMsg string) {
	render(w, "signin", page{
		Title:    "Dev IdP — sign in",
		Error:    errMsg,
		ID:       req.ID,
		Client:   req.ClientID,
		Strong:   wantsStrong(req),
		Approve:  approveText(req),
		Users:    i.Users(),
		Selected: selected,
		Password: Password,
	})
}

func (i *IdP) renderOTP(w http.ResponseWriter, req stepuptest.AuthRequest, u User, token string, now time.Time, errMsg string) {
	code, err := i.codeAt(u.Name, now)
	if err != nil {
		http.Error(w, "no code", http.StatusInternalServerError)
		return
	}
	render(w, "otp", page{
		Title:   "Dev IdP — one-time code",
		Error:   errMsg,
		ID:      req.ID,
		Client:  req.ClientID,
		Strong:  true,
		Approve: approveText(req),
		User:    u,
		Token:   token,
		Code:    code,
	})
}

// approveText is the line the pages show for req's authorization_details;
// "" when it has none, or none that parse (begin refused those).
func approveText(req stepuptest.AuthRequest) string {
	details, err := parseDetails(req.AuthorizationDetails)
	if err != nil {
		return ""
	}
	return details.text()
}

// render writes a page that no cache keeps and no other site frames.
func render(w http.ResponseWriter, name string, data page) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		slog.Error("devidp: render page failed", "page", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	w.Write(buf.Bytes())
}
