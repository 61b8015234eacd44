package stepup

import (
	"cmp"
	"context"
	"fmt"
	"hash/maphash"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// DefaultClockSkew is the tolerance applied when [Config.ClockSkew] is zero.
// It is the value the Auth0 SDKs use for session_expiry.
const DefaultClockSkew = 30 * time.Second

// NoClockSkew, as [Config.ClockSkew], compares every instant exactly, as
// GitLab does. (A zero ClockSkew means the default.)
const NoClockSkew time.Duration = -1

// maxClockSkew bounds Config.ClockSkew.
const maxClockSkew = 5 * time.Minute

// challengeTTL is how long a pending challenge waits for its callback.
const challengeTTL = 10 * time.Minute

// maxPending is how many challenges one session may have in flight; the
// oldest is evicted beyond it.
const maxPending = 8

// Config configures a [StepUp]. [New] validates all of it.
type Config struct {
	// Issuer is the IdP's issuer URL. New fetches its discovery document
	// (OIDC Discovery §4) once. Either Issuer or Provider is required.
	Issuer string
	// Provider is an IdP discovered by the caller. When both Provider and
	// Issuer are set, Issuer must be the provider's issuer. A Provider built
	// from an oidc.ProviderConfig has no discovery document, and needs
	// Issuer.
	Provider *oidc.Provider

	// RequireIssParameter refuses callbacks without the RFC 9207 iss
	// parameter even when the IdP's discovery document does not promise it.
	// Default: false; iss is then required only when the discovery document
	// sets authorization_response_iss_parameter_supported, and checked
	// whenever it is present.
	RequireIssParameter bool

	// ClientID and ClientSecret identify this application at the IdP.
	// ClientID is required. ClientSecret may be empty for a public client.
	ClientID     string
	ClientSecret string
	// AuthStyle is how the client authenticates at the token endpoint.
	// Auto-detection is never used: after a failure it sends the
	// authorization code a second time. Default: oauth2.AuthStyleInHeader
	// (client_secret_basic), or oauth2.AuthStyleInParams when ClientSecret
	// is empty (a public client sends only its client_id).
	AuthStyle oauth2.AuthStyle
	// RedirectURL is the absolute URL at which [StepUp.CallbackHandler] is
	// mounted, registered at the IdP. It must use https, except on a
	// loopback host (127.0.0.1, ::1, localhost) for development. Required.
	RedirectURL string
	// ExtraScopes are OAuth scopes requested besides "openid". Default: none.
	ExtraScopes []string

	// SessionManager holds elevations and pending challenges. Its
	// LoadAndSave middleware must run before every stepup handler. Required.
	SessionManager *scs.SessionManager
	// InsecureNonAtomicRevocations lets New accept a SessionManager whose
	// Store is neither an [AtomicStore] nor scs's memstore. stepup then
	// merges revocations into a user's record with a plain read and commit,
	// serialised only within this process: two revocations for one user
	// written at the same moment by two replicas can lose one of them, and
	// the lost one's elevations live on until their deadlines. Safe only
	// with a single replica. Default: false; New refuses such a store.
	InsecureNonAtomicRevocations bool
	// SessionKeyPrefix prefixes every key stepup writes into the session,
	// so several StepUp values can share one SessionManager.
	// Default: "stepup.".
	SessionKeyPrefix string

	// Scopes maps each scope name to its policy. At least one is required.
	Scopes map[string]Scope

	// Subject returns the OIDC subject of the user the application's primary
	// login authenticated, and false when nobody is logged in. When set, an
	// elevation is granted and honoured only for that subject, and requests
	// without a user get the Unauthenticated response instead of a
	// challenge. When nil, elevations are bound to the session only.
	// Default: nil.
	Subject func(r *http.Request) (sub string, ok bool)
	// LoginHint sends Subject(r) as login_hint with each challenge, so the
	// IdP pre-selects the account (OIDC Core §3.1.2.1). Requires Subject.
	// Default: false.
	LoginHint bool

	// ClockSkew is the tolerance for clock differences between this server
	// and the IdP, in whole seconds, at most five minutes. On deadlines it is
	// applied on the safe side: an elevation ends ClockSkew before its
	// deadline, and one that would end within ClockSkew of its grant is
	// refused. At the callback it is a tolerance: iat and auth_time may be up
	// to ClockSkew ahead, and a login up to ClockSkew before the challenge
	// counts. Use [NoClockSkew] for none. Default: [DefaultClockSkew] (30s).
	ClockSkew time.Duration
	// Now is the clock. Revocation records are kept until instants computed
	// from it, and the session store expires them by its own clock: a Now
	// that runs behind the store's (a fake clock fixed in the past, in a
	// test) lets the store drop a revocation before the elevations it
	// covers end. Default: time.Now.
	Now func() time.Time

	// Auditor receives an event for every challenge, grant, denial,
	// expiry and drop. Default: [SlogAuditor] on slog.Default().
	Auditor Auditor
	// RequestID returns the request's id for audit events. Default: none.
	RequestID func(r *http.Request) string
	// ClientIP returns the client address for audit events. Behind a proxy,
	// return the address it forwarded. Default: r.RemoteAddr.
	ClientIP func(r *http.Request) string

	// HTTPClient makes every call to the IdP: discovery, JWKS and the token
	// endpoint. It must have a Timeout: go-oidc fetches the JWKS in the
	// background without a deadline, and one hung fetch would stall every
	// later callback. Default: a client with a 10s timeout.
	HTTPClient *http.Client

	// StartPath is where [StepUp.StartHandler] is mounted. API clients that
	// get a 401 challenge are pointed there. Default: "/stepup/start".
	StartPath string
	// DeviceRegisterPath and DeviceRefreshPath are where
	// [StepUp.DeviceRegisterHandler] and [StepUp.DeviceRefreshHandler] are
	// mounted, for scopes with device binding: the browser is told them.
	// Defaults: "/stepup/device/register" and "/stepup/device/refresh".
	DeviceRegisterPath string
	DeviceRefreshPath  string
	// BoundCookieTTL is how long a bound cookie lives (never past the
	// elevation's end): how long a stolen one keeps working, and how often
	// the browser proves its key. Whole seconds, 10s to 10 minutes.
	// Default: [DefaultBoundCookieTTL] (60s).
	BoundCookieTTL time.Duration
	// DeviceBindingGrace is how long after a grant an elevation of a scope
	// with device binding may come without its bound cookie because its
	// registration is still on its way, or its answer has not reached the
	// browser yet: Preferred honours it meanwhile, Required holds the
	// request until the registration lands and sends the browser back for
	// the same URL. Whole seconds, 1s to 60s.
	// Default: [DefaultDeviceBindingGrace] (10s).
	DeviceBindingGrace time.Duration

	// DefaultReturnTo is where a user lands after stepping up when the
	// requested return_to is missing or refused. Default: "/".
	DefaultReturnTo string

	// Unauthenticated answers guarded requests from visitors who are not
	// logged in (Subject returned false). Default: 401 with a plain-text body.
	Unauthenticated http.Handler
	// OnDenied answers a refused callback. Default: a plain-text
	// explanation of d.Reason ([Denial.Text]) with its status
	// ([Denial.Status]): 403, or 400 for a malformed callback, 401 when
	// nobody is logged in, and 502 when the token endpoint failed. Session
	// store failures go to OnError instead.
	OnDenied func(w http.ResponseWriter, r *http.Request, d *Denial)
	// SharedSignals configures the Shared Signals receiver,
	// [StepUp.SecurityEventHandler]. New fetches the transmitter's
	// configuration metadata once. Default: nil, no receiver.
	SharedSignals *SharedSignals
	// StrictLogoutTokenExpiry refuses a logout token without an exp claim,
	// as Back-Channel Logout 1.0 §2.4 lists exp as required. Default: false:
	// such a token is accepted when every other rule holds and its iat is
	// at most five minutes old, the bound that also limits how long its jti
	// is remembered; Ory Hydra sends no exp. A logout token can only end
	// elevations, and is processed once.
	StrictLogoutTokenExpiry bool
	// OnLogout runs after a back-channel logout was verified and recorded,
	// so that the application can end its own login for that IdP session
	// (or user) too. An error makes the answer to the IdP a 400: the
	// logout failed (Back-Channel Logout §2.8). Default: nil.
	OnLogout func(ctx context.Context, l Logout) error
	// OnError answers a request that failed inside stepup: a missing or
	// broken session, a store error. err may wrap internal details: log it,
	// never show it. A store that honours the request's context (FindCtx)
	// returns an error wrapping context.Canceled when the client went away
	// mid-read: that is no store failure, and an application that alerts on
	// logged errors should tell it apart. Default: 500 with a generic body.
	OnError func(w http.ResponseWriter, r *http.Request, err error)
}

// Scope is the policy of one step-up scope.
type Scope struct {
	// ACR lists the acceptable acr values, most preferred first. It is sent
	// as acr_values (RFC 9470 §4), and a callback is accepted when the ID
	// token's acr, or one of the values of an Entra ID style acrs array, is
	// in the list. At least one value is required.
	ACR []string
	// MaxAge is sent as max_age and bounds the elevation: it ends MaxAge
	// after auth_time. Zero sends max_age=0, which asks for a fresh login
	// every time and adds no bound. Whole seconds. A non-zero MaxAge
	// requires PromptLogin: stepup always requires a login after the
	// challenge began, and an IdP honouring only max_age may reuse an older
	// one. Default: 0.
	MaxAge time.Duration
	// PromptLogin sends prompt=login, for IdPs that do not treat max_age=0
	// as a demand to re-authenticate. Default: false.
	PromptLogin bool
	// RequestACRClaim also sends an OIDC claims request (OIDC Core §5.5.1.1)
	// marking acr essential with the values of ACR. An IdP that cannot meet
	// an essential acr must fail rather than downgrade. Default: false.
	RequestACRClaim bool
	// ACRClaim is the claim RequestACRClaim names: "acr", or "acrs" for
	// Microsoft Entra ID, which evaluates an authentication context
	// (c1, c2, ...) only when a claims request names it in acrs:
	// {"id_token":{"acrs":{"essential":true,"value":"c1"}}}. Only with
	// RequestACRClaim. Default: "acr".
	ACRClaim string
	// Lifetime caps an elevation at this long after it is granted, whatever
	// the IdP says. Whole seconds. Default: 0, no cap.
	Lifetime time.Duration
	// IgnoreIDTokenExpiry leaves the ID token's exp out of the deadline, for
	// IdPs that issue ID tokens for a few minutes only. The token must still
	// be unexpired at the callback. A scope that sets it must also set
	// Lifetime or MaxAge, so that every elevation has a finite deadline.
	// Default: false.
	IgnoreIDTokenExpiry bool
	// ActionWindow is how long an approval of one action
	// ([StepUp.RequireStepUpFor]) waits for the request it authorizes,
	// never past the deadline an elevation from that login would have.
	// Whole seconds, 10s to 1h. Default: [DefaultActionWindow] (5m).
	ActionWindow time.Duration
	// AuthorizationDetails sends the action of a [StepUp.RequireStepUpFor]
	// challenge to the IdP as RFC 9396 authorization_details, so that the
	// IdP shows it and records what was approved, and grants only when the
	// token response returns them unchanged (§7). Without it the approval
	// is still bound to the action here; the IdP just does not see it.
	// Default: false.
	AuthorizationDetails bool
	// DeviceBinding binds the scope's elevations to a key the browser
	// holds, with Device Bound Session Credentials: a stolen session
	// cookie then carries the elevation for at most BoundCookieTTL.
	// Default: [DeviceBindingOff].
	DeviceBinding DeviceBinding
	// DevicePaths are the path prefixes of the routes the scope guards:
	// the browser refreshes the bound cookie for requests under them, and
	// for no others. Required with DeviceBinding, each starting with "/".
	DevicePaths []string
}

// StepUp guards routes with step-up elevations. Build one with [New] at
// startup and share it; it is safe for concurrent use.
type StepUp struct {
	cfg      Config
	sm       *scs.SessionManager
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier // ID tokens
	// logoutVerifier checks a logout token's signature, iss and aud;
	// verifyLogoutToken checks the rest, exp included.
	logoutVerifier *oidc.IDTokenVerifier
	issParam       bool // the IdP promises the RFC 9207 iss parameter
	policies       map[string]*policy
	pendingKey     string
	approvalsKey   string // the session's unused approvals of actions
	skew           int64  // Config.ClockSkew in whole seconds
	issuerTag      string // issuerTag(Config.Issuer), as stored in elevations
	origin         string // the application's origin, from RedirectURL: a popup's target origin
	originHost     string // its host, without port
	secureCookies  bool   // RedirectURL uses https: bound cookies are Secure and __Host-

	signals *signals // nil without Config.SharedSignals

	subjectKeys     sync.Map // subject → key of its revocation record
	subjectKeyCount atomic.Int64

	unbound unboundSeen
	records *recordCache // decoded revocation records, by their bytes
	cookies *cookieCache // bound cookies whose MAC was checked
}

// New validates cfg, discovers the IdP when cfg.Provider is nil, and
// precomputes everything requests need. Nothing is discovered or parsed per
// request. A bad configuration is reported as a [*ConfigError] naming the
// field.
func New(cfg Config) (*StepUp, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if err := cfg.validateAgainstSkew(); err != nil {
		return nil, err
	}
	cfg.ExtraScopes = append([]string(nil), cfg.ExtraScopes...)
	d, err := cfg.discover()
	if err != nil {
		return nil, err
	}
	endpoint := d.provider.Endpoint()
	endpoint.AuthStyle = cfg.AuthStyle
	if endpoint.AuthURL == "" || endpoint.TokenURL == "" {
		return nil, &ConfigError{Field: "Issuer", Problem: "the provider has no authorization or token endpoint"}
	}
	s := &StepUp{
		cfg: cfg,
		sm:  cfg.SessionManager,
		oauth: oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			Endpoint:     endpoint,
			RedirectURL:  cfg.RedirectURL,
			Scopes:       append([]string{oidc.ScopeOpenID}, cfg.ExtraScopes...),
		},
		issParam:      d.issParam,
		policies:      make(map[string]*policy, len(cfg.Scopes)),
		pendingKey:    cfg.SessionKeyPrefix + "pending",
		approvalsKey:  cfg.SessionKeyPrefix + "approvals",
		issuerTag:     issuerTag(cfg.Issuer),
		origin:        appOrigin(cfg.RedirectURL),
		originHost:    originHostOf(appOrigin(cfg.RedirectURL)),
		secureCookies: strings.HasPrefix(cfg.RedirectURL, "https:"),
		skew:          int64(cfg.ClockSkew / time.Second),
		records:       newRecordCache(),
		cookies:       &cookieCache{seed: maphash.MakeSeed()},
	}
	// One key set per key list: an IdP that is also the Shared Signals
	// transmitter publishes one, fetched by one cache.
	keySets := map[string]*keySet{}
	keys := func(url string) *keySet {
		if keySets[url] == nil {
			keySets[url] = newKeySet(url, cfg.HTTPClient, cfg.Now)
		}
		return keySets[url]
	}
	s.verifier, s.logoutVerifier = cfg.verifiers(d, keys)
	if cfg.SharedSignals != nil {
		if s.signals, err = cfg.discoverSignals(keys); err != nil {
			return nil, err
		}
	}
	for name, sc := range cfg.Scopes {
		sc.ACR = append([]string(nil), sc.ACR...)
		s.policies[name] = newPolicy(name, sc, cfg.SessionKeyPrefix)
	}
	return s, nil
}

