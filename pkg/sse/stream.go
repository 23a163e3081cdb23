package sse

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// DefaultWriteTimeout bounds each write of a Stream. A subscriber that stops
// reading (a dead peer, a full TCP window) would otherwise block its writer
// for as long as the kernel keeps the connection.
const DefaultWriteTimeout = 10 * time.Second

// ErrSourceClosed is returned by Stream.Serve when its frame channel is
// closed: the producer has nothing more to send on this stream.
var ErrSourceClosed = errors.New("sse: frame source closed")

// pingFrame is the heartbeat: a comment that every reader ignores.
var pingFrame = []byte(": ping\n")

type streamConfig struct {
	writeTimeout time.Duration
	retry        time.Duration
	header       [][2]string
}

// StreamOption configures Start.
type StreamOption func(*streamConfig)

// WithWriteTimeout sets how long one write (and its flush) may take before it
// fails; d <= 0 disables the deadline. Default: DefaultWriteTimeout.
func WithWriteTimeout(d time.Duration) StreamOption {
	return func(c *streamConfig) { c.writeTimeout = d }
}

// WithRetry makes Start send a retry field first, so that readers reconnect
// after d instead of their own default. d <= 0 sends none.
func WithRetry(d time.Duration) StreamOption {
	return func(c *streamConfig) { c.retry = d }
}

// WithStreamHeader sets an extra response header (for example for CORS). It
// is applied after the standard SSE headers, so it can also replace one of
// them; a later call for the same key replaces an earlier one.
func WithStreamHeader(key, value string) StreamOption {
	return func(c *streamConfig) { c.header = append(c.header, [2]string{key, value}) }
}

// Stream writes server-sent events to one HTTP response. Each write has its
// own deadline and is flushed at once, since an event that sits in a buffer is
// an event the subscriber does not have.
//
// A Stream is not safe for concurrent use: one goroutine writes (Serve counts
// as that goroutine while it runs).
type Stream struct {
	w          http.ResponseWriter
	rc         *http.ResponseController
	timeout    time.Duration
	noDeadline bool // the ResponseWriter cannot set deadlines: stop asking
	buf        []byte
}

// Start writes the response headers of an event stream (Content-Type:
// text/event-stream, Cache-Control: no-cache, X-Accel-Buffering: no so that
// nginx does not buffer it, and Connection: keep-alive for HTTP/1.x only,
// since HTTP/2 forbids connection-specific headers), status 200, the retry
// field when WithRetry is given, and flushes, so that the client sees the
// stream open before the first event.
//
// The status line is gone once Start has been called: an error (for example a
// ResponseWriter that cannot flush, wrapping http.ErrNotSupported) can only
// be logged, and the handler should return.
func Start(w http.ResponseWriter, r *http.Request, opts ...StreamOption) (*Stream, error) {
	cfg := streamConfig{writeTimeout: DefaultWriteTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Del("Content-Length")
	if r != nil && r.ProtoMajor == 1 {
		h.Set("Connection", "keep-alive")
	}
	for _, kv := range cfg.header {
		h.Set(kv[0], kv[1])
	}
	w.WriteHeader(http.StatusOK)

	s := &Stream{w: w, rc: http.NewResponseController(w), timeout: cfg.writeTimeout}
	if cfg.retry > 0 {
		s.buf = AppendRetry(s.buf[:0], cfg.retry)
	}
	if err := s.write(s.buf); err != nil {
		return nil, fmt.Errorf("sse: start stream: %w", err)
	}
	return s, nil
}

// Send encodes ev into the Stream's reused buffer and writes it. An invalid
// event (ErrInvalidField) is refused before anything is written.
func (s *Stream) Send(ev Event) error {
	buf, err := AppendEvent(s.buf[:0], ev)
	if err != nil {
		return err
	}
	s.buf = buf
	return s.write(buf)
}

// SendRaw writes already encoded frames as they are, so that an event encoded
// once with AppendEvent can go to any number of streams. frame must hold
// complete frames: a partial one would merge with the next write.
func (s *Stream) SendRaw(frame []byte) error {
	return s.write(frame)
}

// Comment writes text as comment lines (see AppendComment).
func (s *Stream) Comment(text string) error {
	s.buf = AppendComment(s.buf[:0], text)
	return s.write(s.buf)
}

// Serve writes every frame received from frames (as SendRaw does) until one
// of these happens, and returns:
//   - ctx is done: ctx.Err(), not wrapped. Pass a context that ends both when
//     the client goes away (r.Context()) and when the server shuts down (see
//     http.Server.RegisterOnShutdown): Shutdown waits for handlers to return
//     and would otherwise wait for ever on an open stream.
//   - frames is closed: ErrSourceClosed.
//   - a write fails: that error, wrapped.
//
// When heartbeat > 0 and that long has passed since the last write, Serve
// writes a ": ping" comment, which keeps proxies and load balancers from
// closing a quiet stream and lets the client tell a quiet stream from a dead
// one. A burst of frames postpones the heartbeat instead of being interrupted
// by it.
func (s *Stream) Serve(ctx context.Context, frames <-chan []byte, heartbeat time.Duration) error {
	var tick <-chan time.Time
	var timer *time.Timer
	if heartbeat > 0 {
		timer = time.NewTimer(heartbeat)
		defer timer.Stop()
		tick = timer.C
	}
	for {
		// A done ctx wins over a ready frame: after shutdown there is no
		// point in writing more.
		if err := ctx.Err(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case frame, ok := <-frames:
			if !ok {
				return ErrSourceClosed
			}
			if err := s.write(frame); err != nil {
				return err
			}
		case <-tick:
			if err := s.write(pingFrame); err != nil {
				return err
			}
		}
		if timer != nil {
			// Since Go 1.23 Reset also drops a tick that fired meanwhile, so
			// the next ping is a full heartbeat after this write.
			timer.Reset(heartbeat)
		}
	}
}

// write sends p (which may be empty: then it only flushes) under the write
// deadline and clears the deadline afterwards. Clearing matters: an expired
// deadline left on an idle stream would make net/http fail the final write it
// does when the handler returns, cutting the response short.
func (s *Stream) write(p []byte) error {
	deadline := s.timeout > 0 && !s.noDeadline
	if deadline {
		if err := s.rc.SetWriteDeadline(time.Now().Add(s.timeout)); err != nil {
			if !errors.Is(err, http.ErrNotSupported) {
				return fmt.Errorf("sse: set write deadline: %w", err)
			}
			s.noDeadline = true
			deadline = false
		}
	}
	if len(p) > 0 {
		if _, err := s.w.Write(p); err != nil {
			return fmt.Errorf("sse: write: %w", err)
		}
	}
	if err := s.rc.Flush(); err != nil {
		return fmt.Errorf("sse: flush: %w", err)
	}
	if deadline {
		if err := s.rc.SetWriteDeadline(time.Time{}); err != nil {
			return fmt.Errorf("sse: clear write deadline: %w", err)
		}
	}
	return nil
}
