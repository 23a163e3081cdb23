package sse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/testutil"
)

// fastBackoff keeps reconnection tests quick.
var fastBackoff = []ClientOption{WithBackoff(10*time.Millisecond, 50*time.Millisecond), WithAuthBackoff(20 * time.Millisecond)}

// seenRequest is what a scripted server saw of one request.
type seenRequest struct {
	n              int
	at             time.Time
	lastEventID    string
	hasLastEventID bool
	header         http.Header
}

// scriptServer answers request n with handlers[n], and every later request
// with the last handler. It reports each request on the returned channel.
func scriptServer(t *testing.T, handlers ...http.HandlerFunc) (url string, requests <-chan seenRequest) {
	t.Helper()
	seen := make(chan seenRequest, 100)
	var count atomic.Int64
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		n := int(count.Add(1) - 1)
		_, has := r.Header["Last-Event-Id"]
		select {
		case seen <- seenRequest{n: n, at: time.Now(), lastEventID: r.Header.Get("Last-Event-ID"), hasLastEventID: has, header: r.Header.Clone()}:
		default: // the test stopped looking
		}
		handlers[min(n, len(handlers)-1)](w, r)
	})
	return srv.URL, seen
}

// sendEvents streams events (raw frames) and then ends the response.
func sendEvents(frames ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := Start(w, r)
		if err != nil {
			return
		}
		for _, f := range frames {
			if s.SendRaw([]byte(f)) != nil {
				return
			}
		}
	}
}

// holdOpen streams frames and keeps the stream open until the client leaves.
func holdOpen(frames ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sendEvents(frames...)(w, r)
		<-r.Context().Done()
	}
}

func status(code int, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
	}
}

// refusedURL is the address of a port nothing listens on, reserved for the
// test, so that connecting to it fails at once.
func refusedURL(t *testing.T) string {
	t.Helper()
	return "http://" + testutil.FreeAddr(t) + "/events"
}

type disconnect struct {
	url string
	err error
}

// runner runs a Client in the background for one test.
type runner struct {
	c           *Client
	events      chan Event
	connects    chan string
	disconnects chan disconnect
	cancel      context.CancelFunc
	done        chan struct{}
	err         error
}

