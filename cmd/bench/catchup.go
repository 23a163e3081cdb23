package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// CatchupResult is the catch-up phase: a fresh subscriber reads the whole
// live state from /v1/events until synced.
type CatchupResult struct {
	State          int        `json:"state"`        // asked for (--state)
	Live           int        `json:"live_entries"` // the broadcaster's, before reading
	Preload        *IngestRun `json:"preload,omitempty"`
	Events         int64      `json:"events"`
	Bytes          int64      `json:"bytes"`
	Seconds        float64    `json:"seconds"` // dial until synced
	PerSecond      float64    `json:"events_per_second"`
	MBPerSecond    float64    `json:"mb_per_second"`
	TTFBMs         float64    `json:"time_to_first_byte_ms"`  // dial until the response header
	FirstEventMs   float64    `json:"time_to_first_event_ms"` // dial until the first event
	BroadcasterCPU float64    `json:"broadcaster_cpu_seconds"`
	BenchCPU       float64    `json:"bench_cpu_seconds"`
}

const targetCatchup = 200_000

func (r *runner) runCatchup(ctx context.Context) error {
	res := &CatchupResult{State: r.cfg.State}
	r.res.Catchup = res
	preload, live, err := r.ensureState(ctx, r.cfg.State)
	res.Preload, res.Live = preload, live
	if err != nil {
		return err
	}
	before, err := r.metrics(ctx, r.cur)
	if err != nil {
		return err
	}
	r.logf("catchup: reading %d live entries", live)
	cpu0 := selfCPU()
	var synced atomic.Int64
	base := time.Now()
	s, err := dialSubscriber(ctx, r.cur.host(), subOptions{
		path: "/v1/events", token: r.cfg.Token, connBuf: 64 << 10, lineBuf: 64 << 10,
	}, base, &synced)
	if err != nil {
		return fmt.Errorf("fresh subscriber: %w", err)
	}
	defer closeAll([]*subscriber{s})
	for synced.Load() == 0 {
		select {
		case <-s.done:
			return fmt.Errorf("the stream ended after %d events, before synced: %w", s.events.Load(), s.err)
		case <-ctx.Done():
			return fmt.Errorf("%d events read, no synced yet: %w", s.events.Load(), ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	res.BenchCPU = selfCPU() - cpu0
	res.Events, res.Bytes = s.events.Load(), s.bytes.Load()
	end := s.syncedAt.Load()
	res.Seconds = float64(end) / 1e9
	res.PerSecond = float64(res.Events) / res.Seconds
	res.MBPerSecond = float64(res.Bytes) / 1e6 / res.Seconds
	res.TTFBMs = ms(s.headerAt)
	res.FirstEventMs = ms(s.firstAt.Load())
	if after, err := r.metrics(ctx, r.cur); err == nil {
		res.BroadcasterCPU = after["process_cpu_seconds_total"] - before["process_cpu_seconds_total"]
	}

	tb := &table{title: fmt.Sprintf("catchup: a fresh subscriber reads a live state of %s revocations until synced", fmtInt(int64(res.Live)))}
	tb.add("catch-up of a fresh subscriber", fmtRate(res.PerSecond), "≥ "+fmtRate(targetCatchup), verdict(res.PerSecond, targetCatchup, false))
	tb.add("  events, time to synced", fmt.Sprintf("%s in %.2f s (%.0f MB/s)", fmtInt(res.Events), res.Seconds, res.MBPerSecond), "", "")
	tb.add("  time to first byte (response header)", fmtMs(res.TTFBMs), "", "")
	tb.add("  time to first event", fmtMs(res.FirstEventMs), "", "")
	if p := res.Preload; p != nil {
		tb.add("state preloaded with batches", fmt.Sprintf("%s in %.2f s (%s)", fmtInt(int64(p.Revocations)), p.Seconds, fmtRate(p.PerSecond)), "", "")
	}
	tb.note("CPU while reading: broadcaster %.2f s, bench %.2f s", res.BroadcasterCPU, res.BenchCPU)
	if int(res.Events) != res.Live {
		tb.note("the broadcaster counted %d live entries and sent %d events", res.Live, res.Events)
	}
	tb.print(r.out)
	return nil
}
