// Package eventlog defines the revocation log the broadcaster needs, apart
// from how it is stored: Log (publish, publish a batch, lift, follow from a
// position, catch up with the writes acknowledged anywhere, epoch, health,
// close), Positions (the agents' reports shared by every node), the records
// and outcomes they exchange, and the errors callers test with errors.Is.
//
// Implementations: natslog (NATS JetStream: embedded server, cluster or
// external deployment; what the broadcaster runs on) and memlog (in memory,
// one process: tests and single-process use). TestLog in the eventlogtest
// package checks that an implementation behaves as described here.
//
// internal/broadcaster depends on this package only; cmd/broadcaster
// chooses the implementation. The package holds no state: its types are
// values, and implementations of Log and Positions must be safe for
// concurrent use.
package eventlog
