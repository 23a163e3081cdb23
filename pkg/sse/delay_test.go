package sse

import (
	"fmt"
	"testing"
	"time"
)

// TestReconnectDelays walks the delay chosen after each outcome, for one
// and for several URLs, and checks each against the range the reconnection
// rules allow (jitter keeps every delay in [d/2, d]).
func TestReconnectDelays(t *testing.T) {
	refused := outcome{refused: true}
	failed := outcome{}
	healthy := outcome{healthy: true}
	slow := outcome{slow: true}
	unavailable := outcome{refused: true, retryAfter: 30 * time.Second}
	type step struct {
		out      outcome
		lo, hi   time.Duration
		withWhat string
	}
	between := func(out outcome, lo, hi time.Duration, what string) step { return step{out, lo, hi, what} }
	for _, tc := range []struct {
		name  string
		urls  int
		opts  []ClientOption
		retry time.Duration // the server's retry field; 0: none sent
		steps []step
	}{
		{
			name: "a restart costs about one retry interval however long it lasts",
			urls: 1, retry: 2 * time.Second,
			steps: []step{
				between(refused, time.Second, 2*time.Second, "refused: within retry"),
				between(refused, time.Second, 2*time.Second, "refused again: still within retry, no growth"),
				between(refused, time.Second, 2*time.Second, "and again"),
				between(healthy, time.Second, 2*time.Second, "back: retry with jitter"),
			},
		},
		{
			name: "other failures back off exponentially up to the cap",
			urls: 1, retry: time.Second, opts: []ClientOption{WithBackoff(time.Second, 8*time.Second)},
			steps: []step{
				between(failed, 500*time.Millisecond, time.Second, "first failure: the base"),
				between(failed, time.Second, 2*time.Second, "doubled"),
				between(failed, 2*time.Second, 4*time.Second, "doubled"),
				between(failed, 4*time.Second, 8*time.Second, "doubled"),
				between(failed, 4*time.Second, 8*time.Second, "capped"),
				between(healthy, 500*time.Millisecond, time.Second, "healthy: the backoff starts over"),
				between(failed, 500*time.Millisecond, time.Second, "from the base again"),
			},
		},
		{
			name: "with several URLs the next one is tried at once",
			urls: 3, retry: 2 * time.Second,
			steps: []step{
				between(refused, minDelay, minDelay, "first URL refused: next now"),
				between(failed, minDelay, minDelay, "second failed: next now"),
				between(refused, time.Second, 2*time.Second, "a round with a failure: backoff from the retry field"),
				between(refused, minDelay, minDelay, "a new round"),
				between(refused, minDelay, minDelay, ""),
				between(refused, time.Second, 2*time.Second, "every URL refused: within retry"),
			},
		},
		{
			name: "4xx waits the auth backoff",
			urls: 1, opts: []ClientOption{WithAuthBackoff(20 * time.Second)},
			steps: []step{between(slow, 10*time.Second, 20*time.Second, "auth backoff with jitter")},
		},
		{
			name: "Retry-After lengthens the wait",
			urls: 1, retry: time.Second,
			steps: []step{between(unavailable, 30*time.Second, 30*time.Second, "Retry-After")},
		},
		{
			name: "WithMaxDelay caps everything",
			urls: 1, retry: 10 * time.Second, opts: []ClientOption{WithMaxDelay(3 * time.Second), WithAuthBackoff(time.Minute)},
			steps: []step{
				between(unavailable, minDelay, 3*time.Second, "Retry-After capped"),
				between(slow, minDelay, 3*time.Second, "auth backoff capped"),
				between(failed, minDelay, 3*time.Second, "backoff capped"),
				between(healthy, minDelay, 3*time.Second, "retry field capped"),
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			urls := make([]string, tc.urls)
			for i := range urls {
				urls[i] = fmt.Sprintf("http://127.0.0.1:%d/v1/events", 1+i)
			}
			// jitter is random: walk each sequence many times
			for range 200 {
				c, err := NewClient(urls, tc.opts...)
				if err != nil {
					t.Fatal(err)
				}
				st := runState{retry: tc.retry, hasRetry: tc.retry > 0}
				for i, s := range tc.steps {
					if d := c.delay(&st, s.out); d < s.lo || d > s.hi {
						t.Fatalf("step %d (%s): delay %v, want %v to %v", i, s.withWhat, d, s.lo, s.hi)
					}
				}
			}
		})
	}
}
