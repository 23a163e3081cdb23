package eventlog

import (
	"log/slog"
	"time"
)

// DefaultMaxAge is the age at which a log drops a message whatever its
// expiry, as a safety net against a store that only grows; revocations are
// kept well below it (see Description.MaxAge).
const DefaultMaxAge = 366 * 24 * time.Hour

// Backend is a log not yet connected: a configuration that knows how to
// reach its storage (natslog.Config, memlog.Config). The broadcaster takes a
// Backend and connects it at Start, after its own checks, so that nothing
// listens on an address it would refuse; the wiring in a binary's main
// chooses which Backend, and nothing else depends on the choice.
type Backend interface {
	// Check reports what in the configuration cannot work, before anything
	// starts (no file, socket or server is touched).
	Check() error
	// Describe says what a server needs to know of the log before it is
	// connected.
	Describe() Description
	// Connect starts or reaches the log's storage; Log.Open then makes the
	// log ready. The caller closes the Log.
	Connect(ConnectOptions) (Log, error)
}

// ConnectOptions are what the server decides for every log.
type ConnectOptions struct {
	// ExpiryGrace is G: a message stays until its expires_at + G. The
	// server passes its own, so that log and replay keep the same grace.
	ExpiryGrace time.Duration
	Logger      *slog.Logger // nil: discard
}

// Description is what a server needs to know of a log before connecting it.
type Description struct {
	// Kind names the log in the startup line ("embedded", "external",
	// "memory").
	Kind string
	// Where is the log's storage, for the startup line: a data directory,
	// URLs, or "".
	Where string
	// Node names this server within the log's cluster ("" if it has no
	// name): readiness answers and agents' positions carry it.
	Node string
	// MaxAge is the age at which the log drops a message whatever its
	// expiry (0: DefaultMaxAge); revocations must expire well before.
	MaxAge time.Duration
	// PeerAddr is the address other servers of the log join on, when this
	// process listens for them ("" when it does not), and
	// PeersAuthenticated whether joining needs a secret or a certificate.
	// A server refuses peers beyond loopback that need neither unless it
	// is told the network keeps others away.
	PeerAddr           string
	PeersAuthenticated bool
}
