package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/auth"
	"github.com/revocast/revocast/internal/broadcaster"
	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/internal/testutil/inprocess"
	"github.com/revocast/revocast/pkg/agent"
	"github.com/revocast/revocast/pkg/client"
	"github.com/revocast/revocast/pkg/events"
)

// newClient starts a broadcaster (embedded NATS in t.TempDir()) and returns
// a client of it.
func newClient(t *testing.T, mod func(*broadcaster.Config), opts ...client.Option) (*client.Client, string) {
	t.Helper()
	_, base := inprocess.Broadcaster(t, mod)
	c, err := client.New(base, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c, base
}

func TestRevokeGetListLift(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t, nil)
	ctx := t.Context()

	st, err := c.Revoke(ctx, events.Revocation{Sub: "alice", Reason: "logout"}, client.WriteOptions{IdempotencyKey: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != client.StatusCreated || !events.ValidKey(st.Key) || st.ID == "" || st.Sub != "alice" || len(st.Raw) == 0 {
		t.Fatalf("revoke: %+v", st)
	}
	again, err := c.Revoke(ctx, events.Revocation{Sub: "alice", Reason: "logout"}, client.WriteOptions{IdempotencyKey: "k1"})
	if err != nil || again.Status != client.StatusDuplicate || again.Key != st.Key {
		t.Fatalf("retry with the same key: %+v, %v", again, err)
	}

	live, err := c.Get(ctx, st.Key)
	if err != nil {
		t.Fatal(err)
	}
	if live.Sub != "alice" || live.Enforcement == nil || !live.Enforcement.Done() {
		t.Fatalf("get: %+v", live)
	}
	// no agent connected: enforced at once
	e, err := c.WaitEnforced(ctx, st.Key, client.WaitOptions{Deadline: time.Now().Add(testutil.HangLimit)})
	if err != nil || !e.Done() || e.Agents != 0 {
		t.Fatalf("wait: %+v, %v", e, err)
	}

	batch, err := c.RevokeBatch(ctx, []events.Revocation{{JTI: "j1"}, {JTI: "j2"}, {JTI: "j3"}}, client.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if batch.Created != 3 || len(batch.Revocations) != 3 || batch.Revocations[2].JTI != "j3" {
		t.Fatalf("batch: %+v", batch)
	}

	page, err := c.List(ctx, client.ListOptions{Sub: "alice"})
	if err != nil || len(page.Revocations) != 1 || page.Revocations[0].Key != st.Key || page.Next != "" || len(page.Raw) != 1 {
		t.Fatalf("list --sub alice: %+v, %v", page, err)
	}
	page, err = c.List(ctx, client.ListOptions{Limit: 2})
	if err != nil || len(page.Revocations) != 2 || page.Next == "" {
		t.Fatalf("first page of 2: %+v, %v", page, err)
	}
	var keys []string
	for r, err := range c.All(ctx, client.ListOptions{Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, r.Key)
	}
	if len(keys) != 4 || keys[0] != st.Key {
		t.Fatalf("all, one per page: %v", keys)
	}

	l, err := c.Lift(ctx, st.Key, client.WriteOptions{Reason: "appeal"})
	if err != nil || l.Key != st.Key || l.ID == "" || l.Status == "" {
		t.Fatalf("lift: %+v, %v", l, err)
	}
	l, err = c.LiftMatching(ctx, events.Revocation{JTI: "j2"}, client.WriteOptions{})
	if err != nil || l.Key != batch.Revocations[1].Key {
		t.Fatalf("lift by matchers: %+v, %v", l, err)
	}
	_, err = c.Lift(ctx, st.Key, client.WriteOptions{})
	var ae *client.Error
	if !errors.Is(err, client.ErrNotFound) || !errors.As(err, &ae) || ae.Status != http.StatusNotFound || ae.Method != http.MethodDelete {
		t.Fatalf("lift twice: %v", err)
	}
	if _, err := c.Get(ctx, st.Key); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("get after lift: %v", err)
	}
}

// TestAgents: a named agent is listed by Agents with what it applied.
func TestAgents(t *testing.T) {
	t.Parallel()
	c, base := newClient(t, nil)
	ctx := t.Context()
	if list, err := c.Agents(ctx); err != nil || len(list) != 0 {
		t.Fatalf("agents before any: %+v, %v", list, err)
	}
	st, err := c.Revoke(ctx, events.Revocation{JTI: "before-the-agent"}, client.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New([]string{base}, agent.WithAlgorithms("HS256"), agent.WithHMACSecret([]byte("client tests: 32+ bytes of HMAC secret")),
		agent.WithName("checkout-api"), agent.WithReportInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(actx) }()
	t.Cleanup(func() { cancel(); <-done })

	var got client.AgentStatus
	testutil.Eventually(t, testutil.HangLimit, "the agent listed with the revocation applied", func() bool {
		list, err := c.Agents(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 {
			return false
		}
		got = list[0]
		return got.Applied == st.ID
	})
	if got.Name != "checkout-api" || got.Instance == "" || got.Node == "" || !got.Connected || !got.Fresh ||
		got.Lag == nil || *got.Lag != 0 || got.ConnectedAt.IsZero() || got.ReportedAt == nil {
		t.Fatalf("agent: %+v", got)
	}
}

// TestErrorKeepsField: a 400 keeps the server's message and field name.
func TestErrorKeepsField(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t, nil)
	_, err := c.RevokeBatch(t.Context(), []events.Revocation{{JTI: "ok"}, {Claims: map[string]any{"exp": 1.0}}}, client.WriteOptions{})
	var ae *client.Error
	if !errors.As(err, &ae) || !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("want a 400 *Error, got %v", err)
	}
	if ae.Status != http.StatusBadRequest || ae.Message == "" || !strings.HasPrefix(ae.Field, "revocations[1]") {
		t.Fatalf("400: status %d message %q field %q", ae.Status, ae.Message, ae.Field)
	}
	if !strings.Contains(err.Error(), "[field "+ae.Field+"]") {
		t.Errorf("Error() without the field: %v", err)
	}
	if errors.Is(err, client.ErrNotFound) || ae.Temporary() {
		t.Errorf("a 400 matches only ErrInvalid and is not temporary")
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	reader, _ := auth.GenerateKey()
	revoker, _ := auth.GenerateKey()
	ks, err := auth.ParseKeys(strings.NewReader(auth.KeyLine("dashboard", auth.RoleReader, reader) + "\n" +
		auth.KeyLine("ops", auth.RoleRevoker, revoker) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	anon, base := newClient(t, func(c *broadcaster.Config) { c.Auth = auth.New(ks, nil) })
	ctx := t.Context()
	rev := events.Revocation{Sub: "bob"}
	if _, err := anon.Revoke(ctx, rev, client.WriteOptions{}); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("no token: %v", err)
	}
	rc, _ := client.New(base, client.WithToken(reader))
	if _, err := rc.Revoke(ctx, rev, client.WriteOptions{}); !errors.Is(err, client.ErrForbidden) {
		t.Fatalf("reader revokes: %v", err)
	}
	if _, err := rc.List(ctx, client.ListOptions{}); err != nil {
		t.Fatalf("reader lists: %v", err)
	}
	wc, _ := client.New(base, client.WithToken(revoker))
	if _, err := wc.Revoke(ctx, rev, client.WriteOptions{}); err != nil {
		t.Fatalf("revoker revokes: %v", err)
	}
	err = anon.Tail(ctx, client.TailOptions{}, func(client.Event) error { return nil })
	if !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("tail without a token: %v", err)
	}
}

// failFirst is a proxy in front of the broadcaster that answers the first
// n POSTs with 503 and records their Idempotency-Key.
type failFirst struct {
	mu    sync.Mutex
	n     int
	keys  []string
	proxy http.Handler
}

func (f *failFirst) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		f.mu.Lock()
		f.keys = append(f.keys, r.Header.Get("Idempotency-Key"))
		fail := f.n > 0
		f.n--
		f.mu.Unlock()
		if fail {
			w.Header().Set("Retry-After", "0")
			http.Error(w, `{"error":"busy"}`, http.StatusServiceUnavailable)
			return
		}
	}
	f.proxy.ServeHTTP(w, r)
}

func (f *failFirst) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.keys...)
}

