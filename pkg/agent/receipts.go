package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
)

// Receipts: an agent that has a name (WithName) names itself on the stream
// with the Revocast-Agent header and reports the last event it applied to
// its denylist to the broadcaster it streams from (POST
// /v1/agents/applied), so that operators can ask which agents enforce a
// revocation. Reports go out from a goroutine of their own: after events
// (at most one per ReportInterval) and after heartbeats. Check and the
// stream never wait for them; a report that fails is dropped, the next one
// carries the newer position.

// AgentHeader is the request header an agent names itself with.
const AgentHeader = "Revocast-Agent"

// AppliedPath is where an agent reports what it applied.
const AppliedPath = "/v1/agents/applied"

// DefaultReportInterval is the shortest time between two reports.
const DefaultReportInterval = 250 * time.Millisecond

// reportTimeout bounds one report.
const reportTimeout = 5 * time.Second

// maxName bounds an agent's name.
const maxName = 128

// WithName names the agent to the broadcaster (GET /v1/agents lists it;
// revoke --wait waits for it). A name is 1 to 128 printable characters
// without ';' (an error otherwise); "" is no name. Without a name the agent
// neither names itself nor reports.
func WithName(name string) Option {
	return func(c *config) error {
		if err := checkName(name); err != nil {
			return err
		}
		c.name = name
		return nil
	}
}

// WithReportInterval sets the shortest time between two reports of the
// applied position (default DefaultReportInterval); it must be positive.
func WithReportInterval(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return optionErr("report interval %v: must be positive", d)
		}
		c.reportInterval = d
		return nil
	}
}

func checkName(name string) error {
	if name == "" {
		return nil
	}
	if len(name) > maxName || strings.ContainsFunc(name, func(r rune) bool { return r == ';' || !unicode.IsPrint(r) }) {
		return optionErr("name %q: want 1 to %d printable characters without ';'", name, maxName)
	}
	return nil
}

// newInstance is a random id for this agent (one per New).
func newInstance() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// reporter sends the applied position.
type reporter struct {
	instance string
	interval time.Duration
	client   *http.Client
	hook     func(*http.Request) // credentials
	applied  atomic.Pointer[string]
	base     atomic.Pointer[string] // the broadcaster streaming to us
	signal   chan struct{}
	sent     atomic.Uint64
	failed   atomic.Uint64
}

func newReporter(instance string, interval time.Duration, client *http.Client, hook func(*http.Request)) *reporter {
	if client == nil {
		client = &http.Client{Timeout: reportTimeout}
	}
	return &reporter{instance: instance, interval: interval, client: client, hook: hook, signal: make(chan struct{}, 1)}
}

// header is the value of AgentHeader.
func (r *reporter) header(name string) string { return name + "; instance=" + r.instance }

// setApplied records the position; poke asks for a report. Both are cheap
// and never block.
func (r *reporter) setApplied(id string) { r.applied.Store(&id) }

func (r *reporter) poke() {
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

// connected records the broadcaster now streaming (its stream URL).
func (r *reporter) connected(streamURL string) {
	base := streamURL
	if i := strings.IndexByte(base, '?'); i >= 0 {
		base = base[:i]
	}
	base = strings.TrimSuffix(base, EventsPath)
	r.base.Store(&base)
}

// run sends a report whenever poked, at most one per interval, until ctx
// ends. Pokes that arrive meanwhile coalesce into the next report.
func (r *reporter) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.signal:
		}
		if p := r.applied.Load(); p != nil {
			// a heartbeat repeats the same position: that is the point,
			// it says the agent is alive and still there
			if err := r.send(ctx, *p); err != nil {
				r.failed.Add(1)
			} else {
				r.sent.Add(1)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.interval):
		}
	}
}

func (r *reporter) send(ctx context.Context, applied string) error {
	bp := r.base.Load()
	if bp == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	body := fmt.Appendf(nil, `{"instance":%q,"applied":%q}`, r.instance, applied)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, *bp+AppliedPath, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if r.hook != nil {
		r.hook(req)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("report: %s", resp.Status)
	}
	return nil
}
