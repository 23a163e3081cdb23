// This file is in package broadcaster, not broadcaster_test: it tests the
// unexported follower (which keeps the hub following the log) alone, with
// faults and a fake clock injected that a whole server cannot be given.

package broadcaster

import (
	"context"
	"errors"
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

// fakeClock is a clock that moves only when told; its timers fire when
// Advance passes them.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	period  time.Duration // 0: fires once (After)
	c       chan time.Time
	stopped bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) add(d, period time.Duration) *fakeTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), period: period, c: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	return t
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time { return c.add(d, 0).c }

func (c *fakeClock) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	t := c.add(d, d)
	return t.c, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		t.stopped = true
	}
}

// Advance moves the clock by d and fires the timers it passes (a ticker
// that missed several ticks delivers one, as time.Ticker does).
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.stopped {
			continue
		}
		if !t.at.After(c.now) {
			select {
			case t.c <- c.now:
			default:
			}
			if t.period == 0 {
				continue
			}
			for !t.at.After(c.now) {
				t.at = t.at.Add(t.period)
			}
		}
		kept = append(kept, t)
	}
	c.timers = kept
}

// WithTimeout returns a context that ends, with context.DeadlineExceeded,
// when Advance passes d from now.
func (c *fakeClock) WithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	t := c.add(d, 0)
	cctx, cancel := context.WithCancel(ctx)
	fc := &fakeDeadlineCtx{Context: cctx}
	go func() {
		select {
		case <-t.c:
			fc.timedOut.Store(true)
			cancel()
		case <-cctx.Done():
		}
	}()
	return fc, func() {
		c.mu.Lock()
		t.stopped = true
		c.mu.Unlock()
		cancel()
	}
}

// fakeDeadlineCtx is a context a fakeClock timer ended.
type fakeDeadlineCtx struct {
	context.Context
	timedOut atomic.Bool
}

func (c *fakeDeadlineCtx) Err() error {
	if err := c.Context.Err(); err != nil && c.timedOut.Load() {
		return context.DeadlineExceeded
	}
	return c.Context.Err()
}

// fireNext moves the clock to the earliest pending timer, firing it (and
// any due at the same time); it does nothing when none is pending.
func (c *fakeClock) fireNext() {
	c.mu.Lock()
	var next time.Time
	for _, t := range c.timers {
		if !t.stopped && (next.IsZero() || t.at.Before(next)) {
			next = t.at
		}
	}
	d := next.Sub(c.now)
	c.mu.Unlock()
	if !next.IsZero() {
		c.Advance(d)
	}
}

// pendingAfter counts the one-shot timers not yet fired.
func (c *fakeClock) pendingAfter() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if t.period == 0 && !t.stopped {
			n++
		}
	}
	return n
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

