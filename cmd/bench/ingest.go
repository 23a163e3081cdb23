package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// IngestResult is the ingest phase.
type IngestResult struct {
	Single  IngestRun `json:"single"`
	Batches IngestRun `json:"batches"`
}

// IngestRun is one way of posting: revocations per second from the first
// send to the last acknowledgement, and the requests' latency.
type IngestRun struct {
	Concurrency    int     `json:"concurrency"` // clients, or batches in flight
	BatchSize      int     `json:"batch_size"`  // 1 for single POSTs
	Requests       int     `json:"requests"`    // acknowledged
	Revocations    int     `json:"revocations"` // created
	Errors         int     `json:"errors"`
	FirstError     string  `json:"first_error,omitempty"`
	Seconds        float64 `json:"seconds"`
	PerSecond      float64 `json:"revocations_per_second"`
	Latency        Dist    `json:"request_latency"`
	BroadcasterCPU float64 `json:"broadcaster_cpu_seconds"`
	BenchCPU       float64 `json:"bench_cpu_seconds"`
	OthersCPU      float64 `json:"others_cpu_seconds"` // every other process on the machine
}

const (
	targetSingle  = 10_000
	targetBatches = 50_000
)

func (r *runner) runIngest(ctx context.Context) error {
	cfg := r.cfg
	res := &IngestResult{}
	r.res.Ingest = res
	// connections opened before measuring
	if err := r.warmUp(ctx, max(cfg.Clients, cfg.Inflight)); err != nil {
		return err
	}
	var errs []error
	r.logf("ingest: %d single POSTs from %d clients", cfg.Posts, cfg.Clients)
	wait := r.startCPUProfile(ctx, "ingest-single-cpu", 2*time.Second)
	single, err := r.measured(ctx, func() (IngestRun, error) {
		return r.postSingles(ctx, "bench-"+r.runID+"-one-", cfg.Posts, cfg.Clients)
	})
	wait() // the profile covers this mode only
	res.Single = single
	errs = append(errs, err)
	if ctx.Err() == nil {
		r.logf("ingest: %d batches of %d, %d in flight", cfg.Batches, cfg.Batch, cfg.Inflight)
		wait := r.startCPUProfile(ctx, "ingest-batches-cpu", 2*time.Second)
		batches, err := r.measured(ctx, func() (IngestRun, error) {
			return r.postBatches(ctx, "bench-"+r.runID+"-many-", cfg.Batches*cfg.Batch, cfg.Batch, cfg.Inflight)
		})
		wait()
		res.Batches = batches
		errs = append(errs, err)
	}

	tb := &table{title: fmt.Sprintf("ingest: %s single POSTs from %d keep-alive clients, then %s batches of %s with %d in flight",
		fmtInt(int64(cfg.Posts)), cfg.Clients, fmtInt(int64(cfg.Batches)), fmtInt(int64(cfg.Batch)), cfg.Inflight)}
	tb.add("single POSTs, first send → last ack", fmtRate(single.PerSecond), "≥ "+fmtRate(targetSingle), verdict(single.PerSecond, targetSingle, false))
	tb.add("  request latency", single.Latency.String(), "", "")
	tb.add("batches, first send → last ack", fmtRate(res.Batches.PerSecond), "≥ "+fmtRate(targetBatches), verdict(res.Batches.PerSecond, targetBatches, false))
	tb.add("  request latency (one batch)", res.Batches.Latency.String(), "", "")
	for _, x := range []struct {
		name string
		run  IngestRun
	}{{"single", single}, {"batches", res.Batches}} {
		if x.run.Seconds > 0 {
			tb.note("%s: %s revocations in %.2f s, %d errors; CPU: broadcaster %.2f s, bench %.2f s, other processes %.2f s",
				x.name, fmtInt(int64(x.run.Revocations)), x.run.Seconds, x.run.Errors, x.run.BroadcasterCPU, x.run.BenchCPU, x.run.OthersCPU)
		}
		if x.run.FirstError != "" {
			tb.note("%s: first error: %s", x.name, x.run.FirstError)
		}
	}
	tb.note("no subscribers are connected while ingesting")
	tb.print(r.out)
	return errors.Join(errs...)
}

