package main

import (
	"bytes"
	"context"
	"net"
	"testing"
)

// TestCheckConfig: --check-config validates flags, variables and the files
// they name and returns without listening or following the broadcaster.
func TestCheckConfig(t *testing.T) {
	// a port in use: a check that tried to listen would fail
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pub := publicKeyFile(t)
	var stdout, stderr bytes.Buffer
	args := []string{"--check-config", "--addr", ln.Addr().String(), "--broadcaster", "http://192.0.2.1:8080"}
	if err := run(context.Background(), args, env(map[string]string{"REVOCAST_PUBLIC_KEY": pub}), &stdout, &stderr); err != nil {
		t.Fatalf("valid configuration: %v\n%s", err, stderr.String())
	}
	if stdout.Len() > 0 {
		t.Errorf("stdout %q", stdout.String())
	}
	for name, args := range map[string][]string{
		"no key source":     {"--check-config"},
		"missing key file":  {"--check-config", "--public-key", "/nonexistent.pem"},
		"bad stale policy":  {"--check-config", "--public-key", pub, "--stale-policy", "ajar"},
		"bad variable type": {"--check-config", "--public-key", pub, "--leeway", "a bit"},
	} {
		if err := run(context.Background(), args, env(nil), &stdout, &stderr); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
