// Package hub is the broadcaster's in-memory fan-out: a mirror of the live
// stream (one entry per revocation key, each holding its SSE frame encoded
// once) that serves replays, and the set of connected subscribers that every
// new event is pushed to.
//
// One JetStream consumer per broadcaster feeds the hub (Apply); thousands of
// SSE subscribers read from it. The mirror itself is every subscriber's
// buffer: a subscription is a cursor (the last sequence it sent) and a
// wake-up signal, so catching up on history and following live events are
// the same loop, and no event is lost or duplicated between the two. A burst
// (a batch of 10,000 revocations) costs no memory per subscriber. A
// subscriber that falls more than its allowed lag behind the head is
// dropped instead of slowing anyone down; it resumes with its Last-Event-ID.
//
// A *Hub is safe for concurrent use.
package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/sse"
)

// DefaultMaxLag is how many sequences a subscriber may trail the head by
// before it counts as slow and is disconnected.
const DefaultMaxLag = 100_000

// Event is one message of the log, as the hub needs it.
type Event struct {
	Seq  uint64
	Type string // events.TypeRevoke or events.TypeLift
	Key  string // revocation key
	// Data is a revoke's stored JSON (events.MarshalStored): the event's
	// data is Data with the id and seq spliced in.
	Data    []byte
	Expires time.Time // when it leaves the stream; zero: never
}

// entry is one live message. Its fields never change after Apply created it
// except dead, which is only read and written under the hub's lock.
type entry struct {
	seq     uint64
	key     string
	typ     string
	expires int64  // unix nanoseconds; 0: never
	frame   []byte // the encoded SSE event, id included
	data    []byte // the JSON payload, a slice of frame
	dead    bool   // replaced or expired; removed at the next compaction
}

// Hub is the mirror and the fan-out.
type Hub struct {
	maxLag uint64
	// grace is how long before it leaves the stream an entry leaves the
	// listings (Get, Revocations): a revocation stays in the stream, and
	// in the replay, until its expires_at + grace.
	grace int64

	mu      sync.RWMutex
	epoch   uint64
	byKey   map[string]*entry
	order   []*entry // ascending seq; may hold dead entries
	deadN   int
	head    uint64
	subs    map[*Subscription]struct{}
	applied chan struct{} // closed and replaced on every Apply

	wakeMu  sync.Mutex      // serialises Apply's signalling; guards wakeBuf
	wakeBuf []*Subscription // reused list of subscribers to signal

	readyOnce sync.Once
	ready     chan struct{}

	subscribers atomic.Int64
	slowDropped atomic.Uint64
}

// Option configures a Hub.
type Option func(*Hub)

// WithMaxLag sets how far (in stream sequences) a subscriber may trail the
// head before it is disconnected.
func WithMaxLag(n uint64) Option {
	return func(h *Hub) {
		if n > 0 {
			h.maxLag = n
		}
	}
}

// WithExpiryGrace says that revocations stay in the stream for g past their
// expires_at: replays (Next, Replay) keep sending them until they leave the
// stream, listings (Get, Revocations) hide them from expires_at on.
func WithExpiryGrace(g time.Duration) Option {
	return func(h *Hub) {
		if g > 0 {
			h.grace = int64(g)
		}
	}
}

// New returns an empty hub for the stream with this epoch. It is not ready
// until SetReady.
func New(epoch uint64, opts ...Option) *Hub {
	h := &Hub{
		maxLag:  DefaultMaxLag,
		epoch:   epoch,
		byKey:   make(map[string]*entry),
		subs:    make(map[*Subscription]struct{}),
		applied: make(chan struct{}),
		ready:   make(chan struct{}),
	}
	for _, o := range opts {
		o(h)
	}
	return h
}

// ErrStale means a subscriber's position belongs to another stream instance
// or lies beyond what this hub has seen.
var ErrStale = errors.New("position cannot be honoured")

