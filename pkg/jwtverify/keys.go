package jwtverify

import "crypto/elliptic"

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
