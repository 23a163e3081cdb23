package faults

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/revocast/revocast/pkg/agent"
	"github.com/revocast/revocast/pkg/client"
	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/sse"
)

// TestSingleNodeSIGKILLDuringPosts: a single node with its file store is
// killed without warning while revocations are posted, and restarted on
// the same data. Every revocation that got a 2xx is in the state and
// reaches a connected agent; the one in flight is retried with its
// Idempotency-Key and stored once.
func TestSingleNodeSIGKILLDuringPosts(t *testing.T) {
	skipShort(t)
	n := singleNode(t)
	n.start(t)
	n.waitReady(t)
	a := newAgent(t, []string{n.url()})
	p := newPoster(t, []*node{n})

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { p.run(ctx, "solo", 5*time.Millisecond) })
	waitAcked(t, p, 100)
	n.kill()
	killedAt := len(p.ackedJTIs())
	n.start(t)
	n.waitReady(t)
	waitAcked(t, p, killedAt+100)
	stop()
	wg.Wait()

	acked := p.ackedJTIs()
	holdsExactly(t, "agent", a, acked)
	fresh := newAgent(t, []string{n.url()})
	holdsExactly(t, "fresh agent", fresh, acked)
	t.Logf("single node SIGKILL: %d revocations acknowledged (%d before the kill), all held by the connected and a fresh agent; %d connection errors, %d refusals while down",
		len(acked), killedAt, p.errors, p.refusals)
}

func waitAcked(t *testing.T, p *poster, n int) {
	t.Helper()
	deadline := time.Now().Add(hangLimit)
	for len(p.ackedJTIs()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d revocations acknowledged after %v", len(p.ackedJTIs()), n, hangLimit)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
}

// agentsOnEveryNode starts agents, each with all URLs (they pick one at
// random), until every node serves at least one of them. Up to 40: with 12,
// one run in 40 left a node without an agent by chance (3·(2/3)^12);
// with 40 it is one in three million.
func agentsOnEveryNode(t *testing.T, nodes []*node) []*agent.Agent {
	t.Helper()
	const most = 40
	var agents []*agent.Agent
	for len(agents) < most {
		agents = append(agents, newAgent(t, urls(nodes)))
		covered := true
		for _, n := range nodes {
			if subscribers(t, n) == 0 {
				covered = false
			}
		}
		if covered && len(agents) >= 3 {
			return agents
		}
	}
	t.Fatalf("%d agents did not cover every node", most)
	return nil
}

// TestClusterKillLeaderWhilePosting: three nodes, agents on every node,
// revocations posted at a steady rate; the stream leader is killed. Writes
// are refused (503, never acknowledged without JetStream) until a new
// leader is elected, agents on the dead node move to the others, and at
// the end every agent holds exactly the acknowledged revocations.
func TestClusterKillLeaderWhilePosting(t *testing.T) {
	skipShort(t)
	nodes := cluster(t)
	startAll(t, nodes)
	agents := agentsOnEveryNode(t, nodes)
	p := newPoster(t, nodes)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { p.run(ctx, "leader", 20*time.Millisecond) })
	waitAcked(t, p, 50)

	dead := leader(t, nodes)
	onDead := subscribers(t, dead)
	killedAt := time.Now()
	dead.kill()
	before := len(p.ackedJTIs())
	// failover: until a revocation posted after the kill is acknowledged
	deadline := time.Now().Add(hangLimit)
	var failover time.Duration
	for failover == 0 {
		p.mu.Lock()
		for _, at := range p.ackedAt {
			if at.After(killedAt) && failover == 0 {
				failover = at.Sub(killedAt)
			}
		}
		p.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no write acknowledged within %v of killing the leader", hangLimit)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
	waitAcked(t, p, before+100)
	stop()
	wg.Wait()

	acked := p.ackedJTIs()
	for i, a := range agents {
		holdsExactly(t, "agent "+string(rune('A'+i)), a, acked)
	}
	t.Logf("leader %s killed with %d agents on it; failover (kill to the first acknowledged write) %v; "+
		"%d revocations acknowledged, %d refusals (503) and %d connection errors meanwhile; all %d agents hold exactly the acknowledged revocations",
		dead.name, onDead, failover.Round(time.Millisecond), len(acked), p.refusals, p.errors, len(agents))

	// the killed node comes back and catches up
	dead.start(t)
	dead.waitReady(t)
	back := newAgent(t, []string{dead.url()})
	holdsExactly(t, "agent on the restarted node", back, acked)
}

// TestClusterRollingRestart restarts the three nodes one after the other
// (SIGTERM, wait until the restarted node is ready) while revocations are
// posted: nothing acknowledged is lost.
func TestClusterRollingRestart(t *testing.T) {
	skipShort(t)
	nodes := cluster(t)
	startAll(t, nodes)
	agents := agentsOnEveryNode(t, nodes)
	p := newPoster(t, nodes)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { p.run(ctx, "rolling", 20*time.Millisecond) })
	waitAcked(t, p, 30)
	for _, n := range nodes {
		if err := n.proc.Stop(hangLimit); err != nil {
			t.Errorf("%s did not stop cleanly on SIGTERM: %v", n.name, err)
		}
		n.start(t)
		n.waitReady(t)
		waitAcked(t, p, len(p.ackedJTIs())+20)
	}
	stop()
	wg.Wait()
	acked := p.ackedJTIs()
	for i, a := range agents {
		holdsExactly(t, "agent "+string(rune('A'+i)), a, acked)
	}
	t.Logf("rolling restart of 3 nodes: %d revocations acknowledged, all held by %d agents; %d refusals, %d connection errors",
		len(acked), len(agents), p.refusals, p.errors)
}

