package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/revocast/revocast/internal/auth"
	"github.com/revocast/revocast/internal/broadcaster"
	"github.com/revocast/revocast/internal/testutil"
)

// TestOperatorJWTRoleMatrix: a broadcaster configured from flags with an
// API key file and operator JWTs (--auth-public-key, --auth-issuer,
// --auth-audience); every endpoint class against every kind of credential.
func TestOperatorJWTRoleMatrix(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	dir := t.TempDir()
	pubFile := filepath.Join(dir, "operators.pem")
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	readerKey, _ := auth.GenerateKey()
	keysFile := filepath.Join(dir, "keys")
	if err := os.WriteFile(keysFile, []byte(auth.KeyLine("dashboard", auth.RoleReader, readerKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	sf, err := parseFlags([]string{"--addr", "127.0.0.1:0", "--data", t.TempDir(), "--api-keys", keysFile,
		"--auth-public-key", pubFile, "--auth-issuer", "https://sso.example", "--auth-audience", "revocast"},
		func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg, background, err := sf.config(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	background(ctx)
	s, err := broadcaster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	<-s.Ready()
	base := "http://" + s.Addr()

	jwtFor := func(mod func(jwt.MapClaims)) string {
		c := jwt.MapClaims{"iss": "https://sso.example", "aud": "revocast", "sub": "op-ann",
			"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "revocast_role": "revoker"}
		if mod != nil {
			mod(c)
		}
		tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(priv)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	creds := map[string]string{
		"none":              "",
		"wrong key":         "rvc_wrong",
		"reader api key":    readerKey,
		"revoker jwt":       jwtFor(nil),
		"reader jwt (list)": jwtFor(func(c jwt.MapClaims) { c["revocast_role"] = []any{"reader"} }),
		"scope string":      jwtFor(func(c jwt.MapClaims) { c["revocast_role"] = "something revoker" }),
		"expired jwt":       jwtFor(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }),
		"wrong audience":    jwtFor(func(c jwt.MapClaims) { c["aud"] = "other" }),
		"wrong issuer":      jwtFor(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }),
		"no role":           jwtFor(func(c jwt.MapClaims) { delete(c, "revocast_role") }),
	}
	// status per credential for: POST a revocation, GET the list, the stream
	want := map[string][3]int{
		"none":              {401, 401, 401},
		"wrong key":         {401, 401, 401},
		"reader api key":    {403, 200, 200},
		"revoker jwt":       {201, 200, 200},
		"reader jwt (list)": {403, 200, 200},
		"scope string":      {201, 200, 200},
		"expired jwt":       {401, 401, 401},
		"wrong audience":    {401, 401, 401},
		"wrong issuer":      {401, 401, 401},
		"no role":           {401, 401, 401},
	}
	for name, cred := range creds {
		t.Run(name, func(t *testing.T) {
			got := [3]int{
				statusWith(t, "POST", base+"/v1/revocations", `{"jti":"op-`+strings.ReplaceAll(name, " ", "-")+`"}`, cred),
				statusWith(t, "GET", base+"/v1/revocations", "", cred),
				statusWith(t, "GET", base+"/v1/events?last_event_id=now", "", cred),
			}
			if got != want[name] {
				t.Fatalf("POST, list, stream = %v, want %v", got, want[name])
			}
		})
	}
	// the actor of a JWT's revocation is its sub
	req, _ := http.NewRequest("GET", base+"/v1/revocations?jti=op-revoker-jwt", nil)
	req.Header.Set("Authorization", "Bearer "+readerKey)
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Body.Close()
	body, _ := io.ReadAll(r2.Body)
	if !strings.Contains(string(body), `"actor":"op-ann"`) {
		t.Fatalf("actor of a JWT revocation: %s", body)
	}
}

func statusWith(t *testing.T, method, url, body, cred string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
