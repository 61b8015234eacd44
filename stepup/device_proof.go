package stepup

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"

	jose "github.com/go-jose/go-jose/v4"
)

// This file checks the browser's proofs of possession: the dbsc+jwt of a
// registration, which carries its public key, and of a refresh, which is
// checked with the key stored at registration. go-jose parses and
// verifies; this file decides what is acceptable.

// maxProofLen bounds the Secure-Session-Response header: an RS256 proof
// with a 4096-bit key in its header is about 2 KB.
const maxProofLen = 4096

// The key sizes accepted for RS256.
const (
	minRSABits = 2048
	maxRSABits = 4096
)

// deviceProofAlgs are the algorithms offered in Secure-Session-Registration
// and the only ones accepted: ES256 on P-256 and RS256.
var deviceProofAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.RS256}

// proofClaims is what stepup reads from a proof's payload.
type proofClaims struct {
	JTI           string `json:"jti"`
	Authorization string `json:"authorization"`
}

var errBadProof = errors.New("stepup: bad device proof")

// parseProof parses a dbsc+jwt without verifying it: its one signature's
// protected header, and the payload is read only after verification.
func parseProof(token string) (*jose.JSONWebSignature, error) {
	if token == "" || len(token) > maxProofLen {
		return nil, errBadProof
	}
	jws, err := jose.ParseSigned(token, deviceProofAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, errBadProof
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "dbsc+jwt" {
		return nil, errBadProof
	}
	return jws, nil
}

// acceptableKey reports whether key is a public key of the strength alg
// promises: a P-256 point for ES256 (go-jose refuses points off the curve
// when it parses the JWK), an RSA modulus of 2048 to 4096 bits for RS256.
func acceptableKey(alg string, key any) bool {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		return alg == string(jose.ES256) && k.Curve == elliptic.P256()
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		return alg == string(jose.RS256) && bits >= minRSABits && bits <= maxRSABits && k.E >= 3 && k.E%2 == 1
	}
	return false
}

// verifyRegistration checks a registration's proof: a dbsc+jwt signed with
// ES256 or RS256 by the public key in its own header. It returns the key
// (as stored: its JWK in base64url), its thumbprint and the claims.
func verifyRegistration(token string) (alg, jwk, jkt string, c proofClaims, err error) {
	jws, err := parseProof(token)
	if err != nil {
		return "", "", "", c, err
	}
	h := jws.Signatures[0].Protected
	k := h.JSONWebKey
	if k == nil || !k.Valid() || !k.IsPublic() || !acceptableKey(h.Algorithm, k.Key) {
		return "", "", "", c, errBadProof
	}
	payload, err := jws.Verify(k)
	if err != nil || json.Unmarshal(payload, &c) != nil {
		return "", "", "", c, errBadProof
	}
	// Store the key alone: no kid, alg or use the browser may have added.
	pub := jose.JSONWebKey{Key: k.Key}
	raw, err := pub.MarshalJSON()
	if err != nil {
		return "", "", "", c, errBadProof
	}
	sum, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", "", "", c, errBadProof
	}
	return h.Algorithm, base64.RawURLEncoding.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(sum), c, nil
}

// verifyRefresh checks a refresh's proof with the key stored at
// registration: the same algorithm, that key's signature.
func verifyRefresh(token string, ds *deviceSession) (proofClaims, error) {
	var c proofClaims
	jws, err := parseProof(token)
	if err != nil {
		return c, err
	}
	if jws.Signatures[0].Protected.Algorithm != ds.alg {
		return c, errBadProof
	}
	raw, err := base64.RawURLEncoding.DecodeString(ds.jwk)
	if err != nil {
		return c, ErrCorruptRecord
	}
	var k jose.JSONWebKey
	if k.UnmarshalJSON(raw) != nil || !acceptableKey(ds.alg, k.Key) {
		return c, ErrCorruptRecord
	}
	payload, err := jws.Verify(&k)
	if err != nil || json.Unmarshal(payload, &c) != nil {
		return c, errBadProof
	}
	return c, nil
}
