package cache

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/revocast/revocast/pkg/events"
)

// t0 is the tests' "now": whole seconds, so that spilled expiries (rounded
// up to the second) and exact ones coincide.
var t0 = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

// testClock is a settable clock for WithClock, safe for concurrent use.
type testClock struct{ ns atomic.Int64 }

func newTestClock(t time.Time) *testClock {
	c := &testClock{}
	c.set(t)
	return c
}

func (c *testClock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *testClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// newDenylist returns a Denylist whose clock is c (a new clock at t0 if nil)
// and a leeway of 0 unless opts say otherwise.
func newDenylist(t testing.TB, c *testClock, opts ...Option) *Denylist {
	t.Helper()
	if c == nil {
		c = newTestClock(t0)
	}
	return New(append([]Option{WithClock(c.now), WithLeeway(0)}, opts...)...)
}

func at(d time.Duration) events.Time { return events.Time{Time: t0.Add(d)} }

// withKey sets r's key as the broadcaster would.
func withKey(r events.Revocation) *events.Revocation {
	r.Key = r.ComputeKey()
	return &r
}

// iat returns a token issued at t0+d.
func iat(tok events.Token, d time.Duration) *events.Token {
	tok.IssuedAt = t0.Add(d).Unix()
	tok.HasIssuedAt = true
	return &tok
}

func wantCheck(t *testing.T, d *Denylist, tok *events.Token, now time.Time, want bool) string {
	t.Helper()
	key, got := d.Check(tok, now)
	if got != want {
		t.Fatalf("Check(%+v, %v) revoked = %v, want %v", *tok, now.Format(time.RFC3339), got, want)
	}
	if !got && key != "" {
		t.Fatalf("Check(%+v) = key %q with revoked false", *tok, key)
	}
	return key
}

// spillAll pushes every exact entry into the spill tier by applying
// capacity fillers (jti revocations nobody checks).
func spillAll(t *testing.T, d *Denylist) {
	t.Helper()
	for i := 0; i < d.capacity; i++ {
		d.Apply(withKey(events.Revocation{JTI: "filler-" + strconv.Itoa(i), ExpiresAt: at(48 * time.Hour)}))
	}
}
