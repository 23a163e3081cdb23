package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/revocast/revocast/internal/envflag"
	"github.com/revocast/revocast/internal/testutil"
)

// TestREADMECurlExamples runs the curl examples of the README's tour and of
// docs/api.md, as printed, against the real binary (only the address is
// changed) and checks each succeeds.
func TestREADMECurlExamples(t *testing.T) {
	testutil.Curl(t)
	p := testutil.Start(t, "broadcaster", "/readyz", "--data", t.TempDir(), "--addr", "127.0.0.1:0")
	host := strings.TrimPrefix(p.URL, "http://")
	for _, s := range []struct{ file, heading string }{
		{"README.md", "### Revoke a token"},
		{"README.md", "### Follow the stream"},
		{"docs/api.md", "## Revoking tokens with curl"},
		{"docs/api.md", "## Following the stream"},
		{"docs/api.md", "## Is this token dead everywhere?"},
	} {
		for _, block := range testutil.ShBlocks(testutil.DocSection(t, s.file, s.heading)) {
			script := strings.ReplaceAll(block, "localhost:8080", host)
			// a followed stream never ends by itself: follow it up to its
			// synced event, however long that takes, then stop it
			script = strings.ReplaceAll(script, "curl -N", "untilSynced curl -N")
			t.Run(strings.SplitN(strings.TrimSpace(block), "\n", 2)[0], func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
				defer cancel()
				// -f would hide bodies; check HTTP status via the body instead
				cmd := exec.CommandContext(ctx, "bash", "-c", "set -o pipefail\n"+untilSynced+script)
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%v\n%s\noutput:\n%s", err, script, out)
				}
				if strings.Contains(string(out), `"error"`) {
					t.Fatalf("the example answered an error:\n%s\noutput:\n%s", script, out)
				}
				if strings.Contains(script, "curl -N") && !strings.Contains(string(out), "event: synced") {
					t.Fatalf("the stream example printed no synced event:\n%s", out)
				}
			})
		}
	}
}

// untilSynced runs a command that follows a stream (curl -N) until its
// output has an "event: synced" line, then stops it and prints the output;
// it fails if the command ends first. The test's context ends a hang.
const untilSynced = `untilSynced() {
	local out pid
	out=$(mktemp)
	"$@" >"$out" 2>&1 &
	pid=$!
	while ! grep -q '^event: synced' "$out"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			grep -q '^event: synced' "$out" && break
			cat "$out"; rm -f "$out"
			return 1
		fi
		sleep 0.05
	done
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	cat "$out"; rm -f "$out"
}
`

// TestREADMEDocumentsEveryFlag keeps the configuration table of
// README.md true.
func TestREADMEDocumentsEveryFlag(t *testing.T) {
	table := testutil.DocSection(t, "README.md", "### Broadcaster flags")
	for _, name := range flagNames() {
		row := "| `--" + name + "` | `" + envflag.EnvName(name) + "` |"
		if !strings.Contains(table, row) {
			t.Errorf("the README's table of broadcaster flags lacks the row for --%s ($%s)", name, envflag.EnvName(name))
		}
	}
}
