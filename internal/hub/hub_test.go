package hub

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/sse"
)

func revoke(seq uint64, key string) Event {
	data, _ := events.MarshalStored(&events.Revocation{Key: key, JTI: "jti-" + key})
	return Event{Seq: seq, Type: events.TypeRevoke, Key: key, Data: data}
}

// seqsOf decodes frames and returns their event sequences.
func seqsOf(t *testing.T, frames [][]byte) []uint64 {
	t.Helper()
	var out []uint64
	for _, f := range frames {
		ev, err := sse.NewDecoder(bytes.NewReader(f)).Next()
		if err != nil {
			t.Fatalf("frame %q: %v", f, err)
		}
		id, err := events.ParseEventID(ev.ID)
		if err != nil {
			t.Fatalf("frame id %q: %v", ev.ID, err)
		}
		out = append(out, id.Seq)
	}
	return out
}

func TestReplayHoldsOnlyTheLiveState(t *testing.T) {
	h := New(7)
	for i, key := range []string{"a", "b", "a", "c"} {
		if err := h.Apply(revoke(uint64(i+1), key)); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Apply(Event{Seq: 5, Type: events.TypeLift, Key: "b"}); err != nil {
		t.Fatal(err)
	}
	frames, last := h.Replay(nil, 0, 100)
	if got := seqsOf(t, frames); fmt.Sprint(got) != "[3 4 5]" || last != 5 {
		t.Fatalf("replay from 0 = %v (last %d), want [3 4 5]", got, last)
	}
	frames, _ = h.Replay(nil, 3, 100)
	if got := seqsOf(t, frames); fmt.Sprint(got) != "[4 5]" {
		t.Fatalf("replay after 3 = %v", got)
	}
	frames, last = h.Replay(nil, 0, 1)
	if got := seqsOf(t, frames); fmt.Sprint(got) != "[3]" || last != 3 {
		t.Fatalf("replay limit 1 = %v, last %d", got, last)
	}
	if !bytes.Contains(frames[0], []byte("id: 7-3\nevent: revoke\ndata: {")) {
		t.Fatalf("frame %q", frames[0])
	}
	// an event at or below the head (a consumer restart) is ignored
	if err := h.Apply(revoke(2, "z")); err != nil || h.Head() != 5 || h.Len() != 3 {
		t.Fatalf("old event applied: head %d len %d", h.Head(), h.Len())
	}
}

func TestSweepForgetsExpired(t *testing.T) {
	h := New(1)
	ev := revoke(1, "a")
	ev.Expires = time.Now().Add(-time.Second)
	apply(t, h, ev)
	apply(t, h, revoke(2, "b"))
	if frames, _ := h.Replay(nil, 0, 10); len(frames) != 1 {
		t.Fatalf("expired entry replayed: %d frames", len(frames))
	}
	if n := h.Sweep(time.Now()); n != 1 || h.Len() != 1 {
		t.Fatalf("Sweep = %d, Len = %d", n, h.Len())
	}
	if _, ok := h.Get("a"); ok {
		t.Fatal("expired entry still readable")
	}
}

// TestExpiryGraceKeepsReplayHidesListing: an entry leaves the stream at its
// revocation's expires_at + G. Until then the hub replays it (a new
// subscriber must still get it) and Sweep keeps it; listings hide it from
// expires_at on.
func TestExpiryGraceKeepsReplayHidesListing(t *testing.T) {
	const grace = time.Minute
	now := time.Now()
	tests := []struct {
		name             string
		expiresAt        time.Time // the revocation's; zero: never
		replayed, listed bool
		kept             bool // by Sweep(now)
	}{
		{"live", now.Add(time.Hour), true, true, true},
		{"never expires", time.Time{}, true, true, true},
		{"expired within the grace", now.Add(-grace / 2), true, false, true},
		{"expired beyond the grace", now.Add(-2 * grace), false, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := New(1, WithExpiryGrace(grace))
			ev := revoke(1, "a")
			if !tc.expiresAt.IsZero() {
				ev.Expires = tc.expiresAt.Add(grace) // when the log drops it
			}
			if err := h.Apply(ev); err != nil {
				t.Fatal(err)
			}
			if frames, _ := h.Replay(nil, 0, 10); (len(frames) == 1) != tc.replayed {
				t.Errorf("replayed: %v, want %v", len(frames) == 1, tc.replayed)
			}
			sub := h.Subscribe(0)
			defer sub.Close()
			if frames, _ := sub.Next(nil, 10); (len(frames) == 1) != tc.replayed {
				t.Errorf("sent to a new subscriber: %v, want %v", len(frames) == 1, tc.replayed)
			}
			if _, ok := h.Get("a"); ok != tc.listed {
				t.Errorf("Get: %v, want %v", ok, tc.listed)
			}
			listed := false
			h.Revocations(0, func(uint64, []byte) bool { listed = true; return true })
			if listed != tc.listed {
				t.Errorf("listed: %v, want %v", listed, tc.listed)
			}
			h.Sweep(time.Now())
			if (h.Len() == 1) != tc.kept {
				t.Errorf("kept by Sweep: %v, want %v", h.Len() == 1, tc.kept)
			}
		})
	}
}

