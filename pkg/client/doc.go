// Package client is the Go client of the revocast broadcaster's HTTP API.
//
// A Client posts revocations (Revoke, RevokeBatch, RevokeRaw), lifts them
// (Lift by key, LiftMatching by matchers), reads them (Get, List, All),
// waits until the connected agents applied one (WaitEnforced: revoke
// --wait), lists the agents and what they applied (Agents) and follows the
// event stream (Tail, which reconnects and resumes after the last event
// id).
// Requests and answers are the types of package events; an answer that is
// not a success is an *Error that keeps the server's message and the name
// of the field at fault, and matches sentinel errors with errors.Is:
//
//	res, err := c.Revoke(ctx, events.Revocation{Sub: "alice"}, client.WriteOptions{})
//	switch {
//	case errors.Is(err, client.ErrUnauthorized): // 401: check the token
//	case errors.As(err, &apiErr) && apiErr.Field != "": // 400 on one field
//	}
//
// Writes are retried on 429, 503 and network failures, honouring
// Retry-After, with the same Idempotency-Key on every attempt so that a
// retried write is stored once; without a key only answers that prove
// nothing was stored (429, 503 before the write) are retried. Bulk sends a
// large number of jtis in batches, several in flight, each retried with its
// own key; its timings are fields, and a Checkpoint resumes an interrupted
// run.
//
// The revocast command-line client (cmd/revocast) is built on this package;
// Go programs that revoke tokens (an identity provider's logout, an admin
// tool) can use it the same way. It does not depend on NATS.
//
// A Client is safe for concurrent use by multiple goroutines. A Bulk is
// configured, then run once at a time.
package client
