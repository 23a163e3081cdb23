package faults

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/client"
)

// fleetOf lists the agents a node knows of, by name; nil when it does not
// answer.
func fleetOf(t *testing.T, n *node) map[string]client.AgentStatus {
	t.Helper()
	list, err := n.api(t).Agents(t.Context())
	if err != nil {
		return nil
	}
	out := map[string]client.AgentStatus{}
	for _, a := range list {
		out[a.Name] = a
	}
	return out
}

// enforcementAt reads how far the agents are with the revocation key, as a
// node sees it; false when it does not say.
func enforcementAt(t *testing.T, n *node, key string) (client.Enforcement, bool) {
	t.Helper()
	live, err := n.api(t).Get(t.Context(), key)
	if err != nil || live.Enforcement == nil {
		return client.Enforcement{}, false
	}
	return *live.Enforcement, true
}

// cliRun runs the revocast CLI and returns stdout, stderr and the
// exit code. It is killed as hung only after its own --wait (at most two
// minutes in these tests) and the hang limit.
func cliRun(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute+hangLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, testutil.Binary(t, "revocast"), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errOut.String(), 0
	case errors.As(err, &ee):
		return out.String(), errOut.String(), ee.ExitCode()
	}
	t.Fatalf("broadcaster %s: %v", strings.Join(args, " "), err)
	return "", "", 0
}

func publicKeyFile(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "issuer.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReceiptsWithAPausedAgent: three agent sidecars follow one node of a
// cluster; one is frozen with SIGSTOP. revoke --wait reports 2 of 3 and
// names it, another node of the cluster shows the same, and after SIGCONT
// every agent applies it.
func TestReceiptsWithAPausedAgent(t *testing.T) {
	skipShort(t)
	nodes := cluster(t)
	startAll(t, nodes)
	first, other := nodes[0], nodes[1]
	key := publicKeyFile(t)
	agents := map[string]*testutil.Process{}
	for _, name := range []string{"api-1", "api-2", "api-3"} {
		agents[name] = testutil.Start(t, "agent", "/readyz", "--broadcaster", first.url(), "--public-key", key,
			"--addr", "127.0.0.1:0", "--name", name)
	}
	for _, n := range []*node{first, other} {
		testutil.Eventually(t, 2*time.Minute, "three fresh agents listed by "+n.name, func() bool {
			f := fleetOf(t, n)
			for _, name := range []string{"api-1", "api-2", "api-3"} {
				if a := f[name]; !a.Connected || !a.Fresh || a.Applied == "" || a.Node != first.name {
					return false
				}
			}
			return true
		})
	}

	paused := agents["api-2"]
	if err := syscall.Kill(paused.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			_ = syscall.Kill(paused.Pid(), syscall.SIGCONT)
		}
	})

	var revKey, revID string
	t.Run("revoke --wait names the paused agent", func(t *testing.T) {
		// generous: the two running agents must apply it within the wait
		stdout, stderr, code := cliRun(t, "revoke", "--server", first.url(), "--sub", "mallory", "--json", "--wait=20s")
		if code != 7 {
			t.Fatalf("exit code %d, want 7 (not everywhere)\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		var stored struct {
			Key string `json:"key"`
			ID  string `json:"id"`
		}
		var res struct {
			Enforced bool `json:"enforced"`
			client.Enforcement
		}
		if len(lines) != 2 || json.Unmarshal([]byte(lines[0]), &stored) != nil || json.Unmarshal([]byte(lines[1]), &res) != nil {
			t.Fatalf("stdout: %s", stdout)
		}
		revKey, revID = stored.Key, stored.ID
		if res.Enforced || res.Agents != 3 || res.Applied != 2 || len(res.Pending) != 1 || res.Pending[0].Name != "api-2" {
			t.Fatalf("result %+v, want 2 of 3 with api-2 pending", res)
		}
		if !strings.Contains(stderr, "api-2") || !strings.Contains(stderr, "waiting: ") {
			t.Errorf("stderr names no pending agent or shows no progress: %s", stderr)
		}
	})
	if revKey == "" {
		t.FailNow()
	}
	t.Run("another node shows the same", func(t *testing.T) {
		testutil.Eventually(t, 2*time.Minute, other.name+" showing 2 of 3 with api-2 pending", func() bool {
			e, ok := enforcementAt(t, other, revKey)
			return ok && e.Agents == 3 && e.Applied == 2 && len(e.Pending) == 1 && e.Pending[0].Name == "api-2"
		})
		f := fleetOf(t, other)
		for name, a := range f {
			wantApplied := name != "api-2"
			if !a.Connected || (a.Applied == revID) != wantApplied {
				t.Errorf("%s on %s: %+v (applied %s: want %v)", name, other.name, a, revID, wantApplied)
			}
		}
		if a := f["api-2"]; a.Lag == nil || *a.Lag == 0 {
			t.Errorf("api-2's lag on %s: %v, want > 0", other.name, a.Lag)
		}
	})

	if err := syscall.Kill(paused.Pid(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	t.Run("after SIGCONT every agent applies it", func(t *testing.T) {
		stdout, stderr, code := cliRun(t, "revoke", "--server", other.url(), "--sub", "oscar", "--wait=2m")
		if code != 0 || !strings.Contains(stdout, "enforced by 3 of 3 agents in ") {
			t.Fatalf("exit code %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		for _, n := range []*node{first, other} {
			testutil.Eventually(t, 2*time.Minute, fmt.Sprintf("%s showing mallory's revocation 3 of 3", n.name), func() bool {
				e, ok := enforcementAt(t, n, revKey)
				return ok && e.Agents == 3 && e.Applied == 3 && len(e.Pending) == 0
			})
		}
	})
}
