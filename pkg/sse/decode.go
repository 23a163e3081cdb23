package sse

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// DefaultMaxLineLength is the longest line (without its line end) a Decoder
// accepts unless WithMaxLineLength says otherwise. It bounds the memory one
// line from a broken or hostile server can take.
const DefaultMaxLineLength = 1 << 20

// readBufferSize is the Decoder's bufio size. Typical lines fit and are parsed
// in place; longer ones are accumulated up to the line limit.
const readBufferSize = 8 << 10

// ErrLineTooLong is returned by Decoder.Next for a line longer than the
// limit. The stream cannot be resynchronised after it, so the Decoder returns
// it again on every later call.
var ErrLineTooLong = errors.New("sse: line too long")

type decoderConfig struct {
	maxLine int
	lastID  string
}

// DecoderOption configures NewDecoder.
type DecoderOption func(*decoderConfig)

// WithMaxLineLength sets the longest accepted line in bytes; n <= 0 means
// DefaultMaxLineLength.
func WithMaxLineLength(n int) DecoderOption {
	return func(c *decoderConfig) { c.maxLine = n }
}

// WithInitialLastEventID starts the Decoder with id as its last event ID
// instead of "". The standard starts every stream's parser from "", but
// browsers carry the ID over a reconnection, and so does Client: otherwise
// the first event without an id field on a new connection would reset the
// ID the client resumes from.
func WithInitialLastEventID(id string) DecoderOption {
	return func(c *decoderConfig) { c.lastID = id }
}

// Decoder parses an event stream as the WHATWG standard's "interpreting an
// event stream" section prescribes.
//
// A Decoder is not safe for concurrent use.
type Decoder struct {
	br      *bufio.Reader
	maxLine int

	started bool // the BOM check is done
	skipLF  bool // the last line ended with a CR that may be half of a CRLF
	long    []byte

	data     []byte
	typ      []byte
	typStr   string // last type returned, to avoid a string per event
	idBuf    string // the standard's "last event ID buffer"
	lastID   string // the event source's last event ID: idBuf as of the last blank line
	retry    time.Duration
	hasRetry bool

	err error // sticky: once the stream is over or broken, it stays so
}

// NewDecoder returns a Decoder that reads from r through its own buffer.
func NewDecoder(r io.Reader, opts ...DecoderOption) *Decoder {
	cfg := decoderConfig{maxLine: DefaultMaxLineLength}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.maxLine <= 0 {
		cfg.maxLine = DefaultMaxLineLength
	}
	return &Decoder{
		br:      bufio.NewReaderSize(r, readBufferSize),
		maxLine: cfg.maxLine,
		idBuf:   cfg.lastID,
		lastID:  cfg.lastID,
	}
}

// LastEventID returns the ID a client should send as Last-Event-ID when it
// reconnects: the last event ID buffer as it was at the last blank line (the
// standard commits it there even when no event is dispatched).
func (d *Decoder) LastEventID() string { return d.lastID }

// Retry returns the reconnection time of the last valid retry field, and
// whether there was one.
func (d *Decoder) Retry() (time.Duration, bool) { return d.retry, d.hasRetry }

// Next returns the next dispatched event. Data is a copy the caller may keep.
//
// At the end of the stream it returns io.EOF, and an event that was not ended
// by a blank line is discarded, as the standard requires. A line over the
// limit gives an error wrapping ErrLineTooLong; a read error is returned
// wrapped. Errors are sticky.
func (d *Decoder) Next() (Event, error) {
	if d.err != nil {
		return Event{}, d.err
	}
	if !d.started {
		d.started = true
		if err := d.skipBOM(); err != nil {
			return Event{}, d.fail(err)
		}
	}
	for {
		line, err := d.readLine()
		if err != nil {
			return Event{}, d.fail(err)
		}
		if len(line) > 0 {
			d.field(line)
			continue
		}
		d.lastID = d.idBuf
		if len(d.data) == 0 {
			d.typ = d.typ[:0]
			continue
		}
		return d.dispatch(), nil
	}
}

func (d *Decoder) fail(err error) error {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, ErrLineTooLong):
		d.err = err
	default:
		d.err = fmt.Errorf("sse: read stream: %w", err)
	}
	return d.err
}