func (s *StepUp) now() time.Time { return s.cfg.Now() }

// policy is a Scope with everything the hot paths need precomputed.
type policy struct {
	Scope
	name         string
	key          string // session key of the scope's elevation
	authOptions  []oauth2.AuthCodeOption
	wwwAuth      string // RFC 9470 §3 WWW-Authenticate value
	acrValues    string // space-separated, for the 401 body
	maxAgeSecs   int64
	lifetimeSecs int64
}

func validDuration(d time.Duration) bool { return d >= 0 && d%time.Second == 0 }

// loopback reports whether host names this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *Config) validate() error {
	bad := func(field, problem string) error { return &ConfigError{Field: field, Problem: problem} }
	if c.Issuer == "" && c.Provider == nil {
		return bad("Issuer", "required (or Provider)")
	}
	if c.ClientID == "" {
		return bad("ClientID", "required")
	}
	if c.RedirectURL == "" {
		return bad("RedirectURL", "required")
	}
	if u, err := url.Parse(c.RedirectURL); err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.Fragment != "" {
		return bad("RedirectURL", "must be an absolute http(s) URL without a fragment")
	} else if u.Scheme == "http" && !loopback(u.Hostname()) {
		return bad("RedirectURL", "must use https (plain http only on a loopback host): the callback carries the authorization code")
	}
	switch c.AuthStyle {
	case oauth2.AuthStyleAutoDetect, oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams:
	default:
		return bad("AuthStyle", "unknown value")
	}
	if c.SessionManager == nil {
		return bad("SessionManager", "required")
	}
	if c.SessionManager.Store == nil || (!atomicRevocations(c.SessionManager.Store) && !c.InsecureNonAtomicRevocations) {
		return bad("SessionManager", fmt.Sprintf("its Store (%T) cannot update a record atomically across replicas, which revocations need: "+
			"wrap Redis or PostgreSQL with the adapters in github.com/oidc-stepup/stepup/stores, implement stepup.AtomicStore, "+
			"or, with a single replica only, set InsecureNonAtomicRevocations", c.SessionManager.Store))
	}
	if c.ClockSkew < 0 && c.ClockSkew != NoClockSkew {
		return bad("ClockSkew", "must not be negative (use NoClockSkew for none)")
	}
	if c.ClockSkew > 0 && c.ClockSkew%time.Second != 0 {
		return bad("ClockSkew", "must be whole seconds")
	}
	if c.ClockSkew > maxClockSkew {
		return bad("ClockSkew", "must be at most 5m: a larger tolerance hides a broken clock")
	}
	if c.HTTPClient != nil && c.HTTPClient.Timeout <= 0 {
		return bad("HTTPClient", "needs a Timeout: a hung JWKS fetch would stall every later callback")
	}
	if c.LoginHint && c.Subject == nil {
		return bad("LoginHint", "needs Subject")
	}
	for field, path := range map[string]string{"DeviceRegisterPath": c.DeviceRegisterPath, "DeviceRefreshPath": c.DeviceRefreshPath} {
		if path != "" && (!strings.HasPrefix(path, "/") || !printableASCIIPath(path)) {
			return bad(field, `must be a path starting with "/"`)
		}
	}
	if c.BoundCookieTTL != 0 && (c.BoundCookieTTL%time.Second != 0 || c.BoundCookieTTL < 10*time.Second || c.BoundCookieTTL > 10*time.Minute) {
		return bad("BoundCookieTTL", "must be whole seconds from 10s to 10m")
	}
	if c.DeviceBindingGrace != 0 && (c.DeviceBindingGrace%time.Second != 0 || c.DeviceBindingGrace < time.Second || c.DeviceBindingGrace > time.Minute) {
		return bad("DeviceBindingGrace", "must be whole seconds from 1s to 60s")
	}
	if c.StartPath != "" && !strings.HasPrefix(c.StartPath, "/") {
		return bad("StartPath", `must be a path starting with "/"`)
	}
	if c.DefaultReturnTo != "" {
		if _, ok := SafeReturnTo(c.DefaultReturnTo); !ok {
			return bad("DefaultReturnTo", "must be a same-origin relative path")
		}
	}
	if len(c.Scopes) == 0 {
		return bad("Scopes", "at least one scope is required")
	}
	for name, sc := range c.Scopes {
		if err := validateScope(name, sc); err != nil {
			return err
		}
	}
	return nil
}

