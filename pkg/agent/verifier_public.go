package agent

import (
	"context"

	"github.com/revocast/revocast/pkg/jwtverify"
)

// Verifier checks JWTs exactly as an Agent does, but without a denylist or
// a stream. It is a thin wrapper of jwtverify.Verifier, which new code
// (the broadcaster included) uses directly.
//
// A *Verifier is safe for concurrent use.
type Verifier struct {
	v *jwtverify.Verifier
}

// NewVerifier accepts the key, algorithm and claim options of New (the
// others are validated, then ignored). It does no I/O; with a JWKS, call
// Run.
func NewVerifier(opts ...Option) (*Verifier, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	v, err := newVerifier(&cfg)
	if err != nil {
		return nil, err
	}
	return &Verifier{v: v}, nil
}

// Verify checks raw completely. Its errors match ErrInvalid.
func (v *Verifier) Verify(raw string) (*Claims, error) {
	c, err := v.v.Verify(raw)
	if err != nil {
		return nil, &InvalidError{Reason: reason(err)}
	}
	return c, nil
}

// Run loads and refreshes the JWKS until ctx ends; without a JWKS it
// returns at once.
func (v *Verifier) Run(ctx context.Context) { v.v.Run(ctx) }

// KeySource names, as a command line or configuration file would, where the
// keys that verify tokens come from and what the tokens must say (see
// jwtverify.KeySource, whose fields it has) and returns the agent's options.
type KeySource jwtverify.KeySource

// Configured reports whether any key source is given.
func (k KeySource) Configured() bool { return jwtverify.KeySource(k).Configured() }

// Options reads the files k names and returns the options for New or
// NewVerifier: keys, algorithms, issuers, audiences.
func (k KeySource) Options() ([]Option, error) {
	vopts, err := jwtverify.KeySource(k).Options()
	if err != nil {
		return nil, errorf("%w", err)
	}
	opts := make([]Option, len(vopts))
	for i, o := range vopts {
		opts[i] = verifyOption(o)
	}
	return opts, nil
}