// TestCursorUnderLoad checks the invariant the SSE handler relies on: a
// subscription's Next gives every event exactly once and in order, history
// first, while events keep being applied concurrently.
func TestCursorUnderLoad(t *testing.T) {
	const total = 20000
	h := New(1, WithMaxLag(total))
	for i := 1; i <= 1000; i++ {
		apply(t, h, revoke(uint64(i), strconv.Itoa(i)))
	}
	sub := h.Subscribe(0)
	defer sub.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1001; i <= total; i++ {
			apply(t, h, revoke(uint64(i), strconv.Itoa(i)))
		}
	}()
	var got [][]byte
	deadline := time.After(testutil.HangLimit)
	for len(got) < total {
		batch, caughtUp := sub.Next(nil, 64)
		got = append(got, batch...)
		if caughtUp && len(got) < total {
			select {
			case <-sub.Wake():
			case <-deadline:
				t.Fatalf("received %d of %d events within %v", len(got), total, testutil.HangLimit)
			}
		}
	}
	wg.Wait()
	for i, seq := range seqsOf(t, got) {
		if seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d: lost or duplicated", i, seq)
		}
	}
	if _, caughtUp := sub.Next(nil, 64); !caughtUp || sub.Cursor() != total {
		t.Fatalf("cursor %d after everything", sub.Cursor())
	}
}

func TestSubscribeAtHead(t *testing.T) {
	h := New(1)
	apply(t, h, revoke(1, "a"))
	sub := h.SubscribeAtHead()
	defer sub.Close()
	if frames, caughtUp := sub.Next(nil, 10); len(frames) != 0 || !caughtUp {
		t.Fatalf("history sent to a live-only subscriber: %d frames", len(frames))
	}
	apply(t, h, revoke(2, "b"))
	<-sub.Wake()
	if frames, _ := sub.Next(nil, 10); fmt.Sprint(seqsOf(t, frames)) != "[2]" {
		t.Fatalf("live frames %v", seqsOf(t, frames))
	}
}

func TestLaggingSubscriberIsDroppedOthersContinue(t *testing.T) {
	h := New(1, WithMaxLag(4))
	slow := h.Subscribe(0)
	fast := h.Subscribe(0)
	for i := 1; i <= 10; i++ {
		apply(t, h, revoke(uint64(i), strconv.Itoa(i)))
		frames, _ := fast.Next(nil, 10)
		if len(frames) != 1 {
			t.Fatalf("fast subscriber got %d frames for event %d", len(frames), i)
		}
	}
	select {
	case <-slow.Done():
	default:
		t.Fatal("a subscriber 10 events behind with max lag 4 was not dropped")
	}
	select {
	case <-fast.Done():
		t.Fatal("the fast subscriber was dropped")
	default:
	}
	if st := h.Stats(); st.SlowDisconnects != 1 || st.Subscribers != 1 {
		t.Fatalf("stats %+v", st)
	}
	fast.Close()
	fast.Close() // idempotent
	if h.Stats().Subscribers != 0 {
		t.Fatal("subscriber count not back to 0")
	}
}

func TestResume(t *testing.T) {
	h := New(9)
	apply(t, h, revoke(3, "a"))
	tests := []struct {
		id      events.EventID
		want    uint64
		wantErr bool
	}{
		{events.EventID{Epoch: 9, Seq: 3}, 3, false},
		{events.EventID{Epoch: 9, Seq: 1}, 1, false},
		{events.EventID{Epoch: 9, Seq: 4}, 0, true},
		{events.EventID{Epoch: 8, Seq: 1}, 0, true},
	}
	for _, tc := range tests {
		got, err := h.Resume(tc.id)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("Resume(%v) = %d, %v", tc.id, got, err)
		}
	}
}

