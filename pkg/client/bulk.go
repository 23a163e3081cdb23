package client

// Bulk: many jtis in batches, resumable.
//
// The input is read once, front to back, and cut into batches of at most
// BatchSize jtis (and at most MaxBody bytes of JSON). Each batch is posted
// with an Idempotency-Key made of the run ID, the batch's starting byte
// offset and a digest of its body, so re-sending a batch that may or may
// not have been stored is answered "duplicate" for what was stored, and a
// batch whose content differs can never be mistaken for one that was sent.
//
// Batches are acknowledged out of order when several are in flight; the
// Checkpoint only ever moves over a contiguous prefix of acknowledged
// batches. A new run given that Checkpoint checks that the input still
// starts with those bytes, skips them, and continues; with the same RunID
// the batches that were in flight when the first run stopped are sent again
// with the same keys.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/revocast/revocast/pkg/events"
)

// Defaults and limits of a Bulk.
const (
	DefaultBulkBatchSize   = 5000
	DefaultBulkConcurrency = 2
	DefaultBulkRetries     = 5
	// DefaultBulkMaxBody keeps each batch's body within the broadcaster's
	// default --max-body-bytes (1 MiB).
	DefaultBulkMaxBody = 1 << 20
	// MaxJTILineBytes bounds one line of the input.
	MaxJTILineBytes = 64 << 10
)

// Bulk revokes every jti of a line-oriented input (one jti a line; blank
// lines and # comments are skipped) in batches, several in flight, each
// retried with its own Idempotency-Key. Make one with NewBulk and adjust
// its fields before Run; a Bulk runs once at a time.
type Bulk struct {
	Client *Client
	// RunID names the run in the batches' idempotency keys: a resumed run
	// must use the interrupted one's. NewBulk makes a random one.
	RunID string
	// Iss, Reason and ExpiresAt go with every jti.
	Iss, Reason string
	ExpiresAt   time.Time

	BatchSize   int // jtis per request
	Concurrency int // batches in flight
	MaxBody     int // bytes of JSON per request
	// Retries is how many times a batch is retried after a 408, 429, 5xx or
	// network failure; RetryBase the delay before the first retry, doubled
	// for each further one (with jitter, at least the Retry-After), up to
	// MaxRetryDelay.
	Retries       int
	RetryBase     time.Duration
	MaxRetryDelay time.Duration

	// Resume, when set, is where an interrupted run got: Run checks that
	// the input starts with what was acknowledged (ErrResumeMismatch
	// otherwise) and skips it.
	Resume *Checkpoint
	// OnCommit is called, on Run's goroutine, each time the acknowledged
	// prefix grows (a state file is written here); an error stops the run.
	OnCommit func(Checkpoint) error
	// OnRetry is called before each retry of a batch.
	OnRetry func(BulkRetry)
	// OnStart is called once the input is checked against Resume, before
	// the first batch is sent.
	OnStart func()
}

// NewBulk returns a Bulk with the default settings and a new run ID.
func NewBulk(c *Client) *Bulk {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &Bulk{
		Client: c, RunID: hex.EncodeToString(b[:]),
		BatchSize: DefaultBulkBatchSize, Concurrency: DefaultBulkConcurrency, MaxBody: DefaultBulkMaxBody,
		Retries: DefaultBulkRetries, RetryBase: DefaultRetryBase, MaxRetryDelay: DefaultMaxRetryDelay,
	}
}

// Checkpoint is how far the acknowledged batches got: every byte of the
// input before Offset is acknowledged.
type Checkpoint struct {
	Offset       int64  // bytes
	Lines        int64  // lines up to Offset
	Done         int64  // jtis up to Offset
	PrefixSHA256 string // hex SHA-256 of the bytes before Offset
	// Totals of the answers up to Offset.
	Created, Duplicates, Expired int64
}

// EmptyPrefixSHA256 is the PrefixSHA256 of a run that has not started.
var EmptyPrefixSHA256 = hex.EncodeToString(sha256.New().Sum(nil))

// BulkRetry describes a batch about to be retried.
type BulkRetry struct {
	FirstLine int64 // the first line of the input the batch covers
	Attempt   int   // 1 for the first retry
	Retries   int
	Delay     time.Duration
	Err       error // why the previous attempt failed
}

// BulkResult is what a Run did.
type BulkResult struct {
	Checkpoint // where it got, totals included
	// This run's share.
	Acked, Created, Duplicates, Expired int64
	// SkippedLines counts blank and comment lines this run read.
	SkippedLines int64
	Elapsed      time.Duration
}

