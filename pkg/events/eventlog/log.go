package eventlog

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/revocast/revocast/pkg/events"
)

// Errors callers test with errors.Is.
var (
	ErrNotFound = errors.New("no live revocation with this key")
	// ErrUnavailable means the log could not acknowledge a write in time
	// (no leader, storage unreachable). Nothing acknowledged was lost; the
	// write may or may not have been stored, so retry it with the same
	// idempotency key.
	ErrUnavailable = errors.New("revocation log unavailable")
	ErrClosed      = errors.New("revocation log closed")
	// ErrConflict is matched (errors.Is) by the error of a write whose
	// idempotency key (Request.ID) was already used within the duplicate
	// window by a request with another fingerprint, or by one whose
	// message has since been replaced, lifted or has expired, so that its
	// answer cannot be given again. Nothing was stored.
	ErrConflict = errors.New("idempotency key already used")
	// ErrStalled is returned by Follow when it stopped delivering although
	// the log holds messages after the last one it delivered; follow again
	// from there.
	ErrStalled = errors.New("consumer stalled")
)

// Log is the revocation log: one ordered sequence of messages, at most one
// live message per revocation key (a new message for a key replaces the
// old one), each leaving the log when its revocation may be forgotten
// (expires_at + G). Sequences start at 1 and only grow; an event ID is
// <Epoch>-<Seq>.
//
// Implementations are safe for concurrent use.
type Log interface {
	// Open makes the log ready for use, retrying until ctx ends (a
	// cluster may still be electing a leader). After EpochChanged
	// reported true, Open switches to the log's new instance.
	Open(ctx context.Context) error
	// Epoch identifies the instance of the log this Log serves; it is the
	// first half of event IDs. A log that is wiped and created again gets
	// a new epoch, and its sequences start again.
	Epoch() uint64
	// EpochChanged reports whether the log is no longer the instance this
	// Log serves (deleted, or deleted and created again), without
	// changing anything.
	EpochChanged(ctx context.Context) (bool, error)

	// PublishRequest stores a prepared revocation (Key set, defaults
	// applied, not expired) and returns once it is acknowledged (stored
	// for good). A duplicate of an earlier request (Request) is that
	// request's answer, or ErrConflict.
	PublishRequest(ctx context.Context, rev *events.Revocation, req Request) (Published, error)
	// PublishBatch stores many prepared revocations and returns when
	// every one was acknowledged or failed. results[i] belongs to
	// items[i].
	PublishBatch(ctx context.Context, items []Item) []ItemResult
	// LiftRequest stores a lift that replaces the live revocation with
	// this key: ErrNotFound when there is none. It lives as long as the
	// revocation would have. A duplicate of an earlier request is that
	// request's lift, or ErrConflict.
	LiftRequest(ctx context.Context, key, actor, reason string, req Request) (Published, error)

	// Follow delivers every message with a sequence at or after from
	// (from 0 or 1: all), in order, then every new one, until ctx ends
	// or fn returns an error. caughtUp is called once, when everything
	// stored when Follow started has been delivered (also when there was
	// nothing). A Follow that stopped moving while there is more to read
	// returns ErrStalled.
	Follow(ctx context.Context, from uint64, fn func(Record) error, caughtUp func()) error
	// NextAfter returns the sequence of the first message stored after
	// seq, ok false when there is none, as the authority on writes (the
	// leader of a cluster) sees it: whoever has read up to seq has read
	// every acknowledged write when ok is false (read-your-writes).
	NextAfter(ctx context.Context, seq uint64) (next uint64, ok bool, err error)
	// State is the log's current position. It may be read from a replica
	// that lags the leader.
	State(ctx context.Context) (State, error)

	// OpenPositions opens the records shared by every node that uses this
	// log (what agents reported), forgetting a record ttl after its last
	// write; it retries until ctx ends.
	OpenPositions(ctx context.Context, ttl time.Duration) (Positions, error)

	// Healthy reports whether the log is reachable.
	Healthy() bool
	// StreamLeader names the node that orders writes (in a cluster), or
	// "" when there is no such node or it is unknown.
	StreamLeader(ctx context.Context) (string, error)
	// Close releases the log; it is called once.
	Close() error
}

// Positions is a set of small records (one per agent instance) that every
// node of a deployment reads and writes, each forgotten a while after its
// last write. Implementations are safe for concurrent use.
type Positions interface {
	// PutAll writes the records and waits for them to be stored (or
	// ctx). Keys must satisfy ValidPositionKey.
	PutAll(ctx context.Context, records map[string][]byte) error
	// Watch calls fn with every record, then with every record written
	// afterwards, by any node, until ctx ends (nil) or the watch fails.
	// Records that expire are not announced: callers age records
	// themselves.
	Watch(ctx context.Context, fn func(key string, value []byte)) error
}

// MaxPositionKey is the longest key of a position record.
const MaxPositionKey = 96

// ValidPositionKey reports whether k can name a position record: 1 to
// MaxPositionKey letters, digits, '-' and '_'.
func ValidPositionKey(k string) bool {
	if len(k) == 0 || len(k) > MaxPositionKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
		if !ok {
			return false
		}
	}
	return true
}

