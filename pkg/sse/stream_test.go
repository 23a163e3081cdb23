package sse

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/testutil"
)

// testHTTPClient bounds every request, body included, so a test that waits
// for bytes that never come fails instead of hanging.
var testHTTPClient = &http.Client{Timeout: testutil.HangLimit}

// newServer starts an httptest server on 127.0.0.1 that is torn down after
// the test. Handlers must return when r.Context() is done: the cleanup
// closes client connections first so that Close does not wait for ever.
func newServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv
}

// openStream GETs url and returns the response, whose body is closed after
// the test.
func openStream(t *testing.T, url string) *http.Response {
	t.Helper()
	resp, err := testHTTPClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", url, resp.StatusCode)
	}
	return resp
}

// readExactly reads len(want) bytes from r and compares them.
func readExactly(t *testing.T, r io.Reader, want string) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatalf("reading %q: got %q, %v", want, got, err)
	}
	if string(got) != want {
		t.Fatalf("read %q, want %q", got, want)
	}
}

func TestStartHeaders(t *testing.T) {
	tests := []struct {
		name      string
		protoMaj  int
		opts      []StreamOption
		header    map[string]string // "" means absent
		wantBody  string
		wantFlush bool
	}{
		{
			name: "HTTP/1.1", protoMaj: 1,
			header: map[string]string{
				"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
				"X-Accel-Buffering": "no", "Connection": "keep-alive",
			},
		},
		{
			name: "HTTP/2 has no Connection header", protoMaj: 2,
			header: map[string]string{"Content-Type": "text/event-stream", "Connection": ""},
		},
		{
			name: "retry and extra headers", protoMaj: 1,
			opts: []StreamOption{
				WithRetry(1500 * time.Millisecond),
				WithStreamHeader("Access-Control-Allow-Origin", "*"),
				WithStreamHeader("Cache-Control", "no-store"),
			},
			header:   map[string]string{"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"},
			wantBody: "retry: 1500\n\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/events", nil)
			r.ProtoMajor = tt.protoMaj
			w := httptest.NewRecorder()
			// The recorder cannot set deadlines: Start must tolerate that.
			s, err := Start(w, r, tt.opts...)
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			if w.Code != http.StatusOK || !w.Flushed {
				t.Errorf("code %d, flushed %v; want 200, true", w.Code, w.Flushed)
			}
			for k, v := range tt.header {
				if got := w.Header().Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if w.Body.String() != tt.wantBody {
				t.Errorf("body %q, want %q", w.Body.String(), tt.wantBody)
			}
			if err := s.Send(Event{Data: []byte("x")}); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if want := tt.wantBody + "data: x\n\n"; w.Body.String() != want {
				t.Errorf("body %q, want %q", w.Body.String(), want)
			}
		})
	}
}

// bareWriter is a ResponseWriter that can neither flush nor set deadlines.
type bareWriter struct {
	header http.Header
	body   bytes.Buffer
	err    error
}

func (w *bareWriter) Header() http.Header { return w.header }
func (w *bareWriter) WriteHeader(int)     {}
func (w *bareWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	return w.body.Write(p)
}

// flushWriter can flush but its writes may fail.
type flushWriter struct{ bareWriter }

func (w *flushWriter) Flush() {}

func TestStartWithoutFlusher(t *testing.T) {
	w := &bareWriter{header: http.Header{}}
	_, err := Start(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if !errors.Is(err, http.ErrNotSupported) {
		t.Fatalf("err = %v, want it to wrap http.ErrNotSupported", err)
	}
}

func TestStreamWriteErrors(t *testing.T) {
	w := &flushWriter{bareWriter{header: http.Header{}}}
	s, err := Start(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := s.Send(Event{ID: "bad\n"}); !errors.Is(err, ErrInvalidField) {
		t.Errorf("Send invalid: err = %v, want ErrInvalidField", err)
	}
	if w.body.Len() != 0 {
		t.Errorf("an invalid event wrote %q", w.body.String())
	}
	boom := errors.New("broken pipe")
	w.err = boom
	for name, write := range map[string]func() error{
		"Send":    func() error { return s.Send(Event{Data: []byte("x")}) },
		"SendRaw": func() error { return s.SendRaw([]byte("data: x\n\n")) },
		"Comment": func() error { return s.Comment("x") },
		"Serve": func() error {
			frames := make(chan []byte, 1)
			frames <- []byte("data: x\n\n")
			return s.Serve(context.Background(), frames, 0)
		},
	} {
		if err := write(); !errors.Is(err, boom) {
			t.Errorf("%s: err = %v, want it to wrap %v", name, err, boom)
		}
	}
}

func TestStreamOverHTTP(t *testing.T) {
	frame, err := AppendEvent(nil, Event{ID: "2", Data: []byte("raw")})
	if err != nil {
		t.Fatal(err)
	}
	frame, _ = AppendEvent(frame, Event{ID: "3", Type: "t", Data: []byte("raw\ntwo")})
	// The handler reports when its last write has returned: the client must
	// not hang up before then, or clearing the write deadline after the last
	// flush meets a closed connection.
	written := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		defer close(written)
		s, err := Start(w, r, WithRetry(50*time.Millisecond), WithWriteTimeout(time.Second))
		if err != nil {
			t.Errorf("Start: %v", err)
			return
		}
		if err := s.Send(Event{ID: "1", Type: "hello", Data: []byte("world")}); err != nil {
			t.Errorf("Send: %v", err)
		}
		if err := s.SendRaw(frame); err != nil {
			t.Errorf("SendRaw: %v", err)
		}
		if err := s.Comment("still here"); err != nil {
			t.Errorf("Comment: %v", err)
		}
	})
	resp := openStream(t, srv.URL)
	for k, v := range map[string]string{
		"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
	} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	readExactly(t, resp.Body, "retry: 50\n\nid: 1\nevent: hello\ndata: world\n\n"+string(frame)+": still here\n")
	select {
	case <-written:
	case <-time.After(testutil.HangLimit):
		t.Fatal("the handler's writes did not return")
	}
}

