package devidp

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
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
	// Receivers are the Shared Signals receivers the account page's
	// "Reset my one-time code" and "Lock account" push CAEP events to
	// (RFC 8935 push delivery; the IdP is their transmitter, see
	// [stepuptest.Provider]). Default: none, and the buttons push nothing.
	Receivers []Receiver
}

// Receiver is a Shared Signals receiver: where the IdP pushes Security
// Event Tokens, and the audience it names in them.
type Receiver struct {
	// URL is the receiver's push endpoint, for example an application's
	// /ssf/events.
	URL string
	// Audience is every SET's aud: the receiver's identifier in the stream
	// (RFC 8417 §2.2).
	Audience string
}

// IdP is a running development identity provider. Its methods are safe for
// concurrent use.
type IdP struct {
	cfg      Config
	p        atomic.Pointer[stepuptest.Provider] // set once Start has it
	accounts accounts
	sessions *sessionStore
	pending  *pendingStore
}

// accounts are the demo users' TOTP secrets and locks. The account page
// changes both.
type accounts struct {
	mu      sync.Mutex
	secrets map[string]string // user name -> base32 TOTP secret
	locked  map[string]bool   // user name -> every sign-in is refused
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
	for _, r := range cfg.Receivers {
		if r.URL == "" || r.Audience == "" {
			return nil, fmt.Errorf("devidp: a receiver needs a URL and an audience")
		}
	}
	i := &IdP{
		cfg:      cfg,
		accounts: accounts{secrets: make(map[string]string, len(demoUsers)), locked: map[string]bool{}},
		sessions: newSessionStore(cfg.SessionExpiry),
		pending:  newPendingStore(),
	}
	for _, u := range demoUsers {
		if err := i.newSecret(u.Name); err != nil {
			return nil, err
		}
	}
	// Browsers post the login and account forms back to the IdP; refuse
	// posts from any other origin (Sec-Fetch-Site, else Origin against
	// Host).
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

// AccountURL returns the URL of the account page, where a signed-in user
// can sign out everywhere, reset their one-time code, or lock their
// account.
func (i *IdP) AccountURL() string { return i.Issuer() + "/login" }

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
	secret, ok := i.secret(user)
	if !ok || len(code) != int(totpOpts.Digits) {
		return false
	}
	valid, err := totp.ValidateCustom(code, secret, now, totpOpts)
	return err == nil && valid
}

// newSecret gives the user a new random TOTP secret: the codes of the old
// one stop working at once.
func (i *IdP) newSecret(user string) error {
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: "devidp", AccountName: user,
		Period: totpOpts.Period, Digits: totpOpts.Digits, Algorithm: totpOpts.Algorithm,
	})
	if err != nil {
		return fmt.Errorf("devidp: totp secret for %s: %w", user, err)
	}
	i.accounts.mu.Lock()
	defer i.accounts.mu.Unlock()
	i.accounts.secrets[user] = key.Secret()
	return nil
}

// secret returns the user's current TOTP secret.
func (i *IdP) secret(user string) (string, bool) {
	i.accounts.mu.Lock()
	defer i.accounts.mu.Unlock()
	s, ok := i.accounts.secrets[user]
	return s, ok
}

// Locked reports whether the user's account is locked: the IdP then
// refuses every sign-in of theirs, by password or by single sign-on.
func (i *IdP) Locked(user string) bool {
	i.accounts.mu.Lock()
	defer i.accounts.mu.Unlock()
	return i.accounts.locked[user]
}

func (i *IdP) setLocked(user string, locked bool) {
	i.accounts.mu.Lock()
	defer i.accounts.mu.Unlock()
	if locked {
		i.accounts.locked[user] = true
	} else {
		delete(i.accounts.locked, user)
	}
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