func TestResetDropsSubscribers(t *testing.T) {
	h := New(1)
	apply(t, h, revoke(1, "a"))
	sub := h.Subscribe(1)
	h.Reset(2)
	select {
	case <-sub.Done():
	default:
		t.Fatal("subscription open after reset")
	}
	if h.Epoch() != 2 || h.Head() != 0 || h.Len() != 0 {
		t.Fatal("state kept across reset")
	}
}

func TestWaitApplied(t *testing.T) {
	h := New(1)
	done := make(chan error, 1)
	go func() { done <- h.WaitApplied(context.Background(), 2) }()
	apply(t, h, revoke(1, "a"))
	apply(t, h, revoke(2, "b"))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testutil.HangLimit):
		t.Fatalf("WaitApplied did not return within %v", testutil.HangLimit)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.WaitApplied(ctx, 99); err == nil {
		t.Fatal("WaitApplied ignored its context")
	}
}

func TestRevocationsListsInChunks(t *testing.T) {
	h := New(1)
	for i := 1; i <= 10000; i++ {
		apply(t, h, revoke(uint64(i), strconv.Itoa(i)))
	}
	apply(t, h, Event{Seq: 10001, Type: events.TypeLift, Key: "5"})
	var seqs []uint64
	h.Revocations(0, func(seq uint64, data []byte) bool {
		seqs = append(seqs, seq)
		return true
	})
	if len(seqs) != 9999 || seqs[0] != 1 || seqs[4] != 6 {
		t.Fatalf("listed %d revocations starting %v", len(seqs), seqs[:5])
	}
}

// BenchmarkFanOut measures Apply with n subscribers that each read every
// event through their cursor.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1, 100, 1000, 10000} {
		b.Run(strconv.Itoa(n)+"subscribers", func(b *testing.B) {
			h := New(1, WithMaxLag(1<<62))
			var wg sync.WaitGroup
			for range n {
				sub := h.Subscribe(0)
				wg.Add(1)
				go func() {
					defer wg.Done()
					var batch [][]byte
					for {
						select {
						case <-sub.Wake():
							batch, _ = sub.Next(batch[:0], 256)
						case <-sub.Done():
							return
						}
					}
				}()
			}
			ev := revoke(0, "k")
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ev.Seq = uint64(i + 1)
				if err := h.Apply(ev); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			h.Reset(2)
			wg.Wait()
		})
	}
}

// A subscriber's goroutine blocks on Wake alone, so everything that must get
// its attention has to signal Wake: an event, being dropped, and Kick.
func TestWakeIsSignalled(t *testing.T) {
	signalled := func(s *Subscription) bool {
		select {
		case <-s.Wake():
			return true
		default:
			return false
		}
	}
	tests := []struct {
		name string
		do   func(t *testing.T, h *Hub, s *Subscription)
	}{
		{"event applied", func(t *testing.T, h *Hub, s *Subscription) { apply(t, h, revoke(2, "b")) }},
		{"lagging and dropped", func(t *testing.T, h *Hub, s *Subscription) {
			// drained before each event as by a consumer that never
			// reads, so that the last signal is the one the drop sent
			for i := uint64(2); i <= 10; i++ {
				select {
				case <-s.Wake():
				default:
				}
				apply(t, h, revoke(i, strconv.FormatUint(i, 10)))
				select {
				case <-s.Done():
					return
				default:
				}
			}
			t.Fatal("not dropped 9 events behind with max lag 4")
		}},
		{"hub reset", func(t *testing.T, h *Hub, s *Subscription) { h.Reset(2) }},
		{"closed", func(t *testing.T, h *Hub, s *Subscription) { s.Close() }},
		{"kicked", func(t *testing.T, h *Hub, s *Subscription) { s.Kick() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := New(1, WithMaxLag(4))
			apply(t, h, revoke(1, "a"))
			s := h.Subscribe(1)
			if signalled(s) {
				t.Fatal("signalled before anything happened")
			}
			tc.do(t, h, s)
			if !signalled(s) {
				t.Fatal("Wake not signalled")
			}
		})
	}
}

// apply applies ev and reports an error; goroutines may call it.
func apply(t testing.TB, h *Hub, ev Event) {
	t.Helper()
	if err := h.Apply(ev); err != nil {
		t.Errorf("Apply seq %d: %v", ev.Seq, err)
	}
}
