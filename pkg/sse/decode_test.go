package sse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/revocast/revocast/internal/testutil"
)

// decoded is everything a Decoder reports over a whole stream.
type decoded struct {
	events   []Event
	err      error
	lastID   string
	retry    time.Duration
	hasRetry bool
}

// maxDecodedEvents bounds decodeAll's loop; no test stream has more.
const maxDecodedEvents = 100_000

func decodeAll(r io.Reader, opts ...DecoderOption) decoded {
	d := NewDecoder(r, opts...)
	var out decoded
	for range maxDecodedEvents {
		ev, err := d.Next()
		if err != nil {
			out.err = err
			break
		}
		out.events = append(out.events, ev)
	}
	out.lastID = d.LastEventID()
	out.retry, out.hasRetry = d.Retry()
	return out
}

func msg(id, data string) Event { return Event{ID: id, Type: "message", Data: []byte(data)} }

func typed(typ, data string) Event { return Event{Type: typ, Data: []byte(data)} }

// conformanceCases follow the WHATWG "interpreting an event stream" rules,
// one rule (or one example from the standard) per row.
var conformanceCases = []struct {
	name     string
	in       string
	want     []Event
	lastID   string
	retry    time.Duration
	hasRetry bool
}{
	{name: "empty stream", in: ""},
	{name: "spec example: data:test and data: test are the same",
		in: "data:test\n\ndata: test\n\n", want: []Event{msg("", "test"), msg("", "test")}},
	{name: "spec example: data with no colon, and a cut-off block",
		in: "data\n\ndata\ndata\n\ndata:", want: []Event{msg("", ""), msg("", "\n")}},
	{name: "spec example: data lines joined with LF",
		in: "data: YHOO\ndata: +2\ndata: 10\n\n", want: []Event{msg("", "YHOO\n+2\n10")}},
	{name: "spec example: ids, id reset and an event cut off at EOF",
		in:   ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n",
		want: []Event{msg("1", "first event"), msg("", "second event")}},
	{name: "spec example: event types",
		in:   "event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n",
		want: []Event{typed("add", "73857293"), typed("remove", "2153"), typed("add", "113411")}},
	{name: "spec example: comment-only stream dispatches nothing",
		in: ": test stream\n\n"},

	{name: "BOM ignored at start", in: "\xEF\xBB\xBFdata: a\n\n", want: []Event{msg("", "a")}},
	{name: "only one BOM ignored", in: "\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n", want: []Event{msg("", "b")}},
	{name: "BOM after start is not ignored", in: "data: a\n\n\xEF\xBB\xBFdata: b\n\n", want: []Event{msg("", "a")}},
	{name: "partial BOM is part of the line", in: "\xEF\xBBdata: a\n\ndata: b\n\n", want: []Event{msg("", "b")}},
	{name: "BOM alone", in: "\xEF\xBB\xBF"},

	{name: "CR line ends", in: "data: a\rdata: b\r\r", want: []Event{msg("", "a\nb")}},
	{name: "CRLF line ends", in: "data: a\r\ndata: b\r\n\r\n", want: []Event{msg("", "a\nb")}},
	{name: "mixed line ends", in: "data: a\ndata: b\r\ndata: c\r\r\ndata: d\n\r", want: []Event{msg("", "a\nb\nc"), msg("", "d")}},
	{name: "LF CR is two line ends", in: "data: a\n\r", want: []Event{msg("", "a")}},
	{name: "CR CR LF is two line ends", in: "data: a\r\r\n", want: []Event{msg("", "a")}},

	{name: "comments ignored", in: ":c1\ndata: a\n: c2\n:\n\n", want: []Event{msg("", "a")}},
	{name: "comment does not dispatch", in: "data: a\n: not blank\ndata: b\n\n", want: []Event{msg("", "a\nb")}},
	{name: "field with no colon has empty value", in: "event\ndata\n\n", want: []Event{msg("", "")}},
	{name: "one leading space stripped", in: "data: x\n\n", want: []Event{msg("", "x")}},
	{name: "only one leading space stripped", in: "data:  x \n\n", want: []Event{msg("", " x ")}},
	{name: "tab not stripped", in: "data:\tx\n\n", want: []Event{msg("", "\tx")}},
	{name: "colon in value kept", in: "data: a: b\n\n", want: []Event{msg("", "a: b")}},
	{name: "NUL and invalid UTF-8 in data kept", in: "data: a\x00\xff\n\n", want: []Event{msg("", "a\x00\xff")}},

	{name: "event sets the type", in: "event: revoke\ndata: x\n\n", want: []Event{typed("revoke", "x")}},
	{name: "empty event is message", in: "event:\ndata: x\n\n", want: []Event{msg("", "x")}},
	{name: "last event field wins", in: "event: a\nevent: b\ndata: x\n\n", want: []Event{typed("b", "x")}},
	{name: "type reset after dispatch", in: "event: a\ndata: 1\n\ndata: 2\n\n", want: []Event{typed("a", "1"), msg("", "2")}},
	{name: "type reset by a block without data", in: "event: a\n\ndata: x\n\n", want: []Event{msg("", "x")}},

	{name: "id persists across events", in: "id: 1\ndata: a\n\ndata: b\n\n",
		want: []Event{msg("1", "a"), msg("1", "b")}, lastID: "1"},
	{name: "empty id resets", in: "id: 1\ndata: a\n\nid:\ndata: b\n\n", want: []Event{msg("1", "a"), msg("", "b")}},
	{name: "id with NUL ignored", in: "id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n",
		want: []Event{msg("1", "a"), msg("1", "b")}, lastID: "1"},
	{name: "id space stripped once", in: "id:  x\ndata: a\n\n", want: []Event{msg(" x", "a")}, lastID: " x"},
	{name: "id committed by a blank line without data", in: "id: 7\n\n", lastID: "7"},
	{name: "id without a blank line not committed", in: "id: 1\ndata: a\n\nid: 2\ndata: b\n",
		want: []Event{msg("1", "a")}, lastID: "1"},
	{name: "id applies to the event it is in, wherever it is", in: "data: a\nid: 5\n\n", want: []Event{msg("5", "a")}, lastID: "5"},

	{name: "retry digits", in: "retry: 2500\n", retry: 2500 * time.Millisecond, hasRetry: true},
	{name: "retry zero", in: "retry: 0\n", retry: 0, hasRetry: true},
	{name: "retry not all digits ignored",
		in:    "retry: 7\nretry: 12a\nretry: -5\nretry: 1.5\nretry:  10\nretry: +3\nretry:\nretry\n",
		retry: 7 * time.Millisecond, hasRetry: true},
	{name: "retry huge saturates", in: "retry: 99999999999999999999999\n", retry: time.Duration(math.MaxInt64), hasRetry: true},
	{name: "retry in an event frame", in: "retry: 5\ndata: x\n\n", want: []Event{msg("", "x")}, retry: 5 * time.Millisecond, hasRetry: true},

	{name: "unknown and case-mismatched fields ignored", in: "foo: bar\nDATA: x\ndata : y\nId: 3\ndata: z\n\n", want: []Event{msg("", "z")}},
	{name: "blank lines without data dispatch nothing", in: "\n\n\r\n\r"},
	{name: "empty data value dispatches empty data", in: "data:\n\n", want: []Event{msg("", "")}},
	{name: "only the last LF stripped", in: "data: a\ndata:\n\n", want: []Event{msg("", "a\n")}},
	{name: "cut off after a data line", in: "data: a\n"},
	{name: "cut off inside a line", in: "data: a\n\ndata: b", want: []Event{msg("", "a")}},
	{name: "cut off after a CR", in: "data: a\r", want: nil},
}