// ErrResumeMismatch is returned by Run when the input does not start with
// what Resume says was acknowledged.
var ErrResumeMismatch = errors.New("client: the input changed since the interrupted run")

// LineError is a line of the input that cannot be sent.
type LineError struct {
	Line    int64
	Problem string
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Problem) }

// BatchError is a batch that failed: Err is the last attempt's error (an
// *Error, a *TransportError, or an answer that does not account for every
// item).
type BatchError struct {
	FirstLine int64
	Attempts  int
	// Exhausted is set when the failure was retryable and the retries ran
	// out.
	Exhausted bool
	Err       error
}

func (e *BatchError) Error() string {
	if e.Exhausted {
		return fmt.Sprintf("batch at line %d: giving up after %d attempts: %v", e.FirstLine, e.Attempts, e.Err)
	}
	return fmt.Sprintf("batch at line %d: %v", e.FirstLine, e.Err)
}

func (e *BatchError) Unwrap() error { return e.Err }

// TooLarge reports whether the server refused the batch for its size: a
// smaller BatchSize would do.
func (e *BatchError) TooLarge() bool {
	var ae *Error
	return errors.As(e.Err, &ae) && (ae.Status == http.StatusRequestEntityTooLarge ||
		(ae.Status == http.StatusBadRequest && strings.Contains(string(ae.Body), "split the batch")))
}

// CountJTIs counts the jtis of an input as Run reads them.
func CountJTIs(r io.Reader) (int64, error) {
	jr := newJTIReader(r)
	jr.h = nopHash{}
	var n int64
	for {
		if _, err := jr.next(); err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
		n++
	}
}

// Run sends every jti of in after Resume. It stops at the first failure
// (after the batches in flight end), or when ctx ends: the result says
// how far it got either way, and the error is then ctx's.
func (b *Bulk) Run(ctx context.Context, in io.Reader) (BulkResult, error) {
	switch {
	case b.Client == nil:
		return BulkResult{}, errors.New("client: Bulk without a Client")
	case b.RunID == "":
		return BulkResult{}, errors.New("client: Bulk without a RunID")
	case b.BatchSize < 1 || b.Concurrency < 1 || b.Retries < 0 || b.MaxBody < 1024:
		return BulkResult{}, errors.New("client: Bulk: want BatchSize, Concurrency >= 1, Retries >= 0, MaxBody >= 1024")
	}
	jr := newJTIReader(in)
	var res BulkResult
	res.PrefixSHA256 = EmptyPrefixSHA256
	if r := b.Resume; r != nil {
		sum, jtis, err := jr.skip(r.Offset)
		if err != nil || sum != r.PrefixSHA256 || jtis != r.Done {
			return BulkResult{}, ErrResumeMismatch
		}
		res.Checkpoint = *r
	}
	shared := map[string]string{}
	if b.Iss != "" {
		shared["iss"] = b.Iss
	}
	if !b.ExpiresAt.IsZero() {
		shared["expires_at"] = b.ExpiresAt.UTC().Format(time.RFC3339Nano)
	}
	if b.Reason != "" {
		shared["reason"] = b.Reason
	}
	bt := newBatcher(jr, b.RunID, b.BatchSize, b.MaxBody, shared)
	if b.OnStart != nil {
		b.OnStart()
	}
	start := time.Now()

	// The reader runs on its own so that the end of ctx is noticed even
	// while it waits on its input.
	batches := make(chan *bulkBatch)
	stopReading := make(chan struct{})
	defer close(stopReading)
	var readErr error
	go func() {
		defer close(batches)
		for {
			bb, err := bt.next()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					readErr = err
				}
				return
			}
			select {
			case batches <- bb:
			case <-stopReading:
				return
			}
		}
	}()

	results := make(chan *bulkBatch, b.Concurrency)
	var (
		queue    []*bulkBatch // sent, in input order, not yet committed
		inflight int
		eof      bool
		failure  error // the first error: stop sending
	)
	ctxDone := ctx.Done()
	// Each iteration receives one batch, one result or the end of ctx; it
	// stops when nothing is in flight and nothing more will be sent.
	for {
		var next <-chan *bulkBatch
		if !eof && failure == nil && ctx.Err() == nil && inflight < b.Concurrency {
			next = batches
		}
		if next == nil && inflight == 0 {
			break
		}
		select {
		case bb, ok := <-next:
			if !ok {
				eof = true
				if readErr != nil && failure == nil {
					failure = readErr
				}
				continue
			}
			queue = append(queue, bb)
			inflight++
			go func() {
				bb.err = b.send(ctx, bb)
				results <- bb
			}()
		case bb := <-results:
			inflight--
			bb.acked = true
			if bb.err != nil && failure == nil && ctx.Err() == nil {
				failure = bb.err
			}
			// commit the acknowledged prefix
			for len(queue) > 0 && queue[0].acked && queue[0].err == nil {
				d := queue[0]
				queue = queue[1:]
				res.Offset, res.Lines, res.PrefixSHA256 = d.end, d.endLine, d.prefix
				res.Done += int64(d.items)
				res.Checkpoint.Created += d.created
				res.Checkpoint.Duplicates += d.duplicates
				res.Checkpoint.Expired += d.expired
				res.Created += d.created
				res.Duplicates += d.duplicates
				res.Expired += d.expired
				res.Acked += int64(d.items)
				if b.OnCommit != nil {
					if err := b.OnCommit(res.Checkpoint); err != nil && failure == nil {
						failure = err
					}
				}
			}
		case <-ctxDone:
			ctxDone = nil // in-flight requests end with ctx; wait for them
		}
	}
	res.SkippedLines = jr.skipped
	res.Elapsed = time.Since(start)
	switch {
	case failure != nil:
		return res, failure
	case !eof || len(queue) > 0:
		if err := ctx.Err(); err != nil {
			return res, err
		}
		return res, context.Canceled
	}
	return res, nil
}

