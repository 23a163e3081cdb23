package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/revocast/revocast/internal/broadcaster"
	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/events/natslog"
)

var listening = regexp.MustCompile(`msg="embedded listening" addr=(\S+)`)

// TestEmbedded runs the example against an in-process broadcaster: a valid
// token reads /orders until its jti is revoked.
func TestEmbedded(t *testing.T) {
	bs, err := broadcaster.New(broadcaster.Config{Addr: "127.0.0.1:0", Backend: natslog.Config{DataDir: t.TempDir()}, Heartbeat: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := bs.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
		defer cancel()
		_ = bs.Shutdown(ctx)
	})
	base := "http://" + bs.Addr()

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	keyFile := filepath.Join(t.TempDir(), "issuer.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"sub": "alice", "iss": "https://idp.example", "aud": "orders-api", "jti": "order-token-1",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}

	logs := &testutil.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--broadcaster", base, "--public-key", keyFile, "--issuer", "https://idp.example",
			"--audience", "orders-api", "--addr", "127.0.0.1:0"}, logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(testutil.HangLimit):
			t.Errorf("run did not return within %v", testutil.HangLimit)
		}
	})
	var addr string
	testutil.Eventually(t, testutil.HangLimit, "the example to listen", func() bool {
		sc := bufio.NewScanner(strings.NewReader(logs.String()))
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr = m[1]
			}
		}
		return addr != ""
	})
	url := "http://" + addr
	testutil.Eventually(t, testutil.HangLimit, "/readyz", func() bool { code, _ := get(url+"/readyz", ""); return code == 200 })

	if code, body := get(url+"/orders", tok); code != 200 || body != "orders of alice\n" {
		t.Fatalf("/orders: %d %q", code, body)
	}
	if code, _ := get(url+"/orders", ""); code != 401 {
		t.Fatalf("/orders without token: %d", code)
	}
	resp, err := http.Post(base+"/v1/revocations", "application/json", strings.NewReader(`{"jti":"order-token-1"}`))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	resp.Body.Close()
	testutil.Eventually(t, testutil.HangLimit, "the revoked token refused", func() bool { code, _ := get(url+"/orders", tok); return code == 401 })
}

func get(url, tok string) (int, string) {
	req, _ := http.NewRequest("GET", url, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
