// Package inprocess runs a broadcaster inside a test's own process, for the
// tests of packages that the broadcaster does not import and for its own
// external tests (package broadcaster_test; its in-package tests cannot
// use it: that would be an import cycle). Only tests import it.
package inprocess

import (
	"context"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/broadcaster"
	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/events/natslog"
)

// Broadcaster runs an in-process broadcaster on 127.0.0.1:0 with a
// temporary data directory (embedded NATS) until the test ends, and returns
// it with its base URL once it is ready. mod adjusts the configuration.
func Broadcaster(t testing.TB, mod func(*broadcaster.Config)) (*broadcaster.Server, string) {
	t.Helper()
	cfg := broadcaster.Config{Addr: "127.0.0.1:0", Backend: natslog.Config{DataDir: t.TempDir()}, Heartbeat: time.Second}
	if mod != nil {
		mod(&cfg)
	}
	s, err := broadcaster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("broadcaster shutdown: %v", err)
		}
	})
	select {
	case <-s.Ready():
	case <-time.After(testutil.HangLimit):
		t.Fatalf("broadcaster not ready after %v", testutil.HangLimit)
	}
	return s, "http://" + s.Addr()
}
