package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/revocast/revocast/pkg/client"
)

// LatencyResult is the latency phase: revocations posted one at a time
// while N subscribers follow the stream.
type LatencyResult struct {
	Subscribers    int     `json:"subscribers"`
	Revocations    int     `json:"revocations"`
	Rate           float64 `json:"rate"`
	ConnectSeconds float64 `json:"connect_seconds"` // first dial until every subscriber had synced
	Posted         int     `json:"posted"`          // acknowledged with 201
	PostErrors     int     `json:"post_errors"`
	PostSeconds    float64 `json:"post_seconds"` // first send to last ack
	ExpectedPairs  int     `json:"expected_pairs"`
	Pairs          int     `json:"pairs"` // (event, subscriber) receipts matched to a POST
	Disconnected   int     `json:"disconnected"`
	// BeforeAck is the fraction of receipts that preceded the POST's
	// acknowledgement (counted as 0 in AckToReceipt).
	BeforeAck     float64 `json:"before_ack_fraction"`
	AckToReceipt  Dist    `json:"ack_to_receipt"`
	SendToReceipt Dist    `json:"send_to_receipt"`
	// AckToAll is, per event, the time from its ack until the last
	// subscriber had it (0 when every one had it before the ack).
	AckToAll      Dist    `json:"ack_to_all_subscribers"`
	PostRoundTrip Dist    `json:"post_round_trip"`
	TargetP99Ms   float64 `json:"target_p99_ms"`
	// CPU seconds used while posting and receiving, and the wall time.
	BroadcasterCPU float64 `json:"broadcaster_cpu_seconds"`
	BenchCPU       float64 `json:"bench_cpu_seconds"`
	OthersCPU      float64 `json:"others_cpu_seconds"` // every other process on the machine
	WallSeconds    float64 `json:"wall_seconds"`
}

func (r *runner) runLatency(ctx context.Context) error {
	cfg, t := r.cfg, r.cur
	n, m := cfg.Subscribers, cfg.Revocations
	res := &LatencyResult{Subscribers: n, Revocations: m, Rate: cfg.Rate, ExpectedPairs: n * m, TargetP99Ms: 10}
	if n > 1000 {
		res.TargetP99Ms = 100
	}
	r.logf("latency: connecting %d subscribers", n)
	base := time.Now()
	subs, err := connectAll(ctx, t.host(), n, subOptions{
		path: "/v1/events?last_event_id=now", token: cfg.Token, record: m + 16, connBuf: 4096, lineBuf: 2048,
	}, base, cfg.ConnectRate, cfg.ConnectParallel, true)
	if err != nil {
		return fmt.Errorf("connect %d subscribers: %w", n, err)
	}
	closed := false
	defer func() {
		if !closed {
			closeAll(subs)
		}
	}()
	res.ConnectSeconds = time.Since(base).Seconds()
	r.logf("latency: %d subscribers synced in %.2fs", n, res.ConnectSeconds)
	if err := sleepCtx(ctx, cfg.Settle); err != nil {
		return err
	}

	// one keep-alive connection, opened before measuring
	if _, _, err := doRequest(ctx, r.http, http.MethodGet, t.URL+"/healthz", "", nil, nil); err != nil {
		return err
	}
	before, err := r.metrics(ctx, t)
	if err != nil {
		return err
	}
	cpu0, all0 := selfCPU(), machineCPU()
	profileFor := 2 * time.Second
	if cfg.Rate > 0 {
		profileFor = max(profileFor, time.Duration(float64(m)/cfg.Rate*float64(time.Second)))
	}
	waitProfile := r.startCPUProfile(ctx, "latency-cpu", profileFor)

	api, err := r.api(t)
	if err != nil {
		return err
	}
	sent := make([]int64, m)
	acked := make([]int64, m)
	seqs := make([]uint64, m)
	body := make([]byte, 0, 128)
	prefix := "bench-" + r.runID + "-lat-"
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / cfg.Rate)
	}
	var firstErr error
	postStart := time.Now()
	for i := range m {
		if interval > 0 {
			if err := sleepCtx(ctx, time.Until(postStart.Add(time.Duration(i)*interval))); err != nil {
				return err
			}
		}
		body = append(append(append(body[:0], `{"jti":"`...), prefix...), strconv.Itoa(i)...)
		body = append(body, `"}`...)
		sent[i] = int64(time.Since(base))
		answer, err := api.RevokeRaw(ctx, body, client.WriteOptions{})
		acked[i] = int64(time.Since(base))
		var ans struct {
			Seq    uint64 `json:"seq"`
			Status string `json:"status"`
		}
		if err == nil {
			if err = json.Unmarshal(answer, &ans); err == nil && (ans.Status != client.StatusCreated || ans.Seq == 0) {
				err = fmt.Errorf("POST /v1/revocations: not created, or without seq: %.200s", answer)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			res.PostErrors++
			firstErr = cmpErr(firstErr, err)
			continue
		}
		seqs[i] = ans.Seq
		res.Posted++
	}
	var maxSeq uint64
	for _, s := range seqs {
		maxSeq = max(maxSeq, s)
	}
	// every subscriber receives the events in order: the last one means
	// all. The scan resumes at the first one still waiting, so polling
	// costs little CPU while the last events are fanned out.
	for next := 0; next < len(subs); {
		s := subs[next]
		select {
		case <-s.done: // disconnected: counted below
			next++
			continue
		default:
		}
		if s.last.Load() >= maxSeq {
			next++
			continue
		}
		if err := sleepCtx(ctx, 2*time.Millisecond); err != nil {
			return fmt.Errorf("%d subscribers still waiting for events: %w", len(subs)-next, err)
		}
	}
	end := time.Now()
	res.BenchCPU = selfCPU() - cpu0
	after, err := r.metrics(ctx, t)
	if err != nil {
		return err
	}
	res.BroadcasterCPU = after["process_cpu_seconds_total"] - before["process_cpu_seconds_total"]
	if all0 > 0 {
		res.OthersCPU = max(0, machineCPU()-all0-res.BroadcasterCPU-res.BenchCPU)
	}
	res.WallSeconds = end.Sub(postStart).Seconds()
	closed = true
	if !closeAll(subs) {
		return errors.New("subscriber goroutines did not end within 10s of closing their connections")
	}
	waitProfile()

	// match receipts with posts
	index := make(map[uint64]int, m)
	rtt := make([]int64, 0, m)
	var lastAck int64
	for i, s := range seqs {
		if s != 0 {
			index[s] = i
			rtt = append(rtt, acked[i]-sent[i])
			lastAck = max(lastAck, acked[i])
		}
	}
	res.PostSeconds = float64(lastAck-sent[0]) / 1e9
	fromAck := make([]int64, 0, n*m)
	fromSend := make([]int64, 0, n*m)
	lastAt := make([]int64, m)
	gotBy := make([]int, m)
	early := 0
	for _, s := range subs {
		if s.last.Load() < maxSeq {
			res.Disconnected++
		}
		for k, seq := range s.seqs {
			i, ok := index[seq]
			if !ok {
				continue
			}
			at := s.at[k]
			d := at - acked[i]
			if d < 0 {
				early++
				d = 0
			}
			fromAck = append(fromAck, d)
			fromSend = append(fromSend, at-sent[i])
			lastAt[i] = max(lastAt[i], at)
			gotBy[i]++
		}
	}
	res.Pairs = len(fromAck)
	if res.Pairs > 0 {
		res.BeforeAck = float64(early) / float64(res.Pairs)
	}
	toAll := make([]int64, 0, m)
	for i := range m {
		if seqs[i] != 0 && gotBy[i] == n {
			toAll = append(toAll, max(0, lastAt[i]-acked[i]))
		}
	}
	res.AckToReceipt, res.SendToReceipt = distOf(fromAck), distOf(fromSend)
	res.AckToAll, res.PostRoundTrip = distOf(toAll), distOf(rtt)
	r.res.Latency = res
	r.printLatency(res)

	switch {
	case res.PostErrors > 0:
		return fmt.Errorf("%d of %d POSTs failed; first: %w", res.PostErrors, m, firstErr)
	case res.Pairs != res.Posted*n:
		return fmt.Errorf("%d receipts, want %d (%d subscribers disconnected)", res.Pairs, res.Posted*n, res.Disconnected)
	}
	return nil
}

