package agent

import "github.com/revocast/revocast/pkg/jwtverify"

// Thumbprint returns the RFC 7638 JWK thumbprint of a public key; it is
// jwtverify.Thumbprint, kept here so that the agent's API does not change.
func Thumbprint(key any) (string, error) { return jwtverify.Thumbprint(key) }

// KeyDescription is jwtverify.KeyDescription.
type KeyDescription = jwtverify.KeyDescription

// DescribeKeys is jwtverify.DescribeKeys: the keys of a PEM file or a JWKS
// document with their thumbprints and, for a JWKS, why an agent would skip
// one.
func DescribeKeys(data []byte) ([]KeyDescription, error) { return jwtverify.DescribeKeys(data) }