// newClockedFollower is newTestFollower on a fake clock, which the test
// moves.
func newClockedFollower(t *testing.T, log eventlog.Log) (*follower, *fakeClock) {
	t.Helper()
	f := newTestFollower(t, log)
	clock := newFakeClock()
	f.clock, f.base = clock, clock.Now()
	return f, clock
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
		case <-time.After(testutil.HangLimit):
			t.Errorf("the follower did not stop within %v", testutil.HangLimit)
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
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
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
			ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
			defer cancel()
			return f.catchUp(ctx)
		}},
		{"waitApplied", func(f *follower, seq uint64) error {
			f.waitApplied(context.Background(), seq) // restarts after applyWait
			ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
			defer cancel()
			return f.hub.WaitApplied(ctx, seq)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			log := &faultyLog{Log: memlog.New(memlog.Config{}), stallFirst: 1}
			f, clock := newClockedFollower(t, log)
			runFollower(t, f)
			testutil.Eventually(t, testutil.HangLimit, "the first consumer", func() bool { return log.follows.Load() >= 1 })
			seq := publish(t, log, "stalled")
			done := make(chan error, 1)
			go func() { done <- tc.wait(f, seq) }()
			// time passes only when every timer pending has fired: the
			// stall wait or apply wait, then the follow loop's backoff
			var err error
			testutil.Eventually(t, testutil.HangLimit, tc.name+" to return", func() bool {
				select {
				case err = <-done:
					return true
				default:
					clock.fireNext()
					return false
				}
			})
			if err != nil {
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
	f, clock := newClockedFollower(t, memlog.New(memlog.Config{}))
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
	f, clock := newClockedFollower(t, memlog.New(memlog.Config{}))
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
	testutil.Eventually(t, testutil.HangLimit, "a current check", func() bool { return checks.Load() > 0 && f.current() })
}

// TestFollowerResetsOnANewEpoch: when the stream is a new instance, the
// hub moves to the new epoch and onReset runs; until then catchUp refuses
// to call the node current.
func TestFollowerResetsOnANewEpoch(t *testing.T) {
	t.Parallel()
	log := &faultyLog{Log: memlog.New(memlog.Config{})}
	f, clock := newClockedFollower(t, log)
	resets := make(chan uint64, 1)
	f.onReset = func(epoch uint64) { resets <- epoch }
	runFollower(t, f)
	testutil.Eventually(t, testutil.HangLimit, "the first consumer", func() bool { return log.follows.Load() >= 1 })

	log.changeEpoch(42)
	// The consumer does not end by itself: the epoch watch, on its next
	// tick, restarts it, and follow then finds the new instance.
	select {
	case <-resets:
		t.Fatal("reset before the epoch watch ticked")
	default:
	}
	clock.Advance(f.epochCheck)
	select {
	case epoch := <-resets:
		if epoch != 42 || f.hub.Epoch() != 42 {
			t.Fatalf("reset to %d, hub at %d, want 42", epoch, f.hub.Epoch())
		}
	case <-time.After(testutil.HangLimit):
		t.Fatalf("no reset within %v after the epoch changed", testutil.HangLimit)
	}
}

// TestFollowerBacksOff: a consumer that keeps failing is followed again
// after a backoff that doubles from followBackoff up to maxFollowBackoff,
// and not before.
func TestFollowerBacksOff(t *testing.T) {
	t.Parallel()
	log := &failingLog{Log: memlog.New(memlog.Config{})}
	f, clock := newClockedFollower(t, log)
	runFollower(t, f)

	backoff := followBackoff
	for attempt := int32(1); attempt <= 8; attempt++ {
		testutil.Eventually(t, testutil.HangLimit, fmt.Sprintf("attempt %d waiting out its backoff", attempt), func() bool {
			return log.follows.Load() == attempt && clock.pendingAfter() == 1
		})
		clock.Advance(backoff - time.Nanosecond)
		if n := log.follows.Load(); n != attempt {
			t.Fatalf("attempt %d: followed again %v early", attempt, time.Nanosecond)
		}
		clock.Advance(time.Nanosecond)
		backoff = min(2*backoff, maxFollowBackoff)
	}
	if backoff != maxFollowBackoff {
		t.Fatalf("backoff %v after 8 failures, want the cap %v", backoff, maxFollowBackoff)
	}
}

// failingLog is a memlog whose consumers fail at once.
type failingLog struct {
	eventlog.Log
	follows atomic.Int32
}

func (l *failingLog) Follow(context.Context, uint64, func(eventlog.Record) error, func()) error {
	l.follows.Add(1)
	return errors.New("the log is down")
}

// TestFollowerStopsPromisingWhenBehind: a node whose consumer does not
// deliver what the stream holds is not current after its next check, so
// its streams stop sending pings.
func TestFollowerStopsPromisingWhenBehind(t *testing.T) {
	t.Parallel()
	log := &faultyLog{Log: memlog.New(memlog.Config{}), stallFirst: 1 << 30}
	f, clock := newClockedFollower(t, log)
	f.hub.SetReady() // a stalled consumer never reports having caught up
	var behind atomic.Bool
	f.onCheck = func(caughtUp bool) {
		if !caughtUp {
			behind.Store(true)
		}
	}
	runFollower(t, f)
	testutil.Eventually(t, testutil.HangLimit, "the first check", func() bool { return f.current() })

	publish(t, log, "unseen")
	clock.Advance(f.heartbeat) // the next check finds the node behind...
	testutil.Eventually(t, testutil.HangLimit, "a check that finds the node behind", func() bool {
		clock.fireNext() // ...once its waits have run out
		return behind.Load()
	})
	if f.current() {
		t.Fatal("still promising after a check found the node behind")
	}
}