// measured runs f and adds the CPU the broadcaster and this process used.
func (r *runner) measured(ctx context.Context, f func() (IngestRun, error)) (IngestRun, error) {
	before, err := r.metrics(ctx, r.cur)
	if err != nil {
		return IngestRun{}, err
	}
	cpu0, all0 := selfCPU(), machineCPU()
	run, err := f()
	run.BenchCPU = selfCPU() - cpu0
	all1 := machineCPU()
	if after, merr := r.metrics(ctx, r.cur); merr == nil {
		run.BroadcasterCPU = after["process_cpu_seconds_total"] - before["process_cpu_seconds_total"]
	}
	if all0 > 0 {
		run.OthersCPU = max(0, all1-all0-run.BroadcasterCPU-run.BenchCPU)
	}
	return run, err
}

// warmUp opens n keep-alive connections to the broadcaster.
func (r *runner) warmUp(ctx context.Context, n int) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, _, errs[i] = doRequest(ctx, r.http, http.MethodGet, r.cur.URL+"/healthz", "", nil, nil)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// postSingles posts total revocations, one per request, from clients
// goroutines sharing a keep-alive pool.
func (r *runner) postSingles(ctx context.Context, prefix string, total, clients int) (IngestRun, error) {
	run := IngestRun{Concurrency: clients, BatchSize: 1}
	lat := make([]int64, total)
	lastAck := make([]time.Duration, clients)
	var (
		next, okN, errN atomic.Int64
		errMu           sync.Mutex
		firstErr        error
	)
	url := r.cur.URL + "/v1/revocations"
	start := time.Now()
	var wg sync.WaitGroup
	for w := range clients {
		wg.Go(func() {
			buf := newBuffer(1024)
			body := make([]byte, 0, 128)
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= total {
					return
				}
				body = append(append(append(body[:0], `{"jti":"`...), prefix...), strconv.Itoa(i)...)
				body = append(body, `"}`...)
				t0 := time.Now()
				status, ans, err := doRequest(ctx, r.http, http.MethodPost, url, r.cfg.Token, body, buf)
				if err == nil && status != http.StatusCreated {
					err = fmt.Errorf("status %d: %.200s", status, bytes.TrimSpace(ans))
				}
				if err != nil {
					lat[i] = -1
					errN.Add(1)
					errMu.Lock()
					firstErr = cmpErr(firstErr, err)
					errMu.Unlock()
					continue
				}
				lat[i] = int64(time.Since(t0))
				lastAck[w] = time.Since(start)
				okN.Add(1)
			}
		})
	}
	wg.Wait()
	run.Requests, run.Revocations, run.Errors = int(okN.Load()), int(okN.Load()), int(errN.Load())
	return finishRun(ctx, run, lat, lastAck, firstErr)
}

// postBatches posts total revocations in batches of size, inflight at a
// time.
func (r *runner) postBatches(ctx context.Context, prefix string, total, size, inflight int) (IngestRun, error) {
	run := IngestRun{Concurrency: inflight, BatchSize: size}
	nb := (total + size - 1) / size
	lat := make([]int64, nb)
	lastAck := make([]time.Duration, inflight)
	var (
		next, reqN, createdN, errN atomic.Int64
		errMu                      sync.Mutex
		firstErr                   error
	)
	url := r.cur.URL + "/v1/revocations"
	start := time.Now()
	var wg sync.WaitGroup
	for w := range min(inflight, nb) {
		wg.Go(func() {
			buf := newBuffer(size*400 + 1024)
			body := make([]byte, 0, size*(len(prefix)+24)+32)
			for ctx.Err() == nil {
				b := int(next.Add(1) - 1)
				if b >= nb {
					return
				}
				from, to := b*size, min(total, (b+1)*size)
				body = appendBatch(body[:0], prefix, from, to)
				t0 := time.Now()
				status, ans, err := doRequest(ctx, r.http, http.MethodPost, url, r.cfg.Token, body, buf)
				created, _ := intField(ans, "created")
				failed, _ := intField(ans, "failed")
				if err == nil && (status != http.StatusCreated || created != to-from) {
					err = fmt.Errorf("status %d, %d created, %d failed of %d: %.200s", status, created, failed, to-from, bytes.TrimSpace(ans))
				}
				createdN.Add(int64(created))
				if err != nil {
					lat[b] = -1
					errN.Add(1)
					errMu.Lock()
					firstErr = cmpErr(firstErr, err)
					errMu.Unlock()
					continue
				}
				lat[b] = int64(time.Since(t0))
				lastAck[w] = time.Since(start)
				reqN.Add(1)
			}
		})
	}
	wg.Wait()
	run.Requests, run.Revocations, run.Errors = int(reqN.Load()), int(createdN.Load()), int(errN.Load())
	return finishRun(ctx, run, lat, lastAck, firstErr)
}

