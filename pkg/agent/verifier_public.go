package agent

import (
	"bytes"
	"context"
	"crypto"
	"os"
)

// Verifier checks JWTs exactly as an Agent does — an explicit algorithm
// allow-list, keys from PEM files, an HMAC secret or a JWKS (refreshed in
// the background, never on the verification path), iss, aud, leeway, exp
// required — but without a denylist or a stream. The broadcaster uses it for
// operator JWTs and for tokens posted to its RFC 7009 endpoint.
//
// A *Verifier is safe for concurrent use.
type Verifier struct {
	v *verifier
}

// NewVerifier accepts the key, algorithm and claim options of New (the
// others are ignored). It does no I/O; with a JWKS, call Run.
func NewVerifier(opts ...Option) (*Verifier, error) {
	cfg := defaultConfig(opts)
	if err := checkJWKSURL(cfg.jwksURL); err != nil {
		return nil, err
	}
	v, err := newVerifier(&cfg)
	if err != nil {
		return nil, err
	}
	if cfg.jwksURL != "" {
		v.jwks = newJWKSSource(&cfg, cfg.logger, nil)
	}
	return &Verifier{v: v}, nil
}

// Verify checks raw completely. Its errors match ErrInvalid.
func (v *Verifier) Verify(raw string) (*Claims, error) {
	c, err := v.v.verify(raw)
	if err != nil {
		return nil, &InvalidError{Reason: err}
	}
	return c, nil
}

// Run loads and refreshes the JWKS until ctx ends; without a JWKS it
// returns at once.
func (v *Verifier) Run(ctx context.Context) {
	if v.v.jwks != nil {
		v.v.jwks.run(ctx)
	}
}

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

// Options reads the files k names and returns the options for New or
// NewVerifier: keys, algorithms, issuers, audiences.
func (k KeySource) Options() ([]Option, error) {
	if !k.Configured() {
		return nil, errorf("no key source: give a PEM public key file, an HMAC secret file or a JWKS URL")
	}
	var opts []Option
	var keys []crypto.PublicKey
	for _, path := range k.PublicKeyFiles {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, errorf("public key: %v", err)
		}
		ks, err := ParsePublicKeysPEM(data)
		if err != nil {
			return nil, errorf("public key %s: %v", path, err)
		}
		keys = append(keys, ks...)
	}
	if len(keys) > 0 {
		opts = append(opts, WithPublicKeys(keys...))
	}
	if k.HMACSecretFile != "" {
		secret, err := os.ReadFile(k.HMACSecretFile)
		if err != nil {
			return nil, errorf("HMAC secret: %v", err)
		}
		if t, ok := bytes.CutSuffix(secret, []byte("\n")); ok {
			secret = bytes.TrimSuffix(t, []byte("\r"))
		}
		if len(secret) < MinHMACSecretLength {
			return nil, errorf("HMAC secret file %s: %d bytes; at least %d are required", k.HMACSecretFile, len(secret), MinHMACSecretLength)
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
