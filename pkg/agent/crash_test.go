package agent

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/testutil"
)

// broadcasterArgs are the flags of a real broadcaster with fast heartbeats
// and reconnections.
func broadcasterArgs(addr, dir string) []string {
	return []string{"--addr", addr, "--data", dir, "--heartbeat", "100ms", "--sse-retry", "50ms"}
}

// TestBroadcasterCrashAndWipe runs the real broadcaster binary. It is
// SIGKILLed and restarted on the same data directory twice while
// revocations are being posted: the agent resumes by ID (no reset) and ends
// with exactly the acknowledged revocations. Then the data directory is
// wiped (a new stream epoch) and a different set is posted: the agent is
// told to reset and ends with exactly the new set.
func TestBroadcasterCrashAndWipe(t *testing.T) {
	addr, dir := testutil.FreeAddr(t), t.TempDir()
	b := testutil.Start(t, "broadcaster", "/readyz", broadcasterArgs(addr, dir)...)
	a := newAgent(t, []string{b.URL}, append(hsOpts(t), WithReconnectBackoff(20*time.Millisecond, 300*time.Millisecond))...)
	runAgent(t, a)

	// Post revocations one by one with an Idempotency-Key; a POST that
	// fails (the broadcaster is down) is retried with the same key until
	// it is acknowledged, so every attempted revocation ends acknowledged
	// exactly once.
	const total = 60
	var acked atomic.Int64
	posterDone := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(testutil.HangLimit)
		for i := range total {
			body := fmt.Sprintf(`{"jti":"crash-%d"}`, i)
			for {
				code, _, err := request("POST", "http://"+addr+"/v1/revocations", body, "Idempotency-Key", fmt.Sprintf("crash-%d", i))
				if err == nil && (code == http.StatusCreated || code == http.StatusOK) {
					break
				}
				if time.Now().After(deadline) {
					posterDone <- fmt.Errorf("revocation %d not acknowledged: %d %w", i, code, err)
					return
				}
				time.Sleep(20 * time.Millisecond) // retry pacing, not synchronisation
			}
			acked.Add(1)
		}
		posterDone <- nil
	}()

	for _, at := range []int64{15, 35} {
		testutil.Eventually(t, testutil.HangLimit, fmt.Sprintf("%d acknowledged revocations", at), func() bool { return acked.Load() >= at })
		connects := a.Stats().Connects
		b.Kill()
		b = testutil.Start(t, "broadcaster", "/readyz", broadcasterArgs(addr, dir)...)
		// the agent resumes from this instance before it is killed too
		testutil.Eventually(t, testutil.HangLimit, "the agent to reconnect", func() bool { return a.Stats().Connects > connects })
	}
	if err := <-posterDone; err != nil {
		t.Fatal(err)
	}

	tokens := make([]string, total)
	for i := range tokens {
		tokens[i] = hs256(t, claims("user", fmt.Sprintf("crash-%d", i)))
	}
	control := hs256(t, claims("user", "crash-never-revoked"))
	testutil.Eventually(t, testutil.HangLimit, "every acknowledged revocation denied", func() bool {
		for _, tok := range tokens {
			if !errors.Is(checkErr(a, tok), ErrRevoked) {
				return false
			}
		}
		return true
	})
	st := a.Stats()
	if st.Denylist.Exact != total || st.Denylist.Spilled != 0 || st.Resets != 0 || st.Rebuilding {
		t.Fatalf("after the crashes: %+v; want exactly %d revocations and no reset", st, total)
	}
	// Resumed by ID: each revocation arrived exactly once, none replayed.
	if st.Revokes != total {
		t.Fatalf("agent applied %d revoke events for %d revocations: it did not resume by ID", st.Revokes, total)
	}
	if st.Connects < 3 {
		t.Fatalf("agent connected %d times, want at least 3 (two restarts)", st.Connects)
	}
	wantErr(t, a, control, nil, "token never revoked")
	t.Logf("after two SIGKILLs: %d connections, %d revocations, no reset", st.Connects, st.Denylist.Exact)

	// Wipe: a new epoch with a different set, overlapping the old one.
	b.Kill()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	b = testutil.Start(t, "broadcaster", "/readyz", broadcasterArgs(addr, dir)...)
	const keep, fresh = 10, 10 // crash-0..9 again, and wipe-0..9
	for i := range keep {
		revoke(t, b.URL, fmt.Sprintf(`{"jti":"crash-%d"}`, i))
	}
	newTokens := make([]string, fresh)
	for i := range fresh {
		revoke(t, b.URL, fmt.Sprintf(`{"jti":"wipe-%d"}`, i))
		newTokens[i] = hs256(t, claims("user", fmt.Sprintf("wipe-%d", i)))
	}
	testutil.Eventually(t, testutil.HangLimit, "the agent reset and rebuilt to the new state", func() bool {
		st := a.Stats()
		if st.Resets == 0 || st.Rebuilding || st.Denylist.Exact != keep+fresh {
			return false
		}
		for i, tok := range tokens {
			want := error(nil)
			if i < keep {
				want = ErrRevoked
			}
			if !errors.Is(checkErr(a, tok), want) {
				return false
			}
		}
		for _, tok := range newTokens {
			if !errors.Is(checkErr(a, tok), ErrRevoked) {
				return false
			}
		}
		return true
	})
	t.Logf("after the wipe: %+v", a.Stats())
}

