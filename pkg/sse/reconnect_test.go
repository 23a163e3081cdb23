package sse

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/testutil"
)

// serveOn serves h on a new listener at addr ("127.0.0.1:0" for any port)
// until the test ends or the returned server is closed.
func serveOn(t *testing.T, addr string, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() {
		// Close waits for the handlers, which hold their streams open
		// while the client is connected: stop listening, drop them, then
		// close.
		srv.Listener.Close()
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv
}

// TestClientFollowsARestartWithinRetry: a server restarts; while it is
// down, connections are refused. However many attempts failed meanwhile,
// the client is back within about one retry: interval of the server's
// return, not after a backoff that grew while the server was away.
//
// The bound lies between the two, as far from one retry interval as it
// can be, for a loaded machine is slow to reconnect: half the shortest wait
// of a client whose backoff grew over the failed attempts.
func TestClientFollowsARestartWithinRetry(t *testing.T) {
	const (
		retry          = 200 * time.Millisecond
		failedAttempts = 10 // refused attempts while the server is down
		// the backoff after the last of them, had it grown: at least
		// retry·2^(failedAttempts-1), halved by the jitter (51.2 s)
		grown = retry << (failedAttempts - 2)
		bound = grown / 2
	)
	first := serveOn(t, "127.0.0.1:0", holdOpen("retry: 200\n\n", "id: 1\ndata: a\n\n"))
	addr := first.Listener.Addr().String()
	url := "http://" + addr + "/events"

	// A client that would back off for up to an hour if it let its
	// backoff grow.
	r := startClient(t, []string{url}, nil, WithBackoff(retry, time.Hour))
	recv(t, r.connects, "first connection")
	if ev := recv(t, r.events, "event"); string(ev.Data) != "a" {
		t.Fatalf("event %q", ev.Data)
	}

	// Stop listening first, so the client cannot reconnect in between,
	// then drop the stream.
	first.Listener.Close()
	first.CloseClientConnections()
	recv(t, r.disconnects, "the end of the first stream")
	for i := range failedAttempts {
		d := recvWithin(t, r.disconnects, testutil.HangLimit, "refused attempt")
		if d.err == nil || errors.Is(d.err, context.Canceled) {
			t.Fatalf("attempt %d while the server is down: %v", i+1, d.err)
		}
	}

	serveOn(t, addr, holdOpen("retry: 200\n\n", "id: 2\ndata: b\n\n"))
	back := time.Now()
	recvWithin(t, r.connects, bound, "reconnection after the restart")
	t.Logf("reconnected %v after the server was back (retry: %v)", time.Since(back), retry)
	if ev := recv(t, r.events, "event"); string(ev.Data) != "b" {
		t.Fatalf("event %q", ev.Data)
	}
}

// recvWithin is recv with a deadline of the caller's choice.
func recvWithin[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("no %s within %v", what, d)
		var zero T
		return zero
	}
}
