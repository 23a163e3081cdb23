package broadcaster

import (
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/sse"
)

// frameWriter is what pump writes a stream with: sse.Stream over net/http,
// or rawStream on a hijacked HTTP/1.1 connection.
type frameWriter interface {
	Send(ev sse.Event) error
	SendRaw(frame []byte) error
	Comment(text string) error
}

// hijackStream takes the connection over and writes the response head
// itself: 200, the stream headers (docs/api.md) plus the CORS headers the
// handler set, and Connection: close, so that the body is the raw event
// stream up to the end of the connection (no chunked framing). Then the
// retry field and, when asked, a reset event.
func (s *Server) hijackStream(w http.ResponseWriter, reset bool) (net.Conn, error) {
	var head strings.Builder
	head.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\nConnection: close\r\n")
	for _, name := range []string{"Access-Control-Allow-Origin", "Vary"} {
		for _, v := range w.Header().Values(name) {
			head.WriteString(name + ": " + v + "\r\n")
		}
	}
	head.WriteString("Date: " + time.Now().UTC().Format(http.TimeFormat) + "\r\n\r\n")
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, err
	}
	body := sse.AppendRetry([]byte(head.String()), s.cfg.Retry)
	if reset {
		body, _ = sse.AppendEvent(body, sse.Event{Type: events.TypeReset, Data: resetData})
	}
	st := &rawStream{conn: conn, timeout: s.cfg.WriteTimeout}
	if err := st.SendRaw(body); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// rawStream writes frames to a hijacked connection, each with a write
// deadline. Moving the deadline costs a call into the runtime's poller, so
// it is moved only when less than three quarters of the timeout is left: a
// write always has between 3/4 and all of the timeout to complete.
type rawStream struct {
	conn     net.Conn
	timeout  time.Duration
	deadline time.Time
	buf      []byte
}

func (s *rawStream) SendRaw(p []byte) error {
	if s.timeout > 0 {
		if now := time.Now(); s.deadline.Sub(now) < s.timeout*3/4 {
			s.deadline = now.Add(s.timeout)
			if err := s.conn.SetWriteDeadline(s.deadline); err != nil {
				return err
			}
		}
	}
	_, err := s.conn.Write(p)
	return err
}

func (s *rawStream) Send(ev sse.Event) error {
	buf, err := sse.AppendEvent(s.buf[:0], ev)
	if err != nil {
		return err
	}
	err = s.SendRaw(buf)
	s.buf = buf[:0]
	if cap(s.buf) > 4096 {
		s.buf = nil // an idle stream keeps no big buffer
	}
	return err
}

func (s *rawStream) Comment(text string) error {
	s.buf = sse.AppendComment(s.buf[:0], text)
	return s.SendRaw(s.buf)
}
