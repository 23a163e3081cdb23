package events

import (
	"errors"
	"strconv"
)

// ErrMalformedID is returned by ParseEventID for a string that is not of the
// form "<epoch>-<seq>".
var ErrMalformedID = errors.New("malformed event ID: want <epoch>-<seq>")

// maxIDLength bounds what ParseEventID looks at: two uint64s and a dash.
const maxIDLength = 20 + 1 + 20

// EventID identifies an event on the stream: Seq is the JetStream stream
// sequence, Epoch identifies the stream instance, so that an ID from a stream
// that was deleted and created again is recognised as foreign.
type EventID struct {
	Epoch uint64
	Seq   uint64
}

// ParseEventID parses "<epoch>-<seq>", both unsigned decimal integers.
func ParseEventID(s string) (EventID, error) {
	if len(s) > maxIDLength {
		return EventID{}, ErrMalformedID
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '-' {
			continue
		}
		epoch, ok1 := parseUint(s[:i])
		seq, ok2 := parseUint(s[i+1:])
		if !ok1 || !ok2 {
			return EventID{}, ErrMalformedID
		}
		return EventID{Epoch: epoch, Seq: seq}, nil
	}
	return EventID{}, ErrMalformedID
}

// parseUint accepts only ASCII digits (no sign, no spaces, no underscores).
func parseUint(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// String formats the ID as "<epoch>-<seq>".
func (id EventID) String() string {
	return string(id.AppendTo(make([]byte, 0, maxIDLength)))
}

// AppendTo appends the formatted ID to dst.
func (id EventID) AppendTo(dst []byte) []byte {
	dst = strconv.AppendUint(dst, id.Epoch, 10)
	dst = append(dst, '-')
	return strconv.AppendUint(dst, id.Seq, 10)
}

// IsZero reports whether id is the zero EventID.
func (id EventID) IsZero() bool { return id == EventID{} }
