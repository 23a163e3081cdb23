package broadcaster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/revocast/revocast/internal/hub"
	"github.com/revocast/revocast/pkg/events/eventlog"
)

// Defaults of the follower's timings.
const (
	// applyWait bounds how long a write waits for this node's mirror to
	// show it after the log acknowledged it. The write is durable either
	// way.
	applyWait = 2 * time.Second
	// catchUpWait bounds how long a read waits for this node to catch up
	// with the stream.
	catchUpWait = 3 * time.Second
	// restartGap is the least time between two restarts of the consumer.
	restartGap = time.Second
	// stallWait is how long catchUp waits for the mirror to move before it
	// restarts the consumer.
	stallWait = time.Second
	// epochCheckWait bounds one check of the stream's epoch.
	epochCheckWait = 5 * time.Second
	// followBackoff and maxFollowBackoff pace a consumer that keeps
	// failing.
	followBackoff    = 100 * time.Millisecond
	maxFollowBackoff = 5 * time.Second
)

// errBehind means this node's mirror did not catch up with the stream in
// time.
var errBehind = errors.New("this node is behind the stream")

// follower is the one owner of the protocol between this node's mirror
// (the hub) and the log: it follows the stream, lets writers wait until
// their write is applied (read-your-writes), lets readers and the
// heartbeat promise catch up with the stream leader, and restarts a
// consumer that stalls.
//
// Its states and transitions:
//
//   - following: one consumer (Log.Follow) feeds the hub from the hub's
//     head + 1. When it returns, the follower checks the epoch: a new
//     instance of the stream resets the hub (subscribers are told to reset)
//     and onReset runs; a stalled consumer (eventlog.ErrStalled) is
//     followed again at once; any other failure again after a backoff of
//     followBackoff doubling up to maxFollowBackoff.
//   - restarting: restart ends the current consumer, so that the loop above
//     starts a new one. It is asked for by an acknowledged write that does
//     not reach the hub within applyWait, by catchUp when the hub does not
//     move for stallWait, and by the epoch watch every epochCheck; two
//     restarts are at least restartGap apart.
//   - current / not current: once per heartbeat, checkCurrent runs catchUp
//     (the leader is asked for the first message after the hub's head);
//     current reports whether the last check, begun at most two heartbeats
//     ago, found the node caught up. Pings are sent only while it does.
//
// Its clock is the system's except in tests, which drive every timer of the
// state machine (the waits above, backoff, epoch watch, current checks)
// by hand. A follower
// is safe for concurrent use once run has been called.
type follower struct {
	log    eventlog.Log
	hub    *hub.Hub
	logger *slog.Logger
	clock  clock

	heartbeat  time.Duration // how often checkCurrent checks
	epochCheck time.Duration // how often watch checks the epoch

	// onApply sees every record after the hub; onReset every new epoch;
	// onCheck the outcome of every current check. Each may be nil.
	onApply func(eventlog.Record)
	onReset func(epoch uint64)
	onCheck func(caughtUp bool)

	mu          sync.Mutex
	stop        context.CancelFunc // ends the current consumer
	lastRestart time.Time

	// base is the origin of caughtUpAt; caughtUpAt is when (nanoseconds
	// since base, plus one) the last check that found this node caught up
	// began, 0 after a check that did not.
	base       time.Time
	caughtUpAt atomic.Int64
}

func newFollower(log eventlog.Log, h *hub.Hub, logger *slog.Logger, heartbeat, epochCheck time.Duration) *follower {
	f := &follower{log: log, hub: h, logger: logger, clock: systemClock{}, heartbeat: heartbeat, epochCheck: epochCheck}
	f.base = f.clock.Now()
	return f
}

// clock is the follower's source of time and timers.
type clock interface {
	Now() time.Time
	// After delivers once, d from now.
	After(d time.Duration) <-chan time.Time
	// NewTicker delivers every d until stop is called.
	NewTicker(d time.Duration) (c <-chan time.Time, stop func())
	// WithTimeout is context.WithTimeout on this clock: the context ends
	// with context.DeadlineExceeded d from now.
	WithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc)
}

