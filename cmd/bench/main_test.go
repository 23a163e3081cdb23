package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/sse"
)

// TestSmoke runs every phase in-process at tiny sizes against broadcasters
// the tool builds and starts, and checks that every result is present and
// sane. It asserts no performance target: those are measured, not tested.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts real broadcaster processes")
	}
	cfg := defaultConfig()
	cfg.Phases = allPhases
	cfg.Subscribers, cfg.MemorySubscribers = 20, 20
	cfg.Revocations, cfg.Rate = 50, 0
	cfg.Clients, cfg.Posts = 4, 200
	cfg.Batch, cfg.Batches, cfg.Inflight = 500, 4, 2
	cfg.State = 2000
	cfg.Settle = 100 * time.Millisecond
	cfg.Timeout = testutil.HangLimit // each phase's: a hang limit, not a speed
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*testutil.HangLimit)
	defer cancel()
	var out bytes.Buffer
	res, err := run(ctx, cfg, &out)
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}

	m := res.Machine
	if m.NumCPU < 1 || m.GOMAXPROCS < 1 || m.GoVersion == "" || res.Broadcaster.Binary == "" {
		t.Errorf("machine or broadcaster not described: %+v %+v", m, res.Broadcaster)
	}
	if res.Broadcaster.Started != 3 { // latency; ingest; memory, then catchup and the agent on its state
		t.Errorf("%d broadcasters started, want 3: %+v", res.Broadcaster.Started, res.Broadcaster)
	}

	l := res.Latency
	if l == nil {
		t.Fatal("no latency result")
	}
	if l.Posted != 50 || l.PostErrors != 0 || l.Pairs != 20*50 || l.ExpectedPairs != 20*50 || l.Disconnected != 0 {
		t.Errorf("latency counts: %+v", l)
	}
	checkDist(t, "ack to receipt", l.AckToReceipt, 20*50)
	checkDist(t, "send to receipt", l.SendToReceipt, 20*50)
	checkDist(t, "ack to all", l.AckToAll, 50)
	checkDist(t, "round trip", l.PostRoundTrip, 50)
	if l.SendToReceipt.Max <= 0 || l.PostRoundTrip.P50 <= 0 {
		t.Errorf("send to receipt and round trip must take time: %+v %+v", l.SendToReceipt, l.PostRoundTrip)
	}
	if l.SendToReceipt.Max < l.AckToReceipt.Max-l.PostRoundTrip.Max-1 {
		t.Errorf("ack to receipt %v beyond send to receipt %v", l.AckToReceipt, l.SendToReceipt)
	}
	if l.BeforeAck < 0 || l.BeforeAck > 1 || l.ConnectSeconds <= 0 || l.WallSeconds <= 0 || l.TargetP99Ms != 10 {
		t.Errorf("latency: %+v", l)
	}

	in := res.Ingest
	if in == nil {
		t.Fatal("no ingest result")
	}
	if s := in.Single; s.Requests != 200 || s.Revocations != 200 || s.Errors != 0 || s.PerSecond <= 0 || s.Seconds <= 0 {
		t.Errorf("single POSTs: %+v", s)
	}
	checkDist(t, "single POST latency", in.Single.Latency, 200)
	if b := in.Batches; b.Requests != 4 || b.Revocations != 2000 || b.Errors != 0 || b.PerSecond <= 0 || b.BatchSize != 500 {
		t.Errorf("batches: %+v", b)
	}
	checkDist(t, "batch latency", in.Batches.Latency, 4)

	c := res.Catchup
	if c == nil {
		t.Fatal("no catchup result")
	}
	if c.Live < 2000 || c.Events != int64(c.Live) || c.Bytes < c.Events*50 || c.PerSecond <= 0 || c.Seconds <= 0 {
		t.Errorf("catchup: %+v", c)
	}
	if c.TTFBMs <= 0 || c.FirstEventMs < c.TTFBMs || c.FirstEventMs > c.Seconds*1000 {
		t.Errorf("catchup times: first byte %v ms, first event %v ms, synced %v s", c.TTFBMs, c.FirstEventMs, c.Seconds)
	}
	if c.Preload == nil || c.Preload.Revocations != 2000 {
		t.Errorf("catchup preload: %+v", c.Preload)
	}

	if res.Memory == nil || res.Memory.Subscribers == nil || res.Memory.Agent == nil {
		t.Fatalf("memory results missing: %+v", res.Memory)
	}
	ms := res.Memory.Subscribers
	if ms.Subscribers != 20 || ms.SubscribersSeen < 20 || ms.GCForced != res.Broadcaster.Pprof || ms.Goroutines < 0.5 {
		t.Errorf("subscriber memory: %+v", ms)
	}
	for _, name := range memoryMetrics {
		if _, ok := ms.After[name]; !ok {
			t.Errorf("metric %s not read", name)
		}
	}
	if ms.Before["process_resident_memory_bytes"] <= 0 || ms.After["go_memstats_heap_inuse_bytes"] <= 0 {
		t.Errorf("memory metrics: %+v → %+v", ms.Before, ms.After)
	}
	a := res.Memory.Agent
	if a.Revocations < 2000 || a.Exact+a.Spilled != a.Revocations || a.ReadySeconds <= 0 || a.EventsPerSecond <= 0 {
		t.Errorf("agent: %+v", a)
	}
	if a.HeapAfter <= a.HeapBefore || a.BytesPerRevocation <= 0 || a.BytesPerRevocation > 1<<20 {
		t.Errorf("agent heap: %d → %d, %.0f B per revocation", a.HeapBefore, a.HeapAfter, a.BytesPerRevocation)
	}
	if a.Preload != nil {
		t.Errorf("the agent followed the catchup state, yet preloaded: %+v", a.Preload)
	}

	for _, want := range []string{"== latency", "== ingest", "== catchup", "== memory", "p99 ≤ 10 ms", "≥ 10,000/s", "≥ 50,000/s", "≥ 200,000/s", "≤ 20 KB", "≤ 100 B"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}

	path := filepath.Join(t.TempDir(), "results.json")
	if err := writeJSONFile(path, res); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"params", "machine", "broadcaster", "latency", "ingest", "catchup", "memory"} {
		if doc[key] == nil {
			t.Errorf("JSON lacks %q", key)
		}
	}
	if _, ok := doc["errors"]; ok {
		t.Errorf("JSON has errors: %v", doc["errors"])
	}
}