// startClient runs a Client on urls; Run is cancelled, and awaited, when the
// test ends. handle, when not nil, replaces the default handler, which
// forwards events to r.events.
func startClient(t *testing.T, urls []string, handle func(Event) error, opts ...ClientOption) *runner {
	t.Helper()
	r := &runner{
		events:      make(chan Event, 100),
		connects:    make(chan string, 100),
		disconnects: make(chan disconnect, 100),
		done:        make(chan struct{}),
	}
	opts = append([]ClientOption{
		WithConnectHook(func(u string) {
			select {
			case r.connects <- u:
			default:
			}
		}),
		WithDisconnectHook(func(u string, err error) {
			select {
			case r.disconnects <- disconnect{u, err}:
			default:
			}
		}),
	}, opts...)
	c, err := NewClient(urls, opts...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	r.c = c
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	if handle == nil {
		handle = func(ev Event) error {
			select {
			case r.events <- ev:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	go func() {
		defer close(r.done)
		r.err = c.Run(ctx, handle)
	}()
	t.Cleanup(func() {
		cancel()
		_ = r.wait(t)
	})
	return r
}

// wait returns Run's error, failing the test if Run hangs.
func (r *runner) wait(t *testing.T) error {
	t.Helper()
	timer := time.NewTimer(testutil.HangLimit)
	defer timer.Stop()
	select {
	case <-r.done:
		return r.err
	case <-timer.C:
		t.Fatalf("Run did not return within %v", testutil.HangLimit)
		return nil
	}
}

func TestClientReceivesEvents(t *testing.T) {
	url, requests := scriptServer(t, holdOpen(
		"id: 1\nevent: revoke\ndata: a\n\n",
		": comment\n",
		"data: b\ndata: c\n\n",
	))
	r := startClient(t, []string{url}, nil, fastBackoff...)
	if got := recv(t, r.connects, "connect hook"); got != url {
		t.Errorf("connect hook got %q, want %q", got, url)
	}
	req := recv(t, requests, "request")
	if req.header.Get("Accept") != "text/event-stream" || req.header.Get("Cache-Control") != "no-cache" || req.hasLastEventID {
		t.Errorf("request headers %v", req.header)
	}
	want := []Event{{ID: "1", Type: "revoke", Data: []byte("a")}, msg("1", "b\nc")}
	for i, w := range want {
		if got := recv(t, r.events, "event"); !eventEqual(got, w) {
			t.Errorf("event %d = %s, want %s", i, fmtEvents([]Event{got}), fmtEvents([]Event{w}))
		}
	}
	if id := r.c.LastEventID(); id != "1" {
		t.Errorf("LastEventID = %q, want 1", id)
	}
}

func TestClientResumesWithLastEventID(t *testing.T) {
	url, requests := scriptServer(t,
		sendEvents("id: 1\ndata: a\n\n", "id: 2\ndata: b\n\n"),
		// No id: the event keeps ID 2. Then an empty id resets it.
		sendEvents("data: c\n\n", "id\ndata: d\n\n"),
		holdOpen("data: e\n\n"),
	)
	r := startClient(t, []string{url}, nil, append(fastBackoff, WithLastEventID("0"))...)
	for i, want := range []struct {
		id  string
		has bool
	}{{"0", true}, {"2", true}, {"", false}} {
		req := recv(t, requests, fmt.Sprintf("request %d", i))
		if req.lastEventID != want.id || req.hasLastEventID != want.has {
			t.Errorf("request %d: Last-Event-ID %q (sent: %v), want %q (sent: %v)", i, req.lastEventID, req.hasLastEventID, want.id, want.has)
		}
	}
	for i, want := range []Event{msg("1", "a"), msg("2", "b"), msg("2", "c"), msg("", "d"), msg("", "e")} {
		if got := recv(t, r.events, "event"); !eventEqual(got, want) {
			t.Errorf("event %d = %s, want %s", i, fmtEvents([]Event{got}), fmtEvents([]Event{want}))
		}
	}
	d := recv(t, r.disconnects, "disconnect hook")
	if !errors.Is(d.err, io.EOF) {
		t.Errorf("stream end reported as %v, want io.EOF", d.err)
	}
}

// TestClientUnsendableLastEventID: an ID net/http cannot put in a header
// must not stop the client from reconnecting.
func TestClientUnsendableLastEventID(t *testing.T) {
	url, requests := scriptServer(t,
		sendEvents("id: bad\x01id\ndata: a\n\n"),
		holdOpen("data: b\n\n"),
	)
	r := startClient(t, []string{url}, nil, fastBackoff...)
	recv(t, requests, "first request")
	if req := recv(t, requests, "reconnection"); req.hasLastEventID {
		t.Errorf("sent Last-Event-ID %q", req.lastEventID)
	}
	for _, want := range []string{"a", "b"} {
		if ev := recv(t, r.events, "event"); string(ev.Data) != want {
			t.Errorf("event data %q, want %q", ev.Data, want)
		}
	}
}

func TestClientRotates(t *testing.T) {
	tests := []struct {
		name    string
		badURL  func(t *testing.T) string
		wantErr func(error) bool
	}{
		{
			name:    "connection refused",
			badURL:  refusedURL,
			wantErr: func(err error) bool { var se *StatusError; return err != nil && !errors.As(err, &se) },
		},
		{
			name: "503",
			badURL: func(t *testing.T) string {
				u, _ := scriptServer(t, status(http.StatusServiceUnavailable))
				return u
			},
			wantErr: func(err error) bool {
				var se *StatusError
				return errors.As(err, &se) && se.StatusCode == http.StatusServiceUnavailable
			},
		},
		{
			name: "200 that is not an event stream",
			badURL: func(t *testing.T) string {
				u, _ := scriptServer(t, status(http.StatusOK, "Content-Type", "text/html"))
				return u
			},
			wantErr: func(err error) bool { return errors.Is(err, ErrUnexpectedContentType) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := tt.badURL(t)
			good, _ := scriptServer(t, holdOpen("data: ok\n\n"))
			r := startClient(t, []string{bad, good}, nil, append(fastBackoff, withStartIndex(0))...)
			d := recv(t, r.disconnects, "disconnect hook")
			if d.url != bad || !tt.wantErr(d.err) {
				t.Errorf("disconnect hook got (%q, %v)", d.url, d.err)
			}
			if got := recv(t, r.connects, "connect hook"); got != good {
				t.Errorf("connected to %q, want %q", got, good)
			}
			if ev := recv(t, r.events, "event"); string(ev.Data) != "ok" {
				t.Errorf("event %s", fmtEvents([]Event{ev}))
			}
		})
	}
}

func TestClientHonoursServerRetry(t *testing.T) {
	url, requests := scriptServer(t,
		sendEvents("retry: 10\n\n", "data: a\n\n"),
		holdOpen("data: b\n\n"),
	)
	// Without the server's retry the client would wait half an hour at
	// least: far beyond the hang limit of recv, so that waiting fails.
	r := startClient(t, []string{url}, nil, WithBackoff(time.Hour, time.Hour))
	recv(t, requests, "first request")
	recv(t, requests, "reconnection after the server's retry time")
	for _, want := range []string{"a", "b"} {
		if ev := recv(t, r.events, "event"); string(ev.Data) != want {
			t.Errorf("event data %q, want %q", ev.Data, want)
		}
	}
}

func TestClientHonoursRetryAfter(t *testing.T) {
	url, requests := scriptServer(t,
		status(http.StatusTooManyRequests, "Retry-After", "1"),
		holdOpen("data: a\n\n"),
	)
	startClient(t, []string{url}, nil, fastBackoff...)
	first := recv(t, requests, "first request")
	second := recv(t, requests, "second request")
	if gap := second.at.Sub(first.at); gap < 900*time.Millisecond {
		t.Errorf("reconnected after %v despite Retry-After: 1", gap)
	}
}

func TestClientNoContentStops(t *testing.T) {
	url, requests := scriptServer(t, sendEvents("id: 1\ndata: a\n\n"), status(http.StatusNoContent))
	r := startClient(t, []string{url}, nil, fastBackoff...)
	recv(t, r.events, "event")
	err := r.wait(t)
	if !errors.Is(err, ErrNoContent) {
		t.Fatalf("Run returned %v, want ErrNoContent", err)
	}
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusNoContent || se.URL != url {
		t.Errorf("Run returned %#v, want a StatusError for %s", err, url)
	}
	if n := len(requests); n != 2 {
		t.Errorf("server saw %d requests, want 2", n)
	}
}

func TestClientRejectedKeepsRetrying(t *testing.T) {
	tests := []struct {
		code      int
		wantAuth  bool
		wantInLog string
	}{
		{http.StatusUnauthorized, true, "check the credentials"},
		{http.StatusForbidden, true, "check the credentials"},
		{http.StatusNotFound, false, "rejected the request"},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.code), func(t *testing.T) {
			url, requests := scriptServer(t, status(tt.code), status(tt.code), holdOpen("data: finally\n\n"))
			var logs testutil.SyncBuffer
			logger := slog.New(slog.NewTextHandler(&logs, nil))
			r := startClient(t, []string{url}, nil, append(fastBackoff, WithLogger(logger))...)
			for i := range 2 {
				d := recv(t, r.disconnects, "disconnect hook")
				var se *StatusError
				if !errors.As(d.err, &se) || se.StatusCode != tt.code || se.URL != url {
					t.Fatalf("disconnect %d: err = %v, want a StatusError %d", i, d.err, tt.code)
				}
				if errors.Is(d.err, ErrUnauthorized) != tt.wantAuth {
					t.Errorf("errors.Is(%v, ErrUnauthorized) = %v", d.err, !tt.wantAuth)
				}
			}
			if ev := recv(t, r.events, "event after the rejections"); string(ev.Data) != "finally" {
				t.Errorf("event data %q", ev.Data)
			}
			if n := len(requests); n != 3 {
				t.Errorf("server saw %d requests, want 3", n)
			}
			out := logs.String()
			if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, tt.wantInLog) ||
				!strings.Contains(out, url) || !strings.Contains(out, fmt.Sprintf("status=%d", tt.code)) {
				t.Errorf("log does not name the URL and status at ERROR level with %q:\n%s", tt.wantInLog, out)
			}
		})
	}
}

func TestClientCancel(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		opts    []ClientOption
		// ready waits until Run is where the test wants to cancel it.
		ready func(t *testing.T, r *runner, requests <-chan seenRequest)
	}{
		{
			name:    "mid-stream",
			handler: holdOpen("data: a\n\n"),
			ready:   func(t *testing.T, r *runner, _ <-chan seenRequest) { recv(t, r.events, "event") },
		},
		{
			name:    "mid-backoff",
			handler: status(http.StatusServiceUnavailable),
			// a backoff far beyond the hang limit of wait: a Run that
			// waited it out instead of returning at once fails
			opts: []ClientOption{WithBackoff(time.Hour, time.Hour)},
			ready: func(t *testing.T, r *runner, _ <-chan seenRequest) {
				recv(t, r.disconnects, "failed attempt")
			},
		},
		{
			name:    "waiting for headers",
			handler: func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
			ready:   func(t *testing.T, _ *runner, requests <-chan seenRequest) { recv(t, requests, "request") },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, requests := scriptServer(t, tt.handler)
			r := startClient(t, []string{url}, nil, tt.opts...)
			tt.ready(t, r, requests)
			r.cancel()
			if err := r.wait(t); !errors.Is(err, context.Canceled) {
				t.Fatalf("Run returned %v, want context.Canceled", err)
			}
		})
	}
}

