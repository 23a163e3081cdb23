package agent

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/revocast/revocast/internal/broadcaster"
	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/internal/testutil/inprocess"
	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/sse"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.Cleanup()
	os.Exit(code)
}

const (
	testIssuer   = "https://idp.example"
	testAudience = "orders-api"
)

// Keys are generated once per test process: RSA key generation is slow
// under the race detector.
type testKeys struct {
	rsa, rsa2 *rsa.PrivateKey
	ec        *ecdsa.PrivateKey
	ed        ed25519.PrivateKey
	hmac      []byte
}

var (
	keysOnce sync.Once
	keys     testKeys
)

func getKeys(t testing.TB) *testKeys {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		must := func(e error) {
			if e != nil && err == nil {
				err = e
			}
		}
		keys.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
		k2, e := rsa.GenerateKey(rand.Reader, 2048)
		must(e)
		keys.rsa2 = k2
		keys.ec, e = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(e)
		_, keys.ed, e = ed25519.GenerateKey(rand.Reader)
		must(e)
		keys.hmac = []byte("0123456789abcdef0123456789abcdef-test-secret")
		if err != nil {
			panic(err)
		}
	})
	return &keys
}

// pemFile writes the public key of priv to a PEM file and returns its path.
func pemFile(t testing.TB, pub crypto.PublicKey) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pemBytes(t, pub), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func pemBytes(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// claims returns typical claims: sub, iss, aud, jti, iat now, exp in an hour.
func claims(sub, jti string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"sub": sub, "iss": testIssuer, "aud": testAudience, "jti": jti,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

// mint signs claims with the method and key; kid goes into the header when
// not empty.
func mint(t testing.TB, method jwt.SigningMethod, key any, c jwt.MapClaims, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func rs256(t testing.TB, c jwt.MapClaims, kid string) string {
	return mint(t, jwt.SigningMethodRS256, getKeys(t).rsa, c, kid)
}

func hs256(t testing.TB, c jwt.MapClaims) string {
	return mint(t, jwt.SigningMethodHS256, getKeys(t).hmac, c, "")
}

// testLogger logs to the test when REVOCAST_TEST_LOG is set.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("REVOCAST_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// rsaOpts are the options of an agent that trusts keys.rsa for RS256 with
// the test issuer and audience.
func rsaOpts(t testing.TB) []Option {
	return []Option{
		WithAlgorithms("RS256"),
		WithPublicKeys(&getKeys(t).rsa.PublicKey),
		WithIssuers(testIssuer),
		WithAudiences(testAudience),
	}
}

func hsOpts(t testing.TB) []Option {
	return []Option{
		WithAlgorithms("HS256"),
		WithHMACSecret(getKeys(t).hmac),
		WithIssuers(testIssuer),
		WithAudiences(testAudience),
	}
}

// newAgent builds an agent (no Run).
func newAgent(t testing.TB, urls []string, opts ...Option) *Agent {
	t.Helper()
	if urls == nil {
		urls = []string{"http://127.0.0.1:1"}
	}
	a, err := New(urls, append([]Option{WithLogger(testLogger(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// syncedAgent is an agent that believes it has the full (empty) state and a
// fresh stream, without any broadcaster: for verification tests.
func syncedAgent(t testing.TB, opts ...Option) *Agent {
	t.Helper()
	a := newAgent(t, nil, append([]Option{WithMaxStaleness(time.Hour)}, opts...)...)
	feed(t, a, sse.Event{Type: events.TypeSynced, Data: []byte(`{"head":"1-0"}`)})
	return a
}

// feed hands events to the agent as Run would.
func feed(t testing.TB, a *Agent, evs ...sse.Event) {
	t.Helper()
	for _, ev := range evs {
		a.onActivity(time.Now())
		if err := a.handle(ev); err != nil {
			t.Fatal(err)
		}
	}
}

func revokeEvent(t testing.TB, rev string) sse.Event {
	t.Helper()
	r, err := events.DecodeRevocation([]byte(rev))
	if err != nil {
		t.Fatal(err)
	}
	if err := (events.Policy{}).Prepare(&r, time.Now()); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(r)
	return sse.Event{Type: events.TypeRevoke, Data: data}
}

// runAgent runs a.Run until the test ends and waits until it is ready.
func runAgent(t testing.TB, a *Agent) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(testutil.HangLimit):
			t.Errorf("Run did not return within %v of cancel", testutil.HangLimit)
		}
	})
	select {
	case <-a.ReadyChan():
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(testutil.HangLimit):
		t.Fatalf("agent not ready after %v", testutil.HangLimit)
	}
}

// startBroadcaster runs an in-process broadcaster on 127.0.0.1:0 with a
// short heartbeat and retry, so that staleness and reconnection tests are
// quick.
func startBroadcaster(t testing.TB, mod func(*broadcaster.Config)) string {
	t.Helper()
	_, url := inprocess.Broadcaster(t, func(cfg *broadcaster.Config) {
		cfg.Heartbeat, cfg.Retry = 500*time.Millisecond, 100*time.Millisecond
		if os.Getenv("REVOCAST_TEST_LOG") != "" {
			cfg.Logger = testLogger(t)
		}
		if mod != nil {
			mod(cfg)
		}
	})
	return url
}

type stored struct {
	events.Revocation
	Status string `json:"status"`
}

var httpClient = &http.Client{Timeout: testutil.HangLimit}

// request sends a JSON request and returns the status and body.
func request(method, url, body string, header ...string) (int, []byte, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// revoke posts one revocation and returns what the broadcaster stored.
func revoke(t testing.TB, base, body string) stored {
	t.Helper()
	code, b, err := request("POST", base+"/v1/revocations", body)
	if err != nil || code != http.StatusCreated {
		t.Fatalf("POST %s: %d %s %v", body, code, b, err)
	}
	var s stored
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func lift(t testing.TB, base, key string) {
	t.Helper()
	code, b, err := request("DELETE", base+"/v1/revocations/"+key, "")
	if err != nil || code != http.StatusOK {
		t.Fatalf("DELETE %s: %d %s %v", key, code, b, err)
	}
}

// checkErr is Check's error, for comparisons.
func checkErr(a *Agent, tok string) error {
	_, err := a.Check(context.Background(), tok)
	return err
}

func wantErr(t testing.TB, a *Agent, tok string, want error, msg string) {
	t.Helper()
	err := checkErr(a, tok)
	if want == nil {
		if err != nil {
			t.Fatalf("%s: Check = %v, want allowed", msg, err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("%s: Check = %v, want %v", msg, err, want)
	}
}

func describe(err error) string {
	if err == nil {
		return "allowed"
	}
	return fmt.Sprint(err)
}
