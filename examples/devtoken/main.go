// Command devtoken makes what a demo of revocast needs and a real identity
// provider would otherwise provide: an Ed25519 signing key pair, and JWTs
// signed with it. It is for trying revocast out and for tests, not for
// production tokens.
//
//	go run ./examples/devtoken keygen --dir /tmp/revocast-demo
//	go run ./examples/devtoken sign --key /tmp/revocast-demo/issuer.key --sub alice --jti demo-1
//
// keygen writes issuer.key (the private key, PKCS #8 PEM, mode 0600) and
// issuer.pem (the public key, PKIX PEM: what agents are given). sign prints
// one EdDSA token with iss, sub, aud, iat, exp and, when given, jti and kid.
package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "devtoken:", err)
		os.Exit(2)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: devtoken keygen --dir DIR | devtoken sign --key FILE [--sub S] [--jti J] [--ttl D]")
	}
	switch args[0] {
	case "keygen":
		return keygen(args[1:], stdout, stderr)
	case "sign":
		return sign(args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown command %q: want keygen or sign", args[0])
}

func keygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".", "directory for issuer.key and issuer.pem")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	keyFile, pubFile := filepath.Join(*dir, "issuer.key"), filepath.Join(*dir, "issuer.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n%s\n", keyFile, pubFile)
	return nil
}

func sign(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyFile := fs.String("key", "issuer.key", "private key written by keygen")
	iss := fs.String("iss", "https://idp.example", "iss claim")
	sub := fs.String("sub", "alice", "sub claim")
	aud := fs.String("aud", "demo-api", "aud claim")
	jti := fs.String("jti", "", "jti claim (omitted when empty)")
	kid := fs.String("kid", "", "kid header (omitted when empty)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime: exp = now + ttl")
	if err := fs.Parse(args); err != nil {
		return err
	}
	data, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return fmt.Errorf("%s holds no PEM block", *keyFile)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return err
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return fmt.Errorf("%s is not an Ed25519 key", *keyFile)
	}
	now := time.Now()
	claims := jwt.MapClaims{"iss": *iss, "sub": *sub, "aud": *aud, "iat": now.Unix(), "exp": now.Add(*ttl).Unix()}
	if *jti != "" {
		claims["jti"] = *jti
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	if *kid != "" {
		tok.Header["kid"] = *kid
	}
	s, err := tok.SignedString(priv)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, s)
	return nil
}
