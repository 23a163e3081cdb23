package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/testutil"
)

// TestREADMEWalkthrough runs the README's "Try it" commands as printed,
// against the real broadcaster and sidecar binaries (only the addresses
// are changed), and checks they print 200, then 401.
func TestREADMEWalkthrough(t *testing.T) {
	testutil.Curl(t)
	blocks := testutil.ShBlocks(testutil.DocSection(t, "README.md", "### Try it: the sidecar in front of curl"))
	if len(blocks) != 2 {
		t.Fatalf("want 2 sh blocks in the walkthrough, found %d", len(blocks))
	}

	root, _ := filepath.Abs("../..")
	demo := t.TempDir()
	fix := func(script string) string {
		return strings.ReplaceAll(script, "/tmp/revocast-demo", demo)
	}
	runScript := func(script string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "-euc", script)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s\n%s", err, script, out)
		}
		return string(out)
	}

	// first block: the key, and the sidecar (started here instead)
	var keygen []string
	var agentArgs []string
	for _, line := range strings.Split(strings.TrimSpace(blocks[0]), "\n") {
		if rest, ok := strings.CutPrefix(line, "go run ./cmd/agent "); ok {
			agentArgs = strings.Fields(fix(rest))
			continue
		}
		keygen = append(keygen, line)
	}
	runScript(fix(strings.Join(keygen, "\n")))
	b := testutil.Start(t, "broadcaster", "/readyz", "--addr", "127.0.0.1:0", "--data", t.TempDir())
	args := append([]string{"--addr", "127.0.0.1:0", "--broadcaster", b.URL}, agentArgs...)
	a := testutil.Start(t, "agent", "/readyz", args...)

	script := fix(blocks[1])
	script = strings.ReplaceAll(script, "localhost:8080", strings.TrimPrefix(b.URL, "http://"))
	script = strings.ReplaceAll(script, "localhost:9090", strings.TrimPrefix(a.URL, "http://"))
	out := runScript(script)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if n := len(lines); n >= 3 && lines[n-1] == "200" {
		// The revocation reaches the agent asynchronously and the script
		// may be faster: ask again until it is refused (or the test hangs).
		scriptLines := strings.Split(strings.TrimSpace(script), "\n")
		last := "TOKEN=$(" + strings.SplitN(scriptLines[0], "$(", 2)[1] + "\n" + scriptLines[len(scriptLines)-1]
		deadline := time.Now().Add(testutil.HangLimit)
		for lines[n-1] == "200" && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
			lines[n-1] = strings.TrimSpace(runScript(last))
		}
	}
	if len(lines) < 3 || lines[0] != "200" || lines[len(lines)-1] != "401" || !strings.Contains(out, `"jti":"demo-1"`) {
		t.Fatalf("walkthrough printed:\n%s", out)
	}
}
