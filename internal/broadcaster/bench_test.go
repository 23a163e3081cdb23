package broadcaster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/broadcaster"
	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/internal/testutil/inprocess"

	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/sse"
)

// BenchmarkAckToReceipt posts revocations one after another to a real
// broadcaster over loopback while n subscribers follow /v1/events, and
// reports, over every (event, subscriber) pair, the time from the POST's
// acknowledgement to receipt (p50, p99, max; 0 when the event arrived
// before the acknowledgement, which is common: the broadcaster answers once
// its own fan-out has the event) and from sending the POST to receipt.
//
//	go test -run '^$' -bench AckToReceipt -benchtime 200x ./internal/broadcaster/
func BenchmarkAckToReceipt(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(strconv.Itoa(n)+"subscribers", func(b *testing.B) {
			benchAckToReceipt(b, n)
		})
	}
}

func benchAckToReceipt(b *testing.B, n int) {
	_, base := inprocess.Broadcaster(b, func(c *broadcaster.Config) {
		c.MaxConnsPerAddr = -1 // n subscribers connect at once from one address
		c.Heartbeat = broadcaster.DefaultHeartbeat
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := &http.Transport{MaxIdleConnsPerHost: n + 8}
	client := &http.Client{Transport: tr}
	received := make([]map[uint64]time.Time, n)
	counts := make([]atomic.Int64, n)
	var synced, done sync.WaitGroup
	synced.Add(n)
	done.Add(n)
	for i := range n {
		received[i] = make(map[uint64]time.Time, b.N)
		go func() {
			defer done.Done()
			req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/events?last_event_id=now", nil)
			resp, err := client.Do(req)
			if err != nil {
				synced.Done()
				return
			}
			defer resp.Body.Close()
			dec := sse.NewDecoder(resp.Body)
			for {
				ev, err := dec.Next()
				if err != nil {
					return
				}
				if ev.Type == events.TypeSynced {
					synced.Done()
					continue
				}
				now := time.Now()
				id, _ := events.ParseEventID(ev.ID)
				received[i][id.Seq] = now
				counts[i].Add(1)
			}
		}()
	}
	synced.Wait()

	sent := make(map[uint64]time.Time, b.N)
	acked := make(map[uint64]time.Time, b.N)
	post := &http.Client{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		body := fmt.Sprintf(`{"jti":"bench-%d"}`, i)
		start := time.Now()
		resp, err := post.Post(base+"/v1/revocations", "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		var r struct {
			Seq uint64 `json:"seq"`
		}
		decodeJSON(resp, &r)
		acked[r.Seq] = time.Now()
		sent[r.Seq] = start
	}
	deadline := time.Now().Add(testutil.HangLimit)
	for i := range counts {
		for counts[i].Load() < int64(b.N) {
			if time.Now().After(deadline) {
				b.Fatalf("subscriber %d received %d of %d events within %v", i, counts[i].Load(), b.N, testutil.HangLimit)
			}
			time.Sleep(time.Millisecond) // polling a condition with a deadline
		}
	}
	b.StopTimer()
	cancel()
	done.Wait()
	var fromAck, fromSend []time.Duration
	for _, m := range received {
		for seq, at := range m {
			if a, ok := acked[seq]; ok {
				fromAck = append(fromAck, max(0, at.Sub(a)))
				fromSend = append(fromSend, at.Sub(sent[seq]))
			}
		}
	}
	if len(fromAck) != n*b.N {
		b.Fatalf("%d receipts, want %d", len(fromAck), n*b.N)
	}
	report := func(d []time.Duration, prefix string) {
		slices.Sort(d)
		q := func(p float64) float64 { return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000 }
		b.ReportMetric(q(0.5), prefix+"-p50-ms")
		b.ReportMetric(q(0.99), prefix+"-p99-ms")
		b.ReportMetric(float64(d[len(d)-1].Microseconds())/1000, prefix+"-max-ms")
	}
	report(fromAck, "ack")
	report(fromSend, "send")
}

func decodeJSON(resp *http.Response, v any) {
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(v)
}