func (f *failFirst) failNext(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n = n
}

func newFailFirst(t *testing.T, base string, n int) (*failFirst, string) {
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	f := &failFirst{n: n, proxy: httputil.NewSingleHostReverseProxy(u)}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

// TestRetrySendsSameKey: a write is retried with the same Idempotency-Key
// and stored once; without retries the 503 is returned.
func TestRetrySendsSameKey(t *testing.T) {
	t.Parallel()
	_, base := inprocess.Broadcaster(t, nil)
	f, front := newFailFirst(t, base, 2)
	var retries []client.RetryInfo
	c, err := client.New(front, client.WithRetryBackoff(time.Millisecond, 10*time.Millisecond),
		client.WithRetryHook(func(ri client.RetryInfo) { retries = append(retries, ri) }))
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Revoke(t.Context(), events.Revocation{JTI: "retried"}, client.WriteOptions{IdempotencyKey: "idem-1"})
	if err != nil || st.Status != client.StatusCreated {
		t.Fatalf("revoke through two 503s: %+v, %v", st, err)
	}
	if keys := f.sent(); len(keys) != 3 || keys[0] != "idem-1" || keys[2] != "idem-1" {
		t.Fatalf("keys sent: %q", keys)
	}
	if len(retries) != 2 || !errors.Is(retries[0].Err, client.ErrUnavailable) || retries[1].Attempt != 2 {
		t.Fatalf("retry hook: %+v", retries)
	}

	f.failNext(1)
	once, _ := client.New(front, client.WithRetries(0))
	_, err = once.Revoke(t.Context(), events.Revocation{JTI: "not-retried"}, client.WriteOptions{})
	var ae *client.Error
	if !errors.Is(err, client.ErrUnavailable) || !errors.As(err, &ae) || ae.Message != "busy" || !ae.Temporary() {
		t.Fatalf("no retries: %v", err)
	}
}

func TestTransportError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	c, _ := client.New(base, client.WithRetries(0))
	_, err := c.List(t.Context(), client.ListOptions{})
	var te *client.TransportError
	if !errors.As(err, &te) || te.Timeout {
		t.Fatalf("closed server: %v", err)
	}
}

