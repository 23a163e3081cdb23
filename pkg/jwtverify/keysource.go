package jwtverify

import (
	"bytes"
	"crypto"
	"os"
)

// KeySource names, as a command line or configuration file would, where the
// keys that verify tokens come from and what the tokens must say.
type KeySource struct {
	PublicKeyFiles []string // PEM files: public keys or certificates
	HMACSecretFile string   // one trailing newline is ignored
	JWKS           string   // URL
	Algorithms     []string // empty: derived from the keys (AlgorithmsFor)
	Issuers        []string
	Audiences      []string
}

// Configured reports whether any key source is given.
func (k KeySource) Configured() bool {
	return len(k.PublicKeyFiles) > 0 || k.HMACSecretFile != "" || k.JWKS != ""
}

// Options reads the files k names and returns the options for New: keys,
// algorithms, issuers, audiences. Its errors match ErrInvalidOption (and
// ErrNoKeySource when k names no key source).
func (k KeySource) Options() ([]Option, error) {
	if !k.Configured() {
		return nil, ErrNoKeySource
	}
	var opts []Option
	var keys []crypto.PublicKey
	for _, path := range k.PublicKeyFiles {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, optionErr("public key: %v", err)
		}
		ks, err := ParsePublicKeysPEM(data)
		if err != nil {
			return nil, optionErr("public key %s: %v", path, err)
		}
		keys = append(keys, ks...)
	}
	if len(keys) > 0 {
		opts = append(opts, WithPublicKeys(keys...))
	}
	if k.HMACSecretFile != "" {
		secret, err := os.ReadFile(k.HMACSecretFile)
		if err != nil {
			return nil, optionErr("HMAC secret: %v", err)
		}
		if t, ok := bytes.CutSuffix(secret, []byte("\n")); ok {
			secret = bytes.TrimSuffix(t, []byte("\r"))
		}
		if len(secret) < MinHMACSecretLength {
			return nil, optionErr("HMAC secret file %s: %d bytes; at least %d are required", k.HMACSecretFile, len(secret), MinHMACSecretLength)
		}
		opts = append(opts, WithHMACSecret(secret))
	}
	if k.JWKS != "" {
		opts = append(opts, WithJWKS(k.JWKS))
	}
	algs := k.Algorithms
	if len(algs) == 0 {
		algs = AlgorithmsFor(keys, k.HMACSecretFile != "", k.JWKS != "")
	}
	opts = append(opts, WithAlgorithms(algs...))
	if len(k.Issuers) > 0 {
		opts = append(opts, WithIssuers(k.Issuers...))
	}
	if len(k.Audiences) > 0 {
		opts = append(opts, WithAudiences(k.Audiences...))
	}
	return opts, nil
}