func (r *runner) printLatency(res *LatencyResult) {
	rate := "as fast as acknowledged"
	if res.Rate > 0 {
		rate = "at " + strconv.FormatFloat(res.Rate, 'f', -1, 64) + "/s"
	}
	tb := &table{title: fmt.Sprintf("latency: %s subscribers, %s revocations posted one at a time %s",
		fmtInt(int64(res.Subscribers)), fmtInt(int64(res.Revocations)), rate)}
	target := fmt.Sprintf("p99 ≤ %g ms", res.TargetP99Ms)
	if res.Subscribers != 1000 && res.Subscribers != 10_000 {
		if res.Subscribers < 1000 {
			target += " (the target for 1,000)"
		} else {
			target += " (the target for 10,000)"
		}
	}
	tb.add("POST ack → receipt, every (event, subscriber)", res.AckToReceipt.String(), target,
		verdict(res.AckToReceipt.P99, res.TargetP99Ms, true))
	tb.add("POST send → receipt", res.SendToReceipt.String(), "", "")
	tb.add("POST ack → last subscriber has it, per event", res.AckToAll.String(), "", "")
	tb.add("POST round trip (send → 201 read)", res.PostRoundTrip.String(), "", "")
	tb.add("receipts before the ack (0 above)", fmt.Sprintf("%.1f%%", 100*res.BeforeAck), "", "")
	tb.add("receipts", fmt.Sprintf("%s of %s", fmtInt(int64(res.Pairs)), fmtInt(int64(res.ExpectedPairs))), "", "")
	tb.add("subscribers connected and synced", fmt.Sprintf("%.2f s (%s)", res.ConnectSeconds,
		fmtRate(float64(res.Subscribers)/res.ConnectSeconds)), "", "")
	tb.note("CPU while posting and receiving (%.1f s, %d CPUs): broadcaster %.2f s, bench %.2f s, other processes %.2f s",
		res.WallSeconds, r.res.Machine.NumCPU, res.BroadcasterCPU, res.BenchCPU, res.OthersCPU)
	if busy := (res.BroadcasterCPU + res.BenchCPU) / res.WallSeconds; busy > 0.75*float64(r.res.Machine.NumCPU) {
		tb.note("the CPUs were %.0f%% busy with the broadcaster and this tool alone: events queued behind each other's fan-out; a lower --rate measures one fan-out at a time",
			100*busy/float64(r.res.Machine.NumCPU))
	}
	tb.print(r.out)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}