// TestTail follows new events, then resumes after an event id.
func TestTail(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var mu sync.Mutex
	var got []client.Event
	connected := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		done <- c.Tail(ctx, client.TailOptions{OnConnect: func(bool) { once.Do(func() { close(connected) }) }}, func(ev client.Event) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, ev)
			return nil
		})
	}()
	select {
	case <-connected:
	case err := <-done:
		t.Fatalf("tail ended: %v", err)
	}
	seen := func(typ string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, ev := range got {
				if ev.Type == typ {
					return true
				}
			}
			return false
		}
	}
	testutil.Eventually(t, testutil.HangLimit, "the synced event", seen(events.TypeSynced))
	st, err := c.Revoke(ctx, events.Revocation{JTI: "tailed"}, client.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lift(ctx, st.Key, client.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, testutil.HangLimit, "the lift event", seen(events.TypeLift))
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("tail after cancel: %v", err)
	}

	// resume after the revoke: the lift follows
	first := make(chan client.Event, 1)
	errStop := errors.New("stop")
	err = c.Tail(t.Context(), client.TailOptions{From: st.ID}, func(ev client.Event) error {
		if ev.Type == events.TypeSynced {
			return nil
		}
		first <- ev
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("tail --from: %v", err)
	}
	if ev := <-first; ev.Type != events.TypeLift {
		t.Fatalf("after %s: %s %s", st.ID, ev.Type, ev.Data)
	}
	if err := c.Tail(t.Context(), client.TailOptions{From: "x"}, nil); err == nil {
		t.Fatal("tail from a bad id")
	}
}

func jtiLines(n int) string {
	var b strings.Builder
	b.WriteString("# jtis\n\n")
	for i := range n {
		fmt.Fprintf(&b, "bulk-%04d\n", i)
	}
	return b.String()
}

