package agent

import (
	"errors"
	"testing"
	"time"

	"github.com/revocast/revocast/pkg/jwtverify"
)

// TestOptionsRefuseOutOfRange: no option replaces a value it does not
// accept with a default; New and Validate return an error matching
// ErrInvalidOption (which is jwtverify's).
func TestOptionsRefuseOutOfRange(t *testing.T) {
	if !errors.Is(ErrInvalidOption, jwtverify.ErrInvalidOption) {
		t.Fatal("ErrInvalidOption is not jwtverify.ErrInvalidOption")
	}
	for _, tc := range []struct {
		name string
		opt  Option
		ok   bool
	}{
		{"max staleness at the minimum", WithMaxStaleness(MinMaxStaleness), true},
		{"max staleness below the minimum", WithMaxStaleness(MinMaxStaleness - 1), false},
		{"zero max staleness", WithMaxStaleness(0), false},
		{"stale policy open", WithStalePolicy(StaleOpen), true},
		{"unknown stale policy", WithStalePolicy(7), false},
		{"denylist capacity 1", WithDenylistCapacity(1), true},
		{"denylist capacity 0", WithDenylistCapacity(0), false},
		{"verified cache disabled", WithVerifiedCacheCapacity(0), true},
		{"negative verified cache", WithVerifiedCacheCapacity(-1), false},
		{"zero sweep interval", WithSweepInterval(0), false},
		{"reconnect backoff", WithReconnectBackoff(time.Millisecond, time.Second), true},
		{"zero initial backoff", WithReconnectBackoff(0, time.Second), false},
		{"negative max backoff", WithReconnectBackoff(time.Second, -1), false},
		{"no lowering of L", WithMaxTokenLifetime(0), true},
		{"negative L", WithMaxTokenLifetime(-time.Second), false},
		{"sub-second L", WithMaxTokenLifetime(500 * time.Millisecond), false},
		{"zero report interval", WithReportInterval(0), false},
		{"no name", WithName(""), true},
		{"bad name", WithName("a;b"), false},
		{"zero leeway", WithLeeway(0), true},
		{"negative leeway", WithLeeway(-time.Second), false},
		{"nil clock", WithClock(nil), false},
		{"nil logger", WithLogger(nil), false},
		{"nil HTTP client", WithHTTPClient(nil), false},
		{"non-positive JWKS refresh", WithJWKSRefresh(0, 0), false},
		{"short HMAC secret", WithHMACSecret([]byte("short")), false},
		{"relative JWKS URL", WithJWKS("/keys"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.opt)
			if tc.ok {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidOption) {
				t.Fatalf("Validate = %v, want ErrInvalidOption", err)
			}
			opts := append(hsOpts(t), tc.opt)
			if a, err := New([]string{"http://127.0.0.1:1"}, opts...); a != nil || !errors.Is(err, ErrInvalidOption) {
				t.Fatalf("New = %v, want ErrInvalidOption", err)
			}
			if v, err := NewVerifier(opts...); v != nil || !errors.Is(err, ErrInvalidOption) {
				t.Fatalf("NewVerifier = %v, want ErrInvalidOption", err)
			}
		})
	}
}

// TestVerifiedCacheZeroDisables: 0 disables the verified-token cache.
func TestVerifiedCacheZeroDisables(t *testing.T) {
	a := newAgent(t, nil, append(hsOpts(t), WithVerifiedCacheCapacity(0))...)
	if a.verified != nil {
		t.Fatal("WithVerifiedCacheCapacity(0): the cache is on")
	}
	a = newAgent(t, nil, hsOpts(t)...)
	if a.verified == nil {
		t.Fatal("default: the cache is off")
	}
}