// validateScope checks one scope's policy.
func validateScope(name string, sc Scope) error {
	bad := func(field, problem string) error { return &ConfigError{Field: field, Problem: problem} }
	f := func(sub string) string { return fmt.Sprintf("Scopes[%q]%s", name, sub) }
	if name == "" || !storable(name) || len(name) > 64 {
		return bad(f(""), "scope names must be 1 to 64 printable characters")
	}
	if len(sc.ACR) == 0 {
		return bad(f(".ACR"), "must name at least one acceptable acr value")
	}
	for _, v := range sc.ACR {
		if v == "" || !storable(v) || strings.ContainsRune(v, ' ') || strings.ContainsRune(v, '"') {
			return bad(f(".ACR"), fmt.Sprintf("%q is not a valid acr value", v))
		}
	}
	switch sc.ACRClaim {
	case "", "acr", "acrs":
	default:
		return bad(f(".ACRClaim"), `must be "acr" or "acrs"`)
	}
	if sc.ACRClaim != "" && !sc.RequestACRClaim {
		return bad(f(".ACRClaim"), "needs RequestACRClaim")
	}
	if !validDuration(sc.MaxAge) {
		return bad(f(".MaxAge"), "must be zero or a positive whole number of seconds")
	}
	if sc.MaxAge > 0 && !sc.PromptLogin {
		return bad(f(".MaxAge"), "a non-zero MaxAge needs PromptLogin: the IdP may otherwise reuse a login older than the challenge, which stepup refuses")
	}
	if !validDuration(sc.Lifetime) {
		return bad(f(".Lifetime"), "must be zero or a positive whole number of seconds")
	}
	if sc.IgnoreIDTokenExpiry && sc.Lifetime == 0 && sc.MaxAge == 0 {
		return bad(f(".IgnoreIDTokenExpiry"), "needs Lifetime or MaxAge: an elevation must always have a finite deadline")
	}
	if sc.ActionWindow != 0 && (!validDuration(sc.ActionWindow) || sc.ActionWindow < 10*time.Second || sc.ActionWindow > time.Hour) {
		return bad(f(".ActionWindow"), "must be whole seconds from 10s to 1h")
	}
	return validateDeviceScope(f, sc)
}

