// Package memlog is an eventlog.Log in memory: one process, nothing
// persisted, no cluster. It keeps the log's rules (one live message per
// key, messages leave at expires_at + G, idempotency keys within a
// duplicate window, follow from a position) so that the broadcaster's
// handler tests run without JetStream, and it suits single-process use
// where losing the log on restart is acceptable.
//
// A *Log is safe for concurrent use.
package memlog
