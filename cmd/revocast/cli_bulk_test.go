package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/broadcaster"
	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/client"
	"github.com/revocast/revocast/pkg/events"
)

// writeJTIs writes n jtis, one per line, with a comment and a blank line
// in front, and returns the file and the jtis.
func writeJTIs(t *testing.T, n int) (string, []string) {
	t.Helper()
	jtis := make([]string, n)
	var b bytes.Buffer
	b.WriteString("# tokens of the leaked session store\n\n")
	for i := range jtis {
		jtis[i] = fmt.Sprintf("%08d-5d1b-4c8e-a6f0-1b2c3d4e5f60", i)
		b.WriteString(jtis[i])
		b.WriteByte('\n')
	}
	path := filepath.Join(t.TempDir(), "jtis.txt")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, jtis
}

// liveJTIs lists the broadcaster's whole state with the CLI and returns how
// often each jti occurs.
func liveJTIs(t *testing.T, cli *cliCmd) map[string]int {
	t.Helper()
	r := cli.ok("list", "--all", "--json")
	seen := map[string]int{}
	for line := range strings.Lines(r.stdout) {
		var rev events.Revocation
		if err := json.Unmarshal([]byte(line), &rev); err != nil {
			t.Fatalf("list line %q: %v", line, err)
		}
		seen[rev.JTI]++
	}
	return seen
}

// headSeq is the stream sequence of the broadcaster's head: the number of
// messages ever stored, on a fresh server without lifts.
func headSeq(t *testing.T, base string) uint64 {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ready struct{ Head string }
	if err := json.NewDecoder(resp.Body).Decode(&ready); err != nil {
		t.Fatal(err)
	}
	id, err := events.ParseEventID(ready.Head)
	if err != nil {
		t.Fatalf("readyz head %q: %v", ready.Head, err)
	}
	return id.Seq
}

func checkExactly(t *testing.T, seen map[string]int, jtis []string) {
	t.Helper()
	if len(seen) != len(jtis) {
		t.Errorf("%d distinct jtis live, want %d", len(seen), len(jtis))
	}
	for _, j := range jtis {
		if seen[j] != 1 {
			t.Fatalf("jti %s is live %d times", j, seen[j])
		}
	}
}

type bulkSummary struct {
	JTIs       int64   `json:"jtis"`
	ThisRun    int64   `json:"this_run"`
	Earlier    int64   `json:"earlier"`
	Created    int64   `json:"created"`
	Duplicates int64   `json:"duplicates"`
	Expired    int64   `json:"expired"`
	Skipped    int64   `json:"skipped_lines"`
	PerSecond  float64 `json:"per_second"`
	RunID      string  `json:"run_id"`
}

func decodeSummary(t *testing.T, r cliRun) bulkSummary {
	t.Helper()
	var s bulkSummary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("summary %q: %v", r.stdout, err)
	}
	return s
}

// TestBulkRevoke100k: 100,000 jtis from a file land completely, each once.
func TestBulkRevoke100k(t *testing.T) {
	if testing.Short() {
		t.Skip("posts 100,000 revocations; skipped under -short")
	}
	const n = 100_000
	srv, base := startBroadcasterServer(t, nil)
	file, jtis := writeJTIs(t, n)
	cli := newCLI(t, base)
	// No speed is required: a slow machine (the race detector, other tests
	// on the same cores) may take minutes. Only a hang fails.
	cli.hang = 15 * time.Minute

	start := time.Now()
	r := cli.ok("revoke", "--jti-file", file, "--reason", "session store leak", "--expires-at", "+2h")
	elapsed := time.Since(start)
	t.Logf("CLI: %d jtis in %v = %.0f revocations/s (race detector: %v)\n%s", n, elapsed.Round(time.Millisecond), n/elapsed.Seconds(), raceEnabled, r.stdout)
	if !strings.Contains(r.stdout, fmt.Sprintf("done: %d jtis from %s", n, file)) ||
		!strings.Contains(r.stdout, fmt.Sprintf("created %d, duplicate 0, expired 0; 2 blank or comment lines skipped", n)) {
		t.Fatalf("summary:\n%s", r.stdout)
	}
	if _, err := os.Stat(file + ".progress"); !os.IsNotExist(err) {
		t.Fatalf("the state file is still there after completion: %v", err)
	}
	// The hub holds n live entries, and n messages were ever stored: the
	// CLI sends nothing but the file's n distinct jtis, so each is there
	// exactly once.
	if live, head := gauge(t, srv, "revocast_broadcaster_live_entries"), gauge(t, srv, "revocast_broadcaster_head_sequence"); live != n || head != n {
		t.Errorf("live entries %v, head sequence %v: want %d each", live, head, n)
	}
	if raceEnabled {
		// listing 100,000 revocations under the race detector is slow:
		// sample the list API; without it, check every jti
		for _, j := range []string{jtis[0], jtis[n/2], jtis[n-1]} {
			if r := cli.ok("list", "--json", "--jti", j); strings.Count(r.stdout, "\n") != 1 {
				t.Errorf("list --jti %s: %s", j, r.stdout)
			}
		}
	} else {
		checkExactly(t, liveJTIs(t, cli), jtis)
	}
	// the shared flags apply to every item
	one := decodeStored(t, cli.ok("list", "--json", "--jti", jtis[n/2]).stdout)
	if one.Reason != "session store leak" || time.Until(one.ExpiresAt.Time) < time.Hour {
		t.Errorf("item %+v", one)
	}
}

