package jwtverify

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// checkUnambiguous refuses a token whose header or payload repeats a member
// name, at any depth. JSON leaves the meaning of {"sub":"a","sub":"b"} to
// each parser: golang-jwt keeps the last, another parser in the request
// path (a gateway, the upstream service) may keep the first, and then the
// denylist checks one subject while the service serves another. A token
// that is not three segments of base64url is left to the parser's errors.
func checkUnambiguous(raw string) error {
	header, rest, ok := strings.Cut(raw, ".")
	if !ok {
		return nil
	}
	payload, _, ok := strings.Cut(rest, ".")
	if !ok {
		return nil
	}
	for _, seg := range [...]struct{ name, data string }{{"header", header}, {"payload", payload}} {
		data, err := base64.RawURLEncoding.Strict().DecodeString(seg.data)
		if err != nil {
			return nil // the parser reports it
		}
		if err := repeatedMember(data); err != nil {
			return fmt.Errorf("%s: %w", seg.name, err)
		}
	}
	return nil
}

// repeatedMember walks a JSON document and reports the first object member
// name that occurs twice in one object (names compared after unescaping).
func repeatedMember(data []byte) error {
	type frame struct {
		names   map[string]struct{} // nil for an array
		wantKey bool                // the next string of this object is a name
	}
	var stack []frame
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].names != nil {
			stack[n-1].wantKey = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return nil // malformed JSON: the parser reports it
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, frame{names: map[string]struct{}{}, wantKey: true})
			case '[':
				stack = append(stack, frame{})
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].wantKey {
				f := &stack[n-1]
				if _, dup := f.names[v]; dup {
					return ErrRepeatedMember // the name is the sender's text: not echoed
				}
				f.names[v] = struct{}{}
				f.wantKey = false
				continue
			}
			valueDone()
		default:
			valueDone()
		}
	}
}
