package sse

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func FuzzDecoder(f *testing.F) {
	for _, tt := range conformanceCases {
		f.Add([]byte(tt.in), uint64(len(tt.in)))
	}
	for i, in := range chunkingInputs {
		f.Add([]byte(in), uint64(i))
	}
	f.Add([]byte("id: a\x00b\r\nretry: 12\r\n\r\n: c\rdata\r\r\n"), uint64(7))
	f.Fuzz(func(t *testing.T, in []byte, seed uint64) {
		for _, limit := range []int{0, 64} {
			want := decodeAll(bytes.NewReader(in), WithMaxLineLength(limit))
			if !errors.Is(want.err, io.EOF) && !errors.Is(want.err, ErrLineTooLong) {
				t.Fatalf("limit %d: in-memory stream ended with %v", limit, want.err)
			}
			for _, ev := range want.events {
				if strings.ContainsAny(ev.ID, "\x00\r\n") || strings.ContainsAny(ev.Type, "\r\n") ||
					ev.Type == "" || bytes.IndexByte(ev.Data, '\r') >= 0 || ev.Retry != 0 {
					t.Fatalf("limit %d: impossible event %s", limit, fmtEvents([]Event{ev}))
				}
			}
			if strings.ContainsAny(want.lastID, "\x00\r\n") {
				t.Fatalf("limit %d: LastEventID %q", limit, want.lastID)
			}
			readers := map[string]io.Reader{
				"one byte":      iotest.OneByteReader(bytes.NewReader(in)),
				"random chunks": newChunkReader(in, seed),
			}
			for how, r := range readers {
				got := decodeAll(r, WithMaxLineLength(limit))
				if !sameDecoded(got, want) {
					t.Fatalf("limit %d, %s: %s %v %q, want %s %v %q", limit, how,
						fmtEvents(got.events), got.err, got.lastID, fmtEvents(want.events), want.err, want.lastID)
				}
			}
		}
	})
}

func sameDecoded(a, b decoded) bool {
	if len(a.events) != len(b.events) || a.lastID != b.lastID || a.retry != b.retry || a.hasRetry != b.hasRetry {
		return false
	}
	if errors.Is(a.err, io.EOF) != errors.Is(b.err, io.EOF) || errors.Is(a.err, ErrLineTooLong) != errors.Is(b.err, ErrLineTooLong) {
		return false
	}
	for i := range a.events {
		if !eventEqual(a.events[i], b.events[i]) {
			return false
		}
	}
	return true
}

func FuzzEncodeDecode(f *testing.F) {
	f.Add("1-2", "revoke", []byte(`{"jti":"abc"}`), uint16(0))
	f.Add("", "", []byte(""), uint16(10))
	f.Add(" lead", " t", []byte("a\r\nb\rc\nd\n"), uint16(1))
	f.Add("bad\nid", "ok", []byte("x"), uint16(0))
	f.Add("ok", "bad\x00", []byte("x"), uint16(0))
	f.Add("\xEF\xBB\xBF", ":", []byte("\xEF\xBB\xBFdata: x\n\n"), uint16(65535))
	f.Fuzz(func(t *testing.T, id, typ string, data []byte, retryMs uint16) {
		ev := Event{ID: id, Type: typ, Data: data, Retry: time.Duration(retryMs) * time.Millisecond}
		buf, err := AppendEvent(nil, ev)
		if strings.ContainsAny(id, "\r\n\x00") || strings.ContainsAny(typ, "\r\n\x00") {
			if !errors.Is(err, ErrInvalidField) || len(buf) != 0 {
				t.Fatalf("AppendEvent(%+v) = %q, %v; want ErrInvalidField", ev, buf, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("AppendEvent(%+v): %v", ev, err)
		}
		got := decodeAll(bytes.NewReader(buf))
		wantType := typ
		if wantType == "" {
			wantType = "message"
		}
		// Line ends in data are normalised to LF on the wire.
		wantData := strings.ReplaceAll(strings.ReplaceAll(string(data), "\r\n", "\n"), "\r", "\n")
		want := []Event{{ID: id, Type: wantType, Data: []byte(wantData)}}
		if !errors.Is(got.err, io.EOF) || len(got.events) != 1 || !eventEqual(got.events[0], want[0]) {
			t.Fatalf("frame %q decoded to %s (%v), want %s", buf, fmtEvents(got.events), got.err, fmtEvents(want))
		}
		if got.hasRetry != (retryMs > 0) || (retryMs > 0 && got.retry != ev.Retry) {
			t.Fatalf("frame %q: retry %v, %v; want %v", buf, got.retry, got.hasRetry, ev.Retry)
		}
	})
}
