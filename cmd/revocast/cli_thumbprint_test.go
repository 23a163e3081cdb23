package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/MicahParks/jwkset"

	"github.com/revocast/revocast/pkg/agent"
)

// TestThumbprintCommand: the CLI prints, for PEM and JWKS files, the name a
// kid revocation must give each key, the same the agent matches.
func TestThumbprintCommand(t *testing.T) {
	dir := t.TempDir()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemPath := filepath.Join(dir, "issuer.pem")
	if err := os.WriteFile(pemPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	var set jwkset.JWKSMarshal
	for kid, key := range map[string]any{"ec-1": &ec.PublicKey, "weak": &weak.PublicKey} {
		j, err := jwkset.NewJWKFromKey(key, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid}})
		if err != nil {
			t.Fatal(err)
		}
		set.Keys = append(set.Keys, j.Marshal())
	}
	body, _ := json.Marshal(set)
	jwksPath := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwksPath, body, 0o600); err != nil {
		t.Fatal(err)
	}
	want, err := agent.Thumbprint(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}

	cli := newCLI(t, "")
	out := cli.ok("thumbprint", pemPath).stdout
	if out != want+"  EC P-256\n" {
		t.Fatalf("PEM: %q, want the thumbprint %s", out, want)
	}
	out = cli.ok("thumbprint", jwksPath).stdout
	if !strings.Contains(out, want+"  EC P-256  kid=ec-1\n") {
		t.Fatalf("JWKS: the EC key is not listed with its thumbprint and kid:\n%s", out)
	}
	if !strings.Contains(out, "kid=weak  skipped: RSA key of 1024 bits") {
		t.Fatalf("JWKS: the weak key is not marked as skipped:\n%s", out)
	}
	cli.stdin = strings.NewReader(string(body))
	if out := cli.ok("thumbprint", "--json", "-").stdout; !strings.Contains(out, `"thumbprint":"`+want+`"`) {
		t.Fatalf("--json from stdin: %s", out)
	}
	cli.stdin = nil
	cli.fails(exitUsage, "thumbprint")
	cli.fails(exitInvalid, "thumbprint", filepath.Join(dir, "missing.pem"))
	if err := os.WriteFile(filepath.Join(dir, "private.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), 0o600); err != nil {
		t.Fatal(err)
	}
	cli.fails(exitInvalid, "thumbprint", filepath.Join(dir, "private.pem"))
}
