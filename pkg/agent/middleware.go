package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

type claimsKey struct{}

// ContextWithClaims returns a copy of ctx carrying c (the middleware does
// this; tests of handlers can too).
func ContextWithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// ClaimsFromContext returns the verified claims the middleware stored. They
// are shared with other requests bearing the same token: do not modify them.
func ClaimsFromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}

// BearerToken returns the token of an "Authorization: Bearer <token>"
// header (the scheme is case-insensitive), or "" when there is none.
func BearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return ""
	}
	return strings.TrimSpace(h[len(scheme):])
}

type middlewareConfig struct {
	realm   string
	generic bool
}

// MiddlewareOption configures Middleware.
type MiddlewareOption func(*middlewareConfig)

// WithRealm sets the realm of the WWW-Authenticate challenge.
func WithRealm(realm string) MiddlewareOption {
	return func(c *middlewareConfig) { c.realm = realm }
}

// WithGenericErrors makes every refused token get the same answer: 401,
// error="invalid_token" and the description GenericDescription, whether
// it was revoked, expired, badly signed or garbage. Without it the
// description says why, which also tells a token's thief that its victim
// noticed (a revocation) and shows verification errors.
func WithGenericErrors() MiddlewareOption {
	return func(c *middlewareConfig) { c.generic = true }
}

// GenericDescription is the error_description of every refused token
// under WithGenericErrors.
const GenericDescription = "the access token was not accepted"

// Middleware lets a request through to next only with a bearer token that
// Check allows, and puts its claims in the request's context
// (ClaimsFromContext). Otherwise it answers as WriteError does: 401 with a
// WWW-Authenticate challenge (RFC 6750) for a missing, invalid or revoked
// token, 503 while the agent is stale under StaleClosed.
func (a *Agent) Middleware(next http.Handler, opts ...MiddlewareOption) http.Handler {
	var cfg middlewareConfig
	for _, o := range opts {
		o(&cfg)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := a.Check(r.Context(), BearerToken(r))
		if err != nil {
			cfg.writeError(w, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(ContextWithClaims(r.Context(), c)))
	})
}

// errorBody is the JSON body of a refusal, with the error codes of RFC 6750
// (and temporarily_unavailable of RFC 6749 for 503).
type errorBody struct {
	Error       string `json:"error,omitempty"`
	Description string `json:"error_description,omitempty"`
}

// WriteError answers a request whose token Check refused:
//   - ErrNoToken: 401, WWW-Authenticate: Bearer realm="…" (no error code,
//     as RFC 6750 section 3.1 asks when the request has no credentials);
//   - ErrInvalid, ErrRevoked: 401, WWW-Authenticate: Bearer realm="…",
//     error="invalid_token", error_description="…";
//   - ErrStale: 503 with Retry-After;
//   - anything else: 500.
//
// The body is JSON: {"error":…,"error_description":…}.
func WriteError(w http.ResponseWriter, err error, realm string) {
	middlewareConfig{realm: realm}.writeError(w, err)
}

// WriteErrorWith answers as WriteError does, configured like Middleware
// (WithRealm, WithGenericErrors).
func WriteErrorWith(w http.ResponseWriter, err error, opts ...MiddlewareOption) {
	var cfg middlewareConfig
	for _, o := range opts {
		o(&cfg)
	}
	cfg.writeError(w, err)
}

func (cfg middlewareConfig) writeError(w http.ResponseWriter, err error) {
	realm := cfg.realm
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	status, body := http.StatusUnauthorized, errorBody{}
	switch {
	case errors.Is(err, ErrNoToken):
		h.Set("WWW-Authenticate", challenge(realm, "", ""))
		body.Description = "a bearer token is required"
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrRevoked):
		desc := Description(err)
		if cfg.generic {
			desc = GenericDescription
		}
		h.Set("WWW-Authenticate", challenge(realm, "invalid_token", desc))
		body.Error, body.Description = "invalid_token", desc
	case errors.Is(err, ErrStale):
		status = http.StatusServiceUnavailable
		h.Set("Retry-After", "5")
		body.Error, body.Description = "temporarily_unavailable", "revocation state is stale; try again later"
	default:
		status = http.StatusInternalServerError
		body.Error = "server_error"
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// Description is a short human-readable reason for a refused token, safe
// for an error_description (RFC 6750 allows %x20-21 / %x23-5B / %x5D-7E).
func Description(err error) string {
	switch {
	case errors.Is(err, ErrRevoked):
		return "the token has been revoked"
	case errors.Is(err, ErrNoToken):
		return "a bearer token is required"
	case errors.Is(err, ErrStale):
		return "revocation state is stale"
	}
	msg := err.Error()
	var ie *InvalidError
	if errors.As(err, &ie) && ie.Reason != nil {
		msg = ie.Reason.Error()
	}
	return sanitize(msg, 200)
}

func sanitize(s string, limit int) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < limit; i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			c = ' '
		}
		b.WriteByte(c)
	}
	return b.String()
}

func challenge(realm, code, desc string) string {
	var parts []string
	if realm != "" {
		parts = append(parts, `realm="`+sanitize(realm, 100)+`"`)
	}
	if code != "" {
		parts = append(parts, `error="`+code+`"`)
	}
	if desc != "" {
		parts = append(parts, `error_description="`+desc+`"`)
	}
	if len(parts) == 0 {
		return "Bearer"
	}
	return "Bearer " + strings.Join(parts, ", ")
}
