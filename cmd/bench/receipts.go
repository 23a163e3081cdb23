package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/revocast/revocast/pkg/client"
)

// The receipts phase: what applied-position reports cost the broadcaster.
// N named subscribers (Revocast-Agent header) follow the stream, and M
// revocations are posted at --rate twice: first with nobody reporting (the
// fan-out alone), then with every subscriber reporting the last event it
// received as an agent does (POST /v1/agents/applied after events, at most
// one per --report-interval, each over its own keep-alive connection).
// The broadcaster's CPU (its process_cpu_seconds_total) of the two runs
// gives the cost of the reports; per revocation, the time from the POST's
// acknowledgement until the last subscriber's report covering it was
// answered is "enforced everywhere" as revoke --wait sees it.

// ReceiptsResult is what the receipts phase measured.
type ReceiptsResult struct {
	Subscribers      int     `json:"subscribers"`
	Revocations      int     `json:"revocations"`
	Rate             float64 `json:"rate"`
	ReportIntervalMs float64 `json:"report_interval_ms"`
	// the run without reports: the fan-out alone
	FanoutCPU     float64 `json:"fanout_cpu_seconds"`
	FanoutSeconds float64 `json:"fanout_wall_seconds"`
	// the run with reports
	ReceiptsCPU      float64 `json:"receipts_cpu_seconds"`
	ReceiptsSeconds  float64 `json:"receipts_wall_seconds"`
	Reports          int64   `json:"reports"`
	ReportErrors     int64   `json:"report_errors"`
	ReportsPerSecond float64 `json:"reports_per_second"`
	// CPUPerReportUs is (ReceiptsCPU - FanoutCPU) / Reports.
	CPUPerReportUs float64 `json:"cpu_per_report_us"`
	// AckToEnforced is, per revocation, its acknowledgement until the last
	// subscriber's report covering it was answered.
	AckToEnforced Dist `json:"ack_to_enforced_everywhere"`
	Enforced      int  `json:"enforced"`
}

// reportLog is what one subscriber's reporter sent.
type reportLog struct {
	seqs []uint64
	at   []int64       // answered, ns since base
	upTo atomic.Uint64 // the last sequence reported, for polling
}

