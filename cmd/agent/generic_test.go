package main

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/revocast/revocast/internal/testutil"
)

// TestGenericAuthErrors runs the real binaries: with --generic-auth-errors
// the sidecar answers a revoked token exactly like an invalid one, without
// the verification library's words; without it, it says why.
func TestGenericAuthErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real binaries; skipped under -short")
	}
	b := testutil.Start(t, "broadcaster", "/readyz", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--heartbeat", "200ms")
	for _, tc := range []struct {
		name    string
		flags   []string
		generic bool
	}{
		{"detailed by default", nil, false},
		{"generic", []string{"--generic-auth-errors"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--broadcaster", b.URL, "--addr", "127.0.0.1:0", "--public-key", publicKeyFile(t),
				"--issuer", issuer, "--audience", audience}, tc.flags...)
			ag := testutil.Start(t, "agent", "/readyz", args...)
			jti := "generic-" + strings.ReplaceAll(tc.name, " ", "-")
			revoked := token(t, "alice", jti, nil)
			resp, err := http.Post(b.URL+"/v1/revocations", "application/json", bytes.NewBufferString(`{"jti":"`+jti+`"}`))
			if err != nil || resp.StatusCode != http.StatusCreated {
				t.Fatalf("revoke: %v %v", resp, err)
			}
			resp.Body.Close()
			testutil.Eventually(t, testutil.HangLimit, "the revocation to reach the agent", func() bool {
				code, _ := get(t, ag.URL+"/auth", revoked)
				return code == http.StatusUnauthorized
			})
			answers := map[string]string{}
			for what, tok := range map[string]string{
				"revoked":        revoked,
				"wrong audience": token(t, "alice", "aud", func(c jwt.MapClaims) { c["aud"] = "another-api" }),
				"expired": token(t, "alice", "exp", func(c jwt.MapClaims) {
					c["iat"], c["exp"] = time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-time.Hour).Unix()
				}),
				"garbage": "garbage",
			} {
				code, resp := get(t, ag.URL+"/auth", tok)
				body, _ := io.ReadAll(resp.Body)
				if code != http.StatusUnauthorized {
					t.Fatalf("%s: %d", what, code)
				}
				answers[resp.Header.Get("WWW-Authenticate")+"\n"+string(body)] = what
			}
			if tc.generic && len(answers) != 1 {
				t.Fatalf("the answers differ: %q", answers)
			}
			if !tc.generic && len(answers) != 4 {
				t.Fatalf("the answers should say why: %q", answers)
			}
			for a := range answers {
				if tc.generic && (strings.Contains(a, "revoked") || strings.Contains(a, "token is")) {
					t.Fatalf("generic answer says too much: %q", a)
				}
			}
		})
	}
}
