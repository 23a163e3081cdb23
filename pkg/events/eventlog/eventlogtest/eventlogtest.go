package eventlogtest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/events/eventlog"
)

// hangLimit is how long a test waits for anything (a publish, a lift, a
// record) before calling it hung and failing. It is minutes, not seconds:
// on a loaded machine what takes milliseconds alone can take tens of
// seconds. Slow is not wrong; how fast a log is belongs in a benchmark.
// (internal/testutil.HangLimit, which this public package does not import.)
const hangLimit = 3 * time.Minute

// TestLog runs the behaviours every eventlog.Log must have. newLog returns
// a new, empty, open log, closed by the test's cleanup.
func TestLog(t *testing.T, newLog func(t *testing.T) eventlog.Log) {
	t.Run("publish, replace, lift, follow", func(t *testing.T) { testPublishFollow(t, newLog(t)) })
	t.Run("idempotency", func(t *testing.T) { testIdempotency(t, newLog(t)) })
	t.Run("batch", func(t *testing.T) { testBatch(t, newLog(t)) })
	t.Run("positions", func(t *testing.T) { testPositions(t, newLog(t)) })
}

func prepare(t *testing.T, body string) *events.Revocation {
	t.Helper()
	revs, _, err := events.DecodeRequest([]byte(body), 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := (events.Policy{}).Prepare(&revs[0], time.Now()); err != nil {
		t.Fatal(err)
	}
	return &revs[0]
}

func testPublishFollow(t *testing.T, l eventlog.Log) {
	ctx, cancel := context.WithTimeout(context.Background(), hangLimit)
	defer cancel()
	if l.Epoch() == 0 {
		t.Fatal("epoch 0")
	}
	if !l.Healthy() {
		t.Fatal("not healthy")
	}
	if _, ok, err := l.NextAfter(ctx, 0); err != nil || ok {
		t.Fatalf("NextAfter on an empty log: %v %v", ok, err)
	}
	a := prepare(t, `{"jti":"a"}`)
	pa, err := l.PublishRequest(ctx, a, eventlog.Request{})
	if err != nil || pa.Seq == 0 || pa.Stored == nil || pa.Duplicate {
		t.Fatalf("publish: %+v %v", pa, err)
	}
	b := prepare(t, `{"sub":"b","ban":true}`)
	pb, err := l.PublishRequest(ctx, b, eventlog.Request{})
	if err != nil || pb.Seq <= pa.Seq {
		t.Fatalf("publish: %+v %v", pb, err)
	}
	// the same key again replaces a
	pa2, err := l.PublishRequest(ctx, a, eventlog.Request{})
	if err != nil || pa2.Seq <= pb.Seq {
		t.Fatalf("publish again: %+v %v", pa2, err)
	}
	lift, err := l.LiftRequest(ctx, b.Key, "ops", "mistake", eventlog.Request{})
	if err != nil || lift.Seq <= pa2.Seq {
		t.Fatalf("lift: %+v %v", lift, err)
	}
	if _, err := l.LiftRequest(ctx, b.Key, "ops", "", eventlog.Request{}); !errors.Is(err, eventlog.ErrNotFound) {
		t.Fatalf("lift of a lift: %v, want ErrNotFound", err)
	}
	if next, ok, err := l.NextAfter(ctx, 0); err != nil || !ok || next != pa2.Seq {
		t.Fatalf("NextAfter(0) = %d %v %v, want %d (a's first message was replaced)", next, ok, err, pa2.Seq)
	}
	if _, ok, err := l.NextAfter(ctx, lift.Seq); err != nil || ok {
		t.Fatalf("NextAfter(last) = %v %v, want none", ok, err)
	}
	st, err := l.State(ctx)
	if err != nil || st.LastSeq != lift.Seq || st.Msgs != 2 {
		t.Fatalf("state %+v %v: want last %d, 2 messages", st, err, lift.Seq)
	}

	// follow from the start: the live state, caught up, then new messages
	fctx, fcancel := context.WithCancel(ctx)
	var (
		mu     sync.Mutex
		got    []eventlog.Record
		caught = make(chan struct{})
		done   = make(chan error, 1)
	)
	go func() {
		done <- l.Follow(fctx, 0, func(r eventlog.Record) error {
			mu.Lock()
			got = append(got, r)
			mu.Unlock()
			return nil
		}, func() { close(caught) })
	}()
	select {
	case <-caught:
	case <-ctx.Done():
		t.Fatal("Follow never caught up")
	}
	c := prepare(t, `{"jti":"c"}`)
	pc, err := l.PublishRequest(ctx, c, eventlog.Request{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("Follow delivered %d messages, want 3", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	fcancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Follow ended with %v, want context.Canceled", err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []struct {
		seq uint64
		typ string
		key string
	}{{pa2.Seq, events.TypeRevoke, a.Key}, {lift.Seq, events.TypeLift, b.Key}, {pc.Seq, events.TypeRevoke, c.Key}}
	for i, w := range want {
		if r := got[i]; r.Seq != w.seq || r.Type != w.typ || r.Key != w.key {
			t.Errorf("message %d: seq %d %s %s, want %d %s %s", i, r.Seq, r.Type, r.Key, w.seq, w.typ, w.key)
		}
	}
	rev, err := got[0].Decode()
	if err != nil || rev.JTI != "a" || rev.Seq != pa2.Seq {
		t.Errorf("decode: %+v %v", rev, err)
	}
}

func testIdempotency(t *testing.T, l eventlog.Log) {
	ctx, cancel := context.WithTimeout(context.Background(), hangLimit)
	defer cancel()
	req := eventlog.Request{ID: eventlog.RequestID("key", "ops", "k1"), Fingerprint: eventlog.RequestFingerprint("revoke", []byte("x"))}
	rev := prepare(t, `{"jti":"idem"}`)
	first, err := l.PublishRequest(ctx, rev, req)
	if err != nil || first.Duplicate {
		t.Fatalf("first: %+v %v", first, err)
	}
	again, err := l.PublishRequest(ctx, rev, req)
	if err != nil || !again.Duplicate || again.Seq != first.Seq || string(again.Stored) != string(first.Stored) {
		t.Fatalf("retry: %+v %v, want the first answer %+v", again, err, first)
	}
	other := req
	other.Fingerprint = eventlog.RequestFingerprint("revoke", []byte("y"))
	if _, err := l.PublishRequest(ctx, prepare(t, `{"jti":"other"}`), other); !errors.Is(err, eventlog.ErrConflict) {
		t.Fatalf("same key, other request: %v, want ErrConflict", err)
	}
	var ce *eventlog.ConflictError
	if _, err := l.PublishRequest(ctx, prepare(t, `{"jti":"other"}`), other); !errors.As(err, &ce) || ce.Reason == "" {
		t.Fatalf("conflict without a reason: %v", err)
	}

	lreq := eventlog.Request{ID: eventlog.RequestID("key", "ops", "k2"), Fingerprint: eventlog.RequestFingerprint("lift", []byte(rev.Key))}
	l1, err := l.LiftRequest(ctx, rev.Key, "ops", "", lreq)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := l.LiftRequest(ctx, rev.Key, "ops", "", lreq)
	if err != nil || !l2.Duplicate || l2.Seq != l1.Seq {
		t.Fatalf("retried lift: %+v %v, want a duplicate of %d", l2, err, l1.Seq)
	}
	// the revocation the first request stored was lifted: its answer is gone
	if _, err := l.PublishRequest(ctx, rev, req); !errors.Is(err, eventlog.ErrConflict) {
		t.Fatalf("retry after a lift: %v, want ErrConflict", err)
	}
}

func testBatch(t *testing.T, l eventlog.Log) {
	ctx, cancel := context.WithTimeout(context.Background(), hangLimit)
	defer cancel()
	items := make([]eventlog.Item, 20)
	for i := range items {
		items[i] = eventlog.Item{Revocation: prepare(t, `{"jti":"batch-`+string(rune('a'+i))+`"}`), Request: eventlog.Request{ID: eventlog.NewIdempotencyKey()}}
	}
	res := l.PublishBatch(ctx, items)
	if len(res) != len(items) {
		t.Fatalf("%d results for %d items", len(res), len(items))
	}
	seen := map[uint64]bool{}
	for i, r := range res {
		if r.Err != nil || r.Seq == 0 || r.Stored == nil || seen[r.Seq] {
			t.Fatalf("item %d: %+v", i, r)
		}
		seen[r.Seq] = true
	}
	again := l.PublishBatch(ctx, items)
	for i, r := range again {
		if r.Err != nil || !r.Duplicate || r.Seq != res[i].Seq {
			t.Fatalf("retried item %d: %+v, want a duplicate of %d", i, r, res[i].Seq)
		}
	}
}

func testPositions(t *testing.T, l eventlog.Log) {
	ctx, cancel := context.WithTimeout(context.Background(), hangLimit)
	defer cancel()
	pos, err := l.OpenPositions(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := pos.PutAll(ctx, map[string][]byte{"a-1": []byte("one")}); err != nil {
		t.Fatal(err)
	}
	if err := pos.PutAll(ctx, map[string][]byte{"bad key!": []byte("x")}); err == nil {
		t.Fatal("an invalid key was accepted")
	}
	got := make(chan string, 10)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	go func() { _ = pos.Watch(wctx, func(k string, v []byte) { got <- k + "=" + string(v) }) }()
	want := func(s string) {
		t.Helper()
		select {
		case g := <-got:
			if g != s {
				t.Fatalf("watch: %s, want %s", g, s)
			}
		case <-ctx.Done():
			t.Fatalf("watch: nothing, want %s", s)
		}
	}
	want("a-1=one")
	if err := pos.PutAll(ctx, map[string][]byte{"b_2": []byte("two")}); err != nil {
		t.Fatal(err)
	}
	want("b_2=two")
}