func TestDecoderConformance(t *testing.T) {
	for _, tt := range conformanceCases {
		t.Run(tt.name, func(t *testing.T) {
			got := decodeAll(strings.NewReader(tt.in))
			if !errors.Is(got.err, io.EOF) {
				t.Fatalf("stream ended with %v, want io.EOF", got.err)
			}
			assertEvents(t, got.events, tt.want)
			if got.lastID != tt.lastID {
				t.Errorf("LastEventID = %q, want %q", got.lastID, tt.lastID)
			}
			if got.retry != tt.retry || got.hasRetry != tt.hasRetry {
				t.Errorf("Retry = %v, %v; want %v, %v", got.retry, got.hasRetry, tt.retry, tt.hasRetry)
			}
		})
	}
}

func assertEvents(t *testing.T, got, want []Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events %s, want %d %s", len(got), fmtEvents(got), len(want), fmtEvents(want))
	}
	for i := range got {
		if !eventEqual(got[i], want[i]) {
			t.Errorf("event %d = %s, want %s", i, fmtEvents(got[i:i+1]), fmtEvents(want[i:i+1]))
		}
	}
}

func eventEqual(a, b Event) bool {
	return a.ID == b.ID && a.Type == b.Type && bytes.Equal(a.Data, b.Data) && a.Retry == b.Retry
}