// validateDeviceScope checks a scope's device binding.
func validateDeviceScope(f func(string) string, sc Scope) error {
	bad := func(field, problem string) error { return &ConfigError{Field: field, Problem: problem} }
	switch sc.DeviceBinding {
	case DeviceBindingOff:
		if len(sc.DevicePaths) > 0 {
			return bad(f(".DevicePaths"), "needs DeviceBinding")
		}
		return nil
	case DeviceBindingPreferred, DeviceBindingRequired:
	default:
		return bad(f(".DeviceBinding"), "must be DeviceBindingOff, DeviceBindingPreferred or DeviceBindingRequired")
	}
	if len(sc.DevicePaths) == 0 {
		return bad(f(".DevicePaths"), "must name the path prefixes of the scope's guarded routes")
	}
	for _, p := range sc.DevicePaths {
		if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || len(p) > 256 || !printableASCIIPath(p) {
			return bad(f(".DevicePaths"), fmt.Sprintf("%q is not an absolute path", p))
		}
	}
	return nil
}

// printableASCIIPath reports whether p holds only characters a URL path
// may carry unescaped, and no quote or backslash.
func printableASCIIPath(p string) bool {
	for _, c := range []byte(p) {
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == '?' || c == '#' {
			return false
		}
	}
	return true
}