// encode builds the SSE frame of an event once, for every subscriber.
func encode(epoch uint64, ev *Event) (frame, data []byte, err error) {
	id := events.EventID{Epoch: epoch, Seq: ev.Seq}.String()
	switch ev.Type {
	case events.TypeRevoke:
		var ok bool
		if data, ok = events.AppendWithID(make([]byte, 0, len(ev.Data)+len(id)+32), ev.Data, id, ev.Seq); !ok {
			// not in the stored form (written by another version?): decode
			var r events.Revocation
			if err = json.Unmarshal(ev.Data, &r); err != nil {
				return nil, nil, fmt.Errorf("revoke event %d: %w", ev.Seq, err)
			}
			r.Seq, r.ID = ev.Seq, id
			data, err = json.Marshal(&r)
		}
	case events.TypeLift:
		data, err = json.Marshal(events.Lift{Key: ev.Key})
	default:
		return nil, nil, fmt.Errorf("event %d: unknown type %q", ev.Seq, ev.Type)
	}
	if err != nil {
		return nil, nil, err
	}
	// data has no line breaks (JSON escapes them), so it is one data line:
	// the frame ends with "data: " + data + "\n\n".
	frame, err = sse.AppendEvent(make([]byte, 0, len(data)+len(id)+32), sse.Event{ID: id, Type: ev.Type, Data: data})
	if err != nil {
		return nil, nil, err
	}
	return frame, frame[len(frame)-2-len(data) : len(frame)-2], nil
}

// Apply adds an event from the log: it replaces the entry with the same key
// and is pushed to every live subscriber. Events must come in ascending
// sequence order; an event at or below the head is ignored (a consumer that
// restarted).
func (h *Hub) Apply(ev Event) error {
	h.mu.RLock()
	epoch, head := h.epoch, h.head
	h.mu.RUnlock()
	if ev.Seq <= head {
		return nil
	}
	frame, data, err := encode(epoch, &ev)
	if err != nil {
		return err
	}
	e := &entry{seq: ev.Seq, key: ev.Key, typ: ev.Type, frame: frame, data: data}
	if !ev.Expires.IsZero() {
		e.expires = ev.Expires.UnixNano()
	}

	// The subscribers are signalled after the lock is released: one woken
	// now would block at once on the read lock that Next takes and be
	// woken a second time when Apply unlocks (with 10,000 subscribers,
	// twice the scheduler work on the fan-out path).
	h.wakeMu.Lock()
	defer h.wakeMu.Unlock()
	wake := h.wakeBuf[:0]

	h.mu.Lock()
	if ev.Seq <= h.head || h.epoch != epoch {
		h.mu.Unlock()
		return nil
	}
	if old, ok := h.byKey[ev.Key]; ok {
		old.dead = true
		h.deadN++
	}
	h.byKey[ev.Key] = e
	h.order = append(h.order, e)
	h.head = ev.Seq
	for s := range h.subs {
		if h.head-s.cursor.Load() > h.maxLag {
			h.dropLocked(s)
			h.slowDropped.Add(1)
			continue
		}
		if len(s.wake) == 0 { // else already signalled
			wake = append(wake, s)
		}
	}
	close(h.applied)
	h.applied = make(chan struct{})
	h.compactLocked()
	h.mu.Unlock()

	for _, s := range wake {
		s.Kick()
	}
	clear(wake) // no references to closed subscriptions kept
	h.wakeBuf = wake[:0]
	return nil
}

func (h *Hub) compactLocked() {
	if h.deadN < 1024 || h.deadN < len(h.order)/2 {
		return
	}
	h.order = slices.DeleteFunc(h.order, func(e *entry) bool { return e.dead })
	h.deadN = 0
}

// Sweep forgets entries that have left the stream by their TTL. Subscribers
// are not told: every agent expires revocations by their expires_at itself.
func (h *Hub) Sweep(now time.Time) int {
	n := now.UnixNano()
	h.mu.Lock()
	defer h.mu.Unlock()
	removed := 0
	for key, e := range h.byKey {
		if e.expires != 0 && e.expires <= n {
			e.dead = true
			h.deadN++
			delete(h.byKey, key)
			removed++
		}
	}
	h.compactLocked()
	return removed
}

