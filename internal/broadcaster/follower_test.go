// This file is in package broadcaster, not broadcaster_test: it tests the
// unexported follower (which keeps the hub following the log) alone, with
// faults and a fake clock injected that a whole server cannot be given.

package broadcaster

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/hub"
	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/events/eventlog"
	"github.com/revocast/revocast/pkg/events/memlog"
)

// These tests drive the follower alone: an in-memory log, a hub, and where
// time matters a fake clock. The faults they need (a consumer that stalls,
// a stream deleted and created again) are injected by faultyLog, since an
// in-memory log has neither.

// faultyLog is a memlog whose first consumers stall (deliver nothing until
// ended) and whose epoch can be made to change.
type faultyLog struct {
	eventlog.Log
	stallFirst int          // how many Follow calls stall
	follows    atomic.Int32 // Follow calls so far

	mu       sync.Mutex
	epoch    uint64
	newEpoch uint64 // non-zero: EpochChanged reports true, Open switches to it
}

func (l *faultyLog) Follow(ctx context.Context, from uint64, fn func(eventlog.Record) error, caughtUp func()) error {
	if int(l.follows.Add(1)) <= l.stallFirst {
		<-ctx.Done()
		return ctx.Err()
	}
	return l.Log.Follow(ctx, from, fn, caughtUp)
}

func (l *faultyLog) Epoch() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.epoch == 0 {
		return l.Log.Epoch()
	}
	return l.epoch
}

func (l *faultyLog) EpochChanged(context.Context) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.newEpoch != 0, nil
}

func (l *faultyLog) Open(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.newEpoch != 0 {
		l.epoch, l.newEpoch = l.newEpoch, 0
	}
	return l.Log.Open(ctx)
}

func (l *faultyLog) changeEpoch(to uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.newEpoch = to
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newTestFollower returns a follower over log with a fresh hub, not
// running.
func newTestFollower(t *testing.T, log eventlog.Log) *follower {
	t.Helper()
	if err := log.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = log.Close() })
	h := hub.New(log.Epoch())
	return newFollower(log, h, slog.New(slog.DiscardHandler), 100*time.Millisecond, time.Hour)
}

// runFollower runs f until the test ends.
func runFollower(t *testing.T, f *follower) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Error("the follower did not stop")
		}
	})
}