// systemClock is the clock of package time.
type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
func (systemClock) NewTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

func (systemClock) WithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// run follows the log, watches its epoch and checks that this node is
// current, until ctx ends; it returns when all three have stopped.
func (f *follower) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); f.follow(ctx) }()
	go func() { defer wg.Done(); f.watch(ctx) }()
	go func() { defer wg.Done(); f.checkCurrent(ctx) }()
	wg.Wait()
}

// follow is the one consumer of this process: it feeds the hub from the
// log and starts again after the last applied sequence when it fails. When
// the stream turns out to be a new instance (deleted and created again in
// an external NATS), the hub is reset to the new epoch, which disconnects
// every subscriber: they come back with IDs of the old epoch and are told
// to reset.
func (f *follower) follow(ctx context.Context) {
	backoff := followBackoff
	for ctx.Err() == nil {
		fctx, cancel := context.WithCancel(ctx)
		f.mu.Lock()
		f.stop = cancel
		f.mu.Unlock()
		from := f.hub.Head() + 1
		err := f.log.Follow(fctx, from, f.apply, f.hub.SetReady)
		cancel()
		if ctx.Err() != nil {
			return
		}
		before := f.log.Epoch()
		if changed, cerr := f.log.EpochChanged(ctx); cerr == nil && changed {
			if err := f.log.Open(ctx); err != nil {
				continue
			}
			f.logger.Warn("the stream is a new instance: subscribers will be told to reset",
				"old_epoch", before, "epoch", f.log.Epoch())
			f.hub.Reset(f.log.Epoch())
			if f.onReset != nil {
				f.onReset(f.log.Epoch())
			}
			backoff = followBackoff
			continue
		}
		if errors.Is(err, eventlog.ErrStalled) {
			f.logger.Warn("the consumer stalled; following again", "from", from)
			continue
		}
		f.logger.Warn("following the log failed; resuming", "from", from, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-f.clock.After(backoff):
		}
		backoff = min(backoff*2, maxFollowBackoff)
	}
}

func (f *follower) apply(rec eventlog.Record) error {
	ev := hub.Event{Seq: rec.Seq, Type: rec.Type, Key: rec.Key, Data: rec.Data, Expires: rec.Expires}
	if err := f.hub.Apply(ev); err != nil {
		f.logger.Error("cannot fan out event", "seq", rec.Seq, "err", err)
	}
	if f.onApply != nil {
		f.onApply(rec)
	}
	return nil
}

// watch restarts the consumer when the stream was deleted or created anew:
// an ordered consumer would carry on on the new stream from the old
// sequence. (A consumer that stalls is noticed by Follow itself.)
func (f *follower) watch(ctx context.Context) {
	tick, stop := f.clock.NewTicker(f.epochCheck)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		cctx, cancel := f.clock.WithTimeout(ctx, epochCheckWait)
		changed, err := f.log.EpochChanged(cctx)
		cancel()
		if err == nil && changed {
			f.restart("the stream changed")
		}
	}
}

// restart ends the current consumer; follow starts a new one after the
// last applied sequence (checking the epoch first). Restarts closer than
// restartGap to the last one are dropped: the new consumer is still
// starting.
func (f *follower) restart(why string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.clock.Now()
	if f.stop == nil || (!f.lastRestart.IsZero() && now.Sub(f.lastRestart) < restartGap) {
		return
	}
	f.lastRestart = now
	f.logger.Warn("restarting the consumer", "reason", why, "head", f.hub.Head())
	f.stop()
}

// waitApplied lets a writer's answer imply that this node's subscribers
// and listings have the event: it waits up to applyWait for the hub to
// apply seq, and restarts the consumer when it did not.
func (f *follower) waitApplied(ctx context.Context, seq uint64) {
	ctx, cancel := f.clock.WithTimeout(ctx, applyWait)
	defer cancel()
	if err := f.hub.WaitApplied(ctx, seq); err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		f.logger.Warn("acknowledged write not yet fanned out", "seq", seq)
		f.restart("an acknowledged write did not reach the consumer")
	}
}

