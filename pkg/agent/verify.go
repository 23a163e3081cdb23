package agent

import (
	"crypto"

	"github.com/revocast/revocast/pkg/jwtverify"
)

// Claims are the verified claims of a token (jwtverify.Claims). The agent
// shares one *Claims between every request that presents the same token
// (see Check): treat it, Raw and Audience included, as read-only.
type Claims = jwtverify.Claims

// AlgorithmsFor returns the algorithms that the given keys can verify; it
// is jwtverify.AlgorithmsFor. cmd/agent uses it as the default of --algs.
func AlgorithmsFor(keys []crypto.PublicKey, hmac, jwks bool) []string {
	return jwtverify.AlgorithmsFor(keys, hmac, jwks)
}

// ParsePublicKeysPEM returns the public keys in PEM data; it is
// jwtverify.ParsePublicKeysPEM, kept here so the agent's API does not change.
func ParsePublicKeysPEM(data []byte) ([]crypto.PublicKey, error) {
	return jwtverify.ParsePublicKeysPEM(data)
}

// newVerifier builds the verifier of an agent or a Verifier from the
// options it was given, plus extra ones of the caller.
func newVerifier(c *config, extra ...jwtverify.Option) (*jwtverify.Verifier, error) {
	v, err := jwtverify.New(append(c.verify[:len(c.verify):len(c.verify)], extra...)...)
	if err != nil {
		return nil, errorf("%w", err)
	}
	return v, nil
}
