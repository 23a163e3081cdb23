package cache

import (
	"math"
	"time"
)

// Defaults for New.
const (
	// DefaultCapacity is the number of revocations kept in the exact tier;
	// more live revocations spill into the compact tier (see Denylist).
	DefaultCapacity = 65_536
	// DefaultLeeway is how long a revocation outlives its expires_at, so that
	// a resource server whose clock runs behind still denies its tokens.
	DefaultLeeway = time.Minute
)

type config struct {
	capacity int
	leeway   time.Duration
	now      func() time.Time
}

// Option configures New.
type Option func(*config)

// WithCapacity sets how many revocations the exact tier keeps (an LRU by
// application order); the others spill (see Denylist). Values below 1 are
// ignored, values above 2^32-1 taken as 2^32-1.
func WithCapacity(n int) Option {
	return func(c *config) {
		if n >= 1 {
			c.capacity = int(min(uint64(n), math.MaxUint32))
		}
	}
}

// WithLeeway sets how long entries live past their expires_at, to allow for
// clock skew between the broadcaster and this server. Negative values are
// ignored: forgetting a revocation early would admit revoked tokens.
func WithLeeway(d time.Duration) Option {
	return func(c *config) {
		if d >= 0 {
			c.leeway = d
		}
	}
}

// WithClock sets the clock Apply uses to decide whether a revocation has
// already expired and whether an evicted one is still worth keeping. Check
// and Sweep take the time as an argument. nil is ignored.
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.now = now
		}
	}
}
