package natslog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/events/eventlog"
)

// Defaults for Config.
const (
	DefaultStreamName      = "REVOCAST"
	DefaultSubjectPrefix   = "revocast.rev"
	DefaultMaxAge          = eventlog.DefaultMaxAge
	DefaultDuplicateWindow = 2 * time.Minute
	DefaultPublishTimeout  = 5 * time.Second
)

// Header names on stored messages.
const (
	headerType = "Revocast-Type"
	headerTTL  = jetstream.MsgTTLHeader
	// headerRequest holds the fingerprint of the client request that
	// stored the message under an idempotency key (Request.Fingerprint),
	// headerItem the index of the message's revocation in that request.
	headerRequest = "Revocast-Request"
	headerItem    = "Revocast-Item"
)

const metadataEpoch = "revocast_epoch"

// stallAfter is how long a consumer may not move while the stream holds
// messages after it before Follow gives up on it.
const stallAfter = 3 * time.Second

// Errors callers test with errors.Is: those of eventlog.
var (
	ErrNotFound    = eventlog.ErrNotFound
	ErrUnavailable = eventlog.ErrUnavailable
	ErrClosed      = eventlog.ErrClosed
	ErrConflict    = eventlog.ErrConflict
	ErrStalled     = eventlog.ErrStalled
)

// The storage-neutral types of the log are eventlog's.
type (
	Published     = eventlog.Published
	Request       = eventlog.Request
	ConflictError = eventlog.ConflictError
	Item          = eventlog.Item
	ItemResult    = eventlog.ItemResult
	Record        = eventlog.Record
	State         = eventlog.State
)

// Functions of eventlog that callers of natslog use.
var (
	RequestID          = eventlog.RequestID
	RequestFingerprint = eventlog.RequestFingerprint
	NewIdempotencyKey  = eventlog.NewIdempotencyKey
)

var (
	errOtherRequest = eventlog.ErrOtherRequest
	errGone         = eventlog.ErrGone
)

var (
	_ eventlog.Log       = (*Log)(nil)
	_ eventlog.Positions = (*Positions)(nil)
)

