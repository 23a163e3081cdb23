package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"testing"

	"github.com/revocast/revocast/internal/envflag"
	"github.com/revocast/revocast/internal/testutil"
)

// TestFlagsJSON: --flags-json lists every flag with its variable, default and
// type, and exits without starting anything (no goroutine left, so no
// listener and no follower), even without a key source and with an invalid
// variable.
func TestFlagsJSON(t *testing.T) {
	bad := map[string]string{"REVOCAST_LEEWAY": "soon", "REVOCAST_ADDR": "127.0.0.1:0"}
	before := runtime.NumGoroutine()
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"--flags-json"}, env(bad), &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after --flags-json, %d before", n, before)
	}
	var got []envflag.FlagInfo
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	_, fs, err := parseFlags(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, fs.Flags()) {
		t.Errorf("listed %+v\nregistered %+v", got, fs.Flags())
	}
	for _, f := range got {
		if f.Name == envflag.FlagsJSONName {
			t.Error("--flags-json lists itself")
		}
	}

	cmd := exec.Command(testutil.Binary(t, "agent"), "--flags-json")
	cmd.Env = append(os.Environ(), "REVOCAST_LEEWAY=soon")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("agent --flags-json: %v", err)
	}
	if !bytes.Equal(out, stdout.Bytes()) {
		t.Errorf("the binary printed\n%s\nnot\n%s", out, stdout.String())
	}
}
