package stepup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// This file holds the key sets that verify what an IdP or a transmitter
// signs: ID tokens, logout tokens and Security Event Tokens. go-oidc's
// RemoteKeySet fetches the key list again whenever no cached key verifies
// a token, so every forged token an anonymous caller posts to a receiver
// would make this application call the IdP: an IdP that rate-limits or
// blocks it then breaks step-ups and loses logout tokens. keySet fetches
// again only for a kid it does not hold, and then at most once per
// keyRefetchInterval.

// keyRefetchInterval is the least time between two fetches of a key list
// for a kid the cached list lacks. An IdP's key rotation is picked up at
// the first token with the new kid, or within this interval when a fetch
// for another unknown kid came just before.
const keyRefetchInterval = 30 * time.Second

// maxJWKSBody bounds a key list. Honest ones are a few kilobytes.
const maxJWKSBody = 1 << 20

// signingAlgs are the JWS algorithms keySet verifies: asymmetric only, so
// that neither "none" nor a shared secret (HS256 with the public key as
// the secret) can pass.
var signingAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// keySet is an issuer's published signing keys (a JWKS at url), cached.
// It implements go-oidc's KeySet.
type keySet struct {
	url    string
	client *http.Client
	now    func() time.Time

	fetching sync.Mutex // one fetch at a time; held across the fetch

	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetched time.Time // when a fetch for an unknown kid last ran; zero before the first
}

func newKeySet(url string, client *http.Client, now func() time.Time) *keySet {
	return &keySet{url: url, client: client, now: now}
}

// VerifySignature verifies raw, a compact JWS with one signature, with the
// cached key its kid names (every cached key when it names none), and
// returns its payload. Only a kid the cache lacks, or an empty cache, can
// make it fetch the key list; a signature that fails under a known kid
// never does.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, signingAlgs)
	if err != nil {
		return nil, fmt.Errorf("stepup: malformed or unsupported JWS: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("stepup: a JWS must have exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	for _, key := range k.keysFor(ctx, kid) {
		if kid != "" && key.KeyID != kid {
			continue
		}
		if payload, err := jws.Verify(key); err == nil {
			return payload, nil
		}
	}
	return nil, errors.New("stepup: no key of the issuer verifies the signature")
}

// holds reports whether keys can answer for kid without a fetch.
func holds(keys []jose.JSONWebKey, kid string) bool {
	if kid == "" {
		return len(keys) > 0
	}
	return slices.ContainsFunc(keys, func(key jose.JSONWebKey) bool { return key.KeyID == kid })
}

// keysFor returns the keys to try for kid: the cached ones, fetched again
// first when they lack kid and the last such fetch is keyRefetchInterval
// old. The first fetch, into an empty cache, does not count against the
// interval, so that a rotation right after startup is picked up at once;
// a fetch that fails always counts. A failed fetch keeps the keys that
// were cached.
func (k *keySet) keysFor(ctx context.Context, kid string) []jose.JSONWebKey {
	k.mu.Lock()
	keys := k.keys
	k.mu.Unlock()
	if holds(keys, kid) {
		return keys
	}
	k.fetching.Lock()
	defer k.fetching.Unlock()
	k.mu.Lock()
	keys, last, now := k.keys, k.fetched, k.now()
	k.mu.Unlock()
	if holds(keys, kid) || (!last.IsZero() && now.Sub(last) < keyRefetchInterval) {
		return keys // another request fetched meanwhile, or one did lately
	}
	// The fetch outlives the request that asked for it: other requests
	// wait for it. HTTPClient's Timeout bounds it.
	fresh, err := k.fetch(context.WithoutCancel(ctx))
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.keys) > 0 || err != nil {
		k.fetched = now
	}
	if err == nil {
		k.keys = fresh
	}
	return k.keys
}

// fetch reads the key list (RFC 7517 §5) and keeps its public signing
// keys.
func (k *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("stepup: the key list answered %d", resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJWKSBody)).Decode(&set); err != nil {
		return nil, fmt.Errorf("stepup: the key list is not a JWKS: %w", err)
	}
	keys := slices.DeleteFunc(set.Keys, func(key jose.JSONWebKey) bool {
		return !key.Valid() || !key.IsPublic() || (key.Use != "" && key.Use != "sig")
	})
	if len(keys) == 0 {
		return nil, errors.New("stepup: the key list holds no public signing key")
	}
	return keys, nil
}
