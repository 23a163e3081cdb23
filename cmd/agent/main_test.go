package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/revocast/revocast/internal/envflag"
	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/agent"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.Cleanup()
	os.Exit(code)
}

const (
	issuer   = "https://idp.example"
	audience = "orders-api"
)

var (
	keyOnce sync.Once
	ecKey   *ecdsa.PrivateKey
)

// key is the issuer's signing key (ES256: quick to generate and sign).
func key(t *testing.T) *ecdsa.PrivateKey {
	keyOnce.Do(func() {
		var err error
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	})
	return ecKey
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func publicKeyFile(t *testing.T) string {
	der, err := x509.MarshalPKIXPublicKey(&key(t).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "issuer.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func token(t *testing.T, sub, jti string, mod func(jwt.MapClaims)) string {
	t.Helper()
	now := time.Now()
	c := jwt.MapClaims{"sub": sub, "iss": issuer, "aud": audience, "jti": jti, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "tenant": "acme"}
	if mod != nil {
		mod(c)
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodES256, c).SignedString(key(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestFlagsFromEnv(t *testing.T) {
	pub := publicKeyFile(t)
	secret := writeFile(t, "secret", []byte(strings.Repeat("s", 40)+"\n"))
	e := env(map[string]string{
		"REVOCAST_BROADCASTER":      "http://b1:8080, http://b2:8080",
		"REVOCAST_ADDR":             "127.0.0.1:0",
		"REVOCAST_PUBLIC_KEY":       pub,
		"REVOCAST_HMAC_SECRET_FILE": secret,
		"REVOCAST_ISSUER":           issuer,
		"REVOCAST_AUDIENCE":         "a1,a2",
		"REVOCAST_LEEWAY":           "5s",
		"REVOCAST_MAX_STALENESS":    "20s",
		"REVOCAST_STALE_POLICY":     "open",
		"REVOCAST_REQUIRE_IAT":      "true",
		"REVOCAST_LOG_LEVEL":        "debug",
	})
	c, _, err := parseFlags(nil, e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.broadcasters, " ") != "http://b1:8080 http://b2:8080" || c.addr != "127.0.0.1:0" ||
		c.publicKeys[0] != pub || c.hmacFile != secret || c.issuers[0] != issuer || len(c.audiences) != 2 ||
		c.leeway != 5*time.Second || c.maxStaleness != 20*time.Second || c.stalePolicy != "open" || !c.requireIAT || c.logLevel != "debug" {
		t.Fatalf("config from env: %+v", c)
	}
	opts, err := c.agentOptions(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agent.New(c.broadcasters, opts...); err != nil {
		t.Fatal(err)
	}
	// A flag replaces its variable.
	c, _, err = parseFlags([]string{"--broadcaster", "http://b3:8080", "--stale-policy", "closed"}, e, io.Discard)
	if err != nil || strings.Join(c.broadcasters, " ") != "http://b3:8080" || c.stalePolicy != "closed" {
		t.Fatalf("flags over env: %+v, %v", c, err)
	}
	// Defaults.
	c, _, err = parseFlags(nil, env(nil), io.Discard)
	if err != nil || c.addr != DefaultAddr || c.broadcasters[0] != DefaultBroadcaster || c.maxStaleness != agent.DefaultMaxStaleness ||
		c.leeway != agent.DefaultLeeway || c.stalePolicy != "closed" {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	if _, _, err := parseFlags(nil, env(map[string]string{"REVOCAST_LEEWAY": "soon"}), io.Discard); err == nil {
		t.Fatal("a bad duration in the environment was accepted")
	}
}

// TestRefusals: run refuses to start on configurations that cannot verify
// tokens or would be unsafe, with a clear message.
func TestRefusals(t *testing.T) {
	pub := publicKeyFile(t)
	short := writeFile(t, "short", []byte("tooshort\n"))
	secret := writeFile(t, "secret", []byte(strings.Repeat("s", 40)))
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no key", nil, "no key source: give --public-key"},
		{"none", []string{"--public-key", pub, "--algs", "none"}, `"none" is never accepted`},
		{"HS256 without a secret", []string{"--public-key", pub, "--algs", "ES256,HS256"}, "HS256 needs an HMAC secret"},
		{"algorithm without its key", []string{"--public-key", pub, "--algs", "RS256"}, "RS256: no key of its kind"},
		{"short secret", []string{"--hmac-secret-file", short}, "at least 32 are required"},
		{"missing key file", []string{"--public-key", "/nonexistent.pem"}, "public-key"},
		{"bad stale policy", []string{"--public-key", pub, "--stale-policy", "maybe"}, "stale-policy"},
		{"bad log level", []string{"--public-key", pub, "--log-level", "loud"}, "log-level"},
		{"bad broadcaster", []string{"--public-key", pub, "--broadcaster", "b:8080"}, "broadcaster URL"},
		{"tiny staleness", []string{"--hmac-secret-file", secret, "--max-staleness", "1ms"}, "max-staleness"},
		{"negative leeway", []string{"--hmac-secret-file", secret, "--leeway", "-1s"}, "--leeway"},
		{"negative lifetime", []string{"--hmac-secret-file", secret, "--max-token-lifetime", "-1s"}, "--max-token-lifetime"},
		{"no denylist", []string{"--hmac-secret-file", secret, "--denylist-capacity", "0"}, "--denylist-capacity"},
		{"negative cache", []string{"--hmac-secret-file", secret, "--verified-cache-size", "-1"}, "--verified-cache-size"},
		{"bad name", []string{"--hmac-secret-file", secret, "--name", "a;b"}, "--name"},
		{"stray argument", []string{"--public-key", pub, "extra"}, "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // nothing may start
			err := run(ctx, tc.args, env(nil), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestFlagsUseAgentValidation: a flag's value is refused by pkg/agent's
// own option validation, not by rules repeated here.
func TestFlagsUseAgentValidation(t *testing.T) {
	secret := writeFile(t, "secret", []byte(strings.Repeat("s", 40)))
	for _, args := range [][]string{
		{"--leeway", "-1s"},
		{"--max-staleness", "1ms"},
		{"--verified-cache-size", "-1"},
		{"--denylist-capacity", "0"},
	} {
		t.Run(args[0], func(t *testing.T) {
			c, _, err := parseFlags(append([]string{"--hmac-secret-file", secret}, args...), env(nil), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.agentOptions(slog.New(slog.DiscardHandler))
			if !errors.Is(err, agent.ErrInvalidOption) {
				t.Fatalf("agentOptions = %v, want agent.ErrInvalidOption", err)
			}
		})
	}
	// 0 disables the verified-token cache, as in pkg/agent.
	c, _, err := parseFlags([]string{"--hmac-secret-file", secret, "--verified-cache-size", "0"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.agentOptions(slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("--verified-cache-size 0: %v", err)
	}
}

// TestRunFromEnv runs the sidecar in-process configured only by the
// environment: it listens, is alive, not ready (no broadcaster), answers
// /auth with 503 for a token its env-configured key verifies and 401 for
// one from another issuer, and stops cleanly with its context.
func TestRunFromEnv(t *testing.T) {
	logs := &testutil.SyncBuffer{}
	e := env(map[string]string{
		"REVOCAST_ADDR":        "127.0.0.1:0",
		"REVOCAST_BROADCASTER": "http://127.0.0.1:1", // nothing there
		"REVOCAST_PUBLIC_KEY":  publicKeyFile(t),
		"REVOCAST_ISSUER":      issuer,
		"REVOCAST_LOG_FORMAT":  "json",
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, e, io.Discard, logs) }()
	var addr string
	deadline := time.Now().Add(testutil.HangLimit)
	for addr == "" {
		sc := bufio.NewScanner(strings.NewReader(logs.String()))
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "agent listening" {
				addr = line.Addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 'agent listening' in the log after %v:\n%s", testutil.HangLimit, logs.String())
		}
		time.Sleep(5 * time.Millisecond) // polling a condition inside a deadline
	}
	base := "http://" + addr
	if code, _ := get(t, base+"/healthz", ""); code != 200 {
		t.Fatalf("/healthz %d", code)
	}
	if code, _ := get(t, base+"/readyz", ""); code != 503 {
		t.Fatalf("/readyz %d before any sync", code)
	}
	if code, _ := get(t, base+"/auth", token(t, "alice", "env-1", nil)); code != 503 {
		t.Fatalf("/auth with a valid token before sync: %d, want 503", code)
	}
	other := token(t, "alice", "env-2", func(c jwt.MapClaims) { c["iss"] = "https://elsewhere" })
	if code, _ := get(t, base+"/auth", other); code != 401 {
		t.Fatalf("/auth with another issuer: %d, want 401", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(testutil.HangLimit):
		t.Fatalf("run did not return within %v of cancel", testutil.HangLimit)
	}
	if !strings.Contains(logs.String(), "agent stopped") {
		t.Fatalf("no clean stop in the log:\n%s", logs.String())
	}
}

var client = &http.Client{Timeout: testutil.HangLimit}

// get sends GET with an optional bearer token and returns status and
// response.
func get(t *testing.T, u, tok string) (int, *http.Response) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp
}

func introspect(t *testing.T, base, tok string) (int, map[string]any) {
	t.Helper()
	resp, err := client.PostForm(base+"/v1/introspect", url.Values{"token": {tok}, "token_type_hint": {"access_token"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("introspect body: %v", err)
	}
	return resp.StatusCode, out
}

// TestSidecarEndToEnd runs the real broadcaster and the real agent binary.
func TestSidecarEndToEnd(t *testing.T) {
	bAddr, dir := testutil.FreeAddr(t), t.TempDir()
	bArgs := []string{"--addr", bAddr, "--data", dir, "--heartbeat", "100ms", "--sse-retry", "50ms"}
	b := testutil.Start(t, "broadcaster", "/readyz", bArgs...)
	ag := testutil.Start(t, "agent", "/readyz", "--broadcaster", b.URL, "--addr", "127.0.0.1:0",
		"--public-key", publicKeyFile(t), "--issuer", issuer, "--audience", audience, "--max-staleness", "1s", "--realm", "orders")

	tok := token(t, "alice", "sc-1", nil)
	other := token(t, "bob", "sc-2", nil)

	code, resp := get(t, ag.URL+"/auth", tok)
	if code != 200 || resp.Header.Get("X-Auth-Subject") != "alice" || resp.Header.Get("X-Auth-Issuer") != issuer {
		t.Fatalf("/auth valid: %d %v", code, resp.Header)
	}
	// Envoy appends the original path; nginx keeps the original method.
	req, _ := http.NewRequest("POST", ag.URL+"/auth/api/orders?x=1", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if r, err := client.Do(req); err != nil || r.StatusCode != 200 {
		t.Fatalf("POST /auth/api/orders: %v %v", r, err)
	} else {
		r.Body.Close()
	}
	code, resp = get(t, ag.URL+"/auth", "")
	if code != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer realm="orders"` {
		t.Fatalf("/auth without token: %d %q", code, resp.Header.Get("WWW-Authenticate"))
	}
	bad := token(t, "alice", "sc-3", func(c jwt.MapClaims) { c["aud"] = "another-api" })
	code, resp = get(t, ag.URL+"/auth", bad)
	if code != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Bearer realm="orders", error="invalid_token", error_description=`) {
		t.Fatalf("/auth wrong audience: %d %q", code, resp.Header.Get("WWW-Authenticate"))
	}

	status, body := introspect(t, ag.URL, tok)
	if status != 200 || body["active"] != true || body["sub"] != "alice" || body["jti"] != "sc-1" || body["tenant"] != "acme" || body["token_type"] != "Bearer" {
		t.Fatalf("introspect valid: %d %v", status, body)
	}
	if status, body := introspect(t, ag.URL, "garbage"); status != 200 || body["active"] != false || len(body) != 1 {
		t.Fatalf("introspect garbage: %d %v", status, body)
	}
	if resp, err := client.PostForm(ag.URL+"/v1/introspect", url.Values{}); err != nil || resp.StatusCode != 400 {
		t.Fatalf("introspect without token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// Revoke alice's token at the broadcaster: the sidecar denies it.
	r, err := http.Post(b.URL+"/v1/revocations", "application/json", strings.NewReader(`{"jti":"sc-1"}`))
	if err != nil || r.StatusCode != http.StatusCreated {
		t.Fatalf("revoke: %v %v", r, err)
	}
	r.Body.Close()
	acked := time.Now()
	testutil.Eventually(t, testutil.HangLimit, "/auth to deny the revoked token", func() bool { c, _ := get(t, ag.URL+"/auth", tok); return c == 401 })
	t.Logf("sidecar: POST acknowledged → /auth 401 within %v", time.Since(acked))
	code, resp = get(t, ag.URL+"/auth", tok)
	if code != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error_description="the token has been revoked"`) {
		t.Fatalf("/auth revoked: %d %q", code, resp.Header.Get("WWW-Authenticate"))
	}
	if status, body := introspect(t, ag.URL, tok); status != 200 || body["active"] != false {
		t.Fatalf("introspect revoked: %d %v", status, body)
	}
	if code, _ := get(t, ag.URL+"/auth", other); code != 200 {
		t.Fatalf("/auth other token: %d", code)
	}

	metrics := fetch(t, ag.URL+"/metrics")
	for _, want := range []string{`revocast_agent_checks_total{result="revoked"}`, `revocast_agent_denylist_revocations{tier="exact"} 1`, "revocast_agent_ready 1", "go_goroutines"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// Broadcaster down longer than max-staleness: 503 everywhere.
	b.Kill()
	testutil.Eventually(t, testutil.HangLimit, "/auth to answer 503", func() bool { c, _ := get(t, ag.URL+"/auth", other); return c == 503 })
	if status, body := introspect(t, ag.URL, other); status != 503 || body["error"] != "temporarily_unavailable" {
		t.Fatalf("introspect while stale: %d %v", status, body)
	}
	if code, _ := get(t, ag.URL+"/readyz", ""); code != 503 {
		t.Fatalf("/readyz while stale: %d", code)
	}
	if code, _ := get(t, ag.URL+"/healthz", ""); code != 200 {
		t.Fatalf("/healthz while stale: %d", code)
	}
	// Back: fresh again, the revocation still denied.
	testutil.Start(t, "broadcaster", "/readyz", bArgs...)
	ag.WaitReady(testutil.HangLimit, "/readyz")
	if code, _ := get(t, ag.URL+"/auth", other); code != 200 {
		t.Fatalf("/auth after recovery: %d", code)
	}
	if code, _ := get(t, ag.URL+"/auth", tok); code != 401 {
		t.Fatalf("/auth revoked after recovery: %d", code)
	}
	if err := ag.Stop(testutil.HangLimit); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, ag.Logs())
	}
	if !strings.Contains(ag.Logs(), `"msg":"agent stopped"`) {
		t.Fatalf("no clean stop in the log:\n%s", ag.Logs())
	}
}

func fetch(t *testing.T, u string) string {
	t.Helper()
	resp, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestREADMEDocumentsEveryFlag keeps the sidecar's configuration table in
// README.md true.
func TestREADMEDocumentsEveryFlag(t *testing.T) {
	_, fs, err := parseFlags(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// only the sidecar's own table counts (the broadcaster has an --addr too)
	text := testutil.DocSection(t, "README.md", "### Sidecar flags")
	for _, name := range fs.Names() {
		row := "| `--" + name + "` | `" + envflag.EnvName(name) + "` |"
		if !strings.Contains(text, row) {
			t.Errorf("README.md's sidecar flags lack the table row starting %q", row)
		}
	}
}