// gauge reads a gauge of the broadcaster's metrics registry.
func gauge(t *testing.T, srv *broadcaster.Server, name string) float64 {
	t.Helper()
	families, err := srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

// TestBulkResumeAfterInterruption: a run is interrupted right after the
// server stored a batch whose answer the CLI never saw; the second run
// resumes from the state file, re-sends that batch with the same
// idempotency keys, and the final state holds every jti exactly once.
func TestBulkResumeAfterInterruption(t *testing.T) {
	const n, batch = 10_000, 500
	base := startBroadcaster(t, nil)
	target, _ := url.Parse(base)
	file, jtis := writeJTIs(t, n)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var posts atomic.Int32
	var lostKey atomic.Value
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || posts.Add(1) != 5 {
			quietProxy(target).ServeHTTP(w, r)
			return
		}
		// store the 5th batch, then cut the CLI off before it hears so
		body, _ := io.ReadAll(r.Body)
		req, _ := http.NewRequest("POST", base+r.URL.Path, bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 201 {
			t.Errorf("forwarding the 5th batch: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}
		lostKey.Store(r.Header.Get("Idempotency-Key"))
		cancel()
		select {
		case <-r.Context().Done():
		case <-time.After(20 * time.Second):
		}
	}))
	defer proxy.Close()

	first := newCLI(t, proxy.URL)
	r := first.runCtx(ctx, "revoke", "--jti-file", file, "--batch-size", fmt.Sprint(batch))
	if r.code != exitFailure || !strings.Contains(r.stderr, "interrupted") || !strings.Contains(r.stderr, "run the same command again to resume") {
		t.Fatalf("first run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	st, err := readState(file + ".progress")
	if err != nil || st == nil {
		t.Fatalf("state after the interruption: %v %v", st, err)
	}
	// Usually 2 to 4 batches were acknowledged in order; a stalled first
	// request can make it fewer, never a part of one.
	if st.Done >= 5*batch || st.Done%batch != 0 || (st.Done > 0 && st.Lines != st.Done+2) {
		t.Fatalf("state %+v: want whole batches acknowledged, fewer than 5", st)
	}
	t.Logf("interrupted after %d jtis; the batch with key %s was stored but not acknowledged", st.Done, lostKey.Load())

	second := newCLI(t, base)
	r = second.ok("revoke", "--jti-file", file, "--json")
	if !strings.Contains(r.stderr, "resuming run "+st.RunID) || !strings.Contains(r.stderr, fmt.Sprintf("--batch-size %d", batch)) {
		t.Errorf("second run's stderr:\n%s", r.stderr)
	}
	s := decodeSummary(t, r)
	if s.RunID != st.RunID || s.Earlier != st.Done || s.ThisRun != n-st.Done || s.JTIs != n ||
		s.Created+s.Duplicates != s.ThisRun || s.Duplicates < batch {
		t.Fatalf("second run: %+v (state was %+v): want the first run's stored batch as duplicates", s, st)
	}
	if _, err := os.Stat(file + ".progress"); !os.IsNotExist(err) {
		t.Fatalf("state file kept after completion: %v", err)
	}
	if seq := headSeq(t, base); seq != n {
		t.Errorf("head sequence %d: want exactly %d stored messages (nothing stored twice)", seq, n)
	}
	checkExactly(t, liveJTIs(t, second), jtis)
}

// fakeBatchAPI answers batch posts like the broadcaster, failing the ones
// fail says to.
type fakeBatchAPI struct {
	mu    sync.Mutex
	fail  func(post int, firstJTI string) int // a status to answer instead, or 0
	posts int
	keys  []string // Idempotency-Key of each post
	jtis  map[string]int
}

func (f *fakeBatchAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Revocations []struct {
			JTI    string `json:"jti"`
			Reason string `json:"reason"`
		} `json:"revocations"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Revocations) == 0 {
		http.Error(w, `{"error":"bad batch"}`, 400)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.posts++
	f.keys = append(f.keys, r.Header.Get("Idempotency-Key"))
	if f.fail != nil {
		if code := f.fail(f.posts, req.Revocations[0].JTI); code != 0 {
			w.WriteHeader(code)
			_, _ = io.WriteString(w, `{"error":"not acknowledged"}`)
			return
		}
	}
	type item struct {
		Status string `json:"status"`
	}
	answer := struct {
		Revocations []item `json:"revocations"`
		Created     int    `json:"created"`
	}{Created: len(req.Revocations)}
	for _, it := range req.Revocations {
		f.jtis[it.JTI]++
		answer.Revocations = append(answer.Revocations, item{"created"})
	}
	w.WriteHeader(201)
	_ = json.NewEncoder(w).Encode(answer)
}

func newFakeBatchAPI(t *testing.T) (*fakeBatchAPI, string) {
	f := &fakeBatchAPI{jtis: map[string]int{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

// TestBulkRetriesThenResumes: a 503 is retried with the same key; a batch
// that keeps failing stops the run with its state kept; the next run
// resumes at that batch, with the same key.
func TestBulkRetriesThenResumes(t *testing.T) {
	file, jtis := writeJTIs(t, 1000)
	api, base := newFakeBatchAPI(t)
	cli := newCLI(t, base)
	cli.bulkHook = func(b *client.Bulk, _ *bulkProgress) { b.RetryBase = time.Millisecond }

	// the 2nd post fails once: retried, same key
	api.fail = func(post int, _ string) int {
		if post == 2 {
			return 503
		}
		return 0
	}
	r := cli.ok("revoke", "--jti-file", file, "--batch-size", "100", "--concurrency", "1")
	if !strings.Contains(r.stderr, "retrying") || len(api.keys) != 11 || api.keys[1] != api.keys[2] || api.keys[0] == api.keys[1] {
		t.Fatalf("retry: keys %q\n%s", api.keys, r.stderr)
	}

	// a batch that keeps failing: give up, keep the state
	api.mu.Lock()
	api.posts, api.keys, api.jtis = 0, nil, map[string]int{}
	api.fail = func(_ int, first string) int {
		if first == jtis[300] {
			return 503
		}
		return 0
	}
	api.mu.Unlock()
	r = cli.fails(exitFailure, "revoke", "--jti-file", file, "--batch-size", "100", "--concurrency", "2", "--retries", "2", "--reason", "r")
	if !strings.Contains(r.stderr, "giving up after 3 attempts") || !strings.Contains(r.stderr, "503") || !strings.Contains(r.stderr, "run the same command again") {
		t.Fatalf("giving up:\n%s", r.stderr)
	}
	st, err := readState(file + ".progress")
	if err != nil || st == nil || st.Done != 300 || st.Lines != 302 || st.Reason != "r" {
		t.Fatalf("state %+v %v: want the three batches before the failing one", st, err)
	}
	failedKey := ""
	for i, k := range api.keys {
		if strings.Contains(k, "/"+fmt.Sprint(st.Offset)+"/") {
			failedKey = api.keys[i]
		}
	}
	if failedKey == "" || !strings.HasPrefix(failedKey, "revocast-bulk/"+st.RunID+"/") {
		t.Fatalf("keys %q: none for the failing batch at offset %d of run %s", api.keys, st.Offset, st.RunID)
	}

	// resuming with other shared flags is refused
	r = cli.fails(exitUsage, "revoke", "--jti-file", file, "--reason", "other")
	if !strings.Contains(r.stderr, `--reason r`) {
		t.Errorf("resume with another --reason: %s", r.stderr)
	}

	// the server recovers: the next run resumes at the failed batch, same key
	api.mu.Lock()
	api.fail, api.keys = nil, nil
	api.mu.Unlock()
	r = cli.ok("revoke", "--jti-file", file, "--reason", "r", "--json")
	if s := decodeSummary(t, r); s.Earlier != 300 || s.ThisRun != 700 || s.JTIs != 1000 {
		t.Fatalf("resumed run: %+v", s)
	}
	if !slices.Contains(api.keys, failedKey) {
		t.Errorf("the resumed run's keys %q; the failed batch had %s", api.keys, failedKey)
	}
	for _, j := range jtis {
		if api.jtis[j] < 1 {
			t.Fatalf("jti %s never posted", j)
		}
	}
}

func TestBulkResumeWithOtherBatchSize(t *testing.T) {
	file, jtis := writeJTIs(t, 500)
	api, base := newFakeBatchAPI(t)
	api.fail = func(_ int, first string) int {
		if first == jtis[100] {
			return 413
		}
		return 0
	}
	cli := newCLI(t, base)
	cli.bulkHook = func(b *client.Bulk, _ *bulkProgress) { b.RetryBase = time.Millisecond }
	r := cli.fails(exitInvalid, "revoke", "--jti-file", file, "--batch-size", "100", "--concurrency", "1")
	if !strings.Contains(r.stderr, "smaller --batch-size") {
		t.Errorf("413: %s", r.stderr)
	}
	api.mu.Lock()
	api.fail, api.jtis, api.posts = nil, map[string]int{}, 0
	api.mu.Unlock()
	r = cli.ok("revoke", "--jti-file", file, "--batch-size", "30", "--json")
	if !strings.Contains(r.stderr, "--batch-size 30 instead of the interrupted run's 100") {
		t.Errorf("stderr: %s", r.stderr)
	}
	if s := decodeSummary(t, r); s.Earlier != 100 || s.ThisRun != 400 || len(api.jtis) != 400 || api.posts != 14 {
		t.Fatalf("resumed with smaller batches: %+v, %d jtis in %d posts", s, len(api.jtis), api.posts)
	}
}

func TestBulkRefusesChangedFile(t *testing.T) {
	file, jtis := writeJTIs(t, 500)
	api, base := newFakeBatchAPI(t)
	api.fail = func(_ int, first string) int {
		if first == jtis[200] {
			return 500
		}
		return 0
	}
	cli := newCLI(t, base)
	cli.bulkHook = func(b *client.Bulk, _ *bulkProgress) { b.RetryBase = time.Millisecond }
	cli.fails(exitFailure, "revoke", "--jti-file", file, "--batch-size", "100", "--retries", "0")
	b, _ := os.ReadFile(file)
	if err := os.WriteFile(file, bytes.Replace(b, []byte(jtis[5]), []byte("00000005-changed"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	api.fail = nil
	r := cli.fails(exitUsage, "revoke", "--jti-file", file, "--batch-size", "100")
	if !strings.Contains(r.stderr, "changed since the interrupted run") || !strings.Contains(r.stderr, file+".progress") {
		t.Errorf("changed file: %s", r.stderr)
	}
	// a corrupt state file is refused too
	if err := os.WriteFile(file+".progress", []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := cli.fails(exitUsage, "revoke", "--jti-file", file); !strings.Contains(r.stderr, "delete it to start over") {
		t.Errorf("corrupt state: %s", r.stderr)
	}
}

func TestBulkInputFormat(t *testing.T) {
	t.Parallel()
	api, base := newFakeBatchAPI(t)
	cli := newCLI(t, base)
	// CRLF, spaces, comments, blank lines, no newline at the end; stdin
	cli.stdin = strings.NewReader("# header\r\n  a1  \r\n\r\n#x\nb2\n\t\n c3")
	r := cli.ok("revoke", "--jti-file", "-", "--batch-size", "2")
	if !strings.Contains(r.stdout, "done: 3 jtis from stdin") || !strings.Contains(r.stdout, "4 blank or comment lines skipped") {
		t.Fatalf("stdout:\n%s", r.stdout)
	}
	if len(api.jtis) != 3 || api.jtis["a1"] != 1 || api.jtis["b2"] != 1 || api.jtis["c3"] != 1 || api.posts != 2 {
		t.Fatalf("posted %v in %d batches", api.jtis, api.posts)
	}
	// a bad line stops the run with its number
	cli.stdin = strings.NewReader("ok\n" + strings.Repeat("x", events.MaxValueLength+1) + "\n")
	if r := cli.fails(exitInvalid, "revoke", "--jti-file", "-"); !strings.Contains(r.stderr, "line 2") || !strings.Contains(r.stderr, "not resumable") {
		t.Errorf("long jti: %s", r.stderr)
	}
	cli.stdin = strings.NewReader("ok\n\xff\xfe\n")
	if r := cli.fails(exitInvalid, "revoke", "--jti-file", "-"); !strings.Contains(r.stderr, "line 2: not valid UTF-8") {
		t.Errorf("bad UTF-8: %s", r.stderr)
	}
	// an empty file is done at once
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("# nothing\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := cli.ok("revoke", "--jti-file", empty); !strings.Contains(r.stdout, "done: 0 jtis") {
		t.Errorf("empty file: %s", r.stdout)
	}
	cli.fails(exitUsage, "revoke", "--jti-file", filepath.Join(t.TempDir(), "missing"))
	cli.fails(exitUsage, "revoke", "--jti-file", empty, "--progress", "fancy")
	cli.fails(exitUsage, "revoke", "--jti-file", empty, "--idempotency-key", "k")
}

func TestBulkProgressBar(t *testing.T) {
	t.Parallel()
	_, base := newFakeBatchAPI(t)
	file, _ := writeJTIs(t, 300)
	r := newCLI(t, base).ok("revoke", "--jti-file", file, "--batch-size", "100", "--progress", "bar")
	if !strings.HasPrefix(r.stderr, "\r[") || !strings.HasSuffix(r.stderr, "\n") ||
		!strings.Contains(r.stderr, "[##############################] 300/300 100%") {
		t.Fatalf("progress bar: %q", r.stderr)
	}
}

// TestBulkProgressLines: without a terminal, a progress line every
// interval.
func TestBulkProgressLines(t *testing.T) {
	api, base := newFakeBatchAPI(t)
	var once sync.Once
	release := make(chan struct{})
	api.fail = func(post int, _ string) int {
		if post == 2 {
			// hold the 2nd batch until a progress line was printed
			api.mu.Unlock()
			<-release
			api.mu.Lock()
		}
		return 0
	}
	file, _ := writeJTIs(t, 300)
	cli := newCLI(t, base)
	cli.bulkHook = func(_ *client.Bulk, p *bulkProgress) { p.every = time.Millisecond }
	var stdout, stderr syncBuffer
	done := make(chan cliRun, 1)
	go func() {
		done <- cli.start(context.Background(), &stdout, &stderr, "revoke", "--jti-file", file, "--batch-size", "100", "--concurrency", "1")
	}()
	waitFor(t, "a progress line", testutil.HangLimit, func() bool { return strings.Contains(stderr.String(), "revoke: 100/300 jtis (33%)") })
	once.Do(func() { close(release) })
	if r := <-done; r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
}

// The throughput of revoke --jti-file, and of the batch API alone with the
// same batch size and two batches in flight, for comparison:
//
//	go test -run '^$' -bench Bulk -benchtime 100000x ./cmd/broadcaster/
func BenchmarkBulkCLI(b *testing.B) {
	for _, conc := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			base := startBroadcaster(b, nil)
			var buf bytes.Buffer
			for i := range b.N {
				fmt.Fprintf(&buf, "%08d-5d1b-4c8e-a6f0-1b2c3d4e5f60\n", i)
			}
			file := filepath.Join(b.TempDir(), "jtis.txt")
			if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
				b.Fatal(err)
			}
			env := cliEnv{getenv: func(k string) string {
				if k == "REVOCAST_SERVER" {
					return base
				}
				return ""
			}, stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}
			b.ResetTimer()
			err := dispatch(context.Background(), []string{"revoke", "--jti-file", file, "--progress", "none", "--concurrency", fmt.Sprint(conc)}, env)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "revocations/s")
		})
	}
}

func BenchmarkBulkBatchAPI(b *testing.B) {
	base := startBroadcaster(b, nil)
	var bodies [][]byte
	for start := 0; start < b.N; start += defaultBatchSize {
		var buf bytes.Buffer
		buf.WriteString(`{"revocations":[`)
		for i := start; i < min(start+defaultBatchSize, b.N); i++ {
			if i > start {
				buf.WriteByte(',')
			}
			fmt.Fprintf(&buf, `{"jti":"%08d-5d1b-4c8e-a6f0-1b2c3d4e5f60"}`, i)
		}
		buf.WriteString("]}")
		bodies = append(bodies, buf.Bytes())
	}
	work := make(chan []byte)
	var wg sync.WaitGroup
	b.ResetTimer()
	for range defaultConcurrency {
		wg.Go(func() {
			for body := range work {
				resp, err := http.Post(base+"/v1/revocations", "application/json", bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 201 {
					b.Errorf("status %d", resp.StatusCode)
				}
			}
		})
	}
	for _, body := range bodies {
		work <- body
	}
	close(work)
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "revocations/s")
}

// TestBulkBodyFitsServerDefault: the client does not import the server, so
// its batch body limit is a copy of the server's default.
func TestBulkBodyFitsServerDefault(t *testing.T) {
	if client.DefaultBulkMaxBody > broadcaster.DefaultMaxBodyBytes {
		t.Fatalf("client.DefaultBulkMaxBody %d is above the server's default --max-body-bytes %d", client.DefaultBulkMaxBody, broadcaster.DefaultMaxBodyBytes)
	}
}
