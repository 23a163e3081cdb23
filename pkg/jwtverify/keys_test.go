package jwtverify

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

func pemOf(t *testing.T, typ string, der []byte) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestParsePublicKeysPEM(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	pkix := func(k any) []byte {
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pemOf(t, "PUBLIC KEY", der)
	}
	keys, err := ParsePublicKeysPEM(append(pkix(&ec.PublicKey), pkix(edPub)...))
	if err != nil || len(keys) != 2 {
		t.Fatalf("two good keys: %d keys, %v", len(keys), err)
	}
	if got := KeyType(keys[0]) + "," + KeyType(keys[1]); got != "EC P-256,Ed25519" {
		t.Fatalf("KeyType = %s", got)
	}
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"weak RSA": {pkix(&weak.PublicKey), "at least 2048"},
		"private":  {pemOf(t, "PRIVATE KEY", []byte{1}), "never a private key"},
		"other":    {pemOf(t, "FOO", []byte{1}), "unsupported type"},
		"empty":    {nil, "no PEM-encoded public key"},
	} {
		if _, err := ParsePublicKeysPEM(tc.data); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, tc.want)
		}
	}
}
