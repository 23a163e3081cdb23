package faults

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/revocast/revocast/pkg/agent"
)

// pingWatcher follows a node's stream over a real socket and notes when each
// heartbeat (": ping") arrives. It reads the wire by hand, not with
// client.Tail: heartbeats are SSE comments, which Tail does not deliver,
// and a Tail would reconnect where the test wants one connection.
type pingWatcher struct {
	mu    sync.Mutex
	pings []time.Time
	err   error
}

func watchPings(t *testing.T, url string) *pingWatcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		resp.Body.Close()
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	w := &pingWatcher{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
				return
			}
			if strings.HasPrefix(line, ":") {
				w.mu.Lock()
				w.pings = append(w.pings, time.Now())
				w.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancel(); resp.Body.Close(); <-done })
	return w
}

// since counts the pings received after from, and returns the last one.
func (w *pingWatcher) since(from time.Time) (int, time.Time, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	var last time.Time
	for _, p := range w.pings {
		if p.After(from) {
			n++
			last = p
		}
	}
	return n, last, w.err
}

// TestClusterCutOffNodeStopsHeartbeats: a heartbeat promises that the node is
// current. A node whose two peers are killed can no longer reach a stream
// leader, so it stops pinging: its subscribers hear nothing more within the
// agents' max-staleness and would turn stale and move to another node. With
// the peers back, the pings resume on the same connections. Either the
// surviving node followed the leader, or it led the stream itself (it then
// counts as current until NATS makes it step down for lack of a quorum).
func TestClusterCutOffNodeStopsHeartbeats(t *testing.T) {
	skipShort(t)
	const (
		heartbeat = time.Second // node.start passes --heartbeat 1s
		// the promise: silence within the agents' max-staleness (their
		// default), so that they turn stale and move to another node
		maxStaleness = agent.DefaultMaxStaleness
		quiet        = 5 * heartbeat // silence that shows the pings stopped
		subscribers  = 5
	)
	tests := []struct {
		name          string
		survivorLeads bool
	}{
		{"survivor follows the leader", false},
		{"survivor leads the stream", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nodes := cluster(t)
			startAll(t, nodes)
			lead := leader(t, nodes)
			var survivor *node
			var others []*node
			for _, n := range nodes {
				if survivor == nil && (n == lead) == tc.survivorLeads {
					survivor = n
					continue
				}
				others = append(others, n)
			}

			var watchers []*pingWatcher
			for range subscribers {
				watchers = append(watchers, watchPings(t, survivor.url()+"/v1/events?last_event_id=now"))
			}
			// while the cluster is whole, every subscriber hears pings
			waitPings := func(what string, from time.Time) {
				t.Helper()
				deadline := time.Now().Add(hangLimit)
				for {
					all := true
					for i, w := range watchers {
						n, _, err := w.since(from)
						if err != nil {
							t.Fatalf("subscriber %d: stream ended: %v", i, err)
						}
						all = all && n >= 2
					}
					if all {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s: not every subscriber of %s got two pings within %v", what, hangLimit, survivor.name)
					}
					time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
				}
			}
			waitPings("cluster whole", time.Now())

			killedAt := time.Now()
			for _, n := range others {
				n.kill()
			}
			// the pings stop: wait for a silence of a few heartbeats on
			// every subscriber, then check it began within max-staleness
			deadline := killedAt.Add(maxStaleness + quiet + hangLimit)
			for {
				lastPing := killedAt
				for i, w := range watchers {
					_, last, err := w.since(killedAt)
					if err != nil {
						t.Fatalf("subscriber %d: stream ended: %v", i, err)
					}
					if last.After(lastPing) {
						lastPing = last
					}
				}
				if time.Since(lastPing) >= quiet {
					if d := lastPing.Sub(killedAt); d > maxStaleness {
						t.Fatalf("%s still pinged %v after its peers were killed (max-staleness %v)", survivor.name, d.Round(time.Millisecond), maxStaleness)
					} else {
						t.Logf("%s pinged for %v after its peers were killed", survivor.name, d.Round(time.Millisecond))
					}
					break
				}
				if time.Now().After(deadline) {
					n, _, _ := watchers[0].since(killedAt)
					t.Fatalf("%s, cut off from its peers, kept pinging: %d pings in %v on one subscriber (the agents would stay fresh)",
						survivor.name, n, time.Since(killedAt).Round(time.Second))
				}
				time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
			}

			// the peers return: pings resume on the same connections
			back := time.Now()
			for _, n := range others {
				n.start(t)
			}
			for _, n := range others {
				n.waitReady(t)
			}
			waitPings("peers back", back)
		})
	}
}
