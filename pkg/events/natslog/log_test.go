package natslog

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/events"
)

func openLog(t *testing.T, dir string) *Log {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
	defer cancel()
	l, err := Open(ctx, Config{DataDir: dir})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func prepare(t *testing.T, body string) *events.Revocation {
	t.Helper()
	r, err := events.DecodeRevocation([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := (events.Policy{}).Prepare(&r, time.Now()); err != nil {
		t.Fatal(err)
	}
	return &r
}

// follower collects what Follow delivers.
type follower struct {
	mu       sync.Mutex
	recs     []Record
	caughtUp chan struct{}
}

func follow(t *testing.T, l *Log, from uint64) *follower {
	t.Helper()
	f := &follower{caughtUp: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(done)
		// as the broadcaster does: follow again after the last record when
		// Follow fails (a consumer that stalled while a cluster formed)
		next := from
		for ctx.Err() == nil {
			err := l.Follow(ctx, next, func(r Record) error {
				f.mu.Lock()
				f.recs = append(f.recs, r)
				f.mu.Unlock()
				next = r.Seq + 1
				return nil
			}, func() { once.Do(func() { close(f.caughtUp) }) })
			if err != nil && ctx.Err() == nil && !errors.Is(err, ErrStalled) {
				t.Logf("follow: %v; following again from %d", err, next)
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

func (f *follower) waitFor(t *testing.T, n int) []Record {
	t.Helper()
	deadline := time.Now().Add(testutil.HangLimit)
	for time.Now().Before(deadline) {
		f.mu.Lock()
		if len(f.recs) >= n {
			out := append([]Record(nil), f.recs...)
			f.mu.Unlock()
			return out
		}
		f.mu.Unlock()
		time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
	}
	f.mu.Lock()
	got := len(f.recs)
	f.mu.Unlock()
	t.Fatalf("%d records after %v, want %d", got, testutil.HangLimit, n)
	return nil
}

func TestPublishFollowLift(t *testing.T) {
	l := openLog(t, t.TempDir())
	ctx := context.Background()
	if l.Epoch() == 0 {
		t.Fatal("no epoch")
	}
	f := follow(t, l, 0)
	select {
	case <-f.caughtUp:
	case <-time.After(testutil.HangLimit):
		t.Fatalf("an empty stream did not report caught up within %v", testutil.HangLimit)
	}

	rev := prepare(t, `{"jti":"t1","reason":"test"}`)
	p, err := l.Publish(ctx, rev, "")
	if err != nil || p.Seq != 1 || p.Duplicate {
		t.Fatalf("Publish = %+v, %v", p, err)
	}
	got, err := l.Get(ctx, rev.Key)
	if err != nil || got.Revocation.JTI != "t1" || got.Seq != 1 || got.Expires.IsZero() {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	liftStart := time.Now()
	lift, err := l.Lift(ctx, rev.Key, "ops", "", "")
	liftTook := time.Since(liftStart)
	if err != nil || lift.Seq != 2 {
		t.Fatalf("Lift = %+v, %v", lift, err)
	}
	if _, err := l.Get(ctx, rev.Key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after lift: %v, want ErrNotFound", err)
	}
	if _, err := l.Lift(ctx, rev.Key, "ops", "", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Lift: %v, want ErrNotFound", err)
	}
	// The stream holds only the live state: when the lift replaced the
	// revocation before the consumer read it, the consumer sees the lift
	// alone. Either way the lift comes last.
	recs := f.waitFor(t, 1)
	for recs[len(recs)-1].Seq < 2 {
		recs = f.waitFor(t, len(recs)+1)
	}
	if len(recs) == 2 && (recs[0].Type != events.TypeRevoke || mustDecode(t, recs[0]).Key != rev.Key || mustDecode(t, recs[0]).Seq != 1) {
		t.Fatalf("first record %+v", recs[0])
	}
	last := recs[len(recs)-1]
	if last.Type != events.TypeLift || last.Key != rev.Key || last.Seq != 2 {
		t.Fatalf("last record %+v", last)
	}
	// the lift lives as long as the revocation would have: until its
	// expires_at + G, give or take the whole seconds of a TTL and the time
	// the lift took to be stored (slow, on a loaded machine, is not wrong)
	if d := last.Expires.Sub(rev.ExpiresAt.Add(events.DefaultExpiryGrace)); d < -2*time.Second || d > 2*time.Second+liftTook {
		t.Fatalf("lift expires %v, revocation %v (the lift took %v)", last.Expires, rev.ExpiresAt, liftTook)
	}

	// the stream holds only the live state: the replaced revoke is gone
	st, err := l.State(ctx)
	if err != nil || st.Msgs != 1 || st.LastSeq != 2 {
		t.Fatalf("State = %+v, %v", st, err)
	}
}

func TestIdempotencyKey(t *testing.T) {
	l := openLog(t, t.TempDir())
	ctx := context.Background()
	rev := prepare(t, `{"sub":"alice"}`)
	a, err := l.Publish(ctx, rev, "req-1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Publish(ctx, rev, "req-1")
	if err != nil || !b.Duplicate || b.Seq != a.Seq {
		t.Fatalf("retry = %+v, %v; first %+v", b, err, a)
	}
	st, _ := l.State(ctx)
	if st.LastSeq != 1 {
		t.Fatalf("stored %d messages for one idempotency key", st.LastSeq)
	}
}

// TestTTLRemovesExpiredRevocations: a revocation stays in the stream until
// its expires_at + the expiry grace, then its TTL removes it.
func TestTTLRemovesExpiredRevocations(t *testing.T) {
	const grace = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
	defer cancel()
	l, err := Open(ctx, Config{DataDir: t.TempDir(), ExpiryGrace: grace})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	rev := prepare(t, `{"jti":"short"}`)
	rev.ExpiresAt = events.Time{Time: time.Now().Add(1 * time.Second)}
	if _, err := l.Publish(ctx, rev, ""); err != nil {
		t.Fatal(err)
	}
	rec, err := l.Get(ctx, rev.Key)
	if err != nil {
		t.Fatal(err)
	}
	if want := rev.ExpiresAt.Add(grace); rec.Expires.Before(want) {
		t.Fatalf("the message leaves at %v, before expires_at + G = %v", rec.Expires, want)
	}
	deadline := time.Now().Add(testutil.HangLimit)
	for {
		st, err := l.State(ctx)
		if err == nil && st.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("message still stored %v after a 1s expiry and %v grace: %+v", testutil.HangLimit, grace, st)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
	if !time.Now().After(rev.ExpiresAt.Add(grace)) {
		t.Fatal("the message left before expires_at + G")
	}
	if _, err := l.Get(ctx, rev.Key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of expired: %v", err)
	}
}

func TestStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	l := openLog(t, dir)
	epoch := l.Epoch()
	rev := prepare(t, `{"kid":"k1"}`)
	if _, err := l.Publish(ctx, rev, ""); err != nil {
		t.Fatal(err)
	}
	l.Close()

	l2 := openLog(t, dir)
	if l2.Epoch() != epoch {
		t.Fatalf("epoch changed across restart: %d → %d", epoch, l2.Epoch())
	}
	got, err := l2.Get(ctx, rev.Key)
	if err != nil || got.Revocation.Kid != "k1" || !got.Expires.IsZero() {
		t.Fatalf("after restart Get = %+v, %v", got, err)
	}
	p, err := l2.Publish(ctx, prepare(t, `{"jti":"next"}`), "")
	if err != nil || p.Seq != 2 {
		t.Fatalf("sequence did not continue: %+v, %v", p, err)
	}
}

func TestFollowFromSequenceAndBatch(t *testing.T) {
	l := openLog(t, t.TempDir())
	ctx := context.Background()
	items := make([]Item, 50)
	for i := range items {
		items[i] = Item{Revocation: prepare(t, `{"jti":"b`+string(rune('a'+i%26))+string(rune('a'+i/26))+`"}`), Request: Request{ID: NewIdempotencyKey()}}
	}
	for i, r := range l.PublishBatch(ctx, items) {
		if r.Err != nil || r.Seq != uint64(i+1) {
			t.Fatalf("item %d: %+v", i, r)
		}
	}
	f := follow(t, l, 41)
	recs := f.waitFor(t, 10)
	if recs[0].Seq != 41 || recs[9].Seq != 50 || recs[9].Pending != 0 {
		t.Fatalf("from 41 got seqs %d..%d (pending %d)", recs[0].Seq, recs[9].Seq, recs[9].Pending)
	}
	select {
	case <-f.caughtUp:
	case <-time.After(testutil.HangLimit):
		t.Fatalf("not caught up within %v", testutil.HangLimit)
	}
}

func mustDecode(t *testing.T, r Record) *events.Revocation {
	t.Helper()
	rev, err := r.Decode()
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// NextAfter skips the sequences of replaced messages and says when nothing
// follows.
func TestNextAfter(t *testing.T) {
	l := openLog(t, t.TempDir())
	ctx := context.Background()
	if _, ok, err := l.NextAfter(ctx, 0); err != nil || ok {
		t.Fatalf("empty stream: NextAfter(0) = %v, %v", ok, err)
	}
	a := prepare(t, `{"jti":"next-a"}`)
	for _, body := range []string{`{"jti":"next-a"}`, `{"jti":"next-b"}`, `{"jti":"next-c"}`} {
		if _, err := l.Publish(ctx, prepare(t, body), ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Lift(ctx, a.Key, "ops", "", ""); err != nil { // seq 4 replaces seq 1
		t.Fatal(err)
	}
	tests := []struct {
		after  uint64
		want   uint64
		wantOK bool
	}{
		{0, 2, true}, // 1 was replaced
		{2, 3, true},
		{3, 4, true},
		{4, 0, false},
		{100, 0, false},
	}
	for _, tc := range tests {
		got, ok, err := l.NextAfter(ctx, tc.after)
		if err != nil || ok != tc.wantOK || got != tc.want {
			t.Errorf("NextAfter(%d) = %d, %v, %v; want %d, %v", tc.after, got, ok, err, tc.want, tc.wantOK)
		}
	}
}