// send posts a batch with retries.
func (b *Bulk) send(ctx context.Context, bb *bulkBatch) error {
	req := Request{Method: http.MethodPost, Path: pathRevocations, Body: bb.body, IdempotencyKey: bb.idemKey}
	// Each attempt either returns or waits; attempts are bounded by Retries.
	for attempt := 0; ; attempt++ {
		resp, err := b.Client.Do(ctx, req)
		var cause error
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return err
			}
			cause = err
		case resp.Status == http.StatusOK || resp.Status == http.StatusCreated:
			if err := bb.record(resp.Body); err != nil {
				return &BatchError{FirstLine: bb.firstLine, Attempts: attempt + 1, Err: err}
			}
			return nil
		case resp.Status >= 500 || resp.Status == http.StatusTooManyRequests || resp.Status == http.StatusRequestTimeout:
			e := errorOf(req.Method, req.Path, resp)
			cause, wait = e, e.RetryAfter
		default:
			return &BatchError{FirstLine: bb.firstLine, Attempts: attempt + 1, Err: errorOf(req.Method, req.Path, resp)}
		}
		if attempt >= b.Retries {
			return &BatchError{FirstLine: bb.firstLine, Attempts: attempt + 1, Exhausted: true, Err: cause}
		}
		delay := b.RetryBase << min(attempt, 10)
		delay = min(max(delay/2+mrand.N(delay/2+1), wait), max(b.MaxRetryDelay, b.RetryBase))
		if b.OnRetry != nil {
			b.OnRetry(BulkRetry{FirstLine: bb.firstLine, Attempt: attempt + 1, Retries: b.Retries, Delay: delay, Err: cause})
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// jtiReader reads the input line by line, counting bytes and lines and
// hashing every byte it consumes.
type jtiReader struct {
	r       *bufio.Reader
	h       hash.Hash
	offset  int64
	line    int64
	skipped int64 // blank and comment lines
	eof     bool
}

func newJTIReader(r io.Reader) *jtiReader {
	return &jtiReader{r: bufio.NewReaderSize(r, MaxJTILineBytes), h: sha256.New()}
}

// skip consumes n bytes (the part of the input an earlier run finished)
// and returns their SHA-256 and the jtis in them.
func (jr *jtiReader) skip(n int64) (sum string, jtis int64, err error) {
	// Each round consumes a line or returns.
	for jr.offset < n {
		raw, err := jr.r.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return "", 0, &LineError{jr.line + 1, fmt.Sprintf("longer than %d bytes", MaxJTILineBytes)}
		case len(raw) == 0 && err == io.EOF:
			return "", 0, io.ErrUnexpectedEOF
		case err != nil && err != io.EOF:
			return "", 0, err
		case jr.offset+int64(len(raw)) > n:
			return "", 0, errors.New("the resume offset is not at the start of a line")
		}
		jr.consume(raw)
		if s := strings.TrimSpace(string(raw)); s != "" && !strings.HasPrefix(s, "#") {
			jtis++
		}
	}
	return hex.EncodeToString(jr.h.Sum(nil)), jtis, nil
}

func (jr *jtiReader) consume(raw []byte) {
	jr.h.Write(raw)
	jr.offset += int64(len(raw))
	jr.line++
}

