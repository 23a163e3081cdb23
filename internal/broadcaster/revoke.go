package broadcaster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/revocast/revocast/internal/auth"
	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/events/eventlog"
)

// TokenVerifier checks a token posted to POST /v1/revoke: its signature,
// algorithm, issuer and audience. It returns the token's facts and its
// expiry; an expired token may be reported either way.
type TokenVerifier interface {
	VerifyToken(raw string) (events.Token, time.Time, error)
}

// maxRevokeForm bounds the body of POST /v1/revoke: one token and a hint.
const maxRevokeForm = 64 << 10

// handleRevokeToken is RFC 7009 token revocation: a client (typically an
// app implementing logout) posts a token and it stops being accepted.
//
// Who may call it: with a TokenVerifier configured, possession of a valid
// token is the credential — a token can only revoke itself, which is
// harmless; a revoker may also call it. Without one, the token can only be
// decoded, not trusted (anyone could forge one naming any user), so the
// caller must be a revoker.
//
// As RFC 7009 §2.2 says, the answer is 200 also for a token that is
// invalid, unknown or expired for longer than the expiry grace: nothing is
// revoked then.
func (s *Server) handleRevokeToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	caller, hasCaller := s.callerForRevoke(r)
	// credentialed: the caller authenticated with its own credential,
	// which a page of another site cannot make a browser send
	credentialed := hasCaller && s.auth.Enabled()
	if !hasCaller {
		if s.cfg.TokenVerifier == nil {
			// authenticate answers 401/403 with the reason
			if _, ok := s.authenticate(w, r, auth.RoleRevoker); !ok {
				return
			}
		}
		// token holders are rate limited by their address
		caller = auth.Principal{Name: "token", Kind: "anonymous"}
	}
	r = r.WithContext(context.WithValue(r.Context(), principalKey{}, caller))
	if field := s.crossSite(r); field != "" {
		s.refuse(w, r, http.StatusForbidden, "cross_site", crossSiteMessage(field), field, nil)
		return
	}
	if !s.allow(w, r, caller) {
		return
	}
	token, ok := s.revokeTokenParam(w, r, credentialed)
	if !ok {
		return
	}
	if token == "" {
		s.refuseOAuth(w, r, http.StatusBadRequest, "invalid", "invalid_request", "the token parameter is required", "token")
		return
	}
	idem, ok := idempotencyKey(r)
	if !ok {
		s.refuseOAuth(w, r, http.StatusBadRequest, "invalid", "invalid_request", "Idempotency-Key must be 1 to 200 printable ASCII characters", "Idempotency-Key")
		return
	}

	var (
		facts events.Token
		exp   time.Time
		err   error
	)
	if s.cfg.TokenVerifier != nil {
		facts, exp, err = s.cfg.TokenVerifier.VerifyToken(token)
	} else {
		facts, exp, err = decodeUnverified(token)
	}
	if err != nil {
		// an invalid token is not an error for the client (RFC 7009 §2.2)
		s.log.Info("revoke-by-token: nothing revoked", "audit", true, "reason", "invalid token", "detail", err.Error(),
			"actor", caller.Name, "remote", r.RemoteAddr)
		w.WriteHeader(http.StatusOK)
		return
	}
	if !hasCaller {
		caller = auth.Principal{Name: "token:" + facts.Sub, Kind: "token"}
	}
	now := time.Now()
	// A token up to G past its exp is still accepted by agents whose
	// leeway covers it (their leeway is below G): revoke it too.
	if exp.IsZero() || !exp.Add(s.cfg.ExpiryGrace).After(now) {
		s.log.Info("revoke-by-token: nothing revoked", "audit", true, "reason", "token expired more than the expiry grace ago, or without exp",
			"actor", caller.Name, "remote", r.RemoteAddr)
		w.WriteHeader(http.StatusOK)
		return
	}
	rev := events.Revocation{Iss: facts.Iss, ExpiresAt: events.Time{Time: exp}, Reason: "revoked by token (RFC 7009)", Actor: caller.Name}
	switch {
	case facts.JTI != "":
		rev.JTI = facts.JTI
	case facts.Sub != "" && facts.HasIssuedAt:
		// no jti: revoke this subject's tokens issued up to this one
		rev.Sub = facts.Sub
		rev.IssuedBefore = events.Time{Time: time.Unix(facts.IssuedAt+1, 0)}
	default:
		s.log.Info("revoke-by-token: nothing revoked", "audit", true, "reason", "token has neither jti nor sub and iat",
			"actor", caller.Name, "remote", r.RemoteAddr)
		w.WriteHeader(http.StatusOK)
		return
	}
	if err := s.policy.Prepare(&rev, now); err != nil {
		s.log.Info("revoke-by-token: nothing revoked", "audit", true, "reason", err.Error(), "actor", caller.Name, "remote", r.RemoteAddr)
		w.WriteHeader(http.StatusOK)
		return
	}
	// Whoever posts it, a revocation by token only adds: under a key of
	// its own it replaces no other revocation (an operator's logout of
	// the same subject, or another token's cut), so it never narrows or
	// shortens one. Replacing and lifting are an operator's, through
	// /v1/revocations.
	rev.Key = rev.TokenKey()
	// A token already revoked for the rest of its life changes nothing.
	// This node first catches up, so that a revocation lifted elsewhere
	// does not count; a match missed here only costs a redundant write.
	// With an Idempotency-Key the write goes on, so that a key reused for
	// another request is refused (409) whatever the token; a redundant
	// revocation under the token's own key only adds.
	s.follower.catchUpForRead(r.Context())
	if by, ok := s.revokedUntil(&facts, exp); ok && idem == "" {
		s.log.Info("revoke-by-token: nothing revoked", "audit", true, "reason", "already revoked", "by", by,
			"actor", caller.Name, "remote", r.RemoteAddr)
		w.WriteHeader(http.StatusOK)
		return
	}
	// an Idempotency-Key of its own namespace: the request is the token
	req := logRequest(caller, idem, opRevokeToken, []byte(token))
	p, err := s.store.PublishRequest(r.Context(), &rev, req)
	if errors.Is(err, eventlog.ErrConflict) {
		s.refuseOAuth(w, r, http.StatusConflict, "idempotency_conflict", "invalid_request", err.Error(), "Idempotency-Key")
		return
	}
	if err != nil {
		// RFC 7009 §2.2.1 allows 503 with Retry-After
		s.writeFailed(w, r, err)
		return
	}
	if p.Duplicate {
		s.follower.waitApplied(r.Context(), p.Seq)
		w.WriteHeader(http.StatusOK)
		return
	}
	s.metrics.published.WithLabelValues(events.TypeRevoke).Inc()
	s.log.Info("revoked", "audit", true, "actor", caller.Name, "key", rev.Key, "reason", rev.Reason,
		"seq", p.Seq, "remote", r.RemoteAddr, "via", "rfc7009")
	s.follower.waitApplied(r.Context(), p.Seq)
	w.WriteHeader(http.StatusOK)
}

