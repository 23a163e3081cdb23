package faults

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/revocast/revocast/internal/testutil"
)

// TestREADMEThreeNodes starts the cluster exactly as the README's three
// terminals do (the binary instead of go run; only ports and data
// directories changed) and runs its curl commands against it.
func TestREADMEThreeNodes(t *testing.T) {
	skipShort(t)
	blocks := testutil.ShBlocks(testutil.DocSection(t, "README.md", "### Three nodes on one machine"))
	if len(blocks) != 4 {
		t.Fatalf("want 3 node blocks and 1 curl block, found %d sh blocks", len(blocks))
	}

	// every address and data directory of the README, mapped to free ones
	replace := map[string]string{}
	for _, old := range []string{"127.0.0.1:8081", "127.0.0.1:8082", "127.0.0.1:8083", "127.0.0.1:6221", "127.0.0.1:6222", "127.0.0.1:6223"} {
		replace[old] = testutil.FreeAddr(t)
	}
	for _, old := range []string{"./data-n1", "./data-n2", "./data-n3"} {
		replace[old] = t.TempDir()
	}
	fix := func(s string) string {
		for old, repl := range replace {
			s = strings.ReplaceAll(s, old, repl)
			s = strings.ReplaceAll(s, strings.Replace(old, "127.0.0.1", "localhost", 1), repl)
		}
		return s
	}
	var procs []*testutil.Process
	for _, b := range blocks[:3] {
		cmd := strings.ReplaceAll(b, "\\\n", " ")
		args, ok := strings.CutPrefix(strings.TrimSpace(cmd), "go run ./cmd/broadcaster ")
		if !ok {
			t.Fatalf("a node block does not start with go run ./cmd/broadcaster: %q", cmd)
		}
		procs = append(procs, testutil.Start(t, "broadcaster", "", strings.Fields(fix(args))...))
	}
	for _, p := range procs {
		p.WaitReady(hangLimit, "/readyz")
	}

	testutil.Curl(t)
	ctx, cancel := context.WithTimeout(context.Background(), hangLimit)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", "-euc", fix(blocks[3])).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	s := string(out)
	if strings.Count(s, `"jti":"clustered"`) != 2 || !strings.Contains(s, `"stream_leader":"n`) {
		t.Fatalf("the README's cluster commands printed:\n%s", s)
	}
}