// Reset empties the hub for a new stream instance and disconnects every
// subscriber: they come back with IDs of the old epoch and are told to reset.
func (h *Hub) Reset(epoch uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.epoch = epoch
	h.byKey = make(map[string]*entry)
	h.order = nil
	h.deadN = 0
	h.head = 0
	for s := range h.subs {
		h.dropLocked(s)
	}
}

// SetReady marks the end of the initial catch-up: the mirror holds the whole
// live state the log had when the hub started following it.
func (h *Hub) SetReady() { h.readyOnce.Do(func() { close(h.ready) }) }

// Ready is closed once the hub has caught up.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// Epoch is the stream instance the hub mirrors.
func (h *Hub) Epoch() uint64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.epoch
}

// Head is the sequence of the last applied event.
func (h *Hub) Head() uint64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.head
}

// HeadID is Head as an event ID.
func (h *Hub) HeadID() string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return events.EventID{Epoch: h.epoch, Seq: h.head}.String()
}

// WaitApplied returns when the hub has applied seq (or a later event), so
// that a writer's own revocation is visible on this node when it answers.
func (h *Hub) WaitApplied(ctx context.Context, seq uint64) error {
	for {
		h.mu.RLock()
		head, ch := h.head, h.applied
		h.mu.RUnlock()
		if head >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Get returns the JSON of the live revocation with this key, unless its
// expires_at has passed (see WithExpiryGrace).
func (h *Hub) Get(key string) ([]byte, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	e, ok := h.byKey[key]
	if !ok || e.typ != events.TypeRevoke || h.hiddenLocked(e, time.Now().UnixNano()) {
		return nil, false
	}
	// Capacity clipped: the bytes are shared with frames being written to
	// subscribers, so a caller's append must copy rather than write into them.
	return e.data[:len(e.data):len(e.data)], true
}

// hiddenLocked reports whether listings no longer show e at now (unix
// nanoseconds): its revocation's expires_at, grace before it leaves the
// stream, has passed.
func (h *Hub) hiddenLocked(e *entry, now int64) bool {
	return e.expires != 0 && e.expires-h.grace <= now
}

// Len is the number of live entries (revocations and lifts).
func (h *Hub) Len() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.byKey)
}

// Stats are the hub's counters.
type Stats struct {
	Subscribers     int64
	SlowDisconnects uint64
	Entries         int
}

// Stats returns the current counters.
func (h *Hub) Stats() Stats {
	return Stats{Subscribers: h.subscribers.Load(), SlowDisconnects: h.slowDropped.Load(), Entries: h.Len()}
}

// Replay appends to dst the frames of live entries with a sequence above
// after, up to limit of them, and returns the sequence of the last one
// examined (after, when none). It holds only the read lock.
func (h *Hub) Replay(dst [][]byte, after uint64, limit int) ([][]byte, uint64) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	dst, last, _ := h.replayLocked(dst, after, limit)
	return dst, last
}

// replayLocked also reports whether it reached the end of the mirror.
func (h *Hub) replayLocked(dst [][]byte, after uint64, limit int) ([][]byte, uint64, bool) {
	i := sort.Search(len(h.order), func(i int) bool { return h.order[i].seq > after })
	last := after
	now := time.Now().UnixNano()
	for ; i < len(h.order); i++ {
		e := h.order[i]
		if e.dead || (e.expires != 0 && e.expires <= now) {
			last = e.seq
			continue
		}
		if limit == 0 {
			return dst, last, false
		}
		dst = append(dst, e.frame)
		last = e.seq
		limit--
	}
	return dst, max(last, h.head), true
}

// Subscription is one subscriber's position in the mirror. Next and the
// channels may be used by one goroutine while others Apply.
type Subscription struct {
	hub    *Hub
	cursor atomic.Uint64 // last sequence handed out by Next
	wake   chan struct{} // signalled (not queued) on every Apply
	done   chan struct{} // closed when the subscription is dropped
	// dropped is read and written under hub.mu
	dropped bool
}