func fmtEvents(evs []Event) string {
	var sb strings.Builder
	sb.WriteByte('[')
	for i, ev := range evs {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "{id=%q type=%q data=%q}", ev.ID, ev.Type, ev.Data)
	}
	sb.WriteByte(']')
	return sb.String()
}

// chunkingInputs adds streams whose CRLFs make split points interesting.
var chunkingInputs = []string{
	"data: a\r\ndata: b\r\n\r\nid: 1\r\ndata: c\r\n\r\n",
	"data: a\r\rdata: b\r\n\r\n\r\r\n\rdata: c\r\r",
	"\xEF\xBB\xBFdata: a\r\n\r\n",
	"retry: 10\r\nevent: e\r\ndata\r\n\r\n:\r\r",
}

// chunkings are the ways a stream can arrive; every one must decode the same.
var chunkings = []struct {
	name string
	wrap func(string) io.Reader
}{
	{"one byte at a time", func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) }},
	{"data with EOF", func(s string) io.Reader { return iotest.DataErrReader(strings.NewReader(s)) }},
	{"half bytes", func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) }},
	{"random chunks", func(s string) io.Reader { return newChunkReader([]byte(s), uint64(len(s))) }},
}

func TestDecoderChunking(t *testing.T) {
	inputs := append([]string(nil), chunkingInputs...)
	for _, tt := range conformanceCases {
		inputs = append(inputs, tt.in)
	}
	for i, in := range inputs {
		t.Run(fmt.Sprintf("input%d", i), func(t *testing.T) {
			want := decodeAll(strings.NewReader(in))
			check := func(how string, got decoded) {
				t.Helper()
				if !errors.Is(got.err, want.err) || got.lastID != want.lastID || got.retry != want.retry || got.hasRetry != want.hasRetry {
					t.Fatalf("%s: end state (%v, %q, %v, %v), want (%v, %q, %v, %v)", how,
						got.err, got.lastID, got.retry, got.hasRetry, want.err, want.lastID, want.retry, want.hasRetry)
				}
				if len(got.events) != len(want.events) {
					t.Fatalf("%s: %s, want %s", how, fmtEvents(got.events), fmtEvents(want.events))
				}
				for j := range got.events {
					if !eventEqual(got.events[j], want.events[j]) {
						t.Fatalf("%s: %s, want %s", how, fmtEvents(got.events), fmtEvents(want.events))
					}
				}
			}
			for _, c := range chunkings {
				check(c.name, decodeAll(c.wrap(in)))
			}
			for cut := 1; cut < len(in); cut++ {
				r := io.MultiReader(strings.NewReader(in[:cut]), strings.NewReader(in[cut:]))
				check(fmt.Sprintf("split at %d", cut), decodeAll(r))
			}
		})
	}
}

// chunkReader returns its data in pseudo-random chunk sizes (1 to 16 bytes),
// reproducible from the seed.
type chunkReader struct {
	data []byte
	rng  *rand.Rand
}

