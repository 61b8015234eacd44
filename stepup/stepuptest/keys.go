package stepuptest

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"slices"
	"sync"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// rsaAlgs are the values [Config.IDTokenSigningAlg] accepts: the provider's
// keys are RSA keys, so [Provider.PublicKey] can return an *rsa.PublicKey.
var rsaAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512}

// signingKey is one RSA key and its kid. It is immutable once made.
type signingKey struct {
	id  string
	alg jose.SignatureAlgorithm
	key *rsa.PrivateKey
}

var _ op.SigningKey = (*signingKey)(nil)

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return k.alg }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

// publicKey is the JWKS view of a signingKey.
type publicKey struct{ k *signingKey }

var _ op.Key = publicKey{}

func (p publicKey) ID() string                         { return p.k.id }
func (p publicKey) Algorithm() jose.SignatureAlgorithm { return p.k.alg }
func (p publicKey) Use() string                        { return "sig" }
func (p publicKey) Key() any                           { return &p.k.key.PublicKey }

func newSigningKey(alg jose.SignatureAlgorithm) (*signingKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("stepuptest: generate RSA key: %w", err)
	}
	return &signingKey{id: rand.Text(), alg: alg, key: key}, nil
}

// keyring holds the signing keys, newest first. The newest signs; all of
// them are published at the JWKS endpoint so that tokens signed before a
// rotation still verify (OIDC Core §10.1.1).
type keyring struct {
	mu   sync.RWMutex
	keys []*signingKey
}

func newKeyring(alg jose.SignatureAlgorithm) (*keyring, error) {
	k, err := newSigningKey(alg)
	if err != nil {
		return nil, err
	}
	return &keyring{keys: []*signingKey{k}}, nil
}

func (r *keyring) current() *signingKey {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.keys[0]
}

func (r *keyring) public() []op.Key {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]op.Key, len(r.keys))
	for i, k := range r.keys {
		out[i] = publicKey{k}
	}
	return out
}

func (r *keyring) rotate() error {
	k, err := newSigningKey(r.current().alg)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys = slices.Insert(r.keys, 0, k)
	return nil
}

// Sign serializes claims as a compact JWS signed with the provider's current
// key, with that key's kid and "typ":"JWT" in the header. Tests use it to
// re-sign tampered claims from [Provider.RewriteNextIDToken] so that the
// signature is valid and only the claim under test is wrong.
func (p *Provider) Sign(claims map[string]any) (string, error) { return p.SignTyped("JWT", claims) }

// PublicKey returns the public half of the current signing key.
func (p *Provider) PublicKey() *rsa.PublicKey { return &p.keys.current().key.PublicKey }

// KeyID returns the kid of the current signing key.
func (p *Provider) KeyID() string { return p.keys.current().id }

// RotateKey makes a new RSA 2048 key with a new kid. Tokens issued from now on
// are signed with it; the JWKS endpoint publishes it first, followed by every
// older key, so tokens signed before the rotation still verify.
func (p *Provider) RotateKey() error { return p.keys.rotate() }
