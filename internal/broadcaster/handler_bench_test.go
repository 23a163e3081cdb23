// This file is in package broadcaster, not broadcaster_test: its benchmarks
// call the server's handler in-process, without the network, to measure
// and profile the handlers' own cost; the exported API offers only the
// listening server.

package broadcaster

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/hub"
	"github.com/revocast/revocast/pkg/events/natslog"
)

// BenchmarkAppliedReport is the broadcaster's cost of one report: the
// handler through the router (authentication, decoding, the fleet's
// bookkeeping), without the network.
func BenchmarkAppliedReport(b *testing.B) {
	for _, agents := range []int{1, 1000} {
		b.Run("agents="+strconv.Itoa(agents), func(b *testing.B) {
			s, err := New(Config{Addr: "127.0.0.1:0", Backend: natslog.Config{DataDir: b.TempDir()}})
			if err != nil {
				b.Fatal(err)
			}
			s.hub = hub.New(7)
			s.fleet.epoch, s.fleet.head = s.hub.Epoch, func() uint64 { return 100 }
			h := s.routes()
			for i := range agents {
				s.fleet.connect("agent", "i"+strconv.Itoa(i), s.hub.Subscribe(0))
			}
			// a pending acknowledgement, as under load
			s.fleet.acknowledged(1_000_000, time.Now())
			bodies := make([][]byte, agents)
			for i := range bodies {
				bodies[i] = []byte(`{"instance":"i` + strconv.Itoa(i) + `","applied":"7-99"}`)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				req := httptest.NewRequest("POST", "/v1/agents/applied", bytes.NewReader(bodies[i%agents]))
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusNoContent {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}

// BenchmarkPostBatch posts batches of 1,000 revocations straight to the
// handler (no HTTP client), to profile the write path with
// -cpuprofile/-memprofile.
//
//	go test -run '^$' -bench PostBatch -benchmem ./internal/broadcaster/
func BenchmarkPostBatch(b *testing.B) {
	s, err := New(Config{Addr: "127.0.0.1:0", Backend: natslog.Config{DataDir: b.TempDir()}})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Shutdown(context.Background()) }()
	<-s.Ready()
	h := (*s.router.Load())
	const n = 1000
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var body strings.Builder
		body.WriteString(`{"revocations":[`)
		for j := range n {
			if j > 0 {
				body.WriteByte(',')
			}
			fmt.Fprintf(&body, `{"jti":"bench-%d-%d","reason":"load"}`, i, j)
		}
		body.WriteString(`]}`)
		req := httptest.NewRequest("POST", "/v1/revocations", strings.NewReader(body.String()))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/revocation")
}