// revokeTokenParam reads the token parameter of a revocation by token from
// a JSON or form body (at most maxRevokeForm bytes); credentialed says the
// caller authenticated with a credential of its own. When it returns
// false, it has answered the request.
func (s *Server) revokeTokenParam(w http.ResponseWriter, r *http.Request, credentialed bool) (string, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, maxRevokeForm)
	switch mediaType(r) {
	case "application/json":
		var req struct {
			Token         string `json:"token"`
			TokenTypeHint string `json:"token_type_hint,omitempty"`
		}
		// other parameters are ignored, as in the form (RFC 7009 §2.1)
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			s.refuseRevokeBody(w, r, err, "body", "malformed JSON body: want {\"token\":\"…\"}")
			return "", false
		}
		return req.Token, true
	case "application/x-www-form-urlencoded":
		// the form of RFC 7009, which a page of another site can post
		// without asking: only for a token that is verified (it can
		// only revoke itself) or a caller with its own credential
		if s.cfg.TokenVerifier == nil && !credentialed {
			w.Header().Set("Accept-Post", "application/json")
			s.refuse(w, r, http.StatusUnsupportedMediaType, "unsupported_media_type",
				"Content-Type: this broadcaster does not verify posted tokens, so a form is only accepted with a credential; "+
					"send application/json ({\"token\":\"…\"})", "Content-Type", nil)
			return "", false
		}
		if err := r.ParseForm(); err != nil {
			s.refuseRevokeBody(w, r, err, "form", "malformed form body")
			return "", false
		}
		return r.PostForm.Get("token"), true
	default:
		w.Header().Set("Accept-Post", "application/json, application/x-www-form-urlencoded")
		s.refuse(w, r, http.StatusUnsupportedMediaType, "unsupported_media_type",
			"Content-Type: send application/x-www-form-urlencoded (RFC 7009) or application/json", "Content-Type", nil)
		return "", false
	}
}

