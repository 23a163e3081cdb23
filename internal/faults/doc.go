// Package faults holds revocast's fault tests: real broadcaster processes on
// 127.0.0.1 (single nodes and three-node clusters of embedded NATS servers)
// are killed, restarted, partitioned and wiped while revocations are
// posted, and agents attached to them must end up holding exactly the
// acknowledged revocations. The package has no code of its own; the tests
// are skipped under -short.
package faults