func TestClientHandleErrorStops(t *testing.T) {
	url, _ := scriptServer(t, holdOpen("id: 1\ndata: ok\n\n", "id: 2\ndata: bad\n\n"))
	boom := errors.New("cannot apply")
	r := startClient(t, []string{url}, func(ev Event) error {
		if string(ev.Data) == "bad" {
			return boom
		}
		return nil
	}, fastBackoff...)
	if err := r.wait(t); !errors.Is(err, boom) {
		t.Fatalf("Run returned %v, want it to wrap %v", err, boom)
	}
	if id := r.c.LastEventID(); id != "1" {
		t.Errorf("LastEventID = %q, want 1: the failed event must not count", id)
	}
}

func TestClientActivityHook(t *testing.T) {
	url, _ := scriptServer(t, func(w http.ResponseWriter, r *http.Request) {
		s, err := Start(w, r)
		if err != nil {
			return
		}
		_ = s.Serve(r.Context(), nil, 20*time.Millisecond)
	})
	activity := make(chan time.Time, 100)
	startClient(t, []string{url}, nil, WithActivityHook(func(at time.Time) {
		select {
		case activity <- at:
		default:
		}
	}))
	// Heartbeats alone, no events: the hook fires for each.
	for range 3 {
		recv(t, activity, "activity")
	}
}

