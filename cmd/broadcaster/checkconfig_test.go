package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/revocast/revocast/internal/broadcaster"
)

// TestCheckConfig: --check-config validates flags, variables and the files
// they name, and returns without binding, creating the data directory or
// writing to stdout.
func TestCheckConfig(t *testing.T) {
	// a port in use: a check that tried to listen would fail
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	if err := os.WriteFile(keys, []byte("ops revoker "+strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	check := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		args = append([]string{"--check-config", "--data", data}, args...)
		err := dispatch(context.Background(), args, cliEnv{getenv: func(string) string { return "" }, stdout: &stdout, stderr: &stderr})
		return stdout.String(), err
	}
	if out, err := check("--addr", ln.Addr().String(), "--api-keys", keys); err != nil || out != "" {
		t.Fatalf("valid configuration: %v, stdout %q", err, out)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("--check-config touched the data directory: %v", err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want error
	}{
		{"missing key file", []string{"--api-keys", filepath.Join(dir, "absent")}, nil},
		{"replicas without a cluster", []string{"--replicas", "3"}, broadcaster.ErrConfig},
		{"beyond loopback without credentials", []string{"--addr", "0.0.0.0:8080"}, broadcaster.ErrInsecure},
		{"bad value", []string{"--heartbeat", "soon"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := check(tc.args...)
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != exitUsage {
				t.Fatalf("got %v, want a usage error", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}
