// Package events is the revocast domain model: a Revocation, how it is
// decoded and validated at the edge, the defaults that make the common cases
// one-liners, its deterministic key, the rule that decides whether it applies
// to a token, and the event IDs ("<epoch>-<seq>") that let a subscriber
// resume a stream.
//
// The package does no I/O and imports no transport, so every other part of
// revocast shares it: cmd/broadcaster validates what operators post with it,
// pkg/events/natslog stores it, and pkg/agent and pkg/cache match tokens
// against it.
//
// All functions are safe for concurrent use. A Revocation is a plain value:
// callers that share one across goroutines must not mutate it.
package events