// TestBulk sends a file in batches, stops after the first commit, and
// resumes from the checkpoint with the same run.
func TestBulk(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t, nil)
	ctx := t.Context()
	input := jtiLines(95)

	b := client.NewBulk(c)
	b.BatchSize, b.Concurrency, b.Reason = 10, 1, "bulk test"
	var cp client.Checkpoint
	stop := errors.New("stop after a commit")
	b.OnCommit = func(got client.Checkpoint) error { cp = got; return stop }
	res, err := b.Run(ctx, strings.NewReader(input))
	if !errors.Is(err, stop) || cp.Done != 10 || res.Done != 10 || res.Lines != 12 || cp.PrefixSHA256 == client.EmptyPrefixSHA256 {
		t.Fatalf("first run: %+v, %v", res, err)
	}

	again := client.NewBulk(c)
	again.BatchSize, again.Concurrency, again.Reason = 10, 2, "bulk test"
	again.RunID, again.Resume = b.RunID, &cp
	commits := 0
	again.OnCommit = func(client.Checkpoint) error { commits++; return nil }
	res, err = again.Run(ctx, strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	if res.Done != 95 || res.Acked != 85 || res.Created != 85 || commits != 9 || res.SkippedLines != 0 {
		t.Fatalf("resumed run: %+v, %d commits", res, commits)
	}
	page, err := c.List(ctx, client.ListOptions{JTI: "bulk-0094"})
	if err != nil || len(page.Revocations) != 1 || page.Revocations[0].Reason != "bulk test" {
		t.Fatalf("the last jti: %+v, %v", page, err)
	}

	// the same input again from the start, same run: every batch duplicate
	dup := client.NewBulk(c)
	dup.BatchSize, dup.Reason, dup.RunID = 10, "bulk test", b.RunID
	res, err = dup.Run(ctx, strings.NewReader(input))
	if err != nil || res.Duplicates != 95 || res.Created != 0 || res.SkippedLines != 2 {
		t.Fatalf("same run again: %+v, %v", res, err)
	}

	changed := client.NewBulk(c)
	changed.Resume = &cp
	started := false
	changed.OnStart = func() { started = true }
	if _, err := changed.Run(ctx, strings.NewReader("other\n"+input)); !errors.Is(err, client.ErrResumeMismatch) || started {
		t.Fatalf("changed input: %v (started %v)", err, started)
	}
}

// TestBulkRetries: a batch answered 503 is retried with the same key; a
// 400 stops the run with a *BatchError naming its first line.
func TestBulkRetries(t *testing.T) {
	t.Parallel()
	_, base := inprocess.Broadcaster(t, nil)
	f, front := newFailFirst(t, base, 1)
	c, _ := client.New(front)
	b := client.NewBulk(c)
	b.BatchSize, b.Concurrency, b.RetryBase, b.MaxRetryDelay = 5, 1, time.Millisecond, 10*time.Millisecond
	var retries []client.BulkRetry // one batch in flight: no concurrent calls
	b.OnRetry = func(r client.BulkRetry) { retries = append(retries, r) }
	res, err := b.Run(t.Context(), strings.NewReader(jtiLines(12)))
	if err != nil || res.Created != 12 {
		t.Fatalf("run: %+v, %v", res, err)
	}
	keys := f.sent()
	if len(retries) != 1 || retries[0].FirstLine != 1 || len(keys) != 4 || keys[0] != keys[1] || !strings.HasPrefix(keys[0], "revocast-bulk/"+b.RunID+"/") {
		t.Fatalf("retries %+v, keys %q", retries, keys)
	}

	bad := client.NewBulk(c)
	bad.Iss = strings.Repeat("x", events.MaxValueLength+1)
	_, err = bad.Run(t.Context(), strings.NewReader("a\nb\n"))
	var be *client.BatchError
	if !errors.As(err, &be) || be.FirstLine != 1 || be.Exhausted || !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("400: %v", err)
	}
	long := strings.Repeat("y", events.MaxValueLength+1)
	var le *client.LineError
	if _, err := client.NewBulk(c).Run(t.Context(), strings.NewReader("a\n"+long+"\n")); !errors.As(err, &le) || le.Line != 2 {
		t.Fatalf("too long a jti: %v", err)
	}
}
