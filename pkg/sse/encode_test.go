package sse

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestAppendEvent(t *testing.T) {
	tests := []struct {
		name string
		ev   Event
		want string
	}{
		{"empty data", Event{}, "data:\n\n"},
		{"data only", Event{Data: []byte("hello")}, "data: hello\n\n"},
		{"all fields", Event{ID: "1-2", Type: "revoke", Data: []byte(`{"a":1}`), Retry: 1500 * time.Millisecond},
			"id: 1-2\nevent: revoke\nretry: 1500\ndata: {\"a\":1}\n\n"},
		{"LF lines", Event{Data: []byte("a\nb")}, "data: a\ndata: b\n\n"},
		{"CR lines", Event{Data: []byte("a\rb")}, "data: a\ndata: b\n\n"},
		{"CRLF lines", Event{Data: []byte("a\r\nb")}, "data: a\ndata: b\n\n"},
		{"LFCR is two line ends", Event{Data: []byte("a\n\rb")}, "data: a\ndata:\ndata: b\n\n"},
		{"trailing LF keeps an empty line", Event{Data: []byte("a\n")}, "data: a\ndata:\n\n"},
		{"only CRLF", Event{Data: []byte("\r\n")}, "data:\ndata:\n\n"},
		{"leading space survives", Event{ID: " x", Data: []byte(" y")}, "id:  x\ndata:  y\n\n"},
		{"colon in data", Event{Data: []byte("a: b")}, "data: a: b\n\n"},
		{"retry under a millisecond", Event{Retry: time.Microsecond}, "retry: 1\ndata:\n\n"},
		{"negative retry omitted", Event{Retry: -time.Second}, "data:\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendEvent([]byte("prefix|"), tt.ev)
			if err != nil {
				t.Fatalf("AppendEvent: %v", err)
			}
			if want := "prefix|" + tt.want; string(got) != want {
				t.Errorf("AppendEvent = %q, want %q", got, want)
			}
			var buf bytes.Buffer
			if err := WriteEvent(&buf, tt.ev); err != nil {
				t.Fatalf("WriteEvent: %v", err)
			}
			if buf.String() != tt.want {
				t.Errorf("WriteEvent wrote %q, want %q", buf.String(), tt.want)
			}
		})
	}
}

func TestAppendEventInvalidField(t *testing.T) {
	tests := []struct {
		name string
		ev   Event
	}{
		{"CR in id", Event{ID: "a\rb"}},
		{"LF in id", Event{ID: "a\nb"}},
		{"NUL in id", Event{ID: "a\x00b"}},
		{"CR in type", Event{Type: "a\r"}},
		{"LF in type", Event{Type: "\nb"}},
		{"NUL in type", Event{Type: "\x00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := AppendEvent(dst, tt.ev)
			if !errors.Is(err, ErrInvalidField) {
				t.Fatalf("err = %v, want ErrInvalidField", err)
			}
			if string(got) != "keep" {
				t.Errorf("dst changed to %q", got)
			}
			if err := WriteEvent(&bytes.Buffer{}, tt.ev); !errors.Is(err, ErrInvalidField) {
				t.Errorf("WriteEvent err = %v, want ErrInvalidField", err)
			}
		})
	}
}

func TestAppendEventAllocs(t *testing.T) {
	ev := Event{ID: "17-42", Type: "revoke", Data: []byte("{\"jti\":\"x\"}\nsecond line\r\nthird"), Retry: time.Second}
	buf := make([]byte, 0, 512)
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		buf, err = AppendEvent(buf[:0], ev)
		if err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("AppendEvent allocated %v times per run, want 0", allocs)
	}
}

func TestWriteEventError(t *testing.T) {
	boom := errors.New("boom")
	err := WriteEvent(errWriter{boom}, Event{Data: []byte("x")})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want it to wrap %v", err, boom)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

func TestAppendComment(t *testing.T) {
	tests := []struct {
		text, want string
	}{
		{"", ":\n"},
		{"ping", ": ping\n"},
		{"a\nb", ": a\n: b\n"},
		{"a\r\nb\rc", ": a\n: b\n: c\n"},
		{"a\n", ": a\n:\n"},
		{"\n\n", ":\n:\n:\n"},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.text, "\n", `\n`), func(t *testing.T) {
			if got := string(AppendComment(nil, tt.text)); got != tt.want {
				t.Errorf("AppendComment(%q) = %q, want %q", tt.text, got, tt.want)
			}
			// A comment decodes to nothing, whatever it contains.
			d := NewDecoder(strings.NewReader(string(AppendComment(nil, tt.text)) + "data: x\n\n"))
			ev, err := d.Next()
			if err != nil || string(ev.Data) != "x" {
				t.Errorf("after comment: Next = %+v, %v", ev, err)
			}
		})
	}
}

func TestAppendRetry(t *testing.T) {
	tests := []struct {
		d       time.Duration
		want    string
		decoded time.Duration
	}{
		{10 * time.Millisecond, "retry: 10\n\n", 10 * time.Millisecond},
		{3 * time.Second, "retry: 3000\n\n", 3 * time.Second},
		{1500 * time.Microsecond, "retry: 1\n\n", time.Millisecond},
		{time.Nanosecond, "retry: 1\n\n", time.Millisecond},
		{0, "retry: 0\n\n", 0},
		{-time.Second, "retry: 0\n\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.d.String(), func(t *testing.T) {
			got := string(AppendRetry(nil, tt.d))
			if got != tt.want {
				t.Fatalf("AppendRetry(%v) = %q, want %q", tt.d, got, tt.want)
			}
			d := NewDecoder(strings.NewReader(got))
			if ev, err := d.Next(); err == nil {
				t.Fatalf("a retry frame dispatched %+v", ev)
			}
			if r, ok := d.Retry(); !ok || r != tt.decoded {
				t.Errorf("decoded retry = %v, %v; want %v, true", r, ok, tt.decoded)
			}
		})
	}
}
