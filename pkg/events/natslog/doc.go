// Package natslog is the revocation log over NATS JetStream, and the only
// package of revocast that talks to NATS.
//
// Open starts an embedded NATS server with a file store under the data
// directory (the default) or connects to an existing NATS deployment by URL,
// then creates or updates the stream idempotently: one subject per
// revocation key with MaxMsgsPerSubject 1, so the stream holds exactly the
// live state; per-message TTLs so a revocation leaves the stream when it
// expires; a duplicate window so that a retried publish with the same
// Idempotency-Key is stored once.
//
// A *Log is an eventlog.Log, whose types (Request, Published, Record, …)
// and errors it re-exports. The broadcaster is its user: it publishes what
// operators post and follows the stream with one ordered consumer to feed
// its in-memory fan-out.
//
// A *Log is safe for concurrent use.
package natslog
