package main

// revoke --jti-file: many jtis in batches, resumable.
//
// The file is read once, front to back, and cut into batches of at most
// --batch-size jtis (and at most maxBulkBody bytes of JSON). Each batch is
// posted with an Idempotency-Key made of the run ID, the batch's starting
// byte offset and a digest of its body, so re-sending a batch that may or may
// not have been stored is answered "duplicate" for what was stored, and a
// batch whose content differs can never be mistaken for one that was sent.
//
// A small JSON state file records how far the acknowledged batches got: a
// byte offset, the line and jti counts up to it, and the SHA-256 of those
// bytes. Batches are acknowledged out of order when two are in flight; the
// state only ever moves over a contiguous prefix of acknowledged batches. A
// new run with the same state file checks that the file still starts with
// those bytes, skips them, and continues with the same run ID, so the batches
// that were in flight when the first run stopped are sent again with the same
// keys. The state file is written before the first batch is sent and removed
// when the whole file is acknowledged.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/revocast/revocast/internal/envflag"
	"github.com/revocast/revocast/pkg/events"
)

// Defaults and limits of bulk revocation.
const (
	defaultBatchSize   = 5000
	maxBatchSizeFlag   = 100_000
	defaultConcurrency = 2
	defaultRetries     = 5
	// maxBulkBody keeps each batch's body within the broadcaster's default
	// --max-body-bytes (1 MiB; a test checks the two agree).
	maxBulkBody = 1 << 20
	// maxLineBytes bounds one line of the jti file.
	maxLineBytes = 64 << 10
	// bulkStateVersion is the format of the state file.
	bulkStateVersion = 1
	// maxRetryDelay caps the backoff between attempts at one batch.
	maxRetryDelay = 30 * time.Second
)

// Timing of bulk runs; tests shorten them.
var (
	bulkRetryBase     = 500 * time.Millisecond
	bulkProgressLines = 5 * time.Second
	bulkProgressBar   = 200 * time.Millisecond
)

type bulkFlags struct {
	file        string
	state       string
	batchSize   int
	concurrency int
	retries     int
	progress    string
}

var bulkOnlyFlags = []string{"state", "batch-size", "concurrency", "retries", "progress"}

func (b *bulkFlags) add(fs *envflag.Set) {
	fs.FlagSet.StringVar(&b.file, "jti-file", "", "revoke every jti in this file, one per line (- for stdin); blank lines and # comments are skipped")
	fs.FlagSet.StringVar(&b.state, "state", "", "with --jti-file: the resume state file (default FILE.progress; none for stdin unless given)")
	fs.FlagSet.IntVar(&b.batchSize, "batch-size", defaultBatchSize, "with --jti-file: jtis per request (the server takes at most --max-batch, 10000 by default)")
	fs.FlagSet.IntVar(&b.concurrency, "concurrency", defaultConcurrency, "with --jti-file: batches in flight at once (1-8)")
	fs.FlagSet.IntVar(&b.retries, "retries", defaultRetries, "with --jti-file: retries of a batch that failed (5xx, 429, network) before giving up")
	fs.FlagSet.StringVar(&b.progress, "progress", "auto", "with --jti-file: auto (a bar on a terminal, else a line every 5s), bar, lines or none")
}

// set reports whether a bulk-only flag was given.
func (b *bulkFlags) set(fs *envflag.Set) bool {
	return slices.ContainsFunc(bulkOnlyFlags, func(name string) bool { return flagGiven(fs, name) })
}

