package natslog

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"

	"github.com/revocast/revocast/internal/testutil"
)

func freePort(t *testing.T) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(testutil.FreeAddr(t))
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// clusterConfigs returns the configurations of n embedded servers that form
// one cluster on loopback, each with its own data directory.
func clusterConfigs(t *testing.T, n int) []Config {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ports[i] = freePort(t)
	}
	cfgs := make([]Config, n)
	for i := range cfgs {
		var routes []string
		for j, p := range ports {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
			}
		}
		cfgs[i] = Config{
			DataDir:     t.TempDir(),
			ServerName:  fmt.Sprintf("n%d", i+1),
			ClusterName: "revocast-test",
			ClusterAddr: fmt.Sprintf("127.0.0.1:%d", ports[i]),
			Routes:      routes,
			Replicas:    n,
			// routes authenticate: the secret is part of what is tested
			ClusterSecret: "cluster secret for the test",
		}
	}
	return cfgs
}

// TestClusterReplicatesWithIdenticalSequences: three embedded servers form
// a cluster; what one publishes, the others hold with the same sequence and
// the same epoch.
func TestClusterReplicatesWithIdenticalSequences(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a 3-node cluster; skipped under -short")
	}
	cfgs := clusterConfigs(t, 3)
	logs := make([]*Log, 3)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
	defer cancel()
	for i := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			logs[i], errs[i] = Open(ctx, cfgs[i])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i+1, err)
		}
		t.Cleanup(func() { logs[i].Close() })
	}
	epoch := logs[0].Epoch()
	for i, l := range logs {
		if l.Epoch() != epoch {
			t.Fatalf("node %d has epoch %d, node 1 %d", i+1, l.Epoch(), epoch)
		}
	}
	var seqs []uint64
	for i, l := range logs {
		p, err := l.Publish(ctx, prepare(t, fmt.Sprintf(`{"jti":"c%d"}`, i)), "")
		if err != nil {
			t.Fatalf("publish on node %d: %v", i+1, err)
		}
		seqs = append(seqs, p.Seq)
	}
	for i, l := range logs {
		f := follow(t, l, 0)
		recs := f.waitFor(t, 3)
		for j, r := range recs {
			if r.Seq != seqs[j] || mustDecode(t, r).JTI != fmt.Sprintf("c%d", j) {
				t.Fatalf("node %d record %d: seq %d jti %s, want seq %d", i+1, j, r.Seq, mustDecode(t, r).JTI, seqs[j])
			}
		}
	}

	// An idempotent request retried on another node is recognised there:
	// the record is the stream, not the node that took the first attempt.
	req := Request{ID: RequestID("api-key", "ops", "cluster-retry"), Fingerprint: RequestFingerprint("revoke", []byte("c-idem"))}
	first, err := logs[0].PublishRequest(ctx, prepare(t, `{"jti":"c-idem"}`), req)
	if err != nil || first.Duplicate {
		t.Fatalf("first attempt: %+v, %v", first, err)
	}
	retry, err := logs[1].PublishRequest(ctx, prepare(t, `{"jti":"c-idem"}`), req)
	if err != nil || !retry.Duplicate || retry.Seq != first.Seq || string(retry.Stored) != string(first.Stored) {
		t.Fatalf("retry on node 2: %+v, %v; first %+v", retry, err, first)
	}
	other := req
	other.Fingerprint = RequestFingerprint("revoke", []byte("c-other"))
	if p, err := logs[2].PublishRequest(ctx, prepare(t, `{"jti":"c-other"}`), other); !errors.Is(err, ErrConflict) {
		t.Fatalf("another request with the key on node 3: %+v, %v", p, err)
	}
}
