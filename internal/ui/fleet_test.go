package ui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/revocast/revocast/pkg/agent"
)

// TestFleet: the fleet table and each revocation's enforcement. When the
// broadcaster answers GET /v1/agents, the page is tested against it with a
// real agent. While it does not (404: a broadcaster without delivery
// receipts), a proxy in front of the real broadcaster stands in for that
// endpoint and for the enforcement of GET /v1/revocations/{key}, so that
// the page's rendering of both is still exercised; nothing else is stubbed.
//
// With REVOCAST_UI_SCREENSHOT=<file.png> the test also saves a screenshot
// of the dashboard (go test ./internal/ui -run TestFleet, with the variable
// set to ../../docs/dashboard.png).
func TestFleet(t *testing.T) {
	startBrowser(t)
	f := start(t)
	real := call(t, "GET", f.base+"/v1/agents", f.reader, "").status != http.StatusNotFound
	if real {
		testRealFleet(t, f)
		return
	}
	t.Log("this broadcaster has no GET /v1/agents: testing the page against a stand-in fleet")
	since := func(d time.Duration) string { return time.Now().Add(-d).UTC().Format(time.RFC3339) }
	stub := &fleet{agents: []map[string]any{
		{"name": "api-gateway", "instance": "gw-7c9f", "node": "broadcaster-1", "connected_at": since(3 * time.Hour), "fresh": true, "lag": 0},
		{"name": "billing", "instance": "b-41d2", "node": "broadcaster-2", "connected_at": since(47 * time.Minute), "fresh": true, "lag": 0},
		{"name": "edge-eu", "instance": "e-0a11", "node": "broadcaster-1", "connected_at": since(26 * time.Hour), "fresh": true, "lag": 0},
		{"name": "reports", "instance": "r-93aa", "node": "broadcaster-2", "connected_at": since(5 * time.Hour), "fresh": false, "lag": 0, "connected": false},
	}}
	base := stub.proxy(t, f.base)

	tb := openDashboard(t, base, f.revoker)
	tb.waitFor(`document.querySelectorAll('#fleet tbody tr[data-state=fresh]').length === 3`)
	if st := eval[string](tb, `document.querySelector('#fleet tbody tr[data-agent="reports/r-93aa"]').dataset.state`); st != "disconnected" {
		t.Errorf("the disconnected agent shows as %q", st)
	}
	for _, body := range []string{
		`{"sub":"mallory","ban":true,"reason":"stolen laptop"}`,
		`{"kid":"2024-rotation-a","reason":"key leaked in CI logs"}`,
		`{"iss":"https://id.example.com","claims":{"tenant":"initech"},"reason":"tenant offboarded"}`,
	} {
		rev := revoke(t, f, body)
		tb.waitFor(fmt.Sprintf(`document.querySelector(%q)?.dataset.enforcement === '3/3'`, row(rev.Key)+" td[data-enforcement]"))
	}

	// an agent falls behind: the table says so, and a new revocation
	// names it as pending
	stub.set("billing", map[string]any{"fresh": false, "lag": 3})
	tb.waitFor(`document.querySelector('#fleet tbody tr[data-agent="billing/b-41d2"]').dataset.state === 'stale'`)
	rev := revoke(t, f, `{"jti":"9f3c-logout","reason":"user logged out"}`)
	cell := row(rev.Key) + " td[data-enforcement]"
	tb.waitFor(fmt.Sprintf(`document.querySelector(%q)?.dataset.enforcement === '2/3'`, cell))
	if got := eval[string](tb, fmt.Sprintf(`document.querySelector(%q).textContent`, cell)); !strings.Contains(got, "pending: billing/b-41d2") {
		t.Errorf("enforcement cell %q does not name the pending agent", got)
	}
	if got := eval[string](tb, `document.querySelector('#enforce-now').textContent`); !strings.Contains(got, "p50") {
		t.Errorf("enforcement summary %q", got)
	}
	if p := tb.problems(); len(p) > 0 {
		t.Errorf("console:\n%s", strings.Join(p, "\n"))
	}

	if out := os.Getenv("REVOCAST_UI_SCREENSHOT"); out != "" {
		stub.add(map[string]any{"name": "edge-us", "instance": "e-77b0", "node": "broadcaster-2", "connected_at": since(0), "fresh": true, "lag": 0})
		revoke(t, f, `{"sub":"alice","reason":"phished"}`)
		// a few samples of the connected-agents chart, taken every 2 s
		tb.waitFor(`document.querySelector('#agents-now').textContent.startsWith('4 ') &&
			document.querySelector('#chart-agents polyline').getAttribute('points').split(' ').length >= 8`)
		screenshot(tb, out)
	}
}