// catchUpForRead lets a reader see every write acknowledged before it
// asked, by any node of a cluster (the node that took a write has it
// already: see waitApplied): it catches up, waiting at most catchUpWait,
// and answers anyway when it cannot.
func (f *follower) catchUpForRead(ctx context.Context) {
	ctx, cancel := f.clock.WithTimeout(ctx, catchUpWait)
	defer cancel()
	if err := f.catchUp(ctx); err != nil {
		f.logger.Warn("answering a read without knowing this node caught up with the stream", "head", f.hub.Head(), "err", err)
	}
}

// catchUp waits, until ctx ends, for this node's mirror to hold everything
// the stream held when it was called; nil means it does. The stream leader
// is asked for the first message after the mirror's head: when there is
// none (the usual case, one request), the node is current. Otherwise the
// mirror must reach the stream's last sequence at the time, skipping
// messages that expired in between by asking the leader for the next
// stored one. A consumer that does not move for stallWait is restarted, as
// for a write that does not come back (a consumer created while a cluster
// forms can stall).
func (f *follower) catchUp(ctx context.Context) error {
	if f.log.Epoch() != f.hub.Epoch() {
		return errors.New("the mirror still serves the stream's previous instance")
	}
	var target uint64
	for first := true; ; first = false {
		head := f.hub.Head()
		next, ok, err := f.log.NextAfter(ctx, head)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if first {
			// the leader answered next; the stream's position may be
			// read from a replica that lags it
			st, err := f.log.State(ctx)
			if err != nil {
				return err
			}
			target = max(st.LastSeq, next)
		}
		if next > target {
			return nil
		}
		wctx, wcancel := f.clock.WithTimeout(ctx, stallWait)
		err = f.hub.WaitApplied(wctx, next)
		wcancel()
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: head %d, stream at %d", errBehind, head, target)
		}
		f.restart("this node is behind the stream")
	}
}

// checkCurrent keeps the heartbeat promise: once per heartbeat interval it
// checks that this node has caught up with the stream leader (catchUp),
// and current reports whether the last check did. One check per node and
// interval, whatever the number of subscribers. A node cut off from its
// cluster cannot reach a leader: it stops pinging, and its agents turn
// stale and move to another node.
func (f *follower) checkCurrent(ctx context.Context) {
	select {
	case <-f.hub.Ready():
	case <-ctx.Done():
		return
	}
	tick, stop := f.clock.NewTicker(f.heartbeat)
	defer stop()
	wasCurrent := true
	for {
		began := int64(f.clock.Now().Sub(f.base)) + 1
		cctx, cancel := f.clock.WithTimeout(ctx, f.heartbeat)
		err := f.catchUp(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		f.recordCheck(began, err == nil)
		switch {
		case err != nil && wasCurrent:
			f.logger.Warn("not caught up with the stream leader: heartbeats withheld until it is", "head", f.hub.Head(), "err", err)
		case err == nil && !wasCurrent:
			f.logger.Info("caught up with the stream leader again: heartbeats resume", "head", f.hub.Head())
		}
		wasCurrent = err == nil
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
	}
}

// recordCheck notes the outcome of a current check that began at began
// (nanoseconds since base, plus one).
func (f *follower) recordCheck(began int64, caughtUp bool) {
	if caughtUp {
		f.caughtUpAt.Store(began)
	} else {
		f.caughtUpAt.Store(0)
	}
	if f.onCheck != nil {
		f.onCheck(caughtUp)
	}
}

// current reports whether this node may promise subscribers that its view
// is current: a check that began at most two heartbeat intervals ago (one
// interval between checks, and at most one for the check itself) found it
// caught up, and no later check found otherwise.
func (f *follower) current() bool {
	at := f.caughtUpAt.Load()
	return at != 0 && int64(f.clock.Now().Sub(f.base))+1-at <= int64(2*f.heartbeat)
}
