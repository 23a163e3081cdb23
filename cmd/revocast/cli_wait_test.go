package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/agent"
)

// runNamedAgent runs a pkg/agent agent named name against base until the
// test ends, and waits until it is ready.
func runNamedAgent(t *testing.T, base, name string) {
	t.Helper()
	a, err := agent.New([]string{base}, agent.WithHMACSecret([]byte(strings.Repeat("s", 32))), agent.WithAlgorithms("HS256"), agent.WithName(name))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-a.ReadyChan():
	case <-time.After(testutil.HangLimit):
		t.Fatalf("agent not ready within %v", testutil.HangLimit)
	}
}

// silentSubscriber names itself on the stream and never reports.
func silentSubscriber(t *testing.T, base, name string) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/v1/events", nil)
	req.Header.Set("Revocast-Agent", name+"; instance=silent1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		t.Fatalf("GET /v1/events: %d", resp.StatusCode)
	}
}

func TestRevokeWait(t *testing.T) {
	base := startBroadcaster(t, nil)
	cli := newCLI(t, base)

	t.Run("flags", func(t *testing.T) {
		for _, args := range [][]string{
			{"revoke", "--sub", "x", "--wait=soon"},
			{"revoke", "--sub", "x", "--wait=0s"},
			{"revoke", "--jti-file", "-", "--wait"},
		} {
			cli.fails(exitUsage, args...)
		}
	})
	t.Run("no agent: enforced at once", func(t *testing.T) {
		r := cli.ok("revoke", "--sub", "nobody-listens", "--wait")
		if !regexp.MustCompile(`(?m)^enforced by 0 of 0 agents in \d+ ms$`).MatchString(r.stdout) {
			t.Fatalf("stdout: %s", r.stdout)
		}
	})

	runNamedAgent(t, base, "api-1")
	t.Run("every agent applies it", func(t *testing.T) {
		r := cli.ok("revoke", "--sub", "alice", "--wait=2m")
		if !regexp.MustCompile(`(?m)^enforced by 1 of 1 agents in \d+ ms$`).MatchString(r.stdout) {
			t.Fatalf("stdout: %s\nstderr: %s", r.stdout, r.stderr)
		}
	})

	silentSubscriber(t, base, "stuck")
	t.Run("one never reports", func(t *testing.T) {
		r := cli.fails(exitNotEnforced, "revoke", "--sub", "bob", "--wait=500ms")
		if !regexp.MustCompile(`(?m)^enforced by [01] of 2 agents in \d+ ms$`).MatchString(r.stdout) {
			t.Fatalf("stdout: %s", r.stdout)
		}
		if !strings.Contains(r.stderr, "not enforced everywhere within 500ms") || !strings.Contains(r.stderr, "stuck (instance silent1 on ") {
			t.Fatalf("stderr: %s", r.stderr)
		}
	})
}
