package broadcaster_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/broadcaster"

	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/events"
)

// heldConn is what a raw client saw: the status line of the answer (empty
// when none came) and how long the server kept the connection open.
type heldConn struct {
	status string
	held   time.Duration
	closed bool // false: still open when the client gave up
	err    error
}

// holdOpen dials addr, writes head and then nothing more, and reads until
// the server closes the connection or bound passes.
func holdOpen(addr, head string, bound time.Duration) heldConn {
	start := time.Now()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return heldConn{err: err}
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, head); err != nil {
		return heldConn{err: err}
	}
	_ = conn.SetReadDeadline(start.Add(bound))
	var hc heldConn
	br := bufio.NewReader(conn)
	if line, err := br.ReadString('\n'); err == nil {
		hc.status = strings.TrimSpace(line)
	}
	_, err = io.Copy(io.Discard, br)
	hc.held = time.Since(start)
	var ne net.Error
	// io.Copy ends with nil at EOF; a reset is an error but a close too
	timedOut := errors.As(err, &ne) && ne.Timeout()
	hc.closed = !timedOut
	return hc
}

// slowBody announces a body it never sends.
func slowBody(method, path string, header ...string) string {
	var b strings.Builder
	b.WriteString(method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 200000\r\n")
	for i := 0; i+1 < len(header); i += 2 {
		b.WriteString(header[i] + ": " + header[i+1] + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// TestSlowClientsAreCut: clients that announce a body and send nothing, or
// never finish their headers, are closed within the configured read
// timeout, whether they are refused before authentication or their body is
// being read; many at once, over real sockets.
func TestSlowClientsAreCut(t *testing.T) {
	t.Parallel()
	a, _, _ := keys(t)
	short := func(c *broadcaster.Config) {
		c.ReadTimeout = 500 * time.Millisecond
		c.ReadHeaderTimeout = 500 * time.Millisecond
		c.MaxConnsPerAddr = -1
	}
	// refusals must close on their own, long before the read timeout
	withKeys, _ := startServer(t, func(c *broadcaster.Config) {
		c.Auth = a
		c.ReadTimeout = 10 * time.Minute
		c.MaxConnsPerAddr = -1
	})
	open, _ := startServer(t, short)
	const clients = 50
	// a hang limit, not a speed: the configured timeouts are half a second
	// or ten minutes (refusals: the bound must stay below that); a server
	// that holds the connections keeps them for ever
	const bound = testutil.HangLimit
	cases := []struct {
		name   string
		server *broadcaster.Server
		head   string
		status string // expected status line prefix; "" when any (or none)
	}{
		{"unauthenticated POST refused with 401", withKeys, slowBody("POST", "/v1/revocations"), "HTTP/1.1 401"},
		{"unknown key refused with 401", withKeys, slowBody("POST", "/v1/revocations", "Authorization", "Bearer rvc_nope"), "HTTP/1.1 401"},
		{"unauthenticated revoke form refused", withKeys, strings.Replace(slowBody("POST", "/v1/revoke"), "application/json", "application/x-www-form-urlencoded", 1), "HTTP/1.1 401"},
		{"unauthenticated lift refused with 401", withKeys, slowBody("DELETE", "/v1/revocations/"+strings.Repeat("ab", 16)), "HTTP/1.1 401"},
		{"unknown path", withKeys, slowBody("POST", "/nowhere"), ""},
		{"no credentials: body being read", open, slowBody("POST", "/v1/revocations"), ""},
		{"headers never finished", open, "POST /v1/revocations HTTP/1.1\r\nHost: 127.0.0.1\r\n", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			results := make([]heldConn, clients)
			var wg sync.WaitGroup
			for i := range clients {
				wg.Go(func() { results[i] = holdOpen(tc.server.Addr(), tc.head, bound) })
			}
			wg.Wait()
			for i, r := range results {
				if r.err != nil {
					t.Fatalf("client %d: %v", i, r.err)
				}
				if !r.closed {
					t.Fatalf("client %d: still open after %v (answer %q)", i, r.held.Round(time.Millisecond), r.status)
				}
				if tc.status != "" && !strings.HasPrefix(r.status, tc.status) {
					t.Fatalf("client %d: answer %q, want %s", i, r.status, tc.status)
				}
			}
		})
	}
}

// TestConnectionsPerAddressCap: one address holds at most MaxConnsPerAddr
// connections; one more is closed without an answer (EventSource retries a
// failed connection, but gives up on a 503); authorised streams do
// not count; a connection that closes frees its place.
func TestConnectionsPerAddressCap(t *testing.T) {
	t.Parallel()
	s, base := startServer(t, func(c *broadcaster.Config) { c.MaxConnsPerAddr = 3 })
	// streams, once authorised, are the subscriber cap's business
	for range 4 {
		subscribe(t, base+"/v1/events?last_event_id=now").until(t, events.TypeSynced)
	}
	var held []net.Conn
	testutil.Eventually(t, testutil.HangLimit, "the streams to stop counting", func() bool {
		// open connections that send nothing until three are held: the
		// streams' own connections may still count for a moment
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		return len(held) == 3
	})
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	over := holdOpen(s.Addr(), "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", testutil.HangLimit)
	if over.err != nil || !over.closed || over.status != "" {
		t.Fatalf("a fourth connection from the address: %+v, want it closed without an answer", over)
	}
	// one goes away: its place is free again
	held[0].Close()
	held = held[1:]
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	testutil.Eventually(t, testutil.HangLimit, "a freed place to be reusable", func() bool {
		resp, err := client.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// TestSlowClientLoad measures how long 1,000 slow unauthenticated clients
// (each announcing a 200,000-byte body and sending nothing) hold their
// connections, with the default limits. Run on purpose only:
//
//	REVOCAST_SLOW_LOAD=1 go test -run TestSlowClientLoad -v ./internal/broadcaster/
//
// REVOCAST_SLOW_LOAD_WINDOW (default 60s) bounds how long a client waits.
func TestSlowClientLoad(t *testing.T) {
	t.Parallel()
	if os.Getenv("REVOCAST_SLOW_LOAD") == "" {
		t.Skip("a measurement: set REVOCAST_SLOW_LOAD=1 to run it")
	}
	window := 60 * time.Second
	if v := os.Getenv("REVOCAST_SLOW_LOAD_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		window = d
	}
	a, _, _ := keys(t)
	modes := []struct {
		name string
		mod  func(*broadcaster.Config)
		head string
	}{
		{"credentials, refused with 401", func(c *broadcaster.Config) { c.Auth = a }, slowBody("POST", "/v1/revocations")},
		{"no credentials, body read", nil, slowBody("POST", "/v1/revocations")},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			s, _ := startServer(t, m.mod)
			const clients = 1000
			results := make([]heldConn, clients)
			var wg sync.WaitGroup
			for i := range clients {
				wg.Go(func() { results[i] = holdOpen(s.Addr(), m.head, window) })
			}
			wg.Wait()
			var held []time.Duration
			statuses := map[string]int{}
			open := 0
			for _, r := range results {
				if r.err != nil {
					statuses["error: "+r.err.Error()]++
					continue
				}
				statuses[r.status]++
				if !r.closed {
					open++
				}
				held = append(held, r.held)
			}
			slices.Sort(held)
			q := func(p float64) time.Duration {
				if len(held) == 0 {
					return 0
				}
				return held[min(len(held)-1, int(p*float64(len(held))))].Round(time.Millisecond)
			}
			t.Logf("%d clients, window %v: %d still open at the end; held min %v, p50 %v, p99 %v, max %v; answers %v",
				clients, window, open, q(0), q(0.5), q(0.99), q(1), statuses)
		})
	}
}