func newChunkReader(data []byte, seed uint64) *chunkReader {
	return &chunkReader{data: data, rng: rand.New(rand.NewPCG(seed, 0x5eed))}
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(1+r.rng.IntN(16), len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// TestDecoderDoesNotWaitAfterCR: a frame ended by CR must be dispatched
// without waiting to see whether an LF follows, or a live stream would hold
// every CR-terminated event until the next one arrives.
func TestDecoderDoesNotWaitAfterCR(t *testing.T) {
	pr, pw := io.Pipe()
	t.Cleanup(func() { _ = pw.Close() })
	d := NewDecoder(pr)
	type result struct {
		ev  Event
		err error
	}
	results := make(chan result, 3)
	go func() {
		for range 3 {
			ev, err := d.Next()
			results <- result{ev, err}
			if err != nil {
				return
			}
		}
	}()
	next := func(write string) result {
		t.Helper()
		if _, err := pw.Write([]byte(write)); err != nil {
			t.Fatalf("write: %v", err)
		}
		return recv(t, results, "event")
	}
	if r := next("data: a\r\r"); r.err != nil || string(r.ev.Data) != "a" {
		t.Fatalf("first: %+v", r)
	}
	// The LF completes the CRLF begun above: it must not be a blank line.
	if r := next("\ndata: b\r\n\r\n"); r.err != nil || string(r.ev.Data) != "b" {
		t.Fatalf("second: %+v", r)
	}
	_ = pw.Close()
	if r := recv(t, results, "EOF"); !errors.Is(r.err, io.EOF) {
		t.Fatalf("after close: %+v, want io.EOF", r)
	}
}

func TestDecoderLongLines(t *testing.T) {
	big := strings.Repeat("x", 100_000) // far beyond the read buffer
	tests := []struct {
		name    string
		in      string
		max     int
		want    []Event
		tooLong bool
	}{
		{name: "line at the limit", in: "data: 1234\n\n", max: 10, want: []Event{msg("", "1234")}},
		{name: "line over the limit", in: "data: a\n\ndata: 12345\n\ndata: b\n\n", max: 10, want: []Event{msg("", "a")}, tooLong: true},
		{name: "comment over the limit", in: ": 123456789\n", max: 10, tooLong: true},
		{name: "unterminated line over the limit", in: "data: 12345", max: 10, tooLong: true},
		{name: "CRLF not counted", in: "data: 1234\r\n\r\n", max: 10, want: []Event{msg("", "1234")}},
		{name: "line longer than the buffer", in: "data: " + big + "\r\ndata: " + big + "\r\n\r\n", want: []Event{msg("", big+"\n"+big)}},
		{name: "long line over a small limit", in: "data: " + big + "\n\n", max: 50_000, tooLong: true},
		{name: "default limit", in: "data: " + strings.Repeat("y", DefaultMaxLineLength) + "\n\n", tooLong: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []struct {
				name string
				r    io.Reader
			}{
				{"whole", strings.NewReader(tt.in)},
				{"chunked", iotest.HalfReader(strings.NewReader(tt.in))},
			} {
				d := NewDecoder(c.r, WithMaxLineLength(tt.max))
				var got []Event
				var err error
				for range maxDecodedEvents {
					var ev Event
					if ev, err = d.Next(); err != nil {
						break
					}
					got = append(got, ev)
				}
				assertEvents(t, got, tt.want)
				if tt.tooLong != errors.Is(err, ErrLineTooLong) {
					t.Fatalf("%s: err = %v, want ErrLineTooLong: %v", c.name, err, tt.tooLong)
				}
				if _, again := d.Next(); !errors.Is(again, err) {
					t.Errorf("%s: error not sticky: %v then %v", c.name, err, again)
				}
			}
		})
	}
}

func TestDecoderReadError(t *testing.T) {
	boom := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader("data: a\n\ndata: b\n"), iotest.ErrReader(boom))
	d := NewDecoder(r)
	if ev, err := d.Next(); err != nil || string(ev.Data) != "a" {
		t.Fatalf("first Next = %+v, %v", ev, err)
	}
	_, err := d.Next()
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want it to wrap %v", err, boom)
	}
	if _, again := d.Next(); !errors.Is(again, err) {
		t.Errorf("error not sticky: %v then %v", err, again)
	}
}

func TestDecoderDataIsCopied(t *testing.T) {
	d := NewDecoder(strings.NewReader("data: first\n\ndata: other\n\n"))
	first, err := d.Next()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Next(); err != nil {
		t.Fatal(err)
	}
	if string(first.Data) != "first" {
		t.Errorf("first event's data changed to %q", first.Data)
	}
}

func TestDecoderInitialLastEventID(t *testing.T) {
	got := decodeAll(strings.NewReader("data: a\n\nid: 9\ndata: b\n\n"), WithInitialLastEventID("5"))
	assertEvents(t, got.events, []Event{msg("5", "a"), msg("9", "b")})
	if got.lastID != "9" {
		t.Errorf("LastEventID = %q, want 9", got.lastID)
	}
}

// recv waits for one value with a generous deadline: a timeout means the
// behaviour under test did not happen at all.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(testutil.HangLimit)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}