func (d *Decoder) dispatch() Event {
	// Every data line appended a "\n"; the standard strips the last one.
	ev := Event{ID: d.lastID, Type: "message", Data: bytes.Clone(d.data[:len(d.data)-1])}
	if len(d.typ) > 0 {
		if string(d.typ) != d.typStr {
			d.typStr = string(d.typ)
		}
		ev.Type = d.typStr
	}
	d.data = d.data[:0]
	d.typ = d.typ[:0]
	return ev
}

func (d *Decoder) field(line []byte) {
	if line[0] == ':' {
		return // comment
	}
	name, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(name) {
	case "event":
		d.typ = append(d.typ[:0], value...)
	case "data":
		d.data = append(d.data, value...)
		d.data = append(d.data, '\n')
	case "id":
		// A NUL would let a server plant an ID the client cannot send back
		// in a header; the standard ignores such a field.
		if bytes.IndexByte(value, 0) < 0 && string(value) != d.idBuf {
			d.idBuf = string(value)
		}
	case "retry":
		if r, ok := parseRetry(value); ok {
			d.retry, d.hasRetry = r, true
		}
	}
}

// parseRetry accepts only ASCII digits, as the standard says; an empty value
// is ignored too, since it names no time. Values beyond what a Duration holds
// saturate rather than wrap.
func parseRetry(v []byte) (time.Duration, bool) {
	if len(v) == 0 {
		return 0, false
	}
	const maxMillis = math.MaxInt64 / int64(time.Millisecond)
	var ms int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		if ms <= maxMillis {
			ms = ms*10 + int64(c-'0')
		}
	}
	if ms > maxMillis {
		return time.Duration(math.MaxInt64), true
	}
	return time.Duration(ms) * time.Millisecond, true
}

var bom = [3]byte{0xEF, 0xBB, 0xBF}

// skipBOM drops one UTF-8 BOM at the start of the stream. It peeks one byte
// at a time so that it never waits for more bytes than the stream has sent
// unless they could still be a BOM, which cannot be a complete line anyway.
func (d *Decoder) skipBOM() error {
	for i := 1; i <= len(bom); i++ {
		b, err := d.br.Peek(i)
		if len(b) < i {
			return err
		}
		if b[i-1] != bom[i-1] {
			return nil
		}
	}
	_, _ = d.br.Discard(len(bom))
	return nil
}

// readLine returns the next line without its line end (CR, LF or CRLF). The
// line points into the bufio buffer or d.long and is valid until the next
// call. A CR that is the last buffered byte is remembered in skipLF rather
// than waited on, so a line ending in CR is delivered at once and an LF that
// arrives later in its own read is not taken for an empty line.
func (d *Decoder) readLine() ([]byte, error) {
	d.long = d.long[:0]
	for {
		if d.br.Buffered() == 0 {
			if _, err := d.br.Peek(1); err != nil {
				// An unterminated line at EOF is dropped: it cannot be the
				// blank line that would dispatch anything.
				return nil, err
			}
		}
		buf, _ := d.br.Peek(d.br.Buffered())
		if d.skipLF {
			d.skipLF = false
			if buf[0] == '\n' {
				_, _ = d.br.Discard(1)
				buf = buf[1:]
				if len(buf) == 0 {
					continue
				}
			}
		}
		i := indexLineEnd(buf)
		if i < 0 {
			if len(d.long)+len(buf) > d.maxLine {
				return nil, d.tooLong()
			}
			d.long = append(d.long, buf...)
			_, _ = d.br.Discard(len(buf))
			continue
		}
		n := i + 1
		if buf[i] == '\r' {
			switch {
			case i+1 == len(buf):
				d.skipLF = true
			case buf[i+1] == '\n':
				n++
			}
		}
		line := buf[:i]
		if len(d.long)+len(line) > d.maxLine {
			return nil, d.tooLong()
		}
		if len(d.long) > 0 {
			d.long = append(d.long, line...)
			line = d.long
		}
		_, _ = d.br.Discard(n)
		return line, nil
	}
}

func (d *Decoder) tooLong() error {
	return fmt.Errorf("sse: line longer than %d bytes: %w", d.maxLine, ErrLineTooLong)
}
