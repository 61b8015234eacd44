package devidp

import (
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/oidc-stepup/stepup/stepup/stepuptest"
)

const (
	// BasicACR is the acr of a password-only login.
	BasicACR = "urn:stepup:dev:pwd"
	// StrongACR is the acr of a login with the password and a TOTP code.
	StrongACR = "urn:stepup:dev:mfa"
	// Password is every demo user's password. It is shown on the sign-in
	// page: this is a development IdP.
	Password = "password"
)

const (
	defaultAddr       = "127.0.0.1:8081"
	defaultIDTokenTTL = 5 * time.Minute
)

// totpOpts are the RFC 6238 parameters every authenticator app defaults to,
// with the customary ±1 step of tolerance when validating (RFC 6238 §5.2).
var totpOpts = totp.ValidateOpts{Period: 30, Skew: 1, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// User is a demo user. Name is what the sign-in page lists; Subject is the
// sub claim of the user's ID tokens.
type User struct {
	Name, Subject string
}

// demoUsers are the users of every IdP, in the order the page lists them.
var demoUsers = []User{{Name: "alice", Subject: "alice"}, {Name: "bob", Subject: "bob"}}

// Config configures an [IdP]. The zero value is a working IdP on
// 127.0.0.1:8081 with no clients.
type Config struct {
	// Addr is the TCP address to listen on. It must be a loopback address,
	// as [stepuptest.Config.Addr] requires; "127.0.0.1:0" picks a free port.
	// Default: "127.0.0.1:8081".
	Addr string
	// Clients are the relying parties registered at start; more can be added
	// with Provider().AddClient. Default: none.
	Clients []stepuptest.Client
	// IDTokenTTL is the lifetime of each ID token, exp - iat. Default: 5m.
	IDTokenTTL time.Duration
	// SessionExpiry, when set, bounds the IdP session: ID tokens carry
	// session_expiry = (the session's first password login) + SessionExpiry,
	// unchanged by later single sign-on or re-authentication, and the
	// session ends then. Default: 0, no session_expiry claim and a session
	// that lasts as long as the process.
	SessionExpiry time.Duration
	// Now is the clock of IdP sessions, auth_time, max_age and TOTP codes.
	// (zitadel stamps iat and exp with the real clock.) Default: time.Now.
	Now func() time.Time
}

// IdP is a running development identity provider. Its methods are safe for
// concurrent use.
type IdP struct {
	cfg      Config
	p        atomic.Pointer[stepuptest.Provider] // set once Start has it
	secrets  map[string]string                   // user name -> base32 TOTP secret; read-only after Start
	sessions *sessionStore
	pending  *pendingStore
}

// Start validates cfg, generates a TOTP secret per user and starts serving
// on cfg.Addr. It returns once the listener is bound. Call [IdP.Close] to
// stop it.
func Start(cfg Config) (*IdP, error) {
	if cfg.Addr == "" {
		cfg.Addr = defaultAddr
	}
	if cfg.IDTokenTTL < 0 {
		return nil, fmt.Errorf("devidp: IDTokenTTL %v is negative", cfg.IDTokenTTL)
	}
	if cfg.IDTokenTTL == 0 {
		cfg.IDTokenTTL = defaultIDTokenTTL
	}
	if cfg.SessionExpiry < 0 {
		return nil, fmt.Errorf("devidp: SessionExpiry %v is negative", cfg.SessionExpiry)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	i := &IdP{
		cfg:      cfg,
		secrets:  make(map[string]string, len(demoUsers)),
		sessions: newSessionStore(cfg.SessionExpiry),
		pending:  newPendingStore(),
	}
	for _, u := range demoUsers {
		key, err := totp.Generate(totp.GenerateOpts{
			Issuer: "devidp", AccountName: u.Name,
			Period: totpOpts.Period, Digits: totpOpts.Digits, Algorithm: totpOpts.Algorithm,
		})
		if err != nil {
			return nil, fmt.Errorf("devidp: totp secret for %s: %w", u.Name, err)
		}
		i.secrets[u.Name] = key.Secret()
	}
	// Browsers post the login forms back to the IdP; refuse posts from any
	// other origin (Sec-Fetch-Site, else Origin against Host).
	login := http.NewCrossOriginProtection().Handler(http.HandlerFunc(i.serveLogin))
	p, err := stepuptest.New(stepuptest.Config{
		Addr:         cfg.Addr,
		Clients:      cfg.Clients,
		LoginHandler: login,
	})
	if err != nil {
		return nil, fmt.Errorf("devidp: %w", err)
	}
	i.p.Store(p)
	return i, nil
}

// Issuer returns the issuer URL, http://HOST:PORT with no trailing slash.
func (i *IdP) Issuer() string { return i.p.Load().Issuer() }

// Users returns the demo users, alice and bob.
func (i *IdP) Users() []User { return append([]User(nil), demoUsers...) }

// Provider returns the underlying provider, e.g. to add clients or to read
// the authorization requests it received.
func (i *IdP) Provider() *stepuptest.Provider { return i.p.Load() }

// Close stops the server; see [stepuptest.Provider.Close].
func (i *IdP) Close() error { return i.p.Load().Close() }

// Code returns the named user's TOTP code at [Config.Now], the code the OTP
// page shows.
func (i *IdP) Code(user string) (string, error) {
	code, err := i.codeAt(user, i.cfg.Now())
	if err != nil {
		return "", fmt.Errorf("%w %q", err, user)
	}
	return code, nil
}

// validCode reports whether code is the user's TOTP code at now, one step
// either side.
func (i *IdP) validCode(user, code string, now time.Time) bool {
	secret, ok := i.secrets[user]
	if !ok || len(code) != int(totpOpts.Digits) {
		return false
	}
	valid, err := totp.ValidateCustom(code, secret, now, totpOpts)
	return err == nil && valid
}

// userNamed returns the demo user whose Name or Subject is s.
func userNamed(s string) (User, bool) {
	for _, u := range demoUsers {
		if s != "" && (u.Name == s || u.Subject == s) {
			return u, true
		}
	}
	return User{}, false
}

var errUnknownUser = errors.New("devidp: unknown user")