// TestStale: the real broadcaster is down longer than the maximum
// staleness: the closed agent answers 503, the open one admits; both
// recover when it is back.
func TestStale(t *testing.T) {
	addr, dir := testutil.FreeAddr(t), t.TempDir()
	b := testutil.Start(t, "broadcaster", "/readyz", broadcasterArgs(addr, dir)...)
	opts := append(rsaOpts(t), WithMaxStaleness(time.Second), WithReconnectBackoff(20*time.Millisecond, 200*time.Millisecond))
	closed := newAgent(t, []string{b.URL}, opts...)
	open := newAgent(t, []string{b.URL}, append(opts, WithStalePolicy(StaleOpen))...)
	runAgent(t, closed)
	runAgent(t, open)

	tok := rs256(t, claims("alice", "stale-1"), "")
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	status := func(a *Agent) int {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		a.Middleware(ok).ServeHTTP(rec, req)
		return rec.Code
	}
	if c, o := status(closed), status(open); c != 200 || o != 200 {
		t.Fatalf("fresh: closed %d, open %d; want 200", c, o)
	}

	b.Kill()
	down := time.Now()
	testutil.Eventually(t, testutil.HangLimit, "the closed agent to answer 503", func() bool { return status(closed) == http.StatusServiceUnavailable })
	// Stale because of the silence, not because of the disconnection.
	if silent := time.Since(closed.Stats().LastActivity); silent < time.Second {
		t.Fatalf("stale after %v of silence, less than the maximum staleness of 1s", silent)
	}
	t.Logf("closed agent answered 503 %v after the broadcaster was killed", time.Since(down).Round(time.Millisecond))
	if closed.Fresh() || !closed.Ready() {
		t.Fatalf("closed agent: fresh %v, ready %v; want stale but ready", closed.Fresh(), closed.Ready())
	}
	testutil.Eventually(t, testutil.HangLimit, "the open agent to be stale", func() bool { return !open.Fresh() })
	if o := status(open); o != 200 {
		t.Fatalf("stale, open policy: %d, want 200", o)
	}
	if n := open.Stats().Checks["allowed_stale"]; n == 0 {
		t.Fatal("open agent did not count an allowed_stale check")
	}
	if err := checkErr(closed, tok); !errors.Is(err, ErrStale) {
		t.Fatalf("closed agent Check = %v, want ErrStale", err)
	}

	b = testutil.Start(t, "broadcaster", "/readyz", broadcasterArgs(addr, dir)...)
	testutil.Eventually(t, testutil.HangLimit, "both agents fresh again", func() bool { return closed.Fresh() && open.Fresh() })
	if c, o := status(closed), status(open); c != 200 || o != 200 {
		t.Fatalf("after recovery: closed %d, open %d; want 200", c, o)
	}
	_ = b
}