// validateAgainstSkew refuses scopes that could never be granted: an
// elevation that ends within ClockSkew of its grant is refused as born
// expired (ceiling_in_past), so Lifetime and MaxAge must exceed the skew.
func (c *Config) validateAgainstSkew() error {
	for name, sc := range c.Scopes {
		for field, d := range map[string]time.Duration{"Lifetime": sc.Lifetime, "MaxAge": sc.MaxAge} {
			if d > 0 && d <= c.ClockSkew {
				return &ConfigError{
					Field:   fmt.Sprintf("Scopes[%q].%s", name, field),
					Problem: fmt.Sprintf("%s is not longer than ClockSkew (%s): every elevation would be refused as born expired", d, c.ClockSkew),
				}
			}
		}
	}
	return nil
}

// setDefaults fills every optional field that is zero.
func (c *Config) setDefaults() {
	if c.AuthStyle == oauth2.AuthStyleAutoDetect {
		c.AuthStyle = oauth2.AuthStyleInHeader
		if c.ClientSecret == "" {
			c.AuthStyle = oauth2.AuthStyleInParams
		}
	}
	if c.SessionKeyPrefix == "" {
		c.SessionKeyPrefix = "stepup."
	}
	switch c.ClockSkew {
	case 0:
		c.ClockSkew = DefaultClockSkew
	case NoClockSkew:
		c.ClockSkew = 0
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Auditor == nil {
		c.Auditor = SlogAuditor{}
	}
	if c.ClientIP == nil {
		c.ClientIP = func(r *http.Request) string { return r.RemoteAddr }
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.StartPath == "" {
		c.StartPath = "/stepup/start"
	}
	if c.DeviceRegisterPath == "" {
		c.DeviceRegisterPath = "/stepup/device/register"
	}
	if c.DeviceRefreshPath == "" {
		c.DeviceRefreshPath = "/stepup/device/refresh"
	}
	if c.BoundCookieTTL == 0 {
		c.BoundCookieTTL = DefaultBoundCookieTTL
	}
	if c.DeviceBindingGrace == 0 {
		c.DeviceBindingGrace = DefaultDeviceBindingGrace
	}
	if c.DefaultReturnTo == "" {
		c.DefaultReturnTo = "/"
	}
	if c.Unauthenticated == nil {
		c.Unauthenticated = http.HandlerFunc(defaultUnauthenticated)
	}
	if c.OnDenied == nil {
		c.OnDenied = defaultDenied
	}
	if c.OnError == nil {
		c.OnError = defaultError
	}
}

// idp is what New learns of the IdP.
type idp struct {
	provider *oidc.Provider
	issParam bool     // it promises the RFC 9207 iss authorization response parameter
	jwksURL  string   // its jwks_uri; empty for a Provider without a discovery document
	algs     []string // the asymmetric algorithms it signs ID tokens with
}

// discover reads the provider's discovery document (OIDC Discovery §3).
func (c *Config) discover() (idp, error) {
	p := c.Provider
	if p == nil {
		ctx, cancel := context.WithTimeout(oidc.ClientContext(context.Background(), c.HTTPClient), 30*time.Second)
		defer cancel()
		var err error
		if p, err = oidc.NewProvider(ctx, c.Issuer); err != nil {
			return idp{}, &ConfigError{Field: "Issuer", Problem: "discovery failed", Err: err}
		}
	}
	var meta struct {
		Issuer       string   `json:"issuer"`
		IssParameter bool     `json:"authorization_response_iss_parameter_supported"`
		JWKSURI      string   `json:"jwks_uri"`
		Algs         []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := p.Claims(&meta); err != nil {
		// A provider built with oidc.ProviderConfig has no discovery
		// document: its issuer cannot be read back, so it must be given.
		if c.Issuer == "" {
			return idp{}, &ConfigError{Field: "Issuer", Problem: "required with a Provider that has no discovery document", Err: err}
		}
		return idp{provider: p, issParam: c.RequireIssParameter}, nil
	}
	if meta.Issuer == "" {
		return idp{}, &ConfigError{Field: "Provider", Problem: "discovery document names no issuer"}
	}
	if c.Issuer != "" && c.Issuer != meta.Issuer {
		return idp{}, &ConfigError{Field: "Issuer", Problem: fmt.Sprintf("does not match the provider's issuer %q", meta.Issuer)}
	}
	c.Issuer = meta.Issuer
	algs := slices.DeleteFunc(meta.Algs, func(a string) bool { return !slices.Contains(signingAlgs, jose.SignatureAlgorithm(a)) })
	return idp{provider: p, issParam: meta.IssParameter || c.RequireIssParameter, jwksURL: meta.JWKSURI, algs: algs}, nil
}

// verifiers returns the verifier of ID tokens and the one of logout
// tokens, which leaves exp to verifyLogoutToken. Both check signatures
// with one keySet, which fetches the IdP's keys again only for an unknown
// kid. A Provider built from an oidc.ProviderConfig has no discovery
// document to name its jwks_uri: its verifiers keep go-oidc's key set.
func (c *Config) verifiers(d idp, keys func(url string) *keySet) (id, logout *oidc.IDTokenVerifier) {
	idc := &oidc.Config{ClientID: c.ClientID, Now: c.Now, SupportedSigningAlgs: d.algs}
	lc := *idc
	lc.SkipExpiryCheck = true
	if d.jwksURL == "" {
		ctx := oidc.ClientContext(context.Background(), c.HTTPClient)
		idc.SupportedSigningAlgs, lc.SupportedSigningAlgs = nil, nil
		return d.provider.VerifierContext(ctx, idc), d.provider.VerifierContext(ctx, &lc)
	}
	ks := keys(d.jwksURL)
	return oidc.NewVerifier(c.Issuer, ks, idc), oidc.NewVerifier(c.Issuer, ks, &lc)
}

// newPolicy precomputes what requests under this scope need.
func newPolicy(name string, sc Scope, prefix string) *policy {
	p := &policy{
		Scope:        sc,
		name:         name,
		key:          prefix + "elevation." + name,
		acrValues:    strings.Join(sc.ACR, " "),
		maxAgeSecs:   int64(sc.MaxAge / time.Second),
		lifetimeSecs: int64(sc.Lifetime / time.Second),
	}
	maxAge := strconv.FormatInt(p.maxAgeSecs, 10)
	p.authOptions = []oauth2.AuthCodeOption{
		oauth2.SetAuthURLParam("acr_values", p.acrValues),
		oauth2.SetAuthURLParam("max_age", maxAge),
	}
	if sc.PromptLogin {
		p.authOptions = append(p.authOptions, oauth2.SetAuthURLParam("prompt", "login"))
	}
	if sc.RequestACRClaim {
		p.authOptions = append(p.authOptions, oauth2.SetAuthURLParam("claims", acrClaimsRequest(cmp.Or(sc.ACRClaim, "acr"), sc.ACR)))
	}
	// RFC 9470 §3: the values are quoted strings; acr values were checked
	// at validation to hold no quote or space.
	p.wwwAuth = `Bearer error="insufficient_user_authentication", ` +
		`error_description="A stronger or more recent authentication is required", ` +
		`acr_values="` + p.acrValues + `", max_age=` + maxAge
	return p
}