// TestClusterMinorityStopsAcknowledging: a node cut off from the other two
// (they are killed) refuses writes, with 503 and Retry-After, instead of
// acknowledging what it cannot replicate; when its peers return, the same
// write (same Idempotency-Key) is acknowledged and stored once.
func TestClusterMinorityStopsAcknowledging(t *testing.T) {
	skipShort(t)
	nodes := cluster(t, "--publish-timeout", "2s")
	startAll(t, nodes)
	survivor := nodes[0]
	nodes[1].kill()
	nodes[2].kill()

	// a write that hangs instead of being refused ends at the client's
	// timeout, as a connection error
	api := apiClient(t, survivor.url(), "", client.WithRequestTimeout(hangLimit))
	// postOnce posts the same write, once (the client does not retry); a
	// connection error fails the test.
	postOnce := func() error {
		_, err := api.Revoke(t.Context(), events.Revocation{JTI: "minority"}, client.WriteOptions{IdempotencyKey: "minority-1"})
		var apiErr *client.Error
		if err != nil && !errors.As(err, &apiErr) {
			t.Fatal(err)
		}
		return err
	}
	for i := range 3 {
		err := postOnce()
		var apiErr *client.Error
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable || apiErr.Header.Get("Retry-After") == "" {
			t.Fatalf("write %d to a node without quorum: %v, want 503 with Retry-After", i, err)
		}
	}
	nodes[1].start(t)
	nodes[2].start(t)
	for _, n := range nodes {
		n.waitReady(t)
	}
	deadline := time.Now().Add(hangLimit)
	for {
		err := postOnce()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the write is still refused %v after the peers returned: %v", hangLimit, err)
		}
	}
	a := newAgent(t, urls(nodes))
	holdsExactly(t, "agent", a, []string{"minority"})
}

