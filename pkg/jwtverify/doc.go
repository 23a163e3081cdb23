// Package jwtverify verifies JWTs for revocast: it is the verification code
// shared by the agent (pkg/agent) and the broadcaster (operator JWTs and the
// RFC 7009 revocation endpoint), so that the server does not import the
// agent. Its functions are safe for concurrent use.
//
// The move is under way: for now the package holds the key rules
// (ParsePublicKeysPEM, CheckKey, KeyType, MinRSABits) and Thumbprint, the
// RFC 7638 key name; pkg/agent forwards to them under its old names.
package jwtverify
