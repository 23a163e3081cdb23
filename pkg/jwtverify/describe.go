package jwtverify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/MicahParks/jwkset"
)

// KeyDescription names one key of a PEM file or a JWKS: what a kid
// revocation can name it by, and whether an agent would use it.
type KeyDescription struct {
	Thumbprint string `json:"thumbprint"`        // RFC 7638; empty for a key that is skipped before it has one
	Kid        string `json:"kid,omitempty"`     // the JWK's kid; PEM keys have none
	Type       string `json:"type"`              // RSA-2048, EC P-256, Ed25519, or the JWK's kty
	Alg        string `json:"alg,omitempty"`     // the JWK's alg
	Use        string `json:"use,omitempty"`     // the JWK's use
	Skipped    string `json:"skipped,omitempty"` // why an agent would not use the key; empty when it would
}

// DescribeKeys lists the keys of a PEM file (public keys or certificates)
// or a JWKS document with their thumbprints, so that an operator knows what
// a kid revocation must name to retire one. A PEM file is held to the rules
// of WithPublicKeyFile (an error for a weak or unsupported key); a JWKS
// lists every key, with the reason an agent would skip it.
func DescribeKeys(data []byte) ([]KeyDescription, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var set jwkset.JWKSMarshal
		if err := json.Unmarshal(trimmed, &set); err != nil {
			return nil, fmt.Errorf("JWKS: %w", err)
		}
		if len(set.Keys) == 0 {
			return nil, errors.New("JWKS: no keys")
		}
		out := make([]KeyDescription, 0, len(set.Keys))
		for _, m := range set.Keys {
			d := KeyDescription{Kid: m.KID, Type: string(m.KTY), Alg: string(m.ALG), Use: string(m.USE)}
			j, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
			if err != nil {
				d.Skipped = err.Error()
				out = append(out, d)
				continue
			}
			k, err := jwkVerifyKey(j.Key(), m)
			if err != nil {
				d.Skipped = err.Error()
				if tp, terr := Thumbprint(j.Key()); terr == nil {
					d.Thumbprint = tp
				}
			} else {
				d.Thumbprint, d.Type = k.thumbprint, KeyType(k.key)
			}
			out = append(out, d)
		}
		return out, nil
	}
	keys, err := ParsePublicKeysPEM(data)
	if err != nil {
		return nil, err
	}
	out := make([]KeyDescription, 0, len(keys))
	for _, key := range keys {
		tp, err := Thumbprint(key)
		if err != nil {
			return nil, err
		}
		out = append(out, KeyDescription{Thumbprint: tp, Type: KeyType(key)})
	}
	return out, nil
}
