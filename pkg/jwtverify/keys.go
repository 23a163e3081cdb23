package jwtverify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// MinRSABits is the smallest RSA modulus accepted, from a PEM file or a
// JWKS.
const MinRSABits = 2048

// ecAlg names the JWS algorithm that goes with an elliptic curve, or ""
// for a curve the verifier does not accept.
func ecAlg(c elliptic.Curve) string {
	switch c {
	case elliptic.P256():
		return "ES256"
	case elliptic.P384():
		return "ES384"
	case elliptic.P521():
		return "ES512"
	}
	return ""
}

// ParsePublicKeysPEM returns the public keys in PEM data: PUBLIC KEY (PKIX:
// RSA, ECDSA or Ed25519), RSA PUBLIC KEY (PKCS #1) and CERTIFICATE blocks
// (the certificate's key; the certificate itself is not validated). Data
// with no key, with a private key or with another kind of block is an error.
func ParsePublicKeysPEM(data []byte) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var key any
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				key = cert.PublicKey
			}
		default:
			if strings.Contains(block.Type, "PRIVATE KEY") {
				return nil, fmt.Errorf("PEM block %d is a %s: give the public key (openssl pkey -pubout), never a private key", n, block.Type)
			}
			return nil, fmt.Errorf("PEM block %d: unsupported type %q (want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)", n, block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", n, block.Type, err)
		}
		if err := CheckKey(key); err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM-encoded public key found")
	}
	return keys, nil
}

// CheckKey holds every key, from a PEM file or a JWKS, to the same rules:
// RSA of at least MinRSABits, ECDSA on P-256, P-384 or P-521, or Ed25519.
func CheckKey(key any) error {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSABits {
			return fmt.Errorf("RSA key of %d bits; at least %d are required", k.N.BitLen(), MinRSABits)
		}
	case *ecdsa.PublicKey:
		if ecAlg(k.Curve) == "" {
			return fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return errors.New("malformed Ed25519 key")
		}
	default:
		return fmt.Errorf("unsupported key type %T", key)
	}
	return nil
}

// KeyType describes a key for logs and the CLI: RSA-2048, EC P-256, Ed25519.
func KeyType(key any) string {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "EC " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	case []byte:
		return "HMAC"
	}
	return fmt.Sprintf("%T", key)
}
