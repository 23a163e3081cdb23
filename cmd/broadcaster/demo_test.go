package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/revocast/revocast/internal/testutil"
)

const deploymentsDir = "../../deployments"

// TestDemoListMatchesDeployments: the demo credentials the binary knows are
// exactly the demo-* files shipped in deployments/, and the keys in them.
func TestDemoListMatchesDeployments(t *testing.T) {
	seen := map[string]bool{}
	keys := map[string]bool{}
	err := filepath.WalkDir(deploymentsDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasPrefix(d.Name(), "demo-") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		h := hex.EncodeToString(sum[:])
		seen[h] = true
		if name, ok := demoFiles[h]; !ok || name != d.Name() {
			t.Errorf("%s (sha256 %s) is not listed in demoFiles as %s", p, h, d.Name())
		}
		switch {
		case strings.HasSuffix(d.Name(), "api-keys.txt"):
			for _, line := range strings.Split(string(b), "\n") {
				if f := strings.Fields(line); len(f) == 3 && !strings.HasPrefix(line, "#") {
					keys[f[2]] = true
				}
			}
		case strings.HasSuffix(d.Name(), ".token"):
			// an API key: --api-keys files hold its SHA-256
			k := sha256.Sum256([]byte(strings.TrimSpace(string(b))))
			keys[hex.EncodeToString(k[:])] = true
		case strings.HasSuffix(d.Name(), "cluster-secret"):
			k := sha256.Sum256([]byte(strings.TrimSpace(string(b))))
			keys[hex.EncodeToString(k[:])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for h, name := range demoFiles {
		if !seen[h] {
			t.Errorf("demoFiles lists %s (%s), which no demo-* file in deployments/ has", h, name)
		}
	}
	for h := range keys {
		if _, ok := demoKeyHashes[h]; !ok {
			t.Errorf("a demo key of deployments/ (sha256 %s) is not in demoKeyHashes", h)
		}
	}
	for h, what := range demoKeyHashes {
		if !keys[h] {
			t.Errorf("demoKeyHashes lists %s (%s), which no demo file of deployments/ holds", h, what)
		}
	}
}

// TestBinaryRefusesDemoCredentialsBeyondLoopback runs the real binary with
// the shipped demo credentials: refused beyond loopback (exit 2, saying
// why), allowed on loopback and with --insecure (with a warning).
func TestBinaryRefusesDemoCredentialsBeyondLoopback(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join(deploymentsDir, "compose"))
	if err != nil {
		t.Fatal(err)
	}
	apiKeys := filepath.Join(dir, "demo-api-keys.txt")
	secret := filepath.Join(dir, "demo-cluster-secret")
	// a copy with a key of one's own added still holds the demo key
	appended := filepath.Join(t.TempDir(), "api-keys.txt")
	b, err := os.ReadFile(apiKeys)
	if err != nil {
		t.Fatal(err)
	}
	own := "ops revoker " + strings.Repeat("ab", 32) + "\n"
	if err := os.WriteFile(appended, append(b, own...), 0o600); err != nil {
		t.Fatal(err)
	}
	cluster := func(addr string) []string {
		return []string{"--cluster-name", "demo", "--cluster-addr", addr, "--cluster-secret-file", secret}
	}
	cases := []struct {
		name      string
		args      []string
		wantStart bool
		want      string // in the refusal, or in the log when it starts
	}{
		{name: "demo api keys beyond loopback", args: []string{"--addr", "0.0.0.0:0", "--api-keys", apiKeys}, want: "demo-api-keys.txt"},
		{name: "demo key among others beyond loopback", args: []string{"--addr", "0.0.0.0:0", "--api-keys", appended}, want: `API key "demo-agents"`},
		{name: "demo cluster secret beyond loopback", args: append([]string{"--addr", "127.0.0.1:0"}, cluster("0.0.0.0:0")...), want: "demo-cluster-secret"},
		{name: "demo api keys on loopback", args: []string{"--addr", "127.0.0.1:0", "--api-keys", apiKeys}, wantStart: true},
		{name: "demo api keys with --insecure", args: []string{"--addr", "0.0.0.0:0", "--api-keys", apiKeys, "--insecure"}, wantStart: true,
			want: "INSECURE: demo credentials"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--data", t.TempDir()}, tc.args...)
			if tc.wantStart {
				p := testutil.Start(t, "broadcaster", "", args...)
				if tc.want != "" {
					// the warning follows the "listening" line Start waits for
					testutil.Eventually(t, testutil.HangLimit, "the log line "+tc.want, func() bool { return strings.Contains(p.Logs(), tc.want) })
				}
				return
			}
			bin := testutil.Binary(t, "broadcaster")
			ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, append(args, "--log-format", "json")...).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit: %v, want exit code 2\n%s", err, out)
			}
			for _, want := range []string{"demo credentials", tc.want, "--insecure"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("the message lacks %q:\n%s", want, out)
				}
			}
		})
	}
}