// Config says where the log lives.
type Config struct {
	// URLs of an external NATS deployment. Empty: run an embedded server.
	URLs []string
	// DataDir holds the embedded server's file store ("<DataDir>/jetstream").
	DataDir string

	// Options for an external deployment.
	CredsFile   string // NATS credentials file (JWT + NKey seed)
	NKeyFile    string // NKey seed file
	TLSCAFile   string
	TLSCertFile string
	TLSKeyFile  string

	// Clustering of embedded servers.
	ServerName  string   // stable and unique in a cluster; default "revocast"
	ClusterName string   // empty: no cluster
	ClusterAddr string   // host:port the cluster listens on
	Routes      []string // peers, "nats://host:port"
	// ClusterSecret, when set, is required of every route: a server that
	// reaches the cluster port without it cannot join (and read or write
	// the stream behind the API's back).
	ClusterSecret string
	// ClusterTLSCertFile, ClusterTLSKeyFile and ClusterTLSCAFile, when set,
	// put the routes under mutual TLS: every route presents this
	// certificate and must present one signed by this CA (in both
	// directions), so a server without such a certificate cannot join.
	ClusterTLSCertFile string
	ClusterTLSKeyFile  string
	ClusterTLSCAFile   string
	Replicas           int // stream replicas; default 1

	StreamName    string
	SubjectPrefix string
	MaxAge        time.Duration // safety net on the stream
	// ExpiryGrace is G: a revocation stays in the stream until its
	// expires_at + G, so that a subscriber that starts after expires_at
	// still receives what agents keep enforcing for their leeway. Zero
	// means events.DefaultExpiryGrace.
	ExpiryGrace     time.Duration
	DuplicateWindow time.Duration
	// PublishTimeout bounds how long a write waits for its JetStream ack
	// (including retries while the stream has no leader).
	PublishTimeout time.Duration

	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.StreamName == "" {
		c.StreamName = DefaultStreamName
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = DefaultSubjectPrefix
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.ExpiryGrace <= 0 {
		c.ExpiryGrace = events.DefaultExpiryGrace
	}
	if c.DuplicateWindow <= 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.ServerName == "" {
		c.ServerName = "revocast"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Log is the revocation log.
type Log struct {
	cfg    Config
	log    *slog.Logger
	ns     *server.Server // nil with an external deployment
	lock   *dirLock       // the embedded server's data directory
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream

	mu    sync.Mutex
	epoch uint64
}

// Open connects (Connect) and makes sure the stream exists with the right
// configuration (EnsureStream), retrying until ctx ends.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	l, err := Connect(cfg)
	if err != nil {
		return nil, err
	}
	if err := l.EnsureStream(ctx); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Connect starts the embedded NATS server and connects to it in-process, or
// connects to an external deployment. It fails fast on what retrying cannot
// fix (an unusable data directory, a cluster port in use, unreadable
// credentials); an external deployment that is down is retried in the
// background. The stream is not touched: call EnsureStream.
func Connect(cfg Config) (*Log, error) {
	cfg.setDefaults()
	l := &Log{cfg: cfg, log: cfg.Logger}
	var err error
	if len(cfg.URLs) == 0 {
		var token string
		if l.ns, token, l.lock, err = startEmbedded(&cfg); err != nil {
			return nil, err
		}
		opts := []nats.Option{nats.InProcessServer(l.ns), nats.Name("revocast-broadcaster"), nats.MaxReconnects(-1)}
		if token != "" {
			opts = append(opts, nats.Token(token))
		}
		l.nc, err = nats.Connect("", opts...)
	} else {
		l.nc, err = connectExternal(&cfg)
	}
	if err != nil {
		l.shutdownServer()
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	if l.js, err = jetstream.New(l.nc); err != nil {
		l.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return l, nil
}

func (l *Log) streamConfig(epoch uint64) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              l.cfg.StreamName,
		Description:       "revocast: the live revocations, one subject per revocation key",
		Subjects:          []string{l.cfg.SubjectPrefix + ".>"},
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: 1,
		MaxAge:            l.cfg.MaxAge,
		Storage:           jetstream.FileStorage,
		Replicas:          l.cfg.Replicas,
		Duplicates:        l.cfg.DuplicateWindow,
		AllowMsgTTL:       true,
		AllowDirect:       true,
		Metadata:          map[string]string{metadataEpoch: strconv.FormatUint(epoch, 10)},
	}
}

// EnsureStream creates the stream, or updates it to our configuration while
// keeping the epoch it was created with, retrying until ctx ends: in a
// cluster the peers and the JetStream meta leader may still be coming up.
// It also refreshes Epoch, which changes if the stream was deleted and
// created again.
func (l *Log) EnsureStream(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		err := l.tryEnsureStream(ctx)
		if err == nil {
			return nil
		}
		l.log.Warn("stream not ready yet, retrying", "stream", l.cfg.StreamName, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return fmt.Errorf("create stream %s: %w (last error: %v)", l.cfg.StreamName, ctx.Err(), err) //nolint:errorlint // the sentinel is the contract; the cause is detail
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

func (l *Log) tryEnsureStream(ctx context.Context) error {
	// short attempts: while a cluster elects its meta leader a request
	// waits for its whole timeout
	actx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := l.js.Stream(actx, l.cfg.StreamName)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		epoch := uint64(time.Now().UnixMilli())
		st, err = l.js.CreateStream(actx, l.streamConfig(epoch))
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return err // another broadcaster won the race: read its epoch next time
		}
		if err != nil {
			return err
		}
		l.log.Info("created stream", "stream", l.cfg.StreamName, "epoch", epoch, "replicas", l.cfg.Replicas)
	case err != nil:
		return err
	default:
		info := st.CachedInfo()
		epoch, perr := strconv.ParseUint(info.Config.Metadata[metadataEpoch], 10, 64)
		if perr != nil || epoch == 0 {
			epoch = uint64(info.Created.UnixMilli())
		}
		want := l.streamConfig(epoch)
		if needsUpdate(info.Config, want) {
			if st, err = l.js.UpdateStream(actx, want); err != nil {
				return fmt.Errorf("update stream: %w", err)
			}
			l.log.Info("updated stream configuration", "stream", l.cfg.StreamName)
		}
	}
	epoch, err := strconv.ParseUint(st.CachedInfo().Config.Metadata[metadataEpoch], 10, 64)
	if err != nil {
		return fmt.Errorf("stream %s has no valid epoch in its metadata", l.cfg.StreamName)
	}
	l.mu.Lock()
	l.stream, l.epoch = st, epoch
	l.mu.Unlock()
	return nil
}

func needsUpdate(have, want jetstream.StreamConfig) bool {
	return have.MaxMsgsPerSubject != want.MaxMsgsPerSubject || have.MaxAge != want.MaxAge ||
		have.Duplicates != want.Duplicates || !have.AllowMsgTTL || have.Replicas != want.Replicas ||
		!have.AllowDirect || have.Metadata[metadataEpoch] != want.Metadata[metadataEpoch] ||
		len(have.Subjects) != 1 || have.Subjects[0] != want.Subjects[0]
}

// EpochChanged reports whether the stream in NATS is no longer the instance
// this Log serves (deleted, or deleted and created again), without changing
// anything. Call EnsureStream to switch to the new instance.
func (l *Log) EpochChanged(ctx context.Context) (bool, error) {
	st, err := l.js.Stream(ctx, l.cfg.StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	epoch, err := strconv.ParseUint(st.CachedInfo().Config.Metadata[metadataEpoch], 10, 64)
	if err != nil {
		return true, nil
	}
	return epoch != l.Epoch(), nil
}

// Epoch identifies the stream instance; it is the first half of event IDs.
func (l *Log) Epoch() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.epoch
}

func (l *Log) subject(key string) string { return l.cfg.SubjectPrefix + "." + key }

// messageTTL is how long a message must stay in the stream: until expires at,
// or forever ("never" also survives the stream's MaxAge).
func messageTTL(expires time.Time, now time.Time) string {
	if expires.IsZero() {
		return "never"
	}
	secs := math.Ceil(expires.Sub(now).Seconds())
	return strconv.FormatInt(max(int64(secs), 1), 10) + "s"
}

func (l *Log) revokeMsg(rev *events.Revocation, now time.Time, req Request) (*nats.Msg, error) {
	data, err := events.MarshalStored(rev)
	if err != nil {
		return nil, fmt.Errorf("encode revocation: %w", err)
	}
	m := nats.NewMsg(l.subject(rev.Key))
	m.Data = data
	m.Header.Set(headerType, events.TypeRevoke)
	m.Header.Set(headerTTL, messageTTL(l.leavesAt(rev), now))
	setRequest(m, req)
	return m, nil
}

func setRequest(m *nats.Msg, req Request) {
	if req.Fingerprint != "" {
		m.Header.Set(headerRequest, req.Fingerprint)
		m.Header.Set(headerItem, strconv.Itoa(req.Item))
	}
}

// original checks a duplicate of a client request against the message it
// duplicates (see Request).
func (l *Log) original(ctx context.Context, seq uint64, req Request) (Published, error) {
	if req.Fingerprint == "" {
		// no client key: a random ID, duplicated only by this write's
		// own retry
		return Published{Seq: seq, Duplicate: true}, nil
	}
	raw, err := l.leaderGet(ctx, seq)
	if errors.Is(err, ErrNotFound) {
		return Published{Seq: seq, Duplicate: true}, errGone
	}
	if err != nil {
		return Published{}, fmt.Errorf("%w: read the original of a duplicate: %v", ErrUnavailable, err) //nolint:errorlint // the sentinel is the contract; the cause is detail
	}
	if raw.Header.Get(headerRequest) != req.Fingerprint {
		return Published{}, errOtherRequest
	}
	item, _ := strconv.Atoi(raw.Header.Get(headerItem))
	return Published{Seq: seq, Duplicate: true, Stored: raw.Data, Item: item}, nil
}

// leaderGet reads the message with this sequence from the stream leader: a
// direct get may be answered by a replica that does not have it yet.
func (l *Log) leaderGet(ctx context.Context, seq uint64) (*nats.Msg, error) {
	req, _ := json.Marshal(struct {
		Seq uint64 `json:"seq"`
	}{seq})
	msg, err := l.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+l.cfg.StreamName, req)
	if err != nil {
		return nil, fmt.Errorf("message %d: %w", seq, err)
	}
	var resp struct {
		Error   *jetstream.APIError `json:"error"`
		Message *struct {
			Subject string `json:"subject"`
			Header  []byte `json:"hdrs"`
			Data    []byte `json:"data"`
		} `json:"message"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, fmt.Errorf("message %d: %w", seq, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return nil, ErrNotFound
	case resp.Error != nil:
		return nil, fmt.Errorf("message %d: %w", seq, resp.Error)
	case resp.Message == nil:
		return nil, fmt.Errorf("message %d: empty answer", seq)
	}
	m := nats.NewMsg(resp.Message.Subject)
	m.Data = resp.Message.Data
	if len(resp.Message.Header) > 0 {
		if m.Header, err = nats.DecodeHeadersMsg(resp.Message.Header); err != nil {
			return nil, fmt.Errorf("message %d: headers: %w", seq, err)
		}
	}
	return m, nil
}

// leavesAt is when a revocation may leave the stream: expires_at + G (zero:
// never). A lift inherits it (Lift).
func (l *Log) leavesAt(rev *events.Revocation) time.Time {
	return eventlog.LeavesAt(rev, l.cfg.ExpiryGrace)
}

// Publish stores a prepared revocation (Key set, defaults applied, not
// expired) and returns once JetStream acknowledged it. idemKey becomes the
// Nats-Msg-Id; pass NewIdempotencyKey() when the client sent none. For a
// client's idempotency key, use PublishRequest.
func (l *Log) Publish(ctx context.Context, rev *events.Revocation, idemKey string) (Published, error) {
	return l.PublishRequest(ctx, rev, Request{ID: idemKey})
}

// PublishRequest is Publish for a client request (see Request): a duplicate
// is the original's answer, or ErrConflict.
func (l *Log) PublishRequest(ctx context.Context, rev *events.Revocation, req Request) (Published, error) {
	if req.ID == "" {
		req.ID = NewIdempotencyKey()
	}
	m, err := l.revokeMsg(rev, time.Now(), req)
	if err != nil {
		return Published{}, err
	}
	p, err := l.publish(ctx, m, req, nil)
	if err == nil && p.Stored == nil {
		p.Stored = m.Data
	}
	return p, err
}

// publish sends m and waits for its ack, retrying with the same message ID
// while the stream has no responder (leader election) until PublishTimeout.
// A duplicate is checked against its original (Request).
func (l *Log) publish(ctx context.Context, m *nats.Msg, req Request, expectSubjSeq *uint64) (Published, error) {
	idemKey := req.ID
	ctx, cancel := context.WithTimeout(ctx, l.cfg.PublishTimeout)
	defer cancel()
	// (no expected-stream header: the subjects belong to this stream alone)
	opts := []jetstream.PublishOpt{jetstream.WithRetryAttempts(0)}
	if idemKey != "" {
		opts = append(opts, jetstream.WithMsgID(idemKey))
	}
	if expectSubjSeq != nil {
		opts = append(opts, jetstream.WithExpectLastSequencePerSubject(*expectSubjSeq))
	}
	wait := 50 * time.Millisecond
	for {
		// each attempt gets a bounded slice of the budget so a lost request
		// is retried instead of eating all of it
		actx, acancel := context.WithTimeout(ctx, min(2*time.Second, l.cfg.PublishTimeout))
		ack, err := l.js.PublishMsg(actx, copyMsg(m), opts...)
		acancel()
		if err == nil && ack.Duplicate {
			return l.original(ctx, ack.Sequence, req)
		}
		if err == nil {
			return Published{Seq: ack.Sequence}, nil
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && !retryableAPIError(apiErr) {
			return Published{}, err
		}
		if l.nc.IsClosed() {
			return Published{}, ErrClosed
		}
		select {
		case <-ctx.Done():
			return Published{}, fmt.Errorf("%w: %v", ErrUnavailable, err) //nolint:errorlint // the sentinel is the contract; the cause is detail
		case <-time.After(wait):
		}
		wait = min(wait*2, 500*time.Millisecond)
	}
}

func retryableAPIError(e *jetstream.APIError) bool {
	// 503: JetStream not ready / no leader; 408: request timeout; an
	// earlier attempt with the same message ID still being replicated
	// (while the stream has no quorum): its outcome is not known yet.
	return e.Code == 503 || e.Code == 408 || e.ErrorCode == 10158 // JSStreamDuplicateMessageConflict
}

// copyMsg gives each attempt a fresh message: PublishMsg sets headers on it.
func copyMsg(m *nats.Msg) *nats.Msg {
	c := nats.NewMsg(m.Subject)
	c.Data = m.Data
	for k, v := range m.Header {
		c.Header[k] = append([]string(nil), v...)
	}
	return c
}

// PublishBatch stores many prepared revocations, pipelining the publishes,
// and returns when every one was acknowledged or failed. results[i] belongs
// to items[i].
func (l *Log) PublishBatch(ctx context.Context, items []Item) []ItemResult {
	results := make([]ItemResult, len(items))
	futures := make([]jetstream.PubAckFuture, len(items))
	now := time.Now()
	for i, it := range items {
		m, err := l.revokeMsg(it.Revocation, now, it.Request)
		if err != nil {
			results[i].Err = err
			continue
		}
		var opts []jetstream.PublishOpt
		if it.Request.ID != "" {
			opts = append(opts, jetstream.WithMsgID(it.Request.ID))
		}
		results[i].Stored = m.Data
		futures[i], results[i].Err = l.js.PublishMsgAsync(m, opts...)
	}
	timeout := time.NewTimer(l.cfg.PublishTimeout)
	defer timeout.Stop()
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			results[i].Seq = ack.Sequence
			if ack.Duplicate {
				results[i].Published, results[i].Err = l.batchOriginal(ctx, ack.Sequence, items[i].Request, results[i].Stored)
			}
		case err := <-f.Err():
			results[i].Err = err
		case <-ctx.Done():
			results[i].Err = fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err()) //nolint:errorlint // the sentinel is the contract; the cause is detail
		case <-timeout.C:
			results[i].Err = ErrUnavailable
			// the timer fired once; every later unanswered item times out too
			timeout.Reset(0)
		}
	}
	// Items that failed with no leader or a lost ack are retried one by one,
	// under their message ID (a new one for an item without: retried within
	// this request, it is stored at most twice, under the same subject).
	for i, it := range items {
		if results[i].Err == nil || errors.Is(results[i].Err, ErrConflict) {
			continue
		}
		var apiErr *jetstream.APIError
		if errors.As(results[i].Err, &apiErr) && !retryableAPIError(apiErr) {
			continue
		}
		stored := results[i].Stored
		results[i].Published, results[i].Err = l.PublishRequest(ctx, it.Revocation, it.Request)
		if errors.Is(results[i].Err, errGone) {
			results[i].Err = nil // as in batchOriginal
		}
		if results[i].Stored == nil {
			results[i].Stored = stored
		}
	}
	return results
}

// batchOriginal is original for an item of a batch: an item whose message
// has since been replaced was stored all the same, at seq, as the first
// answer said; its answer is given again with the JSON of this attempt.
func (l *Log) batchOriginal(ctx context.Context, seq uint64, req Request, stored []byte) (Published, error) {
	p, err := l.original(ctx, seq, req)
	if errors.Is(err, errGone) {
		err = nil
	}
	if p.Stored == nil {
		p.Stored = stored
	}
	return p, err
}

// decodeRecord reads a message's headers; with decode, it also decodes a
// revocation's JSON.
func decodeRecord(subject string, seq uint64, hdr nats.Header, data []byte, stored time.Time, prefix string, decode bool) (Record, error) {
	rec := Record{Seq: seq, Stored: stored, Type: hdr.Get(headerType), Data: data}
	if len(subject) > len(prefix)+1 {
		rec.Key = subject[len(prefix)+1:]
	}
	switch ttl := hdr.Get(headerTTL); ttl {
	case "", "never":
	default:
		if d, err := parseTTL(ttl); err == nil {
			rec.Expires = stored.Add(d)
		}
	}
	switch rec.Type {
	case events.TypeRevoke:
		if !decode {
			break
		}
		var rev events.Revocation
		if err := json.Unmarshal(data, &rev); err != nil {
			return rec, fmt.Errorf("message %d: decode revocation: %w", seq, err)
		}
		rev.Seq = seq
		rec.Revocation = &rev
		if rev.Key != "" {
			rec.Key = rev.Key
		}
	case events.TypeLift:
	default:
		return rec, fmt.Errorf("message %d on %s: unknown type %q", seq, subject, rec.Type)
	}
	return rec, nil
}

func parseTTL(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return time.Duration(n) * time.Second, err
}

// Get returns the live message stored under key: ErrNotFound when there is
// none or it is a lift.
func (l *Log) Get(ctx context.Context, key string) (Record, error) {
	st := l.currentStream()
	raw, err := st.GetLastMsgForSubject(ctx, l.subject(key))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Record{}, ErrNotFound
	}
	if err != nil {
		return Record{}, fmt.Errorf("%w: read %s: %v", ErrUnavailable, key, err) //nolint:errorlint // the sentinel is the contract; the cause is detail
	}
	rec, err := decodeRecord(raw.Subject, raw.Sequence, raw.Header, raw.Data, raw.Time, l.cfg.SubjectPrefix, true)
	if err != nil {
		return Record{}, err
	}
	if rec.Type != events.TypeRevoke || (!rec.Expires.IsZero() && !time.Now().Before(rec.Expires)) {
		return Record{}, ErrNotFound
	}
	return rec, nil
}

// GetSeq returns the message with this sequence, if it is still stored.
func (l *Log) GetSeq(ctx context.Context, seq uint64) (Record, error) {
	raw, err := l.currentStream().GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Record{}, ErrNotFound
	}
	if err != nil {
		return Record{}, err
	}
	return decodeRecord(raw.Subject, raw.Sequence, raw.Header, raw.Data, raw.Time, l.cfg.SubjectPrefix, true)
}

// Lift publishes a lift that replaces the live revocation with this key. It
// lives as long as the revocation would have, so that every subscriber that
// could still hold the revocation learns of the lift. ErrNotFound when no
// live revocation has this key. idemKey becomes the Nats-Msg-Id; for a
// client's idempotency key, use LiftRequest.
func (l *Log) Lift(ctx context.Context, key, actor, reason, idemKey string) (Published, error) {
	return l.LiftRequest(ctx, key, actor, reason, Request{ID: idemKey})
}

// LiftRequest is Lift for a client request (see Request): a duplicate is
// the original lift, or ErrConflict.
func (l *Log) LiftRequest(ctx context.Context, key, actor, reason string, req Request) (Published, error) {
	for attempt := 0; ; attempt++ {
		rec, err := l.Get(ctx, key)
		if err != nil {
			if errors.Is(err, ErrNotFound) && req.ID != "" {
				// a retried lift finds its own lift: answer with it
				if p, ok, err := l.duplicateLift(ctx, key, req); ok || err != nil {
					return p, err
				}
			}
			return Published{}, err
		}
		now := time.Now()
		body, _ := json.Marshal(eventlog.LiftBody{Key: key, Actor: actor, LiftedAt: events.Time{Time: now.UTC()}, Reason: reason})
		m := nats.NewMsg(l.subject(key))
		m.Data = body
		m.Header.Set(headerType, events.TypeLift)
		m.Header.Set(headerTTL, messageTTL(rec.Expires, now))
		setRequest(m, req)
		p, err := l.publish(ctx, m, req, &rec.Seq)
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence && attempt < 3 {
			continue // replaced meanwhile: lift what is there now
		}
		return p, err
	}
}

// duplicateLift reports the lift a retried request already stored: ok when
// the key's last message is a lift stored under this request's ID, with
// ErrConflict when another request stored it.
func (l *Log) duplicateLift(ctx context.Context, key string, req Request) (Published, bool, error) {
	raw, err := l.currentStream().GetLastMsgForSubject(ctx, l.subject(key))
	if err != nil || raw.Header.Get(headerType) != events.TypeLift || raw.Header.Get(jetstream.MsgIDHeader) != req.ID {
		return Published{}, false, nil
	}
	if req.Fingerprint != "" && raw.Header.Get(headerRequest) != req.Fingerprint {
		return Published{}, true, errOtherRequest
	}
	return Published{Seq: raw.Sequence, Duplicate: true, Stored: raw.Data}, true, nil
}

func (l *Log) currentStream() jetstream.Stream {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stream
}

// State asks JetStream for the stream's current position.
func (l *Log) State(ctx context.Context) (State, error) {
	info, err := l.currentStream().Info(ctx)
	if err != nil {
		return State{}, err
	}
	return State{Epoch: l.Epoch(), FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq, Msgs: info.State.Msgs}, nil
}

// Follow delivers every message with a sequence at or after from (from 0 or
// 1: all), in order, then every new one, until ctx ends or fn returns an
// error. caughtUp is called once, when everything stored when Follow started
// has been delivered (also when there was nothing).
func (l *Log) Follow(ctx context.Context, from uint64, fn func(Record) error, caughtUp func()) error {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if from > 1 {
		cfg = jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from}
	}
	cons, err := l.currentStream().OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("create consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()

	var (
		once      sync.Once
		processed atomic.Uint64 // highest sequence handed to fn
	)
	if from > 1 {
		processed.Store(from - 1)
	}
	signal := func() { once.Do(caughtUp) }
	// A watcher asks the stream whether anything is stored after what was
	// processed. Until caught up, often: an empty stream delivers nothing,
	// and the last messages may expire before they are read, so "nothing
	// after" is how catching up ends. Afterwards, every second: a consumer
	// that has not moved for stallAfter although there is something to
	// read has stalled (seen while a cluster forms or fails over; its own
	// heartbeats would notice only later), and Follow returns ErrStalled so
	// that the caller starts a new one.
	var stalled atomic.Bool
	go func() {
		caught := false
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		last, stuckSince := processed.Load(), time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			p := processed.Load()
			more, err := l.HasAfter(ctx, p)
			switch {
			case err != nil:
			case !more:
				if !caught {
					caught = true
					signal()
					t.Reset(time.Second)
				}
				stuckSince = time.Now()
			case p != last:
				stuckSince = time.Now()
			case time.Since(stuckSince) > stallAfter:
				stalled.Store(true)
				it.Stop()
				return
			}
			last = p
		}
	}()

	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if stalled.Load() {
				return ErrStalled
			}
			return fmt.Errorf("follow stream: %w", err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("message metadata: %w", err)
		}
		rec, err := decodeRecord(msg.Subject(), md.Sequence.Stream, msg.Headers(), msg.Data(), md.Timestamp, l.cfg.SubjectPrefix, false)
		rec.Pending = md.NumPending
		if err != nil {
			l.log.Error("skipping undecodable message", "seq", md.Sequence.Stream, "err", err)
		} else if err := fn(rec); err != nil {
			return err
		}
		processed.Store(md.Sequence.Stream)
		if md.NumPending == 0 {
			signal()
		}
	}
}

// HasAfter reports whether the stream stores a message with a sequence
// above seq: a follower whose last sequence is seq has something to read.
func (l *Log) HasAfter(ctx context.Context, seq uint64) (bool, error) {
	_, ok, err := l.NextAfter(ctx, seq)
	return ok, err
}

// NextAfter returns the sequence of the first message stored after seq,
// ok false when there is none. The stream leader answers: a direct get
// (the stream allows them) may be served by a replica that has not yet
// stored what the leader acknowledged, and a reader catching up with the
// acknowledged writes would then stop short.
func (l *Log) NextAfter(ctx context.Context, seq uint64) (next uint64, ok bool, err error) {
	req, _ := json.Marshal(struct {
		Seq        uint64 `json:"seq"`
		NextBySubj string `json:"next_by_subj"`
	}{seq + 1, l.cfg.SubjectPrefix + ".>"})
	msg, err := l.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+l.cfg.StreamName, req)
	if err != nil {
		return 0, false, fmt.Errorf("next message after %d: %w", seq, err)
	}
	var resp struct {
		Error   *jetstream.APIError `json:"error"`
		Message *struct {
			Seq uint64 `json:"seq"`
		} `json:"message"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return 0, false, fmt.Errorf("next message after %d: %w", seq, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return 0, false, nil
	case resp.Error != nil:
		return 0, false, fmt.Errorf("next message after %d: %w", seq, resp.Error)
	case resp.Message == nil:
		return 0, false, fmt.Errorf("next message after %d: empty answer", seq)
	}
	return resp.Message.Seq, true, nil
}

// StreamLeader names the server that leads the stream (its NATS server
// name), or "" outside a cluster.
func (l *Log) StreamLeader(ctx context.Context) (string, error) {
	info, err := l.currentStream().Info(ctx)
	if err != nil {
		return "", err
	}
	if info.Cluster == nil {
		return "", nil
	}
	return info.Cluster.Leader, nil
}

// Healthy reports whether the connection to NATS is up.
func (l *Log) Healthy() bool { return l.nc.IsConnected() }

// Close drains the client connection, then stops the embedded server.
func (l *Log) Close() error {
	var err error
	if l.nc != nil && !l.nc.IsClosed() {
		done := make(chan struct{})
		l.nc.SetClosedHandler(func(*nats.Conn) { close(done) })
		if err = l.nc.Drain(); err == nil {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				l.nc.Close()
			}
		} else {
			l.nc.Close()
		}
	}
	l.shutdownServer()
	return err
}

func (l *Log) shutdownServer() {
	if l.ns != nil {
		l.ns.Shutdown()
		l.ns.WaitForShutdown()
	}
	// only once the server no longer writes to the file store
	l.lock.release()
}

// Open is EnsureStream (eventlog.Log).
func (l *Log) Open(ctx context.Context) error { return l.EnsureStream(ctx) }
