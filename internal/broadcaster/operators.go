package broadcaster

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/revocast/revocast/internal/auth"
	"github.com/revocast/revocast/pkg/cache"
	"github.com/revocast/revocast/pkg/events"
)

// Reasons an operator JWT loses its rights after it verified.
var (
	errOperatorRevoked = errors.New("operator JWT revoked")
	errOperatorExpired = errors.New("operator JWT expired")
)

// operatorGuard holds operator JWTs to the revocations this broadcaster
// serves: whoever can revoke a resource server's tokens can revoke an
// operator's. It mirrors the live state into the denylist the agents use
// (the same matching code, the same kid names), so a revoked operator JWT
// (by jti, sub, kid or claims) is refused on its next request, and an open
// stream of one ends when the revocation is applied (or at the JWT's exp).
// It exists only when operator JWTs are configured. Safe for concurrent use.
type operatorGuard struct {
	deny *cache.Denylist

	mu      sync.Mutex
	head    uint64                      // last sequence applied
	streams map[*guardedStream]struct{} // open streams of operator JWTs
}

type guardedStream struct {
	tok    *events.Token
	cancel context.CancelCauseFunc
}

func newOperatorGuard() *operatorGuard {
	// Operator JWTs are verified with the agent's default leeway: keep
	// revocations as long as an agent would.
	return &operatorGuard{
		deny:    cache.New(cache.WithLeeway(30*time.Second + time.Minute)),
		streams: map[*guardedStream]struct{}{},
	}
}

// apply mirrors one event of the log. Events arrive in sequence order; an
// event at or below the head (a restarted consumer) is ignored.
func (g *operatorGuard) apply(seq uint64, typ string, data []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if seq <= g.head {
		return
	}
	g.head = seq
	switch typ {
	case events.TypeRevoke:
		var r events.Revocation
		if json.Unmarshal(data, &r) != nil {
			return
		}
		g.deny.Apply(&r)
		for st := range g.streams {
			if r.Matches(st.tok) {
				st.cancel(errOperatorRevoked)
			}
		}
	case events.TypeLift:
		var l events.Lift
		if json.Unmarshal(data, &l) == nil {
			g.deny.Lift(l.Key)
		}
	}
}

// reset forgets the mirrored state: the log was recreated and its whole
// state follows again.
func (g *operatorGuard) reset() {
	g.mu.Lock()
	g.head = 0
	g.deny.Reset()
	g.mu.Unlock()
}

// check refuses an operator JWT that a live revocation matches or that has
// expired. API keys and anonymous callers pass.
func (g *operatorGuard) check(p auth.Principal, now time.Time) error {
	if g == nil || p.Token == nil {
		return nil
	}
	if !p.Expires.IsZero() && !now.Before(p.Expires) {
		return errOperatorExpired
	}
	if _, revoked := g.deny.Check(p.Token, now); revoked {
		return errOperatorRevoked
	}
	return nil
}

// guard returns a context that ends with parent, at the operator JWT's exp,
// or when a revocation of it is applied; its cause says which. release must
// be called when the stream ends.
func (g *operatorGuard) guard(parent context.Context, p auth.Principal) (ctx context.Context, release func()) {
	if g == nil || p.Token == nil {
		return parent, func() {}
	}
	ctx, cancel := context.WithCancelCause(parent)
	var stopTimer func() bool
	if !p.Expires.IsZero() {
		t := time.AfterFunc(time.Until(p.Expires), func() { cancel(errOperatorExpired) })
		stopTimer = t.Stop
	}
	st := &guardedStream{tok: p.Token, cancel: cancel}
	g.mu.Lock()
	g.streams[st] = struct{}{}
	g.mu.Unlock()
	// A revocation applied between the request's check and the
	// registration above would be missed: check once more.
	if err := g.check(p, time.Now()); err != nil {
		cancel(err)
	}
	return ctx, func() {
		g.mu.Lock()
		delete(g.streams, st)
		g.mu.Unlock()
		if stopTimer != nil {
			stopTimer()
		}
		cancel(context.Canceled)
	}
}
