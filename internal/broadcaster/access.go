package broadcaster

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/revocast/revocast/internal/auth"
)

// Defaults of the access limits.
const (
	DefaultRateLimit      = 500 // requests per second per credential
	DefaultRateBurst      = 1000
	DefaultMaxSubscribers = 20_000
	// limiterEntries bounds how many credentials' limiters are remembered.
	limiterEntries = 10_000
)

type principalKey struct{}

// principal returns the caller that access() authenticated.
func principal(r *http.Request) auth.Principal {
	if p, ok := r.Context().Value(principalKey{}).(auth.Principal); ok {
		return p
	}
	return auth.Anonymous
}

// actor names who posted a revocation: the API key's name, the operator
// JWT's sub, or "anonymous" without credentials configured.
func actor(r *http.Request) string { return principal(r).Name }

// access wraps a handler with authentication, the role it needs and the
// per-credential rate limit. need == auth.RoleNone serves everyone.
func (s *Server) access(need auth.Role, limited bool, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := s.authenticate(w, r, need)
		if !ok {
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		if field := s.crossSite(r); field != "" {
			s.refuse(w, r, http.StatusForbidden, "cross_site", crossSiteMessage(field), field, nil)
			return
		}
		if limited && !s.allow(w, r, p) {
			return
		}
		h(w, r)
	}
}

// genericAuthError is the text of every 401 with GenericAuthErrors.
const genericAuthError = "authentication failed"

// authenticate answers 401/403 itself and reports false when the request
// may not go on.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, need auth.Role) (auth.Principal, bool) {
	if need == auth.RoleNone || !s.auth.Enabled() {
		return auth.Anonymous, true
	}
	p, err := s.auth.Authenticate(r)
	switch {
	case errors.Is(err, auth.ErrNoCredentials):
		w.Header().Set("WWW-Authenticate", `Bearer realm="revocast"`)
		s.refuse(w, r, http.StatusUnauthorized, "unauthenticated", s.authError("authentication required: send Authorization: Bearer <API key or operator JWT>"), "", err)
		return p, false
	case err != nil:
		w.Header().Set("WWW-Authenticate", `Bearer realm="revocast", error="invalid_token"`)
		// the reason (unknown, expired, revoked, the library's error) is
		// for the log only
		s.refuse(w, r, http.StatusUnauthorized, "invalid_credentials", s.authError("invalid credentials"), "", err)
		return p, false
	case s.guard.check(p, time.Now()) != nil:
		w.Header().Set("WWW-Authenticate", `Bearer realm="revocast", error="invalid_token"`)
		s.refuse(w, r, http.StatusUnauthorized, "invalid_credentials", s.authError("invalid credentials"), "",
			fmt.Errorf("%w (%s)", s.guard.check(p, time.Now()), p.Name))
		return p, false
	case !p.Role.Allows(need):
		w.Header().Set("WWW-Authenticate", `Bearer realm="revocast", error="insufficient_scope"`)
		s.refuse(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)), http.StatusForbidden, "forbidden",
			"this credential has the role "+p.Role.String()+"; "+need.String()+" is needed", "", errors.New("role "+p.Role.String()+" for "+p.Name))
		return p, false
	}
	return p, true
}

// authError is the text of a 401: msg, or the same generic text for every
// 401 with GenericAuthErrors.
func (s *Server) authError(msg string) string {
	if s.cfg.GenericAuthErrors {
		return genericAuthError
	}
	return msg
}

// refuse answers an access refusal and writes the audit line: who (as far
// as known), what, why, from where. Never the credential itself.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, status int, reason, msg, field string, detail error) {
	s.metrics.rejected.WithLabelValues(reason).Inc()
	closeAfter(w)
	s.log.Warn("request refused", s.refusalAttrs(r, status, reason, field, detail)...)
	writeError(w, status, msg, field)
}

