package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/revocast/revocast/internal/testutil"
)

var cliDocBlock = regexp.MustCompile("(?s)```sh\n(.*?)```")

// cliDocHeading starts the CLI's manual in docs/cli.md.
const cliDocHeading = "## Command-line client"

// cliDoc returns the CLI's manual: the section of docs/cli.md.
func cliDoc(t *testing.T) string {
	t.Helper()
	return testutil.DocSection(t, "docs/cli.md", cliDocHeading)
}

// TestCLIDocExamples runs every sh block of the CLI's manual, as printed,
// with bash and the real binary, in order and in one directory, against a
// broadcaster whose address is the only thing set (REVOCAST_SERVER).
func TestCLIDocExamples(t *testing.T) {
	for _, tool := range []string{"bash", "timeout"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	blocks := cliDocBlock.FindAllStringSubmatch(cliDoc(t), -1)
	if len(blocks) < 8 {
		t.Fatalf("the CLI manual has %d sh blocks", len(blocks))
	}
	bin := testutil.Binary(t, "revocast")
	base := startBroadcaster(t, nil)
	env := []string{"PATH=" + filepath.Dir(bin) + string(os.PathListSeparator) + os.Getenv("PATH"), "REVOCAST_SERVER=" + base}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REVOCAST_") && !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	dir := t.TempDir()
	for _, m := range blocks {
		script := m[1]
		if strings.HasPrefix(script, "go build ") {
			continue // the setup line: the test has put the binary on PATH
		}
		ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
		cmd := exec.CommandContext(ctx, "bash", "-c", "set -eo pipefail\n"+script)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("%v\n%s\noutput:\n%s", err, script, out)
		}
	}
}

// TestCLIDocumentsEveryFlag keeps the manual complete: every flag of every
// client command (as --help lists them) is mentioned.
func TestCLIDocumentsEveryFlag(t *testing.T) {
	doc := cliDoc(t)
	flagLine := regexp.MustCompile(`(?m)^  -([a-z-]+)`)
	for name := range subcommands {
		if name == "help" {
			continue
		}
		r := newCLI(t, "").run(name, "--help")
		flags := flagLine.FindAllStringSubmatch(r.stderr, -1)
		if len(flags) == 0 {
			t.Fatalf("%s --help lists no flags:\n%s", name, r.stderr)
		}
		for _, f := range flags {
			if !regexp.MustCompile(`(^|[^a-z-])--` + f[1] + `([^a-z-]|$)`).MatchString(doc) {
				t.Errorf("the CLI manual does not mention %s --%s", name, f[1])
			}
		}
		if !strings.Contains(doc, "### "+name) {
			t.Errorf("the CLI manual has no section for %s", name)
		}
	}
}