// next returns the next jti, or io.EOF.
func (jr *jtiReader) next() (string, error) {
	for !jr.eof {
		raw, err := jr.r.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return "", &LineError{jr.line + 1, fmt.Sprintf("longer than %d bytes", MaxJTILineBytes)}
		case err == io.EOF:
			jr.eof = true
		case err != nil:
			return "", fmt.Errorf("read line %d: %w", jr.line+1, err)
		}
		if len(raw) == 0 {
			continue
		}
		jr.consume(raw)
		s := strings.TrimSpace(string(raw))
		if s == "" || strings.HasPrefix(s, "#") {
			jr.skipped++
			continue
		}
		if len(s) > events.MaxValueLength {
			return "", &LineError{jr.line, fmt.Sprintf("a jti is at most %d bytes", events.MaxValueLength)}
		}
		if !utf8.ValidString(s) {
			return "", &LineError{jr.line, "not valid UTF-8"}
		}
		return s, nil
	}
	return "", io.EOF
}

// nopHash stands in for SHA-256 where no digest is needed.
type nopHash struct{}

func (nopHash) Write(p []byte) (int, error) { return len(p), nil }
func (nopHash) Sum(b []byte) []byte         { return b }
func (nopHash) Reset()                      {}
func (nopHash) Size() int                   { return 0 }
func (nopHash) BlockSize() int              { return 64 }

// bulkBatch is one request's worth of jtis.
type bulkBatch struct {
	start     int64 // byte offset where the batch's lines start
	end       int64 // byte offset after its last jti's line
	firstLine int64
	endLine   int64 // lines up to end
	items     int
	prefix    string // SHA-256 of the input's bytes [0, end)
	body      []byte
	idemKey   string

	created, duplicates, expired int64
	err                          error
	acked                        bool
}

// batcher cuts the input into batches.
type batcher struct {
	jr       *jtiReader
	runID    string
	size     int
	itemHead []byte // `{"jti":`
	itemTail []byte // the shared fields and `}`
	maxItem  int    // the largest an encoded item can be
	maxBody  int
}

func newBatcher(jr *jtiReader, runID string, size, maxBody int, shared map[string]string) *batcher {
	tail := []byte{}
	for _, k := range []string{"iss", "expires_at", "reason"} {
		if v, ok := shared[k]; ok {
			enc, _ := json.Marshal(v)
			tail = append(tail, `,"`+k+`":`...)
			tail = append(tail, enc...)
		}
	}
	tail = append(tail, '}')
	b := &batcher{jr: jr, runID: runID, size: size, itemHead: []byte(`{"jti":`), itemTail: tail, maxBody: maxBody}
	// worst case: every byte of a jti escaped as \u00XX, quotes, a comma
	b.maxItem = len(b.itemHead) + 6*events.MaxValueLength + 2 + len(tail) + 1
	return b
}

// next returns the next batch, or io.EOF after the last.
func (bt *batcher) next() (*bulkBatch, error) {
	b := &bulkBatch{start: bt.jr.offset, firstLine: bt.jr.line + 1}
	body := make([]byte, 0, 64<<10)
	body = append(body, `{"revocations":[`...)
	for b.items < bt.size && (b.items == 0 || len(body)+bt.maxItem+2 <= bt.maxBody) {
		jti, err := bt.jr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if b.items > 0 {
			body = append(body, ',')
		}
		body = append(body, bt.itemHead...)
		enc, _ := json.Marshal(jti)
		body = append(body, enc...)
		body = append(body, bt.itemTail...)
		b.items++
	}
	if b.items == 0 {
		return nil, io.EOF
	}
	body = append(body, "]}"...)
	b.body = body
	b.end, b.endLine = bt.jr.offset, bt.jr.line
	b.prefix = hex.EncodeToString(bt.jr.h.Sum(nil))
	digest := sha256.Sum256(body)
	b.idemKey = "revocast-bulk/" + bt.runID + "/" + strconv.FormatInt(b.start, 10) + "/" + hex.EncodeToString(digest[:12])
	return b, nil
}

// record reads a batch answer and checks that it accounts for every item.
func (b *bulkBatch) record(body []byte) error {
	var a BatchResult
	if err := json.Unmarshal(body, &a); err != nil {
		return fmt.Errorf("unexpected answer from the server: %w", err)
	}
	if len(a.Revocations) != b.items || a.Failed != 0 || a.Created+a.Duplicates+a.Expired != int64(b.items) {
		return fmt.Errorf("the server acknowledged %d created, %d duplicate, %d expired, %d failed of %d items",
			a.Created, a.Duplicates, a.Expired, a.Failed, b.items)
	}
	b.created, b.duplicates, b.expired = a.Created, a.Duplicates, a.Expired
	return nil
}