func TestServeHeartbeat(t *testing.T) {
	frames := make(chan []byte)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		s, err := Start(w, r)
		if err != nil {
			t.Errorf("Start: %v", err)
			return
		}
		_ = s.Serve(r.Context(), frames, 20*time.Millisecond)
	})
	resp := openStream(t, srv.URL)
	// Several pings in a row show that the timer is re-armed after each.
	readExactly(t, resp.Body, ": ping\n: ping\n: ping\n")
	// A frame goes out between pings, whole.
	go func() {
		select {
		case frames <- []byte("data: x\n\n"):
		case <-time.After(testutil.HangLimit):
		}
	}()
	d := NewDecoder(resp.Body)
	ev, err := d.Next()
	if err != nil || string(ev.Data) != "x" {
		t.Fatalf("Next = %+v, %v", ev, err)
	}
}

func TestServeReturns(t *testing.T) {
	tests := []struct {
		name string
		// end makes Serve return, given the handler's cancel, its frame
		// channel and the client's response.
		end     func(cancel context.CancelFunc, frames chan []byte, resp *http.Response)
		wantErr func(error) bool
	}{
		{
			name:    "context cancelled",
			end:     func(cancel context.CancelFunc, _ chan []byte, _ *http.Response) { cancel() },
			wantErr: func(err error) bool { return errors.Is(err, context.Canceled) },
		},
		{
			name: "frames closed",
			end: func(_ context.CancelFunc, frames chan []byte, resp *http.Response) {
				frames <- []byte("data: last\n\n")
				close(frames)
			},
			wantErr: func(err error) bool { return errors.Is(err, ErrSourceClosed) },
		},
		{
			name:    "client goes away",
			end:     func(_ context.CancelFunc, _ chan []byte, resp *http.Response) { _ = resp.Body.Close() },
			wantErr: func(err error) bool { return err != nil },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			frames := make(chan []byte, 1)
			result := make(chan error, 1)
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				s, err := Start(w, r)
				if err != nil {
					result <- err
					return
				}
				hctx, stop := context.WithCancel(r.Context())
				defer stop()
				defer context.AfterFunc(ctx, stop)()
				result <- s.Serve(hctx, frames, 20*time.Millisecond)
			})
			resp := openStream(t, srv.URL)
			readExactly(t, resp.Body, ": ping\n") // the stream is being served
			tt.end(cancel, frames, resp)
			if err := recv(t, result, "Serve to return"); !tt.wantErr(err) {
				t.Fatalf("Serve returned %v", err)
			}
		})
	}
}

// TestServeShutdown: a server shut down while a stream is open must not
// hang, provided the stream's context ends on shutdown.
func TestServeShutdown(t *testing.T) {
	shutdown, onShutdown := context.WithCancel(context.Background())
	t.Cleanup(onShutdown)
	result := make(chan error, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		defer context.AfterFunc(shutdown, cancel)()
		s, err := Start(w, r)
		if err != nil {
			result <- err
			return
		}
		result <- s.Serve(ctx, nil, 20*time.Millisecond)
	}))
	srv.Config.RegisterOnShutdown(onShutdown)
	srv.Start()
	t.Cleanup(srv.Close)

	resp := openStream(t, srv.URL)
	readExactly(t, resp.Body, ": ping\n")

	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
	defer cancel()
	if err := srv.Config.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := recv(t, result, "Serve to return"); !errors.Is(err, context.Canceled) {
		t.Errorf("Serve returned %v, want context.Canceled", err)
	}
	// The response ends cleanly: the final chunk was written.
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Errorf("reading to the end after shutdown: %v", err)
	}
}

// TestStreamWriteTimeout: a subscriber that stops reading must not block
// its writer for longer than the write timeout.
func TestStreamWriteTimeout(t *testing.T) {
	result := make(chan error, 1)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		s, err := Start(w, r, WithWriteTimeout(100*time.Millisecond))
		if err != nil {
			result <- err
			return
		}
		frame := bytes.Repeat([]byte("data: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"), 1024)
		frame = append(frame, '\n')
		// Bounded: far more than loopback socket buffers hold.
		for range 1024 {
			if err := s.SendRaw(frame); err != nil {
				result <- err
				return
			}
		}
		result <- nil
	})
	openStream(t, srv.URL) // and never read the body
	err := recv(t, result, "the write to time out")
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err = %v, want it to wrap os.ErrDeadlineExceeded", err)
	}
}
