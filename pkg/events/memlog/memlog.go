package memlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/events/eventlog"
)

// DefaultDuplicateWindow is how long an idempotency key is remembered.
const DefaultDuplicateWindow = 2 * time.Minute

// Config tunes a Log; the zero value means the defaults.
type Config struct {
	// ExpiryGrace is G: a message stays until expires_at + G. Zero
	// means events.DefaultExpiryGrace.
	ExpiryGrace     time.Duration
	DuplicateWindow time.Duration
}

type entry struct {
	rec         eventlog.Record
	fingerprint string
	item        int
}

type idem struct {
	seq uint64
	at  time.Time
}

// Log is the revocation log in memory.
type Log struct {
	cfg   Config
	epoch uint64

	mu      sync.Mutex
	last    uint64            // the last sequence given out
	order   []uint64          // stored sequences, ascending
	entries map[uint64]*entry // by sequence
	byKey   map[string]uint64 // the key's last message
	ids     map[string]idem   // idempotency keys within the window
	changed chan struct{}     // closed and replaced on every write
	closed  bool
	done    chan struct{}

	posOnce sync.Once
	pos     *positions
}

var _ eventlog.Log = (*Log)(nil)

// New returns an empty log with a new epoch.
func New(cfg Config) *Log {
	if cfg.ExpiryGrace <= 0 {
		cfg.ExpiryGrace = events.DefaultExpiryGrace
	}
	if cfg.DuplicateWindow <= 0 {
		cfg.DuplicateWindow = DefaultDuplicateWindow
	}
	return &Log{
		cfg: cfg, epoch: uint64(time.Now().UnixNano()),
		entries: make(map[uint64]*entry), byKey: make(map[string]uint64), ids: make(map[string]idem),
		changed: make(chan struct{}), done: make(chan struct{}),
	}
}

// Open does nothing: the log is ready when New returns.
func (l *Log) Open(context.Context) error {
	if l.isClosed() {
		return eventlog.ErrClosed
	}
	return nil
}

// Epoch identifies this log; it never changes.
func (l *Log) Epoch() uint64 { return l.epoch }

// EpochChanged is always false: a Log is one instance.
func (l *Log) EpochChanged(context.Context) (bool, error) { return false, nil }

// prune drops expired messages and idempotency keys; l.mu is held.
func (l *Log) prune(now time.Time) {
	l.order = slices.DeleteFunc(l.order, func(seq uint64) bool {
		e := l.entries[seq]
		if e.rec.Expires.IsZero() || now.Before(e.rec.Expires) {
			return false
		}
		delete(l.entries, seq)
		if l.byKey[e.rec.Key] == seq {
			delete(l.byKey, e.rec.Key)
		}
		return true
	})
	for id, v := range l.ids {
		if now.Sub(v.at) > l.cfg.DuplicateWindow {
			delete(l.ids, id)
		}
	}
}

// store appends a message, replacing the key's previous one; l.mu is held.
func (l *Log) store(now time.Time, typ, key string, data []byte, expires time.Time, req eventlog.Request) uint64 {
	l.last++
	seq := l.last
	if old, ok := l.byKey[key]; ok {
		delete(l.entries, old)
		l.order = slices.DeleteFunc(l.order, func(s uint64) bool { return s == old })
	}
	l.byKey[key] = seq
	l.order = append(l.order, seq)
	l.entries[seq] = &entry{
		rec:         eventlog.Record{Seq: seq, Type: typ, Key: key, Data: data, Stored: now, Expires: expires},
		fingerprint: req.Fingerprint, item: req.Item,
	}
	if req.ID != "" {
		l.ids[req.ID] = idem{seq: seq, at: now}
	}
	close(l.changed)
	l.changed = make(chan struct{})
	return seq
}

// duplicate answers a write whose ID was seen; ok false when it was not.
// l.mu is held.
func (l *Log) duplicate(req eventlog.Request) (eventlog.Published, bool, error) {
	if req.ID == "" {
		return eventlog.Published{}, false, nil
	}
	id, ok := l.ids[req.ID]
	if !ok {
		return eventlog.Published{}, false, nil
	}
	p := eventlog.Published{Seq: id.seq, Duplicate: true}
	if req.Fingerprint == "" {
		return p, true, nil
	}
	e, ok := l.entries[id.seq]
	if !ok {
		return p, true, eventlog.ErrGone
	}
	if e.fingerprint != req.Fingerprint {
		return eventlog.Published{}, true, eventlog.ErrOtherRequest
	}
	p.Stored, p.Item = e.rec.Data, e.item
	return p, true, nil
}