// refusalAttrs are the attributes of a refusal's audit line.
func (s *Server) refusalAttrs(r *http.Request, status int, reason, field string, detail error) []any {
	attrs := []any{"audit", true, "method", r.Method, "path", r.URL.Path, "status", status,
		"reason", reason, "remote", r.RemoteAddr}
	if field != "" {
		attrs = append(attrs, "field", field)
	}
	// who, as far as known: before authentication, anonymous
	p, ok := r.Context().Value(principalKey{}).(auth.Principal)
	if !ok {
		p = auth.Anonymous
	}
	attrs = append(attrs, "actor", actorWithKind(p))
	if detail != nil {
		attrs = append(attrs, "detail", detail.Error())
	}
	return attrs
}

// actorWithKind names a caller with the kind of its credential, for audit
// lines: key:ops, jwt:ops, token:alice, anonymous.
func actorWithKind(p auth.Principal) string {
	switch p.Kind {
	case "api-key":
		return "key:" + p.Name
	case "jwt":
		return "jwt:" + p.Name
	case "token":
		return p.Name // already token:<sub>
	}
	return "anonymous"
}

// rateLimiter keeps one token bucket per credential, forgetting the least
// recently used ones beyond limiterEntries.
type rateLimiter struct {
	limit rate.Limit
	burst int
	byKey *lru.Cache[string, *rate.Limiter]
}

func newRateLimiter(perSecond float64, burst int) *rateLimiter {
	if perSecond <= 0 {
		return nil
	}
	c, _ := lru.New[string, *rate.Limiter](limiterEntries)
	return &rateLimiter{limit: rate.Limit(perSecond), burst: max(burst, 1), byKey: c}
}

// reserve takes one token for key; it returns 0 when allowed, else how long
// to wait.
func (l *rateLimiter) reserve(key string, now time.Time) time.Duration {
	lim, ok := l.byKey.Get(key)
	if !ok {
		lim = rate.NewLimiter(l.limit, l.burst)
		if prev, found, _ := l.byKey.PeekOrAdd(key, lim); found {
			lim = prev
		}
	}
	res := lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d
	}
	return 0
}

func (s *Server) allow(w http.ResponseWriter, r *http.Request, p auth.Principal) bool {
	if s.limiter == nil {
		return true
	}
	key := p.Kind + ":" + p.Name
	if p.Kind == "anonymous" {
		// without credentials, each client address gets its own bucket
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		key = "addr:" + host
	}
	wait := s.limiter.reserve(key, time.Now())
	if wait <= 0 {
		return true
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	s.refuse(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)), http.StatusTooManyRequests,
		"rate_limited", "too many requests for this credential; retry after the Retry-After delay", "", nil)
	return false
}

// isLoopback reports whether a listen address only accepts local
// connections: a loopback IP or "localhost". An empty host listens
// everywhere.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// streamShares counts the open streams of each principal (streamOwner).
// The zero value is ready to use; it is safe for concurrent use.
type streamShares struct {
	mu     sync.Mutex
	byName map[string]int
}

// streamShare is one stream's place in its owner's share.
type streamShare struct {
	s     *streamShares
	owner string
	once  sync.Once
}

// take reserves a place for owner unless it holds limit already.
func (s *streamShares) take(owner string, limit int) (*streamShare, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byName[owner] >= limit {
		return nil, false
	}
	if s.byName == nil {
		s.byName = map[string]int{}
	}
	s.byName[owner]++
	return &streamShare{s: s, owner: owner}, true
}

// release gives the place back; calls after the first do nothing.
func (sh *streamShare) release() {
	sh.once.Do(func() {
		sh.s.mu.Lock()
		defer sh.s.mu.Unlock()
		if sh.s.byName[sh.owner]--; sh.s.byName[sh.owner] <= 0 {
			delete(sh.s.byName, sh.owner)
		}
	})
}

// streamOwner names whose share a stream counts against: the credential
// (its kind and name), or the client address without one.
func streamOwner(r *http.Request) string {
	p := principal(r)
	if p.Kind != "anonymous" {
		return p.Kind + ":" + p.Name
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "addr:" + host
}
