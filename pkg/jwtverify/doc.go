// Package jwtverify verifies JWTs for revocast: it is the verification code
// shared by the agent (pkg/agent) and the broadcaster (operator JWTs and the
// RFC 7009 revocation endpoint), so that the server does not import the
// agent.
//
// New builds a Verifier from options, each of which validates its value:
// New returns an error matching ErrInvalidOption rather than replacing a
// bad value with a default. A Verifier holds
//
//   - an explicit algorithm allow-list (WithAlgorithms); "none" is never
//     accepted, and HS* only with an HMAC secret, so a public key is never
//     used as an HMAC secret;
//   - static keys (PEM data or files, crypto public keys, an HMAC secret)
//     and a JWKS refreshed in the background by Run, never on the
//     verification path;
//   - the claim rules: exp required, exp/nbf/iat with a leeway, iss and aud
//     when configured, iat when required.
//
// Verify refuses tokens another parser could read differently (a header
// or payload that repeats a member name, a crit header) and tokens a
// revocation could not name (a jti, sub, iss or kid over
// events.MaxValueLength bytes, a kid that is not a string). It always knows
// which key verified a token: a kid-less token is tried against each key
// of its algorithm in turn, and the Claims carry the key's JWKS kid and its
// RFC 7638 Thumbprint.
//
// A *Verifier is safe for concurrent use: it is immutable after New but
// for the JWKS key set, which Run replaces with an atomic swap. The other
// functions of the package (ParsePublicKeysPEM, CheckKey, Thumbprint,
// DescribeKeys, …) are safe for concurrent use as well.
package jwtverify