// revokedUntil looks for a live revocation that matches the token (with
// the agents' matching code) and lasts at least until exp, and returns its
// key. Only candidates are decoded: a revocation naming another jti or sub
// cannot match.
func (s *Server) revokedUntil(t *events.Token, exp time.Time) (string, bool) {
	var needles [][]byte
	for _, f := range []struct{ name, value string }{{"jti", t.JTI}, {"sub", t.Sub}} {
		enc, _ := json.Marshal(f.value)
		needles = append(needles, []byte(`"`+f.name+`":"`), append([]byte(`"`+f.name+`":`), enc...))
	}
	key := ""
	s.hub.Revocations(0, func(_ uint64, data []byte) bool {
		for i := 0; i < len(needles); i += 2 {
			// names the field, with another value
			if bytes.Contains(data, needles[i]) && !bytes.Contains(data, needles[i+1]) {
				return true
			}
		}
		var r events.Revocation
		if json.Unmarshal(data, &r) != nil {
			return true
		}
		if r.Matches(t) && (r.ExpiresAt.IsZero() || !r.ExpiresAt.Before(exp)) {
			key = r.Key
			return false
		}
		return true
	})
	return key, key != ""
}

// callerForRevoke returns the authenticated revoker calling, if any.
func (s *Server) callerForRevoke(r *http.Request) (auth.Principal, bool) {
	if !s.auth.Enabled() {
		return auth.Anonymous, true
	}
	if r.Header.Get("Authorization") == "" {
		return auth.Principal{}, false
	}
	p, err := s.auth.Authenticate(r)
	if err != nil || !p.Role.Allows(auth.RoleRevoker) {
		return auth.Principal{}, false
	}
	return p, true
}

// oauthError is the error format of RFC 6749 §5.2, which RFC 7009 uses.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// refuseOAuth answers a refusal of POST /v1/revoke in the format of RFC
// 6749 §5.2, and logs it as refuse does.
func (s *Server) refuseOAuth(w http.ResponseWriter, r *http.Request, status int, reason, code, description, field string) {
	s.metrics.rejected.WithLabelValues(reason).Inc()
	closeAfter(w)
	s.log.Warn("request refused", s.refusalAttrs(r, status, reason, field, nil)...)
	writeJSON(w, status, oauthError{Error: code, Description: description})
}

// decodeUnverified reads a JWT's claims without checking its signature: only
// for callers who are trusted revokers anyway.
func decodeUnverified(raw string) (events.Token, time.Time, error) {
	claims := jwt.MapClaims{}
	tok, _, err := jwt.NewParser().ParseUnverified(raw, claims)
	if err != nil {
		return events.Token{}, time.Time{}, err
	}
	facts, exp, err := FactsFromClaims(claims)
	if kid, ok := tok.Header["kid"].(string); ok {
		facts.Kid = kid
	}
	return facts, exp, err
}

// FactsFromClaims extracts what revocations match on from decoded claims.
func FactsFromClaims(c jwt.MapClaims) (events.Token, time.Time, error) {
	var t events.Token
	str := func(name string) (string, error) {
		v, ok := c[name]
		if !ok {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("claim %s is not a string", name)
		}
		return s, nil
	}
	var err error
	if t.JTI, err = str("jti"); err != nil {
		return t, time.Time{}, err
	}
	if t.Sub, err = str("sub"); err != nil {
		return t, time.Time{}, err
	}
	if t.Iss, err = str("iss"); err != nil {
		return t, time.Time{}, err
	}
	if iat, err := c.GetIssuedAt(); err == nil && iat != nil {
		t.IssuedAt, t.HasIssuedAt = iat.Unix(), true
	}
	var exp time.Time
	if e, err := c.GetExpirationTime(); err == nil && e != nil {
		exp = e.Time
	}
	t.Claims = c
	return t, exp, nil
}

// refuseRevokeBody answers a POST /v1/revoke body (what: "body" or "form")
// that could not be read: 413 past maxRevokeForm, 400 with malformed
// otherwise.
func (s *Server) refuseRevokeBody(w http.ResponseWriter, r *http.Request, err error, what, malformed string) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		s.refuseOAuth(w, r, http.StatusRequestEntityTooLarge, "body_too_large", "invalid_request", what+" larger than 64 KiB", "")
		return
	}
	s.refuseOAuth(w, r, http.StatusBadRequest, "invalid", "invalid_request", malformed, "")
}
