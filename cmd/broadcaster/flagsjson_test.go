package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/revocast/revocast/internal/envflag"
	"github.com/revocast/revocast/internal/testutil"
)

// TestFlagsJSON: --flags-json lists every flag with its variable, default and
// type, and exits without starting anything: no data directory, no listener
// (no goroutine left), and an invalid variable does not stop it.
func TestFlagsJSON(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	env := map[string]string{
		"REVOCAST_DATA":      data,
		"REVOCAST_ADDR":      "127.0.0.1:0",
		"REVOCAST_MAX_BATCH": "many",
		"REVOCAST_API_KEYS":  filepath.Join(t.TempDir(), "absent"),
	}
	before := runtime.NumGoroutine()
	var stdout, stderr bytes.Buffer
	err := dispatch(context.Background(), []string{"--flags-json"},
		cliEnv{getenv: func(k string) string { return env[k] }, stdout: &stdout, stderr: &stderr})
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after --flags-json, %d before", n, before)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("--flags-json touched the data directory: %v", err)
	}
	var got []envflag.FlagInfo
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	var names []string
	for _, f := range got {
		names = append(names, f.Name)
		if f.Env != envflag.EnvName(f.Name) || f.Usage == "" || f.Type == "" {
			t.Errorf("incomplete entry %+v", f)
		}
		if f.Name == "max-batch" && f.Default != "10000" {
			t.Errorf("max-batch default %q: the environment leaked into the listing", f.Default)
		}
	}
	if !slices.Equal(names, flagNames()) {
		t.Errorf("listed %v, registered %v", names, flagNames())
	}

	// the binary exits 0 with the same listing
	cmd := exec.Command(testutil.Binary(t, "broadcaster"), "--flags-json")
	cmd.Env = append(os.Environ(), "REVOCAST_MAX_BATCH=many", "REVOCAST_DATA="+data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("broadcaster --flags-json: %v", err)
	}
	if !bytes.Equal(out, stdout.Bytes()) {
		t.Errorf("the binary printed\n%s\nnot\n%s", out, stdout.String())
	}
}
