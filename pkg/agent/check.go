package agent

import (
	"context"
	"errors"
	"time"

	"github.com/revocast/revocast/pkg/jwtverify"
)

// result is the outcome of one Check, for the metrics.
type result int

const (
	resAllowed      result = iota // verified, not revoked, fresh
	resAllowedStale               // verified, not revoked, stale under StaleOpen
	resRevoked
	resInvalid
	resStale // refused: stale under StaleClosed
	resNoToken
	numResults
)

func (r result) String() string {
	return [...]string{"allowed", "allowed_stale", "revoked", "invalid", "stale", "no_token"}[r]
}

var (
	errTooLong  = errors.New("token longer than MaxTokenLength")
	errLifetime = errors.New("token lifetime exceeds the maximum token lifetime")
)

// reason unwraps the reason of a jwtverify.InvalidError, which the agent
// wraps in its own InvalidError.
func reason(err error) error {
	var ie *jwtverify.InvalidError
	if errors.As(err, &ie) {
		return ie.Reason
	}
	return err
}

// Check verifies rawToken and checks it against the denylist. It returns
// the verified claims, or nil and one of:
//   - ErrNoToken for an empty token;
//   - an error matching ErrInvalid (an *InvalidError wrapping golang-jwt's
//     reason) when the token does not verify: bad signature, algorithm not
//     allowed, wrong iss or aud, expired, no exp, unknown kid, …;
//   - ErrRevoked when a live revocation matches the token;
//   - ErrStale under StaleClosed when the agent has not synced yet or has
//     heard nothing from the broadcaster for the maximum staleness. Under
//     StaleOpen such a token is allowed (and counted).
//
// Check does no I/O and never waits on the network: a token seen before
// (and not expired) skips signature verification through the verified-token
// cache, and then Check does not allocate. The denylist is consulted on
// every call. The returned *Claims is shared by every call with the same
// token: never modify it. ctx is not used for I/O; it is passed to the log
// when Check logs.
func (a *Agent) Check(ctx context.Context, rawToken string) (*Claims, error) {
	c, res, err := a.check(ctx, rawToken)
	a.results[res].Add(1)
	a.metrics.checks[res].Inc()
	return c, err
}

func (a *Agent) check(ctx context.Context, raw string) (*Claims, result, error) {
	if raw == "" {
		return nil, resNoToken, ErrNoToken
	}
	now := a.now()
	c, ok := a.cached(raw, now)
	if !ok {
		if len(raw) > MaxTokenLength {
			return nil, resInvalid, &InvalidError{Reason: errTooLong}
		}
		var err error
		if c, err = a.verifier.Verify(raw); err != nil {
			return nil, resInvalid, &InvalidError{Reason: reason(err)}
		}
		if a.verified != nil {
			a.verified.Add(raw, c, c.ExpiresAt.Add(a.cacheTTL))
		}
	}
	if a.outlivesRevocations(c, now) {
		return nil, resInvalid, &InvalidError{Reason: errLifetime}
	}
	facts := c.Facts()
	for _, d := range a.view.Load().check {
		if _, revoked := d.Check(facts, now); revoked {
			return nil, resRevoked, ErrRevoked
		}
	}
	if a.stale(now) {
		if a.cfg.stalePolicy != StaleOpen {
			a.logStale(ctx, "denying every token (stale policy closed)")
			return nil, resStale, ErrStale
		}
		a.logStale(ctx, "admitting tokens that verify (stale policy open)")
		return c, resAllowedStale, nil
	}
	return c, resAllowed, nil
}

// outlivesRevocations reports whether the token lives longer than L: exp −
// iat, or exp − now without iat. Checked on every call, cached or not: L may
// change with the broadcaster's synced event, and without iat the answer
// changes with now.
func (a *Agent) outlivesRevocations(c *Claims, now time.Time) bool {
	start := now.Unix()
	if f := c.Facts(); f.HasIssuedAt {
		start = f.IssuedAt
	}
	return c.ExpiresAt.Unix()-start > a.maxLifetime.Load()
}

func (a *Agent) cached(raw string, now time.Time) (*Claims, bool) {
	if a.verified == nil {
		return nil, false
	}
	return a.verified.Get(raw, now)
}

// logStale logs once per staleness episode; the next byte from the stream
// ends the episode.
func (a *Agent) logStale(ctx context.Context, what string) {
	if a.staleLogged.Load() || !a.staleLogged.CompareAndSwap(false, true) {
		return
	}
	if !a.synced.Load() {
		a.log.WarnContext(ctx, "agent has not synced with the broadcaster yet: "+what)
		return
	}
	last := time.Unix(0, a.lastActivity.Load())
	a.log.WarnContext(ctx, "agent is stale: nothing from the broadcaster for too long: "+what,
		"silent_for", a.now().Sub(last).Round(time.Millisecond), "max_staleness", a.cfg.maxStaleness)
}