func publish(t *testing.T, log eventlog.Log, jti string) uint64 {
	t.Helper()
	rev := events.Revocation{JTI: jti}
	if err := (events.Policy{}).Prepare(&rev, time.Now()); err != nil {
		t.Fatal(err)
	}
	p, err := log.PublishRequest(context.Background(), &rev, eventlog.Request{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Seq
}

func TestFollowerAppliesWhatTheLogAcknowledged(t *testing.T) {
	t.Parallel()
	log := memlog.New(memlog.Config{})
	f := newTestFollower(t, log)
	var applied atomic.Int32
	f.onApply = func(eventlog.Record) { applied.Add(1) }
	runFollower(t, f)

	var last uint64
	for i := range 5 {
		last = publish(t, log, fmt.Sprintf("j%d", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := f.catchUp(ctx); err != nil {
		t.Fatalf("catchUp: %v", err)
	}
	if f.hub.Head() < last || applied.Load() != 5 {
		t.Fatalf("after catchUp: head %d, want %d; %d records seen by onApply, want 5", f.hub.Head(), last, applied.Load())
	}
	seq := publish(t, log, "after")
	f.waitApplied(ctx, seq)
	if f.hub.Head() < seq {
		t.Fatalf("waitApplied returned with head %d < %d", f.hub.Head(), seq)
	}
}

// TestFollowerRestartsAStalledConsumer: a consumer that delivers nothing is
// restarted, both by a reader catching up and by a write that does not
// come back, and the mirror then holds the write.
func TestFollowerRestartsAStalledConsumer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		wait func(f *follower, seq uint64) error
	}{
		{"catchUp", func(f *follower, _ uint64) error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			return f.catchUp(ctx)
		}},
		{"waitApplied", func(f *follower, seq uint64) error {
			f.waitApplied(context.Background(), seq) // restarts after applyWait
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			return f.hub.WaitApplied(ctx, seq)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := &faultyLog{Log: memlog.New(memlog.Config{}), stallFirst: 1}
			f := newTestFollower(t, log)
			runFollower(t, f)
			testutil.Eventually(t, time.Minute, "the first consumer", func() bool { return log.follows.Load() >= 1 })
			seq := publish(t, log, "stalled")
			if err := tc.wait(f, seq); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if n := log.follows.Load(); n < 2 {
				t.Fatalf("%d consumers, want a restart", n)
			}
			if f.hub.Head() < seq {
				t.Fatalf("head %d < %d", f.hub.Head(), seq)
			}
		})
	}
}

// TestFollowerRestartGap: restarts closer than restartGap are one restart.
func TestFollowerRestartGap(t *testing.T) {
	t.Parallel()
	f := newTestFollower(t, memlog.New(memlog.Config{}))
	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	f.now = clock.Now
	var stops int
	f.stop = func() { stops++ }
	f.restart("one")
	f.restart("two")
	clock.Advance(restartGap - time.Nanosecond)
	f.restart("three")
	if stops != 1 {
		t.Fatalf("%d restarts within restartGap, want 1", stops)
	}
	clock.Advance(time.Nanosecond)
	f.restart("four")
	if stops != 2 {
		t.Fatalf("%d restarts, want 2 once restartGap passed", stops)
	}
}

// TestFollowerCurrent: the heartbeat promise holds for two intervals after
// a check began that found the node caught up, and ends at once with a
// check that did not.
func TestFollowerCurrent(t *testing.T) {
	t.Parallel()
	f := newTestFollower(t, memlog.New(memlog.Config{}))
	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	f.now, f.base = clock.Now, clock.Now()
	began := func() int64 { return int64(clock.Now().Sub(f.base)) + 1 }

	if f.current() {
		t.Fatal("current before any check")
	}
	f.recordCheck(began(), true)
	if !f.current() {
		t.Fatal("not current after a check that caught up")
	}
	clock.Advance(2 * f.heartbeat)
	if !f.current() {
		t.Fatal("not current two heartbeats after the check began")
	}
	clock.Advance(time.Nanosecond)
	if f.current() {
		t.Fatal("still current more than two heartbeats after the last check")
	}
	f.recordCheck(began(), true)
	f.recordCheck(began(), false)
	if f.current() {
		t.Fatal("current after a check that did not catch up")
	}
}

// TestFollowerChecksCurrentWhileRunning: running, the follower finds an
// idle in-memory log caught up and promises it.
func TestFollowerChecksCurrentWhileRunning(t *testing.T) {
	t.Parallel()
	f := newTestFollower(t, memlog.New(memlog.Config{}))
	var checks atomic.Int32
	f.onCheck = func(caughtUp bool) {
		if caughtUp {
			checks.Add(1)
		}
	}
	runFollower(t, f)
	testutil.Eventually(t, time.Minute, "a current check", func() bool { return checks.Load() > 0 && f.current() })
}

// TestFollowerResetsOnANewEpoch: when the stream is a new instance, the
// hub moves to the new epoch and onReset runs; until then catchUp refuses
// to call the node current.
func TestFollowerResetsOnANewEpoch(t *testing.T) {
	t.Parallel()
	log := &faultyLog{Log: memlog.New(memlog.Config{})}
	f := newTestFollower(t, log)
	f.epochCheck = 10 * time.Millisecond
	resets := make(chan uint64, 1)
	f.onReset = func(epoch uint64) { resets <- epoch }
	runFollower(t, f)
	testutil.Eventually(t, time.Minute, "the first consumer", func() bool { return log.follows.Load() >= 1 })

	log.changeEpoch(42)
	select {
	case epoch := <-resets:
		if epoch != 42 || f.hub.Epoch() != 42 {
			t.Fatalf("reset to %d, hub at %d, want 42", epoch, f.hub.Epoch())
		}
	case <-time.After(time.Minute):
		t.Fatal("no reset after the epoch changed")
	}
}
