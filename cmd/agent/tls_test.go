package main

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/auth"
	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/sse"
)

// TestAgentFollowsHTTPSWithTestCA: a broadcaster serving HTTPS (with a
// certificate of a test CA) and requiring API keys; the sidecar trusts the
// CA with --ca-file and sends its reader key from --token-file; a token
// revoked over HTTPS by a revoker is then refused by the sidecar. The
// stream is also followed over HTTP/2.
func TestAgentFollowsHTTPSWithTestCA(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real binaries; skipped under -short")
	}
	caFile, certFile, keyFile := testutil.TLSFiles(t)
	reader, _ := auth.GenerateKey()
	revoker, _ := auth.GenerateKey()
	keys := writeFile(t, "api-keys.txt", []byte(auth.KeyLine("agents", auth.RoleReader, reader)+"\n"+auth.KeyLine("ops", auth.RoleRevoker, revoker)+"\n"))
	b := testutil.Start(t, "broadcaster", "/readyz", "--addr", "127.0.0.1:0", "--data", t.TempDir(),
		"--tls-cert", certFile, "--tls-key", keyFile, "--api-keys", keys)
	if !strings.HasPrefix(b.URL, "https://") {
		t.Fatalf("broadcaster URL %s is not https", b.URL)
	}

	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}

	// SSE over HTTP/2
	req, _ := http.NewRequest("GET", b.URL+"/v1/events?last_event_id=now", nil)
	req.Header.Set("Authorization", "Bearer "+reader)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
		t.Fatalf("stream over %s: %d", resp.Proto, resp.StatusCode)
	}
	ev, err := sse.NewDecoder(resp.Body).Next()
	resp.Body.Close()
	if err != nil || ev.Type != events.TypeSynced {
		t.Fatalf("first event over HTTP/2: %+v %v", ev, err)
	}

	tokenFile := writeFile(t, "agent.token", []byte(reader+"\n"))
	a := testutil.Start(t, "agent", "/readyz", "--addr", "127.0.0.1:0", "--broadcaster", b.URL,
		"--ca-file", caFile, "--token-file", tokenFile, "--public-key", publicKeyFile(t),
		"--issuer", issuer, "--audience", audience)
	tok := token(t, "alice", "tls-1", nil)
	if st := authStatus(t, a.URL, tok); st != 200 {
		t.Fatalf("/auth before revocation: %d", st)
	}

	post, _ := http.NewRequest("POST", b.URL+"/v1/revocations", strings.NewReader(`{"jti":"tls-1"}`))
	post.Header.Set("Authorization", "Bearer "+revoker)
	post.Header.Set("Content-Type", "application/json")
	presp, err := client.Do(post)
	if err != nil {
		t.Fatal(err)
	}
	presp.Body.Close()
	if presp.StatusCode != 201 {
		t.Fatalf("revoke over HTTPS: %d", presp.StatusCode)
	}
	deadline := time.Now().Add(testutil.HangLimit)
	for authStatus(t, a.URL, tok) != 401 {
		if time.Now().After(deadline) {
			t.Fatalf("the sidecar still admits the token %v after its revocation over HTTPS", testutil.HangLimit)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
}

func authStatus(t *testing.T, base, tok string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/auth", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