// Subscribe registers a subscriber that has everything up to after. Next
// then returns what follows, history first, then each new event.
func (h *Hub) Subscribe(after uint64) *Subscription {
	return h.subscribe(func() uint64 { return after })
}

// SubscribeAtHead registers a subscriber for new events only.
func (h *Hub) SubscribeAtHead() *Subscription {
	return h.subscribe(func() uint64 { return h.head })
}

func (h *Hub) subscribe(cursor func() uint64) *Subscription {
	s := &Subscription{hub: h, wake: make(chan struct{}, 1), done: make(chan struct{})}
	h.mu.Lock()
	s.cursor.Store(cursor())
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	h.subscribers.Add(1)
	return s
}

// NoteSlow counts a subscriber disconnected for being slow by its caller (a
// write that timed out).
func (h *Hub) NoteSlow() { h.slowDropped.Add(1) }

// Next appends to dst the frames after the cursor, at most limit, and moves
// the cursor past them. caughtUp reports that nothing more was there: the
// cursor is then at the head, and Wake signals the next event.
func (s *Subscription) Next(dst [][]byte, limit int) (frames [][]byte, caughtUp bool) {
	s.hub.mu.RLock()
	frames, last, end := s.hub.replayLocked(dst, s.cursor.Load(), limit)
	s.hub.mu.RUnlock()
	s.cursor.Store(last)
	return frames, end
}

// Cursor is the sequence of the last event Next handed out (or skipped).
func (s *Subscription) Cursor() uint64 { return s.cursor.Load() }

// Wake is signalled when an event was applied after the subscriber last
// caught up, when it was dropped (Done is then closed) and on Kick. It is a
// signal, not a queue: call Next until caught up.
func (s *Subscription) Wake() <-chan struct{} { return s.wake }

// Kick signals Wake as an event would. A caller that waits for other things
// too (a heartbeat timer, cancellation) can have them kick, and block on
// Wake alone: a one-channel receive is cheaper than a select, and with
// thousands of subscribers it is paid on every event.
func (s *Subscription) Kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Done is closed when the hub dropped the subscription: it fell more than
// the allowed lag behind, or the hub was reset. The caller ends the
// response; the client resumes with its Last-Event-ID.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Close unregisters the subscription.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	s.hub.dropLocked(s)
}

func (h *Hub) dropLocked(s *Subscription) {
	if s.dropped {
		return
	}
	s.dropped = true
	delete(h.subs, s)
	close(s.done)
	s.Kick()
	h.subscribers.Add(-1)
}

// Resume decides where a subscriber that sent lastEventID starts: the
// sequence to replay after, or ErrStale when the ID is from another epoch or
// beyond the head (the caller sends a reset and replays everything).
func (h *Hub) Resume(id events.EventID) (uint64, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if id.Epoch != h.epoch || id.Seq > h.head {
		return 0, ErrStale
	}
	return id.Seq, nil
}

// Revocations calls fn for the live revocations with a sequence above after,
// in sequence order, until fn returns false; revocations past their
// expires_at are left out (see WithExpiryGrace). data is the revocation's JSON as
// sent on the stream. It walks the mirror in chunks, releasing the lock in
// between, so a listing never holds up the fan-out for long.
func (h *Hub) Revocations(after uint64, fn func(seq uint64, data []byte) bool) {
	type item struct {
		seq  uint64
		data []byte
	}
	chunk := make([]item, 0, 4096)
	for {
		chunk = chunk[:0]
		more := false
		h.mu.RLock()
		now := time.Now().UnixNano()
		i := sort.Search(len(h.order), func(i int) bool { return h.order[i].seq > after })
		for ; i < len(h.order); i++ {
			e := h.order[i]
			if len(chunk) == cap(chunk) {
				more = true
				break
			}
			after = e.seq
			if e.dead || e.typ != events.TypeRevoke || h.hiddenLocked(e, now) {
				continue
			}
			chunk = append(chunk, item{e.seq, e.data[:len(e.data):len(e.data)]})
		}
		h.mu.RUnlock()
		for _, it := range chunk {
			if !fn(it.seq, it.data) {
				return
			}
		}
		if !more {
			return
		}
	}
}