func checkDist(t *testing.T, name string, d Dist, n int) {
	t.Helper()
	if d.N != n || d.P50 < 0 || d.P50 > d.P90 || d.P90 > d.P99 || d.P99 > d.Max || d.Mean < 0 || d.Mean > d.Max {
		t.Errorf("%s: %+v, want %d ordered samples", name, d, n)
	}
}

func TestParseArgs(t *testing.T) {
	cfg, err := parseArgs([]string{"latency,ingest", "--quick", "--subscribers", "7"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Phases, ",") != "latency,ingest" || cfg.Subscribers != 7 || cfg.MemorySubscribers != 7 ||
		cfg.Revocations != 100 || cfg.State != 100_000 || cfg.Timeout != time.Minute || !cfg.Quick {
		t.Errorf("quick preset with an explicit flag: %+v", cfg)
	}
	cfg, err = parseArgs([]string{"--rate", "0", "memory"}, io.Discard)
	if err != nil || strings.Join(cfg.Phases, ",") != "memory" || cfg.Rate != 0 || cfg.Subscribers != 1000 {
		t.Errorf("phase after flags: %+v, %v", cfg, err)
	}
	cfg, err = parseArgs([]string{"receipts", "--report-interval", "1s"}, io.Discard)
	if err != nil || strings.Join(cfg.Phases, ",") != "receipts" || cfg.ReportInterval != time.Second {
		t.Errorf("receipts: %+v, %v", cfg, err)
	}
	cfg, err = parseArgs(nil, io.Discard)
	if err != nil || strings.Join(cfg.Phases, ",") != "latency,ingest,catchup,memory" {
		t.Errorf("defaults: %+v, %v", cfg, err)
	}
	for _, args := range [][]string{
		{"warp"}, {"--subscribers", "0"}, {"--target", "http://example.com:8080"},
		{"--target", "http://127.0.0.1:1", "--broadcaster-bin", "x"}, {"--timeout", "0s"}, {"latency", "extra"},
		{"receipts", "--rate", "0"}, {"receipts", "--report-interval", "0s"},
	} {
		if _, err := parseArgs(args, io.Discard); err == nil {
			t.Errorf("parseArgs(%q) accepted", args)
		}
	}
}

// TestReadEvents feeds the minimal reader a stream with a line longer than
// its buffer and events split anywhere.
func TestReadEvents(t *testing.T) {
	long := strings.Repeat("x", 100)
	stream := "retry: 2000\n\n" +
		"id: 1795456990775-1\nevent: revoke\ndata: {\"jti\":\"" + long + "\"}\n\n" +
		": ping\n" +
		"event: synced\ndata: {\"head\":\"1795456990775-1\"}\n\n" +
		"id: 1795456990775-42\nevent: lift\ndata: {\"key\":\"id: 9-9\"}\n\n"
	var seqs []uint64
	synced := 0
	err := readEvents(bufio.NewReaderSize(iotestOneByte{strings.NewReader(stream)}, 64), func(seq uint64) {
		seqs = append(seqs, seq)
	}, func() { synced++ })
	if !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if len(seqs) != 2 || seqs[0] != 1 || seqs[1] != 42 || synced != 1 {
		t.Errorf("seqs %v, synced %d", seqs, synced)
	}
}

type iotestOneByte struct{ r io.Reader }

func (o iotestOneByte) Read(p []byte) (int, error) { return o.r.Read(p[:min(1, len(p))]) }

func TestBatchBody(t *testing.T) {
	b := appendBatch(nil, "p-", 5, 8)
	var v struct {
		Revocations []struct {
			JTI string `json:"jti"`
		} `json:"revocations"`
	}
	if err := json.Unmarshal(b, &v); err != nil || len(v.Revocations) != 3 || v.Revocations[2].JTI != "p-7" {
		t.Errorf("%s: %+v %v", b, v, err)
	}
	if n, ok := intField([]byte(`{"revocations":[{"status":"created"}],"created":5000,"failed":0}`), "created"); !ok || n != 5000 {
		t.Errorf("intField: %d %v", n, ok)
	}
	if _, ok := intField([]byte(`{}`), "created"); ok {
		t.Error("intField found a missing field")
	}
}

// BenchmarkReaders compares the subscribers' minimal reader with
// pkg/sse's Decoder on a stream of revoke events like the broadcaster's.
func BenchmarkReaders(b *testing.B) {
	var stream []byte
	const events = 10_000
	for i := range events {
		stream, _ = sse.AppendEvent(stream, sse.Event{
			ID: "1795456990775-" + strconv.Itoa(i+1), Type: "revoke",
			Data: []byte(`{"key":"d9ac7bcef82dad70d6606a23ae3c5b8a","id":"1795456990775-` + strconv.Itoa(i+1) +
				`","seq":` + strconv.Itoa(i+1) + `,"jti":"bench-0badc0de-lat-` + strconv.Itoa(i) +
				`","expires_at":"2026-11-24T19:20:14.177217846Z","revoked_at":"2026-11-23T19:20:14.177217846Z","actor":"anonymous"}`),
		})
	}
	b.Run("minimal", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(stream)))
		br := bufio.NewReaderSize(nil, 2048)
		for b.Loop() {
			br.Reset(bytes.NewReader(stream))
			var last uint64
			_ = readEvents(br, func(seq uint64) { last = seq }, func() {})
			if last != events {
				b.Fatal(last)
			}
		}
	})
	b.Run("sse.Decoder", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(stream)))
		for b.Loop() {
			d := sse.NewDecoder(bytes.NewReader(stream))
			for {
				if _, err := d.Next(); err != nil {
					break
				}
			}
		}
	})
}

func TestSmokeReceipts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts a real broadcaster process")
	}
	cfg := defaultConfig()
	cfg.Phases = []string{phaseReceipts}
	cfg.Subscribers, cfg.MemorySubscribers, cfg.Revocations, cfg.Rate = 10, 10, 20, 50
	cfg.Settle, cfg.Timeout = 100*time.Millisecond, 2*time.Minute
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
	defer cancel()
	var out bytes.Buffer
	res, err := run(ctx, cfg, &out)
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	r := res.Receipts
	if r == nil {
		t.Fatal("no receipts result")
	}
	if r.Reports < 1 || r.ReportErrors != 0 || r.Enforced != 20 || r.FanoutCPU < 0 || r.ReceiptsSeconds <= 0 {
		t.Errorf("receipts: %+v", r)
	}
	checkDist(t, "ack to enforced", r.AckToEnforced, 20)
}
