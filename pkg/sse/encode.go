package sse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Event is one server-sent event.
type Event struct {
	// ID is written as an "id:" field when non-empty. A parsed event carries
	// the stream's last event ID at dispatch time, so an event without an id
	// field repeats the previous one.
	ID string
	// Type is the "event:" field. Writing "" omits the field; a parsed event
	// with no type is reported as "message", as EventSource does.
	Type string
	// Data is written as one "data:" line per line of Data (split on CR, LF
	// and CRLF). A parsed event's data lines are joined with "\n".
	Data []byte
	// Retry, when positive, is written as a "retry:" field in milliseconds.
	// The Decoder leaves it zero and reports retry with Decoder.Retry, since
	// the field is a property of the stream rather than of one event.
	Retry time.Duration
}

// ErrInvalidField is returned when an event's ID or Type contains CR or LF,
// which would end the field early and let the rest be read as other fields,
// or NUL, which makes a reader ignore the id. Both fields are refused for all
// three so that what is written is always read back unchanged.
var ErrInvalidField = errors.New("sse: field contains CR, LF or NUL")

const invalidFieldChars = "\r\n\x00"

// AppendEvent appends ev as one frame to dst: "id:", "event:" and "retry:"
// when set, then at least one "data:" line and a blank line that ends the
// frame. An empty Data still gets one empty "data:" line because EventSource
// never dispatches an event without one.
//
// It does not allocate when dst has room. On error, which wraps
// ErrInvalidField, dst is returned unchanged.
func AppendEvent(dst []byte, ev Event) ([]byte, error) {
	if strings.ContainsAny(ev.ID, invalidFieldChars) {
		return dst, fmt.Errorf("sse: event id %q: %w", ev.ID, ErrInvalidField)
	}
	if strings.ContainsAny(ev.Type, invalidFieldChars) {
		return dst, fmt.Errorf("sse: event type %q: %w", ev.Type, ErrInvalidField)
	}
	if ev.ID != "" {
		dst = append(dst, "id: "...)
		dst = append(dst, ev.ID...)
		dst = append(dst, '\n')
	}
	if ev.Type != "" {
		dst = append(dst, "event: "...)
		dst = append(dst, ev.Type...)
		dst = append(dst, '\n')
	}
	if ev.Retry > 0 {
		dst = appendRetryField(dst, ev.Retry)
	}
	data := ev.Data
	for {
		i := indexLineEnd(data)
		if i < 0 {
			dst = appendDataLine(dst, data)
			break
		}
		dst = appendDataLine(dst, data[:i])
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	return append(dst, '\n'), nil
}

// appendDataLine leaves out the space after the colon for an empty line:
// "data:" reads back the same and is what the standard's examples use.
func appendDataLine(dst, line []byte) []byte {
	if len(line) == 0 {
		return append(dst, "data:\n"...)
	}
	dst = append(dst, "data: "...)
	dst = append(dst, line...)
	return append(dst, '\n')
}

// indexLineEnd returns the index of the first CR or LF in b, or -1. Two
// IndexByte scans beat a byte loop on long data.
func indexLineEnd(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	head := b
	if i >= 0 {
		head = b[:i]
	}
	if j := bytes.IndexByte(head, '\r'); j >= 0 {
		return j
	}
	return i
}

// WriteEvent encodes ev and writes it to w with a single Write, so that a
// frame is never split between two writes by this package.
func WriteEvent(w io.Writer, ev Event) error {
	buf, err := AppendEvent(make([]byte, 0, len(ev.ID)+len(ev.Type)+len(ev.Data)+64), ev)
	if err != nil {
		return err
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("sse: write event: %w", err)
	}
	return nil
}

// AppendComment appends text as comment lines, ": text\n", one per line of
// text (split on CR, LF and CRLF); empty text gives ":\n". Readers ignore
// comments, which makes them the heartbeat that keeps proxies from closing an
// idle stream. No blank line follows: a comment does not end a frame.
func AppendComment(dst []byte, text string) []byte {
	for {
		i := strings.IndexAny(text, "\r\n")
		line := text
		if i >= 0 {
			line = text[:i]
		}
		if line == "" {
			dst = append(dst, ":\n"...)
		} else {
			dst = append(dst, ": "...)
			dst = append(dst, line...)
			dst = append(dst, '\n')
		}
		if i < 0 {
			return dst
		}
		if text[i] == '\r' && i+1 < len(text) && text[i+1] == '\n' {
			i++
		}
		text = text[i+1:]
	}
}

// AppendRetry appends a frame of its own, "retry: <ms>\n\n", that sets the
// reader's reconnection delay. The blank line closes the frame, so the retry
// field can never merge with the fields of a frame written after it, and a
// reader dispatches nothing for it (a frame without data is not an event).
// d is written in whole milliseconds; a positive d under a millisecond is
// written as 1 so that it does not read as "reconnect at once", and a
// negative d as 0.
func AppendRetry(dst []byte, d time.Duration) []byte {
	dst = appendRetryField(dst, d)
	return append(dst, '\n')
}

func appendRetryField(dst []byte, d time.Duration) []byte {
	ms := d.Milliseconds()
	switch {
	case d < 0:
		ms = 0
	case ms == 0 && d > 0:
		ms = 1
	}
	dst = append(dst, "retry: "...)
	dst = strconv.AppendInt(dst, ms, 10)
	return append(dst, '\n')
}