func (r *runner) runReceipts(ctx context.Context) error {
	cfg, t := r.cfg, r.cur
	n, m := cfg.Subscribers, cfg.Revocations
	res := &ReceiptsResult{Subscribers: n, Revocations: m, Rate: cfg.Rate, ReportIntervalMs: float64(cfg.ReportInterval) / 1e6}
	r.logf("receipts: connecting %d named subscribers", n)
	base := time.Now()
	subs, err := connectAll(ctx, t.host(), n, subOptions{
		path: "/v1/events?last_event_id=now", token: cfg.Token, connBuf: 4096, lineBuf: 2048, agent: "bench",
	}, base, cfg.ConnectRate, cfg.ConnectParallel, true)
	if err != nil {
		return fmt.Errorf("connect %d subscribers: %w", n, err)
	}
	defer closeAll(subs)

	// the epoch, for the reported IDs
	_, ready, err := doRequest(ctx, r.http, http.MethodGet, t.URL+"/readyz", "", nil, nil)
	if err != nil {
		return err
	}
	var rz struct {
		Head string `json:"head"`
	}
	if err := json.Unmarshal(ready, &rz); err != nil || !strings.Contains(rz.Head, "-") {
		return fmt.Errorf("readyz: no head in %q", ready)
	}
	epoch := rz.Head[:strings.IndexByte(rz.Head, '-')]

	// one reporter per subscriber, each with its own connection. The
	// reports stay raw HTTP: pkg/client has no POST /v1/agents/applied (an
	// agent's call, pkg/agent's), and they are the load being measured.
	reportHTTP := newHTTPClient(n + 8)
	defer reportHTTP.CloseIdleConnections()
	var enabled atomic.Bool
	var reports, reportErrs atomic.Int64
	logs := make([]*reportLog, n)
	for i := range logs {
		logs[i] = &reportLog{seqs: make([]uint64, 0, 2*m+16), at: make([]int64, 0, 2*m+16)}
	}
	rctx, stopReporters := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i, s := range subs {
		wg.Go(func() {
			body := make([]byte, 0, 96)
			for {
				select {
				case <-rctx.Done():
					return
				case <-s.poke:
				}
				if !enabled.Load() {
					continue
				}
				seq := s.last.Load()
				body = append(body[:0], `{"instance":"`...)
				body = append(body, s.instance...)
				body = append(body, `","applied":"`...)
				body = append(body, epoch...)
				body = append(body, '-')
				body = strconv.AppendUint(body, seq, 10)
				body = append(body, `"}`...)
				status, _, err := doRequest(rctx, reportHTTP, http.MethodPost, t.URL+"/v1/agents/applied", cfg.Token, body, nil)
				if err != nil || status != http.StatusNoContent {
					reportErrs.Add(1)
				} else {
					reports.Add(1)
					if l := logs[i]; len(l.seqs) < cap(l.seqs) {
						l.seqs = append(l.seqs, seq)
						l.at = append(l.at, int64(time.Since(base)))
					}
					logs[i].upTo.Store(seq)
				}
				select {
				case <-rctx.Done():
					return
				case <-time.After(cfg.ReportInterval):
				}
			}
		})
	}
	defer func() { stopReporters(); wg.Wait() }()
	if err := sleepCtx(ctx, cfg.Settle); err != nil {
		return err
	}

	api, err := r.api(t)
	if err != nil {
		return err
	}
	// run posts m revocations at the rate and waits until every subscriber
	// has the last (and, with reports, reported it)
	run := func(name string, withReports bool) (cpu, wall float64, seqs []uint64, acked []int64, err error) {
		enabled.Store(withReports)
		before, err := r.metrics(ctx, t)
		if err != nil {
			return 0, 0, nil, nil, err
		}
		seqs, acked = make([]uint64, m), make([]int64, m)
		interval := time.Duration(float64(time.Second) / cfg.Rate)
		start := time.Now()
		for i := range m {
			if err := sleepCtx(ctx, time.Until(start.Add(time.Duration(i)*interval))); err != nil {
				return 0, 0, nil, nil, err
			}
			body := []byte(`{"jti":"bench-` + r.runID + `-` + name + `-` + strconv.Itoa(i) + `"}`)
			answer, err := api.RevokeRaw(ctx, body, client.WriteOptions{})
			acked[i] = int64(time.Since(base))
			var ans struct {
				Seq    uint64 `json:"seq"`
				Status string `json:"status"`
			}
			if err == nil && (json.Unmarshal(answer, &ans) != nil || ans.Status != client.StatusCreated || ans.Seq == 0) {
				err = fmt.Errorf("POST /v1/revocations: not created, or without seq: %.200s", answer)
			}
			if err != nil {
				return 0, 0, nil, nil, err
			}
			seqs[i] = ans.Seq
		}
		last := seqs[m-1]
		for i := 0; i < n; {
			s := subs[i]
			select {
			case <-s.done:
				return 0, 0, nil, nil, fmt.Errorf("a subscriber disconnected: %w", s.err)
			default:
			}
			if s.last.Load() >= last && (!withReports || logs[i].upTo.Load() >= last) {
				i++
				continue
			}
			if err := sleepCtx(ctx, 2*time.Millisecond); err != nil {
				return 0, 0, nil, nil, fmt.Errorf("%d subscribers still waiting: %w", n-i, err)
			}
		}
		wall = time.Since(start).Seconds()
		after, err := r.metrics(ctx, t)
		if err != nil {
			return 0, 0, nil, nil, err
		}
		return after["process_cpu_seconds_total"] - before["process_cpu_seconds_total"], wall, seqs, acked, nil
	}

	r.logf("receipts: %d revocations at %g/s, nobody reporting", m, cfg.Rate)
	if res.FanoutCPU, res.FanoutSeconds, _, _, err = run("fanout", false); err != nil {
		return err
	}
	r.logf("receipts: %d revocations at %g/s, every subscriber reporting", m, cfg.Rate)
	reports.Store(0)
	var seqs []uint64
	var acked []int64
	if res.ReceiptsCPU, res.ReceiptsSeconds, seqs, acked, err = run("receipts", true); err != nil {
		return err
	}
	res.Reports, res.ReportErrors = reports.Load(), reportErrs.Load()
	stopReporters()
	wg.Wait()
	res.ReportsPerSecond = float64(res.Reports) / res.ReceiptsSeconds
	if res.Reports > 0 {
		res.CPUPerReportUs = (res.ReceiptsCPU - res.FanoutCPU) / float64(res.Reports) * 1e6
	}
	toAll := make([]int64, 0, m)
	for i, seq := range seqs {
		var lastAt int64
		all := true
		for k := range logs {
			at, ok := firstReportAt(logs[k], seq)
			if !ok {
				all = false
				break
			}
			lastAt = max(lastAt, at)
		}
		if all {
			toAll = append(toAll, max(0, lastAt-acked[i]))
		}
	}
	res.Enforced = len(toAll)
	res.AckToEnforced = distOf(toAll)
	r.res.Receipts = res
	r.printReceipts(res)
	switch {
	case res.ReportErrors > 0:
		return fmt.Errorf("%d reports failed", res.ReportErrors)
	case res.Enforced != m:
		return errors.New("not every revocation was reported applied by every subscriber")
	}
	return nil
}

