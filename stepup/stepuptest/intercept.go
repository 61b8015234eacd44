package stepuptest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// This file holds the HTTP wrappers around zitadel's handlers: the behaviour
// zitadel's op does not have (RFC 9207 iss, the raw claims parameter,
// per-login ID token lifetime, rewritten ID tokens) is added at the HTTP
// level so that everything else stays zitadel's.

// recordAuthorizeForm keeps the authorization request's form as sent, for
// [storage.CreateAuthRequest].
func (p *Provider) recordAuthorizeForm(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err == nil {
			ctx := context.WithValue(r.Context(), rawAuthorizeFormKey{}, maps.Clone(r.Form))
			r = r.WithContext(ctx)
		}
		next.ServeHTTP(w, r)
	})
}

// discovery adds "authorization_response_iss_parameter_supported": true to
// zitadel's discovery document when [Config.IssParameter] is set
// (RFC 9207 §3).
func (p *Provider) discovery(next http.Handler) http.Handler {
	if !p.cfg.IssParameter {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := newRecorder()
		next.ServeHTTP(rec, r)
		body := rec.body.Bytes()
		var doc map[string]any
		if rec.status == http.StatusOK && json.Unmarshal(body, &doc) == nil {
			doc["authorization_response_iss_parameter_supported"] = true
			if b, err := json.Marshal(doc); err == nil {
				body = b
			}
		}
		rec.copyTo(w, body)
	})
}

// issRedirects adds iss to every redirect to the RP when
// [Config.IssParameter] is set (RFC 9207 §2). Redirects within the provider,
// such as the one to the login page, are left alone.
func (p *Provider) issRedirects(next http.Handler) http.Handler {
	if !p.cfg.IssParameter {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(p.withIssWriter(w), r)
	})
}

func (p *Provider) withIssWriter(w http.ResponseWriter) http.ResponseWriter {
	if !p.cfg.IssParameter {
		return w
	}
	if _, ok := w.(*issWriter); ok {
		return w
	}
	return &issWriter{ResponseWriter: w, issuer: p.issuer}
}

type issWriter struct {
	http.ResponseWriter
	issuer      string
	wroteHeader bool
}

func (w *issWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.wroteHeader = true
		if code >= 300 && code < 400 {
			if loc := w.Header().Get("Location"); loc != "" {
				w.Header().Set("Location", addIss(loc, w.issuer))
			}
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *issWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *issWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// addIss sets iss on an authorization response URL, in the fragment when the
// response parameters are there, else in the query. URLs on the issuer
// itself and relative URLs are returned unchanged.
func addIss(loc, issuer string) string {
	u, err := url.Parse(loc)
	if err != nil || !u.IsAbs() || loc == issuer || strings.HasPrefix(loc, issuer+"/") {
		return loc
	}
	if u.RawFragment != "" || u.Fragment != "" {
		params, err := url.ParseQuery(u.EscapedFragment())
		if err != nil {
			return loc
		}
		params.Set("iss", issuer)
		u.RawFragment = params.Encode()
		u.Fragment, _ = url.PathUnescape(u.RawFragment)
		return u.String()
	}
	q := u.Query()
	q.Set("iss", issuer)
	u.RawQuery = q.Encode()
	return u.String()
}

// RewriteNextIDToken arms a one-shot rewrite: the id_token of the next
// successful token-endpoint response is replaced by fn's result. fn receives
// the decoded claims of the honest token, as encoding/json decodes them
// (numbers are float64); tests mutate them and re-sign with [Provider.Sign],
// or mint alg:none or HS256 tokens themselves with go-jose. Error responses
// do not use up the rewrite. If fn returns an error the client gets a 500
// server_error. A later call replaces a rewrite that has not run yet.
func (p *Provider) RewriteNextIDToken(fn func(claims map[string]any) (string, error)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rewrite = fn
}

func (p *Provider) rewritePending() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rewrite != nil
}

func (p *Provider) takeRewrite() func(map[string]any) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fn := p.rewrite
	p.rewrite = nil
	return fn
}

// tokenEndpoint passes the login's ID token lifetime to zitadel through the
// request context and applies [Provider.RewriteNextIDToken].
func (p *Provider) tokenEndpoint(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var details json.RawMessage
		if err := r.ParseForm(); err == nil {
			if d, ok := p.store.idTokenLifetimeByCode(r.Form.Get("code")); ok {
				r = r.WithContext(context.WithValue(r.Context(), idTokenLifetimeKey{}, d))
			}
			details = p.store.authorizationDetailsByCode(r.Form.Get("code"))
		}
		if !p.rewritePending() && details == nil {
			next.ServeHTTP(w, r)
			return
		}
		rec := newRecorder()
		next.ServeHTTP(rec, r)
		body, err := p.rewriteTokenResponse(rec)
		if err == nil && details != nil {
			body = addAuthorizationDetails(rec.status, body, details)
		}
		if err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"error":"server_error","error_description":"stepuptest: RewriteNextIDToken failed"}`)
			return
		}
		rec.copyTo(w, body)
	})
}

func (p *Provider) rewriteTokenResponse(rec *recorder) ([]byte, error) {
	body := rec.body.Bytes()
	var resp map[string]any
	if rec.status != http.StatusOK || json.Unmarshal(body, &resp) != nil {
		return body, nil
	}
	raw, ok := resp["id_token"].(string)
	if !ok {
		return body, nil
	}
	fn := p.takeRewrite()
	if fn == nil {
		return body, nil // another request took it
	}
	jws, err := jose.ParseSigned(raw, rsaAlgs)
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &claims); err != nil {
		return nil, err
	}
	tok, err := fn(claims)
	if err != nil {
		return nil, err
	}
	resp["id_token"] = tok
	return json.Marshal(resp)
}

// addAuthorizationDetails adds authorization_details to a successful
// token response (RFC 9396 §7). details that are not JSON are sent as a
// string, so that a test can send malformed ones.
func addAuthorizationDetails(status int, body []byte, details json.RawMessage) []byte {
	var resp map[string]any
	if status != http.StatusOK || json.Unmarshal(body, &resp) != nil {
		return body
	}
	var v any = details
	if !json.Valid(details) {
		v = string(details)
	}
	resp["authorization_details"] = v
	if b, err := json.Marshal(resp); err == nil {
		return b
	}
	return body
}

// recorder buffers a response so that it can be changed before it is sent.
type recorder struct {
	header      http.Header
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func newRecorder() *recorder { return &recorder{header: http.Header{}, status: http.StatusOK} }

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.wroteHeader, r.status = true, code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	return r.body.Write(b)
}

func (r *recorder) copyTo(w http.ResponseWriter, body []byte) {
	h := w.Header()
	maps.Copy(h, r.header)
	h.Del("Content-Length")
	w.WriteHeader(r.status)
	_, _ = w.Write(body)
}