func finishRun(ctx context.Context, run IngestRun, lat []int64, lastAck []time.Duration, firstErr error) (IngestRun, error) {
	var end time.Duration
	for _, d := range lastAck {
		end = max(end, d)
	}
	run.Seconds = end.Seconds()
	if run.Seconds > 0 {
		run.PerSecond = float64(run.Revocations) / run.Seconds
	}
	ok := lat[:0]
	for _, d := range lat {
		if d > 0 {
			ok = append(ok, d)
		}
	}
	run.Latency = distOf(ok)
	if firstErr != nil {
		run.FirstError = firstErr.Error()
		return run, fmt.Errorf("%d requests failed; first: %w", run.Errors, firstErr)
	}
	if err := ctx.Err(); err != nil {
		return run, err
	}
	return run, nil
}

// appendBatch appends {"revocations":[{"jti":"<prefix><i>"},…]} for i in
// [from, to).
func appendBatch(dst []byte, prefix string, from, to int) []byte {
	dst = append(dst, `{"revocations":[`...)
	for i := from; i < to; i++ {
		if i > from {
			dst = append(dst, ',')
		}
		dst = append(append(dst, `{"jti":"`...), prefix...)
		dst = strconv.AppendInt(dst, int64(i), 10)
		dst = append(dst, `"}`...)
	}
	return append(dst, "]}"...)
}

// intField finds the last "name":<integer> in a JSON answer; the counts of
// a batch answer come after its items.
func intField(b []byte, name string) (int, bool) {
	key := `"` + name + `":`
	i := bytes.LastIndex(b, []byte(key))
	if i < 0 {
		return 0, false
	}
	n, found := 0, false
	for _, c := range b[i+len(key):] {
		if c == ' ' && !found {
			continue
		}
		if c < '0' || c > '9' {
			break
		}
		n, found = n*10+int(c-'0'), true
	}
	return n, found
}

// ensureState tops the broadcaster's live state up to want revocations
// with batches; it returns what it posted (nil when nothing was needed)
// and the live entries afterwards.
func (r *runner) ensureState(ctx context.Context, want int) (*IngestRun, int, error) {
	m, err := r.metrics(ctx, r.cur)
	if err != nil {
		return nil, 0, err
	}
	live := int(m["revocast_broadcaster_live_entries"])
	if live >= want {
		return nil, live, nil
	}
	r.logf("preloading %d revocations (the broadcaster holds %d)", want-live, live)
	prefix := fmt.Sprintf("bench-%s-state%d-", r.runID, r.spawned)
	run, err := r.measured(ctx, func() (IngestRun, error) {
		return r.postBatches(ctx, prefix, want-live, r.cfg.Batch, r.cfg.Inflight)
	})
	if err != nil {
		return &run, live, fmt.Errorf("preload the state: %w", err)
	}
	if m, err = r.metrics(ctx, r.cur); err != nil {
		return &run, live, err
	}
	return &run, int(m["revocast_broadcaster_live_entries"]), nil
}

func newBuffer(n int) *bytes.Buffer { return bytes.NewBuffer(make([]byte, 0, n)) }