// firstReportAt is when the first report at or past seq was answered.
func firstReportAt(l *reportLog, seq uint64) (int64, bool) {
	for k, s := range l.seqs {
		if s >= seq {
			return l.at[k], true
		}
	}
	return 0, false
}

func (r *runner) printReceipts(res *ReceiptsResult) {
	tb := &table{title: fmt.Sprintf("receipts: %s named subscribers, %s revocations at %g/s, a report at most every %g ms",
		fmtInt(int64(res.Subscribers)), fmtInt(int64(res.Revocations)), res.Rate, res.ReportIntervalMs)}
	tb.add("broadcaster CPU, fan-out alone", fmt.Sprintf("%.2f s in %.1f s (%.0f%% of a CPU)", res.FanoutCPU, res.FanoutSeconds, 100*res.FanoutCPU/res.FanoutSeconds), "", "")
	tb.add("broadcaster CPU, fan-out and reports", fmt.Sprintf("%.2f s in %.1f s (%.0f%% of a CPU)", res.ReceiptsCPU, res.ReceiptsSeconds, 100*res.ReceiptsCPU/res.ReceiptsSeconds), "", "")
	// per second: a run that the machine stretched sends more reports for
	// the same events (each agent reports at most every interval, whatever
	// the event rate), so totals of runs of different lengths do not compare
	fanout := res.FanoutCPU / res.FanoutSeconds
	reports := res.CPUPerReportUs / 1e6 * res.ReportsPerSecond
	tb.add("cost of the reports, CPU per second", fmt.Sprintf("%.0f%% of a CPU (fan-out: %.0f%%)", 100*reports, 100*fanout),
		"less than the fan-out", verdict(reports, fanout, true))
	tb.add("reports", fmt.Sprintf("%s (%s), %d failed", fmtInt(res.Reports), fmtRate(res.ReportsPerSecond), res.ReportErrors), "", "")
	tb.add("broadcaster CPU per report", fmt.Sprintf("%.1f µs", res.CPUPerReportUs), "", "")
	tb.add("POST ack → every subscriber reported it, per revocation", res.AckToEnforced.String(), "", "")
	tb.print(r.out)
}
