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
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/revocast/revocast/internal/envflag"
	"github.com/revocast/revocast/pkg/client"
	"github.com/revocast/revocast/pkg/events"
)

// Defaults and limits of bulk revocation; client.Bulk does the work.
const (
	defaultBatchSize   = client.DefaultBulkBatchSize
	maxBatchSizeFlag   = 100_000
	defaultConcurrency = client.DefaultBulkConcurrency
	defaultRetries     = client.DefaultBulkRetries
	// bulkStateVersion is the format of the state file.
	bulkStateVersion = 1
	// How often the progress display is refreshed.
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
	mode      string        // bar, lines or none
	every     time.Duration // between refreshes
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
	t := time.NewTicker(p.every)
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

// runBulk is revoke --jti-file.
// checkBulkFlags checks the flags of revoke --jti-file, and the fields its
// revocations share as the server would, and returns the progress mode with
// "auto" resolved.
func checkBulkFlags(env cliEnv, f *revokeFlags, expires time.Time) (string, error) {
	bf := &f.bulk
	switch {
	case f.m.jti != "" || f.m.sub != "" || f.m.kid != "" || len(f.m.claims) > 0 || f.m.ban || f.issuedBefore != "":
		return "", usageErr("--jti-file revokes jtis: only --iss, --expires-at and --reason apply to every one of them")
	case f.idemKey != "":
		return "", usageErr("--idempotency-key does not go with --jti-file: each batch gets its own, derived from the run")
	case bf.batchSize < 1 || bf.batchSize > maxBatchSizeFlag:
		return "", usageErr("--batch-size must be 1 to %d", maxBatchSizeFlag)
	case bf.concurrency < 1 || bf.concurrency > 8:
		return "", usageErr("--concurrency must be 1 to 8")
	case bf.retries < 0 || bf.retries > 100:
		return "", usageErr("--retries must be 0 to 100")
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
		return "", usageErr("--progress %q: want auto, bar, lines or none", bf.progress)
	}
	// The shared fields, checked as the server would.
	probe := events.Revocation{JTI: "x", Iss: f.m.iss, Reason: f.reason, ExpiresAt: events.Time{Time: expires}}
	if body, err := json.Marshal(&probe); err != nil {
		return "", err
	} else if err := checkLocally(body); err != nil {
		return "", err
	}
	return mode, nil
}

func runBulk(ctx context.Context, env cliEnv, fs *envflag.Set, c *apiConn, f *revokeFlags, expires, now time.Time) error {
	bf := &f.bulk
	mode, err := checkBulkFlags(env, f, expires)
	if err != nil {
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
	bulk := client.NewBulk(c.cl)
	bulk.Retries, bulk.Concurrency = bf.retries, bf.concurrency
	resumed := st != nil
	if st, err = startBulk(fs, f, bulk, st, statePath, out, expires, now); err != nil {
		return err
	}
	earlier := st.Done

	prog := &bulkProgress{out: out, mode: mode, every: bulkProgressLines, startDone: earlier, start: time.Now()}
	if mode == "bar" {
		prog.every = bulkProgressBar
	}
	bulk.OnCommit = func(cp client.Checkpoint) error {
		st.Offset, st.Lines, st.Done, st.PrefixSHA256 = cp.Offset, cp.Lines, cp.Done, cp.PrefixSHA256
		st.Created, st.Duplicates, st.Expired = cp.Created, cp.Duplicates, cp.Expired
		prog.done.Store(st.Done)
		if statePath != "" {
			if err := writeState(statePath, st); err != nil {
				return &exitError{exitFailure, err}
			}
		}
		return nil
	}
	bulk.OnRetry = func(r client.BulkRetry) {
		out.message("revoke: %v; retrying in %v (%d/%d)\n", c.fail(r.Err, "POST", batchWhat(r.FirstLine)), r.Delay.Round(time.Millisecond), r.Attempt, r.Retries)
	}
	if env.bulkHook != nil {
		env.bulkHook(bulk, prog)
	}
	bulk.OnStart = func() {
		if resumed {
			out.message("revoke: resuming run %s at line %d: %d jtis were acknowledged before it stopped\n", st.RunID, st.Lines+1, st.Done)
		}
	}

	prog.done.Store(earlier)
	prog.total.Store(-1)
	if bf.file != "-" {
		if fi, err := os.Stat(bf.file); err == nil && fi.Mode().IsRegular() {
			go func() { prog.total.Store(countJTIs(bf.file)) }()
		}
	}
	stopProgress, progressDone := make(chan struct{}), make(chan struct{})
	go prog.run(stopProgress, progressDone)
	res, err := bulk.Run(ctx, in)
	close(stopProgress)
	<-progressDone
	if errors.Is(err, client.ErrResumeMismatch) {
		return usageErr("%s changed since the interrupted run (its first %d bytes are not what was sent); delete %s to start over", name, st.Offset, statePath)
	}
	elapsed := res.Elapsed

	where := fmt.Sprintf("%d jtis acknowledged, up to line %d of %s", st.Done, st.Lines, name)
	resume := "; run the same command again to resume (state in " + statePath + ")"
	if statePath == "" {
		resume = "; not resumable: stdin was read without --state"
	}
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return &exitError{exitFailure, fmt.Errorf("revoke --jti-file: %w; %s%s", errInterrupted, where, resume)}
	case err != nil:
		return fmt.Errorf("revoke --jti-file: %w; %s%s", c.bulkFailure(err), where, resume)
	}
	if statePath != "" {
		if err := os.Remove(statePath); err != nil && !errors.Is(err, os.ErrNotExist) {
			out.message("revoke: warning: cannot remove the state file: %v\n", err)
		}
	}
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(res.Acked) / s
	}
	if f.json {
		return writeJSONLine(env.stdout, map[string]any{
			"file": name, "run_id": st.RunID, "jtis": st.Done, "this_run": res.Acked, "earlier": earlier,
			"created": res.Created, "duplicates": res.Duplicates, "expired": res.Expired,
			"skipped_lines": res.SkippedLines, "seconds": elapsed.Seconds(), "per_second": rate,
		})
	}
	w := env.stdout
	if resumed {
		fmt.Fprintf(w, "done: %d jtis from %s (%d in this run, %d acknowledged before the interruption of run %s)\n",
			st.Done, name, res.Acked, earlier, st.RunID)
		fmt.Fprintf(w, "this run: %d jtis in %v = %.0f revocations/s; created %d, duplicate %d, expired %d\n",
			res.Acked, elapsed.Round(time.Millisecond), rate, res.Created, res.Duplicates, res.Expired)
	} else {
		fmt.Fprintf(w, "done: %d jtis from %s in %v = %.0f revocations/s\n", st.Done, name, elapsed.Round(time.Millisecond), rate)
		fmt.Fprintf(w, "created %d, duplicate %d, expired %d; %d blank or comment lines skipped\n",
			res.Created, res.Duplicates, res.Expired, res.SkippedLines)
	}
	return nil
}