func TestClientIdleTimeout(t *testing.T) {
	url, requests := scriptServer(t, holdOpen(), holdOpen("data: a\n\n"))
	r := startClient(t, []string{url}, nil, append(fastBackoff, WithIdleTimeout(100*time.Millisecond))...)
	recv(t, requests, "first request")
	if d := recv(t, r.disconnects, "idle disconnect"); !errors.Is(d.err, ErrIdleTimeout) {
		t.Errorf("disconnect err = %v, want ErrIdleTimeout", d.err)
	}
	recv(t, requests, "reconnection")
	recv(t, r.events, "event")
}

// TestClientIdleTimeoutIgnoresSlowHandler: while the handler works the
// stream is not read, and that silence is not the server's.
func TestClientIdleTimeoutIgnoresSlowHandler(t *testing.T) {
	frames := make(chan []byte, 2)
	url, requests := scriptServer(t, func(w http.ResponseWriter, r *http.Request) {
		s, err := Start(w, r)
		if err != nil {
			return
		}
		_ = s.Serve(r.Context(), frames, 20*time.Millisecond)
	})
	// pings every 20 ms: a loaded machine may delay one by far more than
	// that, but not by the idle timeout
	const idle = time.Second
	handled := make(chan Event, 10) // far more than this test sends
	r := startClient(t, []string{url}, func(ev Event) error {
		if string(ev.Data) == "slow" {
			<-time.After(2 * idle) // stands for work, not for synchronisation
		}
		handled <- ev
		return nil
	}, append(fastBackoff, WithIdleTimeout(idle))...)
	frames <- []byte("data: slow\n\n")
	recv(t, handled, "slow event")
	frames <- []byte("data: next\n\n")
	if ev := recv(t, handled, "next event"); string(ev.Data) != "next" {
		t.Errorf("event data %q", ev.Data)
	}
	if n := len(r.disconnects); n != 0 {
		t.Errorf("%d disconnects, first: %v", n, (<-r.disconnects).err)
	}
	if n := len(requests); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
}

