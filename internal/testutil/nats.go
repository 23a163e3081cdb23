package testutil

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// NATS is a NATS server with JetStream run by a test, standing for an
// external deployment that a broadcaster connects to with --nats-url.
type NATS struct {
	*server.Server
	URL string
}

// StartNATS runs a NATS server with JetStream on a random 127.0.0.1 port,
// its store in a temporary directory, until the test ends.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	ns, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoSigs:    true,
		NoLog:     true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(HangLimit) {
		t.Fatalf("NATS server not ready after %v", HangLimit)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return &NATS{Server: ns, URL: ns.ClientURL()}
}