// startBulk prepares bulk for a run: it resumes the interrupted run whose
// state st holds (after checking that the flags match it), or, when st is
// nil, starts a new one and records it at statePath (unless ""). It returns
// the run's state.
func startBulk(fs *envflag.Set, f *revokeFlags, bulk *client.Bulk, st *bulkState, statePath string, out *lockedWriter, expires, now time.Time) (*bulkState, error) {
	bf := &f.bulk
	if st != nil {
		if err := st.matches(f, statePath); err != nil {
			return nil, err
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
		bulk.Resume = &client.Checkpoint{Offset: st.Offset, Lines: st.Lines, Done: st.Done, PrefixSHA256: st.PrefixSHA256,
			Created: st.Created, Duplicates: st.Duplicates, Expired: st.Expired}
	} else {
		st = &bulkState{
			Version: bulkStateVersion, RunID: bulk.RunID, File: bf.file,
			Iss: f.m.iss, Reason: f.reason, ExpiresAtArg: f.expiresAt, BatchSize: bf.batchSize,
			PrefixSHA256: client.EmptyPrefixSHA256, StartedAt: now.UTC(),
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
				return nil, &exitError{exitFailure, err}
			}
		}
	}
	bulk.RunID, bulk.BatchSize, bulk.Iss, bulk.Reason = st.RunID, st.BatchSize, st.Iss, st.Reason
	if st.ExpiresAt != "" {
		t, err := time.Parse(time.RFC3339Nano, st.ExpiresAt)
		if err != nil {
			return nil, usageErr("state file %s is not a revocast resume state; delete it to start over", statePath)
		}
		bulk.ExpiresAt = t
	}
	return st, nil
}

func batchWhat(firstLine int64) string { return fmt.Sprintf("batch at line %d", firstLine) }

// bulkFailure turns the error that stopped a bulk run into one carrying
// the exit code, in the terms of the command's flags.
func (c *apiConn) bulkFailure(err error) error {
	var be *client.BatchError
	var le *client.LineError
	switch {
	case errors.As(err, &be):
		what := batchWhat(be.FirstLine)
		cause := c.fail(be.Err, "POST", what)
		switch {
		case be.Exhausted:
			return fmt.Errorf("giving up after %d attempts: %w", be.Attempts, cause)
		case be.TooLarge():
			return fmt.Errorf("%w; run again with a smaller --batch-size", cause)
		}
		return cause
	case errors.As(err, &le):
		return &exitError{exitInvalid, le}
	}
	return err
}

// countJTIs counts the jtis of a regular file, for the progress display;
// -1 when it cannot.
func countJTIs(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	n, err := client.CountJTIs(f)
	if err != nil {
		return -1
	}
	return n
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