func TestClientRequestHook(t *testing.T) {
	url, requests := scriptServer(t, holdOpen())
	startClient(t, []string{url}, nil, WithRequestHook(func(r *http.Request) {
		r.Header.Set("Authorization", "Bearer t0k3n")
	}))
	if got := recv(t, requests, "request").header.Get("Authorization"); got != "Bearer t0k3n" {
		t.Errorf("Authorization = %q", got)
	}
}

func TestClientRunTwice(t *testing.T) {
	url, _ := scriptServer(t, holdOpen())
	r := startClient(t, []string{url}, nil)
	recv(t, r.connects, "connect")
	if err := r.c.Run(context.Background(), func(Event) error { return nil }); !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("second Run returned %v, want ErrAlreadyRunning", err)
	}
}

func TestNewClientValidatesURLs(t *testing.T) {
	tests := []struct {
		name string
		urls []string
		ok   bool
	}{
		{"none", nil, false},
		{"http", []string{"http://127.0.0.1:8080/events"}, true},
		{"https and http", []string{"https://a.example/events", "HTTP://b.example"}, true},
		{"relative", []string{"/events"}, false},
		{"no host", []string{"http:///events"}, false},
		{"other scheme", []string{"ws://a.example/events"}, false},
		{"unparsable", []string{"http://a b/"}, false},
		{"one bad among good", []string{"http://a.example", "ftp://b.example"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClient(tt.urls)
			if tt.ok != (err == nil) || tt.ok != (c != nil) {
				t.Fatalf("NewClient(%q) = %v, %v", tt.urls, c, err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidURL) {
				t.Errorf("err = %v, want ErrInvalidURL", err)
			}
		})
	}
	if _, err := NewClient([]string{"http://user:secret@a b/"}); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("error %v leaks the password", err)
	}
}

func TestBackoff(t *testing.T) {
	c, err := NewClient([]string{"http://a.example"}, WithBackoff(100*time.Millisecond, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		st       runState
		min, max time.Duration
	}{
		{"first", runState{}, 50 * time.Millisecond, 100 * time.Millisecond},
		{"doubles", runState{failures: 2}, 200 * time.Millisecond, 400 * time.Millisecond},
		{"capped", runState{failures: 10}, 500 * time.Millisecond, time.Second},
		{"huge exponent", runState{failures: 62}, 500 * time.Millisecond, time.Second},
		{"server retry is the base", runState{retry: 10 * time.Millisecond, hasRetry: true}, 5 * time.Millisecond, 10 * time.Millisecond},
		{"server retry above the cap", runState{retry: time.Minute, hasRetry: true, failures: 3}, 30 * time.Second, time.Minute},
		{"server retry zero", runState{hasRetry: true, failures: 5}, 0, 0},
	}
	huge, err := NewClient([]string{"http://a.example"}, WithBackoff(time.Second, time.Duration(math.MaxInt64)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 50 {
				if d := huge.backoff(&tt.st); d <= 0 && !tt.st.hasRetry {
					t.Fatalf("with no cap: backoff = %v", d)
				}
				if d := c.backoff(&tt.st); d < tt.min || d > tt.max {
					t.Fatalf("backoff = %v, want within [%v, %v]", d, tt.min, tt.max)
				}
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{" 10 ", 10 * time.Second},
		{"-1", 0},
		{"soon", 0},
		{time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := parseRetryAfter(tt.in); got != tt.want {
				t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
	future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	if got := parseRetryAfter(future); got < 58*time.Minute || got > time.Hour {
		t.Errorf("parseRetryAfter(%q) = %v, want about an hour", future, got)
	}
}