// PublishRequest stores a prepared revocation.
func (l *Log) PublishRequest(_ context.Context, rev *events.Revocation, req eventlog.Request) (eventlog.Published, error) {
	data, err := events.MarshalStored(rev)
	if err != nil {
		return eventlog.Published{}, fmt.Errorf("encode revocation: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return eventlog.Published{}, eventlog.ErrClosed
	}
	now := time.Now()
	l.prune(now)
	if p, ok, err := l.duplicate(req); ok {
		return p, err
	}
	seq := l.store(now, events.TypeRevoke, rev.Key, data, eventlog.LeavesAt(rev, l.cfg.ExpiryGrace), req)
	return eventlog.Published{Seq: seq, Stored: data}, nil
}

// PublishBatch stores many prepared revocations. As with JetStream, an
// item whose original has since been replaced is answered as stored.
func (l *Log) PublishBatch(ctx context.Context, items []eventlog.Item) []eventlog.ItemResult {
	results := make([]eventlog.ItemResult, len(items))
	for i, it := range items {
		p, err := l.PublishRequest(ctx, it.Revocation, it.Request)
		if errors.Is(err, eventlog.ErrGone) {
			err = nil
		}
		if p.Stored == nil {
			p.Stored, _ = events.MarshalStored(it.Revocation)
		}
		results[i] = eventlog.ItemResult{Published: p, Err: err}
	}
	return results
}

// LiftRequest stores a lift replacing the live revocation with this key.
func (l *Log) LiftRequest(_ context.Context, key, actor, reason string, req eventlog.Request) (eventlog.Published, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return eventlog.Published{}, eventlog.ErrClosed
	}
	now := time.Now()
	l.prune(now)
	if p, ok, err := l.duplicate(req); ok {
		return p, err
	}
	seq, ok := l.byKey[key]
	if !ok || l.entries[seq].rec.Type != events.TypeRevoke {
		return eventlog.Published{}, eventlog.ErrNotFound
	}
	body, _ := json.Marshal(eventlog.LiftBody{Key: key, Actor: actor, LiftedAt: events.Time{Time: now.UTC()}, Reason: reason})
	seq = l.store(now, events.TypeLift, key, body, l.entries[seq].rec.Expires, req)
	return eventlog.Published{Seq: seq, Stored: body}, nil
}

// GetSeq returns the message with this sequence, if it is still stored.
func (l *Log) GetSeq(_ context.Context, seq uint64) (eventlog.Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune(time.Now())
	e, ok := l.entries[seq]
	if !ok {
		return eventlog.Record{}, eventlog.ErrNotFound
	}
	return e.rec, nil
}

// Follow delivers every stored message from from on, then every new one.
func (l *Log) Follow(ctx context.Context, from uint64, fn func(eventlog.Record) error, caughtUp func()) error {
	next := max(from, 1)
	signaled := false
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return eventlog.ErrClosed
		}
		l.prune(time.Now())
		i, _ := slices.BinarySearch(l.order, next)
		recs := make([]eventlog.Record, 0, len(l.order)-i)
		for _, seq := range l.order[i:] {
			recs = append(recs, l.entries[seq].rec)
		}
		wait := l.changed
		l.mu.Unlock()
		for k, rec := range recs {
			rec.Pending = uint64(len(recs) - 1 - k)
			if err := fn(rec); err != nil {
				return err
			}
			next = rec.Seq + 1
		}
		if !signaled {
			signaled = true
			caughtUp()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.done:
			return eventlog.ErrClosed
		case <-wait:
		}
	}
}

// NextAfter returns the first stored sequence after seq.
func (l *Log) NextAfter(_ context.Context, seq uint64) (uint64, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune(time.Now())
	i, _ := slices.BinarySearch(l.order, seq+1)
	if i == len(l.order) {
		return 0, false, nil
	}
	return l.order[i], true, nil
}

// State is the log's position.
func (l *Log) State(context.Context) (eventlog.State, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune(time.Now())
	st := eventlog.State{Epoch: l.epoch, LastSeq: l.last, Msgs: uint64(len(l.order))}
	if len(l.order) > 0 {
		st.FirstSeq = l.order[0]
	}
	return st, nil
}

// Healthy is true until Close.
func (l *Log) Healthy() bool { return !l.isClosed() }

// StreamLeader is "": there is no cluster.
func (l *Log) StreamLeader(context.Context) (string, error) { return "", nil }

// Close ends every Follow and Watch; later writes get ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		close(l.done)
	}
	return nil
}

func (l *Log) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}