// screenshot saves the whole page as a PNG file.
func screenshot(tb *tab, file string) {
	tb.t.Helper()
	png, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Fatal(err)
	}
	if err := os.WriteFile(file, png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Logf("wrote %s", file)
}

// testRealFleet: a real agent connects, shows fresh, leaves.
func testRealFleet(t *testing.T, f fixture) {
	t.Log("the broadcaster answers GET /v1/agents: testing the page against it")
	ctx, cancel := context.WithCancel(context.Background())
	a, err := agent.New([]string{f.base}, agent.WithBearerToken(f.reader), agent.WithName("fleet-test"),
		agent.WithAlgorithms("HS256"), agent.WithHMACSecret(bytes.Repeat([]byte("k"), agent.MinHMACSecretLength)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}) // closed when Run returns, so both waits below see it
	go func() { defer close(done); _ = a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	tb := openDashboard(t, f.base, f.reader)
	tb.waitFor(`document.querySelectorAll('#fleet tbody tr[data-state=fresh]').length === 1`)
	rev := revoke(t, f, `{"jti":"real-fleet","reason":"enforced by one agent"}`)
	tb.waitFor(fmt.Sprintf(`document.querySelector(%q)?.dataset.enforcement === '1/1'`, row(rev.Key)+" td[data-enforcement]"))
	if out := os.Getenv("REVOCAST_UI_SCREENSHOT"); out != "" {
		screenshot(tb, out)
	}

	cancel()
	<-done
	tb.waitFor(`document.querySelectorAll('#fleet tbody tr[data-state=fresh]').length === 0`)
	if p := tb.problems(); len(p) > 0 {
		t.Errorf("console:\n%s", strings.Join(p, "\n"))
	}
}

// fleet stands in for GET /v1/agents and for the enforcement of a
// revocation, computed from the agents: the fresh connected ones have
// applied it, the others are pending.
type fleet struct {
	mu     sync.Mutex
	agents []map[string]any
}

func (fl *fleet) set(name string, fields map[string]any) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	for _, a := range fl.agents {
		if a["name"] == name {
			for k, v := range fields {
				a[k] = v
			}
		}
	}
}

func (fl *fleet) add(a map[string]any) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.agents = append(fl.agents, a)
}

// answer is the body of GET /v1/agents when the head is the event ID head:
// each connected agent has applied it but for its lag.
func (fl *fleet) answer(head string) []byte {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	epoch, seq, _ := strings.Cut(head, "-")
	n, _ := strconv.Atoi(seq)
	for _, a := range fl.agents {
		if a["connected"] != false {
			a["applied"] = epoch + "-" + strconv.Itoa(max(0, n-a["lag"].(int)))
		}
	}
	b, _ := json.Marshal(map[string]any{"agents": fl.agents})
	return b
}

// enforcement of a revocation revoked at revokedAt.
func (fl *fleet) enforcement(key string, revokedAt time.Time) map[string]any {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	connected, applied := 0, 0
	pending := []map[string]any{}
	for _, a := range fl.agents {
		if a["connected"] == false {
			continue
		}
		connected++
		if a["fresh"] == true {
			applied++
		} else {
			pending = append(pending, map[string]any{"name": a["name"], "instance": a["instance"]})
		}
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	took := time.Duration(4+h.Sum32()%40) * time.Millisecond // a plausible spread
	return map[string]any{"agents": connected, "applied": applied, "last_applied_at": revokedAt.Add(took), "pending": pending}
}

var byKey = regexp.MustCompile(`^/v1/revocations/[0-9a-f]{32}$`)

// proxy serves the broadcaster at target through the stand-in, on a new
// origin, and returns its base URL.
func (fl *fleet) proxy(t *testing.T, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method != http.MethodGet || resp.StatusCode != http.StatusOK || !byKey.MatchString(resp.Request.URL.Path) {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var rev map[string]any
		if err := json.Unmarshal(body, &rev); err != nil {
			return err
		}
		if _, ok := rev["enforcement"]; !ok {
			at, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(rev["revoked_at"]))
			rev["enforcement"] = fl.enforcement(fmt.Sprint(rev["key"]), at)
			body, _ = json.Marshal(rev)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/agents" && r.Method == http.MethodGet {
			if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
				http.Error(w, `{"error":"authentication required"}`, http.StatusUnauthorized)
				return
			}
			var ready struct{ Head string } // not call: this is not the test's goroutine
			if resp, err := http.Get(target + "/readyz"); err == nil {
				_ = json.NewDecoder(resp.Body).Decode(&ready)
				resp.Body.Close()
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(fl.answer(ready.Head))
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
