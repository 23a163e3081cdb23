package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/agent"
	"github.com/revocast/revocast/pkg/client"
	"github.com/revocast/revocast/pkg/events"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.Cleanup()
	os.Exit(code)
}

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("fault test: starts, kills and restarts real broadcaster processes; skipped under -short")
	}
}

// node is one broadcaster process with its fixed addresses, so that it can
// be killed and started again on the same address and data.
type node struct {
	name        string
	addr        string // HTTP
	clusterAddr string // "" for a single node
	data        string
	args        []string
	proc        *testutil.Process
}

func (n *node) url() string { return "http://" + n.addr }

// apiClient is a pkg/client client of the broadcaster at base, with token
// ("" for none). It never retries unless opts say so: the fault tests count
// and check every answer themselves, and a retry would hide a refusal.
func apiClient(t *testing.T, base, token string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(base, append([]client.Option{client.WithToken(token), client.WithRetries(0)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// api is a client of the node's HTTP API, without a token.
func (n *node) api(t *testing.T) *client.Client {
	t.Helper()
	return apiClient(t, n.url(), "")
}

func (n *node) start(t *testing.T) {
	t.Helper()
	args := append([]string{"--addr", n.addr, "--data", n.data, "--server-name", n.name, "--heartbeat", "1s"}, n.args...)
	n.proc = testutil.Start(t, "broadcaster", "", args...)
}

// hangLimit is how long the tests wait for anything (a node ready, an
// agent caught up, a failover) before calling it hung: a cluster member
// restarted on a loaded machine can take tens of seconds to rejoin, which
// is slow, not wrong. How fast these happen is measured by cmd/bench.
const hangLimit = testutil.HangLimit

// waitReady waits until /readyz answers 200.
func (n *node) waitReady(t *testing.T) {
	t.Helper()
	n.proc.WaitReady(hangLimit, "/readyz")
}

func (n *node) kill() { n.proc.Kill() }

func singleNode(t *testing.T) *node {
	t.Helper()
	return &node{name: "solo", addr: testutil.FreeAddr(t), data: t.TempDir()}
}

// cluster returns three nodes that form one cluster with a replicated
// stream; start them with startAll.
func cluster(t *testing.T, extra ...string) []*node {
	t.Helper()
	nodes := make([]*node, 3)
	for i := range nodes {
		nodes[i] = &node{name: fmt.Sprintf("n%d", i+1), addr: testutil.FreeAddr(t), clusterAddr: testutil.FreeAddr(t), data: t.TempDir()}
	}
	var routes []string
	for _, n := range nodes {
		routes = append(routes, "nats://"+n.clusterAddr)
	}
	secret := filepath.Join(t.TempDir(), "cluster-secret")
	if err := os.WriteFile(secret, []byte("fault tests' shared route secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		n.args = append([]string{"--cluster-name", "revocast-faults", "--cluster-addr", n.clusterAddr,
			"--routes", strings.Join(routes, ","), "--replicas", "3", "--cluster-secret-file", secret}, extra...)
	}
	return nodes
}

func startAll(t *testing.T, nodes []*node) {
	t.Helper()
	for _, n := range nodes {
		n.start(t)
	}
	for _, n := range nodes {
		n.waitReady(t)
	}
}

func urls(nodes []*node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.url())
	}
	return out
}

// leader asks a node which server leads the stream. /readyz is a probe,
// not part of the /v1 API that pkg/client speaks: plain HTTP.
func leader(t *testing.T, nodes []*node) *node {
	t.Helper()
	deadline := time.Now().Add(hangLimit)
	for time.Now().Before(deadline) {
		for _, n := range nodes {
			resp, err := http.Get(n.url() + "/readyz?leader")
			if err != nil {
				continue
			}
			var r struct {
				StreamLeader string `json:"stream_leader"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&r)
			resp.Body.Close()
			for _, m := range nodes {
				if m.name == r.StreamLeader {
					return m
				}
			}
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
	t.Fatalf("no stream leader known after %v", hangLimit)
	return nil
}

// poster posts jti revocations, each retried with the same Idempotency-Key
// (on any node, after connection errors and 503s) until acknowledged.
type poster struct {
	t       *testing.T
	nodes   []*node
	clients []*client.Client // one per node, without retries: post retries itself

	mu       sync.Mutex
	acked    []string // jtis acknowledged with a 2xx
	ackedAt  map[string]time.Time
	refusals int // answers 503 (with Retry-After)
	errors   int // connection errors
	lastFail time.Time
}

func newPoster(t *testing.T, nodes []*node) *poster {
	t.Helper()
	p := &poster{t: t, nodes: nodes, ackedAt: map[string]time.Time{}}
	for _, n := range nodes {
		p.clients = append(p.clients, apiClient(t, n.url(), "", client.WithRequestTimeout(15*time.Second)))
	}
	return p
}

// post revokes jti, trying the nodes in turn starting at first, until a
// 2xx or the deadline. It reports whether it was acknowledged.
func (p *poster) post(ctx context.Context, jti string, first int) bool {
	opts := client.WriteOptions{IdempotencyKey: "fault-" + jti}
	for attempt := 0; ctx.Err() == nil; attempt++ {
		i := (first + attempt) % len(p.nodes)
		n := p.nodes[i]
		_, err := p.clients[i].Revoke(ctx, events.Revocation{JTI: jti}, opts)
		var apiErr *client.Error
		var noAnswer *client.TransportError
		switch {
		case err == nil:
			p.mu.Lock()
			p.acked = append(p.acked, jti)
			p.ackedAt[jti] = time.Now()
			p.mu.Unlock()
			return true
		case errors.As(err, &apiErr) && apiErr.Status == http.StatusServiceUnavailable:
			if apiErr.Header.Get("Retry-After") == "" {
				p.t.Errorf("503 without Retry-After from %s", n.name)
			}
			p.failed(ctx, &p.refusals, 100*time.Millisecond)
		case apiErr != nil:
			p.t.Errorf("POST %s to %s: %v", jti, n.name, err)
			return false
		case errors.As(err, &noAnswer) || ctx.Err() != nil: // connection refused or reset, timeout
			p.failed(ctx, &p.errors, 50*time.Millisecond)
		default: // a 2xx the client could not read
			p.t.Errorf("POST %s to %s: %v", jti, n.name, err)
			return false
		}
	}
	return false
}

// failed counts a failed attempt in count (refusals or errors, under
// p.mu) and pauses before the next one, unless ctx ends first.
func (p *poster) failed(ctx context.Context, count *int, pause time.Duration) {
	p.mu.Lock()
	*count++
	p.lastFail = time.Now()
	p.mu.Unlock()
	select {
	case <-ctx.Done():
	case <-time.After(pause):
	}
}

// run posts prefix-0, prefix-1, … every interval until ctx ends, and waits
// for the last one to be acknowledged (within a grace period).
func (p *poster) run(ctx context.Context, prefix string, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// each post gets a generous deadline of its own, beyond ctx: a
		// revocation in flight is never abandoned half-way
		pctx, cancel := context.WithTimeout(context.Background(), hangLimit)
		if !p.post(pctx, fmt.Sprintf("%s-%d", prefix, i), i) {
			p.t.Errorf("%s-%d not acknowledged within %v", prefix, i, hangLimit)
		}
		cancel()
	}
}

func (p *poster) ackedJTIs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.acked)
}

var hmacSecret = []byte("revocast fault tests: 32+ bytes of HMAC secret")

// newAgent runs an embedded agent following urls until the test ends.
func newAgent(t *testing.T, urls []string) *agent.Agent {
	t.Helper()
	a, err := agent.New(urls, agent.WithAlgorithms("HS256"), agent.WithHMACSecret(hmacSecret),
		agent.WithReconnectBackoff(50*time.Millisecond, 500*time.Millisecond), agent.WithMaxStaleness(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-a.ReadyChan():
	case <-time.After(hangLimit):
		t.Fatalf("agent not ready after %v", hangLimit)
	}
	return a
}

func tokenFor(t *testing.T, jti string) string {
	t.Helper()
	now := time.Now()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "user", "jti": jti, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}).SignedString(hmacSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// holdsExactly checks that the agent denies every jti and holds no other
// revocation, waiting up to hangLimit for it to catch up.
func holdsExactly(t *testing.T, name string, a *agent.Agent, jtis []string) {
	t.Helper()
	deadline := time.Now().Add(hangLimit)
	for {
		missing := 0
		for _, jti := range jtis {
			if _, err := a.Check(context.Background(), tokenFor(t, jti)); !errors.Is(err, agent.ErrRevoked) {
				missing++
			}
		}
		st := a.Stats()
		held := st.Denylist.Exact + st.Denylist.Spilled + st.Denylist.ClaimRules
		if missing == 0 && held == len(jtis) && !st.Rebuilding {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d acknowledged revocations missing, %d held in all (want exactly %d); stats %+v",
				name, missing, len(jtis), held, len(jtis), st)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
}

// subscribers reads a node's subscriber gauge. /metrics is Prometheus text,
// not part of the /v1 API that pkg/client speaks: plain HTTP.
func subscribers(t *testing.T, n *node) int {
	t.Helper()
	resp, err := http.Get(n.url() + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var count int
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "revocast_broadcaster_subscribers ") {
			_, _ = fmt.Sscanf(strings.TrimPrefix(line, "revocast_broadcaster_subscribers "), "%d", &count)
		}
	}
	return count
}