// Published is the outcome of one write.
type Published struct {
	Seq       uint64
	Duplicate bool // the idempotency key was seen before: Seq is the original's
	// Stored is the JSON stored for a revocation (events.MarshalStored):
	// answers splice the event ID into it (events.AppendWithID) instead
	// of encoding the revocation again. For a Duplicate of a client
	// request, it is what the original stored.
	Stored []byte
	// Item is, for a Duplicate of a client request, the index in that
	// request of the revocation the original message stored.
	Item int
}

// Request ties a write to the client request it serves, for idempotency.
//
// The log stores at most one message per ID within its duplicate window
// and answers a second write with the same ID with the first one's
// sequence. The broadcaster derives the ID from the client's
// Idempotency-Key and the caller (RequestID), so the key is scoped to the
// caller, and every message of a request carries the request's
// Fingerprint. A duplicate is checked against the message it duplicates,
// as the log's authority on writes sees it (a retry may reach another
// node): the same fingerprint gives that message (Published.Duplicate,
// Stored); another fingerprint, or a message that is no longer stored
// (replaced, lifted, expired), gives ErrConflict.
type Request struct {
	ID          string // "" for a random one (no client key)
	Fingerprint string // what the client asked (RequestFingerprint)
	Item        int    // index of this message's revocation in the request
}

// RequestID derives the message ID of a client's idempotency key: scoped to
// the caller (the kind of credential and its name), fixed length, safe in
// a header.
func RequestID(callerKind, callerName, key string) string {
	return "idem-" + digest("revocast-idempotency-v1", callerKind, callerName, key)[:40]
}

// RequestFingerprint identifies what a client request asks: the operation
// and its canonical content.
func RequestFingerprint(op string, content ...[]byte) string {
	parts := make([]string, 0, len(content)+2)
	parts = append(parts, "revocast-request-v1", op)
	for _, c := range content {
		parts = append(parts, string(c))
	}
	return digest(parts...)
}

// digest hashes length-prefixed parts, so that no two lists of parts
// share their input.
func digest(parts ...string) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// NewIdempotencyKey returns a random message ID for writes whose client sent
// no Idempotency-Key, so that internal retries of an unacknowledged write
// cannot store it twice.
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "revocast-" + hex.EncodeToString(b[:])
}

// ConflictError is an ErrConflict with the reason for the client.
type ConflictError struct{ Reason string }

func (e *ConflictError) Error() string { return e.Reason }

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// The two conflicts of a duplicate (Request).
var (
	ErrOtherRequest = &ConflictError{Reason: "Idempotency-Key was already used for a different request"}
	ErrGone         = &ConflictError{Reason: "Idempotency-Key was already used, and what that request stored has since been replaced, lifted or has expired: its answer cannot be repeated; send a new Idempotency-Key"}
)

// Item is one entry of a batch.
type Item struct {
	Revocation *events.Revocation
	// Request.ID, when set, makes a retried item be stored once, and a
	// duplicate is checked against its original (Request). Without it an
	// item that is retried (its ack was lost) may be stored twice: the
	// second copy replaces the first (one message per key), so the live
	// state is the same, at the cost of an extra event.
	Request Request
}

// ItemResult is the outcome of one batch entry.
type ItemResult struct {
	Published
	Err error
}

// Record is one message of the log.
type Record struct {
	Seq  uint64
	Type string // events.TypeRevoke or events.TypeLift
	// Data is the stored JSON: for a revoke, the revocation without id and
	// seq (events.MarshalStored); for a lift, who lifted it and when
	// (LiftBody).
	Data []byte
	// Revocation is the decoded revocation of a revoke, with Seq but
	// without ID (the caller formats IDs with the epoch it serves). Follow
	// may leave it nil: its caller splices Data.
	Revocation *events.Revocation
	Key        string
	// Stored is when the log stored the message; Expires when it leaves
	// the log (zero: never).
	Stored  time.Time
	Expires time.Time
	// Pending is how many messages Follow had still to deliver after this
	// one when it was sent: 0 means caught up.
	Pending uint64
}

// Decode returns the revocation of a revoke record, decoding Data when
// Revocation is not set.
func (r Record) Decode() (*events.Revocation, error) {
	if r.Revocation != nil {
		return r.Revocation, nil
	}
	if r.Type != events.TypeRevoke {
		return nil, fmt.Errorf("message %d is a %s, not a revocation", r.Seq, r.Type)
	}
	var rev events.Revocation
	if err := json.Unmarshal(r.Data, &rev); err != nil {
		return nil, fmt.Errorf("message %d: decode revocation: %w", r.Seq, err)
	}
	rev.Seq = r.Seq
	return &rev, nil
}

// LiftBody is what a lift message stores: its key, and for the audit trail
// who lifted it and when.
type LiftBody struct {
	Key      string      `json:"key"`
	Actor    string      `json:"actor,omitempty"`
	LiftedAt events.Time `json:"lifted_at,omitzero"`
	Reason   string      `json:"reason,omitempty"`
}

// State is the log's position.
type State struct {
	Epoch    uint64
	FirstSeq uint64
	LastSeq  uint64
	Msgs     uint64
}

// LeavesAt is when a revocation may leave the log: expires_at + grace
// (zero: never). A lift inherits it.
func LeavesAt(rev *events.Revocation, grace time.Duration) time.Time {
	if rev.ExpiresAt.IsZero() {
		return time.Time{}
	}
	return rev.ExpiresAt.Add(grace)
}
