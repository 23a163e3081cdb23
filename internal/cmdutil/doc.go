// Package cmdutil is the plumbing the revocast binaries share (cmd/broadcaster,
// cmd/agent, cmd/revocast): the logger their --log-level and --log-format
// flags describe, and the CA pool and HTTP client their --ca-file flags
// describe, so that each flag means the same thing in every binary.
//
// Its functions keep no state and are safe for concurrent use.
package cmdutil
