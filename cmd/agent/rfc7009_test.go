package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/auth"
	"github.com/revocast/revocast/internal/testutil"
)

// TestRevokeByTokenThenAgentDenies: a broadcaster that verifies posted
// tokens (--token-public-key) lets an app log a user out by posting the
// user's own token to POST /v1/revoke, without a credential of its own;
// the sidecar then refuses that token. Garbage is answered 200 and changes
// nothing.
func TestRevokeByTokenThenAgentDenies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real binaries; skipped under -short")
	}
	pub := publicKeyFile(t)
	reader, _ := auth.GenerateKey()
	keys := writeFile(t, "api-keys.txt", []byte(auth.KeyLine("agents", auth.RoleReader, reader)+"\n"))
	b := testutil.Start(t, "broadcaster", "/readyz", "--addr", "127.0.0.1:0", "--data", t.TempDir(),
		"--api-keys", keys, "--token-public-key", pub, "--token-issuer", issuer)
	a := testutil.Start(t, "agent", "/readyz", "--addr", "127.0.0.1:0", "--broadcaster", b.URL,
		"--token-file", writeFile(t, "agent.token", []byte(reader)), "--public-key", pub,
		"--issuer", issuer, "--audience", audience)

	tok := token(t, "alice", "logout-7009", nil)
	other := token(t, "bob", "still-valid", nil)
	if authStatus(t, a.URL, tok) != 200 || authStatus(t, a.URL, other) != 200 {
		t.Fatal("tokens refused before any revocation")
	}
	head := func() string {
		resp, err := http.Get(b.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r struct{ Head string }
		_ = json.NewDecoder(resp.Body).Decode(&r)
		return r.Head
	}
	before := head()
	for _, garbage := range []string{"garbage", "a.b.c", strings.Replace(tok, ".", ".x", 1), tok + "x"} {
		if st := postRevoke(t, b.URL, garbage); st != 200 {
			t.Fatalf("garbage %q: %d, want 200", garbage, st)
		}
	}
	if head() != before {
		t.Fatal("garbage tokens changed the log")
	}

	if st := postRevoke(t, b.URL, tok); st != 200 {
		t.Fatalf("POST /v1/revoke with a valid token: %d", st)
	}
	deadline := time.Now().Add(testutil.HangLimit)
	for authStatus(t, a.URL, tok) != 401 {
		if time.Now().After(deadline) {
			t.Fatalf("the sidecar still admits the token %v after it was revoked by RFC 7009", testutil.HangLimit)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
	if authStatus(t, a.URL, other) != 200 {
		t.Fatal("revoking one token revoked another")
	}
}

func postRevoke(t *testing.T, base, tok string) int {
	t.Helper()
	resp, err := http.PostForm(base+"/v1/revoke", url.Values{"token": {tok}, "token_type_hint": {"access_token"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