// flagGiven reports whether the flag was on the command line.
func flagGiven(fs *envflag.Set, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// bulkState is the resume state file.
type bulkState struct {
	Version int    `json:"version"`
	RunID   string `json:"run_id"`
	File    string `json:"file"`
	// The parameters every item of the run shares; a resumed run must use
	// the same. ExpiresAtArg is the flag as given: "+90m" was resolved once,
	// into ExpiresAt, when the run started.
	Iss          string `json:"iss,omitempty"`
	Reason       string `json:"reason,omitempty"`
	ExpiresAtArg string `json:"expires_at_arg,omitempty"`
	ExpiresAt    string `json:"expires_at,omitempty"`
	BatchSize    int    `json:"batch_size"`
	// How far the acknowledged batches got.
	Offset       int64  `json:"offset"`
	Lines        int64  `json:"lines"`
	Done         int64  `json:"done"`
	PrefixSHA256 string `json:"prefix_sha256"`
	Created      int64  `json:"created"`
	Duplicates   int64  `json:"duplicates"`
	Expired      int64  `json:"expired"`

	StartedAt time.Time `json:"started_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func readState(path string) (*bulkState, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, usageErr("state file: %v", err)
	}
	var st bulkState
	if err := json.Unmarshal(b, &st); err != nil || st.Version != bulkStateVersion || st.RunID == "" || st.Offset < 0 || st.BatchSize <= 0 {
		return nil, usageErr("state file %s is not a revocast resume state; delete it to start over", path)
	}
	return &st, nil
}

// writeState replaces the state file atomically and durably: a crash
// leaves the old state or the new one, never a torn file.
func writeState(path string, st *bulkState) error {
	st.UpdatedAt = time.Now().UTC()
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write state file: %w", err)
	}
	return nil
}

func newRunID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// jtiReader reads the jti file line by line, counting bytes and lines and
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
	return &jtiReader{r: bufio.NewReaderSize(r, maxLineBytes), h: sha256.New()}
}

// skip consumes n bytes (the part of the file an earlier run finished) and
// returns their SHA-256 and the lines and jtis in them.
func (jr *jtiReader) skip(n int64) (sum string, jtis int64, err error) {
	// Each round consumes a line or returns.
	for jr.offset < n {
		raw, err := jr.r.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return "", 0, fmt.Errorf("line %d: longer than %d bytes", jr.line+1, maxLineBytes)
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
			return "", &exitError{exitInvalid, fmt.Errorf("line %d: longer than %d bytes", jr.line+1, maxLineBytes)}
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
			return "", &exitError{exitInvalid, fmt.Errorf("line %d: a jti is at most %d bytes", jr.line, events.MaxValueLength)}
		}
		if !utf8.ValidString(s) {
			return "", &exitError{exitInvalid, fmt.Errorf("line %d: not valid UTF-8", jr.line)}
		}
		return s, nil
	}
	return "", io.EOF
}

// bulkBatch is one request's worth of jtis.
type bulkBatch struct {
	start     int64 // byte offset where the batch's lines start
	end       int64 // byte offset after its last jti's line
	firstLine int64
	endLine   int64 // lines up to end
	items     int
	prefix    string // SHA-256 of the file's bytes [0, end)
	body      []byte
	idemKey   string

	created, duplicates, expired int64
	err                          error
	acked                        bool
}

// batcher cuts the file into batches.
type batcher struct {
	jr       *jtiReader
	runID    string
	size     int
	itemHead []byte // `{"jti":`
	itemTail []byte // the shared fields and `}`
	maxItem  int    // the largest an encoded item can be
	maxBody  int
}

func newBatcher(jr *jtiReader, runID string, size int, shared map[string]string) *batcher {
	tail := []byte{}
	for _, k := range []string{"iss", "expires_at", "reason"} {
		if v, ok := shared[k]; ok {
			enc, _ := json.Marshal(v)
			tail = append(tail, `,"`+k+`":`...)
			tail = append(tail, enc...)
		}
	}
	tail = append(tail, '}')
	b := &batcher{jr: jr, runID: runID, size: size, itemHead: []byte(`{"jti":`), itemTail: tail, maxBody: maxBulkBody}
	// worst case: every byte of a jti escaped as \u00XX, quotes, a comma
	b.maxItem = len(b.itemHead) + 6*events.MaxValueLength + 2 + len(tail) + 1
	return b
}

// next returns the next batch, or io.EOF after the last.
func (bt *batcher) next() (*bulkBatch, error) {
	b := &bulkBatch{start: bt.jr.offset, firstLine: bt.jr.line + 1}
	body := make([]byte, 0, 64<<10)
	body = append(body, `{"revocations":[`...)
	for b.items < bt.size && len(body)+bt.maxItem+2 <= bt.maxBody {
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

// lockedWriter serialises the progress display and messages on stderr.
type lockedWriter struct {
	mu  sync.Mutex
	w   io.Writer
	bar bool // a progress bar is on the current line
}

func (l *lockedWriter) message(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bar {
		_, _ = io.WriteString(l.w, "\r\x1b[K")
		l.bar = false
	}
	fmt.Fprintf(l.w, format, a...)
}

// bulkProgress shows done/total, rate and ETA on stderr.
type bulkProgress struct {
	out       *lockedWriter
	mode      string // bar, lines or none
	done      atomic.Int64
	total     atomic.Int64 // -1 until counted (or for stdin)
	startDone int64
	start     time.Time
}

func (p *bulkProgress) run(stop <-chan struct{}, finished chan<- struct{}) {
	defer close(finished)
	if p.mode == "none" {
		<-stop
		return
	}
	every := bulkProgressLines
	if p.mode == "bar" {
		every = bulkProgressBar
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			if p.mode == "bar" {
				p.render(true)
			}
			return
		case <-t.C:
			p.render(false)
		}
	}
}

func (p *bulkProgress) render(final bool) {
	done, total := p.done.Load(), p.total.Load()
	elapsed := time.Since(p.start)
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(done-p.startDone) / s
	}
	eta := ""
	if total >= 0 && rate > 0 && done < total {
		eta = "  ETA " + humanDuration(time.Duration(float64(total-done)/rate*float64(time.Second)))
	}
	p.out.mu.Lock()
	defer p.out.mu.Unlock()
	if p.mode == "lines" {
		if total >= 0 {
			fmt.Fprintf(p.out.w, "revoke: %d/%d jtis (%d%%), %.0f/s%s\n", done, total, percent(done, total), rate, eta)
		} else {
			fmt.Fprintf(p.out.w, "revoke: %d jtis, %.0f/s\n", done, rate)
		}
		return
	}
	const width = 30
	var line string
	if total > 0 {
		n := int(int64(width) * min(done, total) / total)
		line = fmt.Sprintf("\r[%s%s] %d/%d %3d%%  %.0f/s%s\x1b[K", strings.Repeat("#", n), strings.Repeat("-", width-n), done, total, percent(done, total), rate, eta)
	} else {
		line = fmt.Sprintf("\r%d jtis  %.0f/s\x1b[K", done, rate)
	}
	_, _ = io.WriteString(p.out.w, line)
	p.out.bar = true
	if final {
		_, _ = io.WriteString(p.out.w, "\n")
		p.out.bar = false
	}
}

func percent(done, total int64) int64 {
	if total <= 0 {
		return 100
	}
	return 100 * min(done, total) / total
}

// countJTIs counts the jtis of a regular file, for the progress display.
func countJTIs(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	jr := newJTIReader(f)
	jr.h = nopHash{}
	var n int64
	for {
		if _, err := jr.next(); err != nil {
			if errors.Is(err, io.EOF) {
				return n
			}
			return -1
		}
		n++
	}
}

// nopHash stands in for SHA-256 where no digest is needed.
type nopHash struct{}

func (nopHash) Write(p []byte) (int, error) { return len(p), nil }
func (nopHash) Sum(b []byte) []byte         { return b }
func (nopHash) Reset()                      {}
func (nopHash) Size() int                   { return 0 }
func (nopHash) BlockSize() int              { return 64 }

// bulkSender posts batches with retries.
type bulkSender struct {
	c       *apiConn
	retries int
	out     *lockedWriter
}

func (s *bulkSender) send(ctx context.Context, b *bulkBatch) error {
	what := fmt.Sprintf("batch at line %d", b.firstLine)
	hdr := map[string]string{"Idempotency-Key": b.idemKey}
	// Each attempt either returns or waits; attempts are bounded by
	// --retries.
	for attempt := 0; ; attempt++ {
		a, err := s.c.do(ctx, "POST", "/v1/revocations", nil, b.body, hdr)
		var cause error
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return err
			}
			cause = err
		case a.status == 200 || a.status == 201:
			return b.record(a.body, what)
		case a.status >= 500 || a.status == 429 || a.status == 408:
			cause = s.c.statusError(a, what)
			if n, err := strconv.Atoi(strings.TrimSpace(a.header.Get("Retry-After"))); err == nil && n > 0 {
				wait = time.Duration(n) * time.Second
			}
		default:
			err := s.c.statusError(a, what)
			if a.status == 413 || (a.status == 400 && strings.Contains(string(a.body), "split the batch")) {
				err = fmt.Errorf("%w; run again with a smaller --batch-size", err)
			}
			return err
		}
		if attempt >= s.retries {
			return fmt.Errorf("giving up after %d attempts: %w", attempt+1, cause)
		}
		delay := bulkRetryBase << min(attempt, 10)
		delay = min(max(delay/2+mrand.N(delay/2+1), wait), maxRetryDelay)
		s.out.message("revoke: %v; retrying in %v (%d/%d)\n", cause, delay.Round(time.Millisecond), attempt+1, s.retries)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return &exitError{exitFailure, fmt.Errorf("%s: %w", what, errInterrupted)}
		case <-t.C:
		}
	}
}

// record reads a batch answer and checks that it accounts for every item.
func (b *bulkBatch) record(body []byte, what string) error {
	var a struct {
		Revocations []struct {
			Status string `json:"status"`
		} `json:"revocations"`
		Created    int64 `json:"created"`
		Duplicates int64 `json:"duplicates"`
		Expired    int64 `json:"expired"`
		Failed     int64 `json:"failed"`
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return &exitError{exitFailure, fmt.Errorf("%s: unexpected answer from the server: %w", what, err)}
	}
	if len(a.Revocations) != b.items || a.Failed != 0 || a.Created+a.Duplicates+a.Expired != int64(b.items) {
		return &exitError{exitFailure, fmt.Errorf("%s: the server acknowledged %d created, %d duplicate, %d expired, %d failed of %d items",
			what, a.Created, a.Duplicates, a.Expired, a.Failed, b.items)}
	}
	b.created, b.duplicates, b.expired = a.Created, a.Duplicates, a.Expired
	return nil
}

// runBulk is revoke --jti-file.
func runBulk(ctx context.Context, env cliEnv, fs *envflag.Set, c *apiConn, f *revokeFlags, expires, now time.Time) error {
	bf := &f.bulk
	switch {
	case f.m.jti != "" || f.m.sub != "" || f.m.kid != "" || len(f.m.claims) > 0 || f.m.ban || f.issuedBefore != "":
		return usageErr("--jti-file revokes jtis: only --iss, --expires-at and --reason apply to every one of them")
	case f.idemKey != "":
		return usageErr("--idempotency-key does not go with --jti-file: each batch gets its own, derived from the run")
	case bf.batchSize < 1 || bf.batchSize > maxBatchSizeFlag:
		return usageErr("--batch-size must be 1 to %d", maxBatchSizeFlag)
	case bf.concurrency < 1 || bf.concurrency > 8:
		return usageErr("--concurrency must be 1 to 8")
	case bf.retries < 0 || bf.retries > 100:
		return usageErr("--retries must be 0 to 100")
	}
	mode := bf.progress
	switch mode {
	case "auto":
		mode = "lines"
		if isTerminal(env.stderr) && env.getenv("TERM") != "dumb" {
			mode = "bar"
		}
	case "bar", "lines", "none":
	default:
		return usageErr("--progress %q: want auto, bar, lines or none", bf.progress)
	}
	// The shared fields, checked as the server would.
	probe := events.Revocation{JTI: "x", Iss: f.m.iss, Reason: f.reason, ExpiresAt: events.Time{Time: expires}}
	if body, err := json.Marshal(&probe); err != nil {
		return err
	} else if err := checkLocally(body); err != nil {
		return err
	}

	statePath := bf.state
	if statePath == "" && bf.file != "-" {
		statePath = bf.file + ".progress"
	}
	var in io.Reader
	name := bf.file
	if bf.file == "-" {
		in, name = env.stdin, "stdin"
	} else {
		fh, err := os.Open(bf.file)
		if err != nil {
			return usageErr("--jti-file: %v", err)
		}
		defer fh.Close()
		in = fh
	}
	if err := c.setup(fs, env); err != nil {
		return err
	}

	// A new run, or the resumption of an interrupted one.
	var st *bulkState
	if statePath != "" {
		var err error
		if st, err = readState(statePath); err != nil {
			return err
		}
	}
	out := &lockedWriter{w: env.stderr}
	jr := newJTIReader(in)
	resumed := st != nil
	if resumed {
		if err := st.matches(f, statePath); err != nil {
			return err
		}
		if st.BatchSize != bf.batchSize {
			if flagGiven(fs, "batch-size") {
				// The keys hold a digest of each batch, so this is safe; but
				// a batch stored and not acknowledged before the
				// interruption is not recognised, and is stored again.
				out.message("revoke: resuming with --batch-size %d instead of the interrupted run's %d: what it had in flight may be stored a second time (the live state still holds each jti once)\n", bf.batchSize, st.BatchSize)
				st.BatchSize = bf.batchSize
			} else {
				out.message("revoke: resuming with --batch-size %d, as the interrupted run\n", st.BatchSize)
			}
		}
		sum, jtis, err := jr.skip(st.Offset)
		if err != nil || sum != st.PrefixSHA256 || jtis != st.Done {
			return usageErr("%s changed since the interrupted run (its first %d bytes are not what was sent); delete %s to start over", name, st.Offset, statePath)
		}
		out.message("revoke: resuming run %s at line %d: %d jtis were acknowledged before it stopped\n", st.RunID, st.Lines+1, st.Done)
	} else {
		st = &bulkState{
			Version: bulkStateVersion, RunID: newRunID(), File: bf.file,
			Iss: f.m.iss, Reason: f.reason, ExpiresAtArg: f.expiresAt, BatchSize: bf.batchSize,
			PrefixSHA256: hex.EncodeToString(sha256.New().Sum(nil)), StartedAt: now.UTC(),
		}
		if abs, err := filepath.Abs(bf.file); err == nil && bf.file != "-" {
			st.File = abs
		}
		if !expires.IsZero() {
			st.ExpiresAt = expires.UTC().Format(time.RFC3339Nano)
		}
		if statePath != "" {
			// before the first batch, so that a crash during it resumes
			// with the same run ID, hence the same idempotency keys
			if err := writeState(statePath, st); err != nil {
				return &exitError{exitFailure, err}
			}
		}
	}
	earlier := st.Done
	shared := map[string]string{}
	if st.Iss != "" {
		shared["iss"] = st.Iss
	}
	if st.ExpiresAt != "" {
		shared["expires_at"] = st.ExpiresAt
	}
	if st.Reason != "" {
		shared["reason"] = st.Reason
	}
	bt := newBatcher(jr, st.RunID, st.BatchSize, shared)

	prog := &bulkProgress{out: out, mode: mode, startDone: earlier, start: time.Now()}
	prog.done.Store(earlier)
	prog.total.Store(-1)
	if bf.file != "-" {
		if fi, err := os.Stat(bf.file); err == nil && fi.Mode().IsRegular() {
			go func() { prog.total.Store(countJTIs(bf.file)) }()
		}
	}
	stopProgress, progressDone := make(chan struct{}), make(chan struct{})
	go prog.run(stopProgress, progressDone)

	// The reader runs on its own so that Ctrl-C is noticed even while it
	// waits on stdin.
	batches := make(chan *bulkBatch)
	stopReading := make(chan struct{})
	var readErr error
	go func() {
		defer close(batches)
		for {
			b, err := bt.next()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					readErr = err
				}
				return
			}
			select {
			case batches <- b:
			case <-stopReading:
				return
			}
		}
	}()

	sender := &bulkSender{c: c, retries: bf.retries, out: out}
	results := make(chan *bulkBatch, bf.concurrency)
	var (
		queue    []*bulkBatch // sent, in file order, not yet committed
		inflight int
		eof      bool
		failure  error // the first error: stop sending
		runStats struct{ created, duplicates, expired, acked int64 }
	)
	ctxDone := ctx.Done()
	// Each iteration receives one batch, one result or the end of ctx; it
	// stops when nothing is in flight and nothing more will be sent.
	for {
		var next <-chan *bulkBatch
		if !eof && failure == nil && ctx.Err() == nil && inflight < bf.concurrency {
			next = batches
		}
		if next == nil && inflight == 0 {
			break
		}
		select {
		case b, ok := <-next:
			if !ok {
				eof = true
				if readErr != nil && failure == nil {
					failure = readErr
				}
				continue
			}
			queue = append(queue, b)
			inflight++
			go func() {
				b.err = sender.send(ctx, b)
				results <- b
			}()
		case b := <-results:
			inflight--
			b.acked = true
			if b.err != nil && failure == nil && ctx.Err() == nil {
				failure = b.err
			}
			// commit the acknowledged prefix
			for len(queue) > 0 && queue[0].acked && queue[0].err == nil {
				d := queue[0]
				queue = queue[1:]
				st.Offset, st.Lines, st.PrefixSHA256 = d.end, d.endLine, d.prefix
				st.Done += int64(d.items)
				st.Created += d.created
				st.Duplicates += d.duplicates
				st.Expired += d.expired
				runStats.created += d.created
				runStats.duplicates += d.duplicates
				runStats.expired += d.expired
				runStats.acked += int64(d.items)
				prog.done.Store(st.Done)
				if statePath != "" {
					if err := writeState(statePath, st); err != nil && failure == nil {
						failure = &exitError{exitFailure, err}
					}
				}
			}
		case <-ctxDone:
			ctxDone = nil // in-flight requests end with ctx; wait for them
		}
	}
	close(stopReading)
	elapsed := time.Since(prog.start)
	close(stopProgress)
	<-progressDone

	where := fmt.Sprintf("%d jtis acknowledged, up to line %d of %s", st.Done, st.Lines, name)
	resume := "; run the same command again to resume (state in " + statePath + ")"
	if statePath == "" {
		resume = "; not resumable: stdin was read without --state"
	}
	switch {
	case failure != nil:
		return fmt.Errorf("revoke --jti-file: %w; %s%s", failure, where, resume)
	case !eof || len(queue) > 0:
		return &exitError{exitFailure, fmt.Errorf("revoke --jti-file: %w; %s%s", errInterrupted, where, resume)}
	}
	if statePath != "" {
		if err := os.Remove(statePath); err != nil && !errors.Is(err, os.ErrNotExist) {
			out.message("revoke: warning: cannot remove the state file: %v\n", err)
		}
	}
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(runStats.acked) / s
	}
	if f.json {
		return writeJSONLine(env.stdout, map[string]any{
			"file": name, "run_id": st.RunID, "jtis": st.Done, "this_run": runStats.acked, "earlier": earlier,
			"created": runStats.created, "duplicates": runStats.duplicates, "expired": runStats.expired,
			"skipped_lines": jr.skipped, "seconds": elapsed.Seconds(), "per_second": rate,
		})
	}
	w := env.stdout
	if resumed {
		fmt.Fprintf(w, "done: %d jtis from %s (%d in this run, %d acknowledged before the interruption of run %s)\n",
			st.Done, name, runStats.acked, earlier, st.RunID)
		fmt.Fprintf(w, "this run: %d jtis in %v = %.0f revocations/s; created %d, duplicate %d, expired %d\n",
			runStats.acked, elapsed.Round(time.Millisecond), rate, runStats.created, runStats.duplicates, runStats.expired)
	} else {
		fmt.Fprintf(w, "done: %d jtis from %s in %v = %.0f revocations/s\n", st.Done, name, elapsed.Round(time.Millisecond), rate)
		fmt.Fprintf(w, "created %d, duplicate %d, expired %d; %d blank or comment lines skipped\n",
			runStats.created, runStats.duplicates, runStats.expired, jr.skipped)
	}
	return nil
}

// matches checks that a resumed run uses the interrupted run's parameters.
func (st *bulkState) matches(f *revokeFlags, statePath string) error {
	var diff []string
	if st.Iss != f.m.iss {
		diff = append(diff, "--iss "+quoteValue(st.Iss))
	}
	if st.Reason != f.reason {
		diff = append(diff, "--reason "+quoteValue(st.Reason))
	}
	if st.ExpiresAtArg != f.expiresAt {
		diff = append(diff, "--expires-at "+quoteValue(st.ExpiresAtArg))
	}
	if len(diff) > 0 {
		return usageErr("the interrupted run in %s used %s; resume with the same, or delete the state file to start over",
			statePath, strings.Join(diff, " "))
	}
	return nil
}
