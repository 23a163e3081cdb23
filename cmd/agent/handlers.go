package main

import (
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"net/url"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/revocast/revocast/pkg/agent"
)

// maxFormBytes bounds an introspection request body.
const maxFormBytes = 64 << 10

type handler struct {
	a      *agent.Agent
	errors []agent.MiddlewareOption // how refusals are answered
	log    *slog.Logger
}

func newHandler(a *agent.Agent, log *slog.Logger, errors ...agent.MiddlewareOption) http.Handler {
	h := &handler{a: a, errors: errors, log: log}
	mux := http.NewServeMux()
	// Any method and any path below /auth/: nginx subrequests keep the
	// original method, and Envoy's ext_authz appends the original path to
	// its path_prefix.
	mux.HandleFunc("/auth", h.auth)
	mux.HandleFunc("/auth/", h.auth)
	mux.HandleFunc("POST /v1/introspect", h.introspect)
	mux.HandleFunc("GET /healthz", h.healthz)
	mux.HandleFunc("GET /readyz", h.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(newRegistry(a), promhttp.HandlerOpts{}))
	return mux
}

// check is the agent's Check plus the sidecar's own rule: a token whose
// sub or iss cannot be passed upstream unchanged is invalid (see
// checkIdentity).
func (h *handler) check(r *http.Request, tok string) (*agent.Claims, error) {
	c, err := h.a.Check(r.Context(), tok)
	if err != nil {
		return nil, err
	}
	if err := checkIdentity(c); err != nil {
		h.log.Warn("token refused: the identity it names would change on its way upstream", "err", err, "remote", r.RemoteAddr)
		return nil, err
	}
	return c, nil
}

// auth answers a forward-auth request: 200 with X-Auth-Subject and
// X-Auth-Issuer for an allowed token, 401 with WWW-Authenticate for a
// missing, invalid or revoked one, 503 while stale under the closed policy.
// The headers carry sub and iss exactly as the denylist checked them.
func (h *handler) auth(w http.ResponseWriter, r *http.Request) {
	c, err := h.check(r, agent.BearerToken(r))
	if err != nil {
		h.log.Debug("auth refused", "err", err, "remote", r.RemoteAddr)
		agent.WriteErrorWith(w, err, h.errors...)
		return
	}
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Auth-Subject", c.Subject)
	if c.Issuer != "" {
		hdr.Set("X-Auth-Issuer", c.Issuer)
	}
	w.WriteHeader(http.StatusOK)
}

// introspect answers RFC 7662: {"active":true, <claims>} for a token the
// agent allows (and /auth would admit), {"active":false} for any other, 400 without a token
// parameter, and 503 (not an RFC 7662 answer) while stale under the closed
// policy: "inactive" would tell the caller the token is bad when the agent
// merely cannot tell.
func (h *handler) introspect(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "cannot parse the form body"})
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "the token parameter is required"})
		return
	}
	c, err := h.check(r, tok)
	switch {
	case errors.Is(err, agent.ErrStale):
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable", "error_description": "revocation state is stale; try again later"})
	case err != nil:
		writeJSON(w, http.StatusOK, map[string]bool{"active": false})
	default:
		// Claims are shared and read-only: copy before adding to them.
		out := make(map[string]any, len(c.Raw)+2)
		maps.Copy(out, c.Raw)
		out["active"] = true
		out["token_type"] = "Bearer"
		writeJSON(w, http.StatusOK, out)
	}
}

func (h *handler) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz is 200 once the agent has the full revocation state and has heard
// from the broadcaster within the maximum staleness.
func (h *handler) readyz(w http.ResponseWriter, r *http.Request) {
	switch {
	case !h.a.Ready():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not synced with the broadcaster yet"})
	case !h.a.Fresh():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "stale: nothing from the broadcaster for longer than max-staleness"})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func parseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	return u.Redacted(), nil
}
