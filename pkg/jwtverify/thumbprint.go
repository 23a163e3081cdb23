package jwtverify

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/big"
)

// Thumbprint returns the RFC 7638 JWK thumbprint of a public key (SHA-256,
// base64url without padding): the name a kid revocation can give any key,
// and the only one a bare PEM key has. It accepts *rsa.PublicKey,
// *ecdsa.PublicKey on P-256, P-384 or P-521 and ed25519.PublicKey, and an
// HMAC secret as []byte.
func Thumbprint(key any) (string, error) {
	var members string // the required members in lexicographic order, no whitespace
	b64 := base64.RawURLEncoding.EncodeToString
	switch k := key.(type) {
	case *rsa.PublicKey:
		e := big.NewInt(int64(k.E)).Bytes()
		members = `{"e":"` + b64(e) + `","kty":"RSA","n":"` + b64(k.N.Bytes()) + `"}`
	case *ecdsa.PublicKey:
		crv := ""
		switch ecAlg(k.Curve) {
		case "ES256":
			crv = "P-256"
		case "ES384":
			crv = "P-384"
		case "ES512":
			crv = "P-521"
		default:
			return "", fmt.Errorf("thumbprint: unsupported curve %s", k.Curve.Params().Name)
		}
		// The uncompressed SEC 1 point: 0x04, then X and Y, each padded
		// to the curve's size as RFC 7518 section 6.2.1 wants.
		point, err := k.Bytes()
		if err != nil {
			return "", fmt.Errorf("thumbprint: %w", err)
		}
		size := (len(point) - 1) / 2
		x, y := point[1:1+size], point[1+size:]
		members = `{"crv":"` + crv + `","kty":"EC","x":"` + b64(x) + `","y":"` + b64(y) + `"}`
	case ed25519.PublicKey:
		members = `{"crv":"Ed25519","kty":"OKP","x":"` + b64(k) + `"}`
	case []byte:
		members = `{"k":"` + b64(k) + `","kty":"oct"}`
	default:
		return "", fmt.Errorf("thumbprint: unsupported key type %T", key)
	}
	sum := sha256.Sum256([]byte(members))
	return b64(sum[:]), nil
}
