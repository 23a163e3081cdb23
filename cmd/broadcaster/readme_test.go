package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/envflag"
	"github.com/revocast/revocast/internal/testutil"
)

// readme returns a document of the repository: README.md or docs/*.md.
func readme(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// section returns a document's text from the heading to the next heading of
// the same level.
func section(t *testing.T, doc, heading string) string {
	t.Helper()
	i := strings.Index(doc, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("no section %q", heading)
	}
	rest := doc[i+len(heading)+2:]
	level := heading[:strings.IndexByte(heading, ' ')+1]
	if j := strings.Index(rest, "\n"+level); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

var shBlock = regexp.MustCompile("(?s)```sh\n(.*?)```")

// TestREADMECurlExamples runs the curl examples of the README's tour and of
// docs/api.md, as printed, against the real binary (only the address is
// changed) and checks each succeeds.
func TestREADMECurlExamples(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("REVOCAST_REQUIRE_CURL") != "" {
			t.Fatal("curl is required (REVOCAST_REQUIRE_CURL is set) but not installed")
		}
		t.Skip("curl not installed; .ci/run installs it")
	}
	p := testutil.Start(t, "broadcaster", "/readyz", "--data", t.TempDir(), "--addr", "127.0.0.1:0")
	host := strings.TrimPrefix(p.URL, "http://")
	for _, s := range []struct{ file, heading string }{
		{"README.md", "### Revoke a token"},
		{"README.md", "### Follow the stream"},
		{"docs/api.md", "## Revoking tokens with curl"},
		{"docs/api.md", "## Following the stream"},
		{"docs/api.md", "## Is this token dead everywhere?"},
	} {
		for _, m := range shBlock.FindAllStringSubmatch(section(t, readme(t, s.file), s.heading), -1) {
			script := strings.ReplaceAll(m[1], "localhost:8080", host)
			// a followed stream never ends by itself: stop it after 2s
			script = strings.ReplaceAll(script, "curl -N", "timeout 2 curl -N")
			t.Run(strings.SplitN(strings.TrimSpace(m[1]), "\n", 2)[0], func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				// -f would hide bodies; check HTTP status via the body instead
				cmd := exec.CommandContext(ctx, "bash", "-c", "set -o pipefail\n"+script)
				out, err := cmd.CombinedOutput()
				if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && ee.ExitCode() == 124 && strings.Contains(script, "timeout 2 curl -N") {
					err = nil // the stream was still open: that is the point
				}
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

// TestREADMEDocumentsEveryFlag keeps the configuration table of
// docs/operations.md true.
func TestREADMEDocumentsEveryFlag(t *testing.T) {
	table := section(t, readme(t, "docs/operations.md"), "## Broadcaster configuration")
	for _, name := range flagNames() {
		row := "| `--" + name + "` | `" + envflag.EnvName(name) + "` |"
		if !strings.Contains(table, row) {
			t.Errorf("docs/operations.md's configuration table lacks the row for --%s ($%s)", name, envflag.EnvName(name))
		}
	}
}