// TestWipedDataDirNewEpoch: a single node's data directory is wiped and it
// starts again with a new stream instance; a connected agent is told to
// reset and ends up with exactly the new state, not the old one.
func TestWipedDataDirNewEpoch(t *testing.T) {
	skipShort(t)
	n := singleNode(t)
	n.start(t)
	n.waitReady(t)
	a := newAgent(t, []string{n.url()})
	p := newPoster(t, []*node{n})
	for i := range 20 {
		p.post(context.Background(), "old-"+strconv.Itoa(i), 0)
	}
	holdsExactly(t, "agent before the wipe", a, p.ackedJTIs())

	n.kill()
	if err := os.RemoveAll(n.data); err != nil {
		t.Fatal(err)
	}
	n.start(t)
	n.waitReady(t)
	q := newPoster(t, []*node{n})
	for i := range 5 {
		q.post(context.Background(), "new-"+strconv.Itoa(i), 0)
	}
	holdsExactly(t, "agent after the wipe", a, q.ackedJTIs())
	if st := a.Stats(); st.Resets == 0 {
		t.Fatalf("the agent was not told to reset: %+v", st)
	}
	for _, jti := range p.ackedJTIs() {
		if _, err := a.Check(context.Background(), tokenFor(t, jti)); err != nil {
			t.Fatalf("the agent still denies %s from the wiped stream: %v", jti, err)
		}
	}
}

// TestClusterResumeOnAnotherNode: sequences are the same on every node, so
// an event ID read from one broadcaster resumes on any other: exactly the
// events after it, no reset.
func TestClusterResumeOnAnotherNode(t *testing.T) {
	skipShort(t)
	nodes := cluster(t)
	startAll(t, nodes)
	p := newPoster(t, nodes)
	for i := range 10 {
		p.post(context.Background(), "resume-"+strconv.Itoa(i), i)
	}
	first := readUntilSynced(t, nodes[0].url()+"/v1/events", "")
	if len(first) != 11 {
		t.Fatalf("node 1 replayed %d events, want 10 + synced", len(first))
	}
	mid := first[4].ID
	for _, n := range nodes[1:] {
		evs := readUntilSynced(t, n.url()+"/v1/events", mid)
		if len(evs) != 6 || evs[0].Type == "reset" {
			t.Fatalf("%s resumed from %s with %d events (first %+v), want the 5 after it + synced", n.name, mid, len(evs), evs[0])
		}
		for i, ev := range evs[:5] {
			if ev.ID != first[5+i].ID || string(ev.Data) != string(first[5+i].Data) {
				t.Fatalf("%s event %d: %s, node 1 had %s", n.name, i, ev.ID, first[5+i].ID)
			}
		}
	}
}

// A revocation acknowledged by one node is listed by the others at once: a
// reader does not see a state older than a write acknowledged before it
// asked, whichever node it asks.
func TestClusterListsWritesOfOtherNodes(t *testing.T) {
	skipShort(t)
	nodes := cluster(t)
	startAll(t, nodes)
	for i := range 30 {
		jti := "read-your-writes-" + strconv.Itoa(i)
		writer := nodes[i%3]
		st, err := writer.api(t).Revoke(t.Context(), events.Revocation{JTI: jti}, client.WriteOptions{})
		if err != nil {
			t.Fatalf("POST to %s: %v", writer.name, err)
		}
		if st.Status != client.StatusCreated {
			t.Fatalf("POST to %s: status %q, want %q", writer.name, st.Status, client.StatusCreated)
		}
		for _, reader := range []*node{nodes[(i+1)%3], nodes[(i+2)%3]} {
			page, err := reader.api(t).List(t.Context(), client.ListOptions{JTI: jti})
			if err != nil {
				t.Fatalf("list on %s: %v", reader.name, err)
			}
			if len(page.Revocations) != 1 || page.Revocations[0].JTI != jti {
				t.Fatalf("%s acknowledged %s, then %s listed: %+v", writer.name, jti, reader.name, page.Revocations)
			}
		}
	}
}

// readUntilSynced reads a node's stream by hand, not with client.Tail: the
// test checks the wire itself (exactly which events a Last-Event-ID header
// resumes with on another node, a reset included), which Tail's
// reconnecting and resuming would hide.
func readUntilSynced(t *testing.T, url, lastEventID string) []sse.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangLimit)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := sse.NewDecoder(resp.Body)
	var out []sse.Event
	for {
		ev, err := dec.Next()
		if err != nil {
			t.Fatalf("stream of %s: %v", url, err)
		}
		out = append(out, ev)
		if ev.Type == "synced" {
			return out
		}
	}
}
