package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid is matched (errors.Is) by every validation and decoding error of
// this package; the concrete error is a *FieldError that names the field.
var ErrInvalid = errors.New("invalid revocation")

// FieldError says which field of a request is wrong and why. Field uses the
// JSON names, with a path for nested values ("claims.tenant",
// "revocations[3].sub"); it is empty when the body as a whole is at fault.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Problem
	}
	return e.Field + ": " + e.Problem
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// WithPrefix returns a copy of the error with its field prefixed, for errors
// inside a batch.
func (e *FieldError) WithPrefix(prefix string) *FieldError {
	f := prefix
	if e.Field != "" {
		f += "." + e.Field
	}
	return &FieldError{Field: f, Problem: e.Problem}
}

// Time is a point in time that decodes from RFC 3339 or from Unix seconds (an
// integer or a fraction) and encodes as RFC 3339 in UTC. The zero Time means
// "not set" and is omitted from JSON.
type Time struct{ time.Time }

// MarshalJSON encodes t as an RFC 3339 string with the precision it has.
func (t Time) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(time.RFC3339Nano)+2)
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}

// UnmarshalJSON accepts "2006-01-02T15:04:05Z07:00" or Unix seconds.
func (t *Time) UnmarshalJSON(data []byte) error {
	v, err := parseTime(data)
	if err != nil {
		return err
	}
	t.Time = v
	return nil
}

// latest time a revocation may name: far enough for any real use, small
// enough that arithmetic on it never overflows.
var maxTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

func parseTime(data []byte) (time.Time, error) {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return time.Time{}, errors.New("must be an RFC 3339 time or Unix seconds")
		}
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, errors.New("must be an RFC 3339 time (e.g. 2026-01-02T15:04:05Z) or Unix seconds")
		}
		if v.Year() < 1970 || v.After(maxTime) {
			return time.Time{}, errors.New("out of range")
		}
		return v.UTC(), nil
	}
	f, err := strconv.ParseFloat(string(data), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return time.Time{}, errors.New("must be an RFC 3339 time or Unix seconds")
	}
	if f <= 0 || f > float64(maxTime.Unix()) {
		return time.Time{}, errors.New("out of range")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

// input is what an operator may post: the matchers and options, never the
// fields the server sets. Times are raw so that a bad one can be reported
// with its field name.
type input struct {
	JTI          *string         `json:"jti"`
	Sub          *string         `json:"sub"`
	Iss          *string         `json:"iss"`
	Kid          *string         `json:"kid"`
	Claims       map[string]any  `json:"claims"`
	IssuedBefore json.RawMessage `json:"issued_before"`
	Ban          *bool           `json:"ban"`
	ExpiresAt    json.RawMessage `json:"expires_at"`
	Reason       *string         `json:"reason"`
}

var serverFields = map[string]bool{"key": true, "id": true, "seq": true, "revoked_at": true, "actor": true}

// DecodeRevocation strictly decodes one revocation as posted by an operator:
// exactly one JSON object, unknown fields and server-set fields rejected,
// every error a *FieldError naming the field. It does not apply defaults; see
// Policy.Prepare.
func DecodeRevocation(data []byte) (Revocation, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var in input
	if err := dec.Decode(&in); err != nil {
		return Revocation{}, jsonFieldError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Revocation{}, &FieldError{Problem: "body must hold exactly one JSON object"}
	}
	return in.revocation()
}

func (in *input) revocation() (Revocation, error) {
	var r Revocation
	for _, f := range []struct {
		name string
		src  *string
		dst  *string
	}{
		{"jti", in.JTI, &r.JTI}, {"sub", in.Sub, &r.Sub}, {"iss", in.Iss, &r.Iss},
		{"kid", in.Kid, &r.Kid}, {"reason", in.Reason, &r.Reason},
	} {
		if f.src == nil {
			continue
		}
		if *f.src == "" && f.name != "reason" {
			return Revocation{}, &FieldError{Field: f.name, Problem: "must not be empty (omit it instead)"}
		}
		*f.dst = *f.src
	}
	if in.Ban != nil {
		r.Ban = *in.Ban
	}
	if in.Claims != nil {
		r.Claims = in.Claims
		if len(r.Claims) == 0 {
			return Revocation{}, &FieldError{Field: "claims", Problem: "must not be empty when given"}
		}
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *Time
	}{{"issued_before", in.IssuedBefore, &r.IssuedBefore}, {"expires_at", in.ExpiresAt, &r.ExpiresAt}} {
		if len(f.raw) == 0 || string(f.raw) == "null" {
			continue
		}
		v, err := parseTime(f.raw)
		if err != nil {
			return Revocation{}, &FieldError{Field: f.name, Problem: err.Error()}
		}
		f.dst.Time = v
	}
	if err := r.validate(); err != nil {
		return Revocation{}, err
	}
	return r, nil
}

// jsonFieldError turns encoding/json's errors into FieldErrors.
func jsonFieldError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return &FieldError{Problem: "body must be a JSON object"}
		}
		want := typeErr.Type.Kind().String()
		switch want {
		case "ptr":
			want = typeErr.Type.Elem().Kind().String()
		case "map":
			want = "object"
		}
		return &FieldError{Field: field, Problem: "must be a " + want + ", not " + typeErr.Value}
	case errors.As(err, &syntaxErr):
		return &FieldError{Problem: fmt.Sprintf("malformed JSON at byte %d: %v", syntaxErr.Offset, syntaxErr)}
	case errors.Is(err, io.EOF):
		return &FieldError{Problem: "empty body: a JSON object is required"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &FieldError{Problem: "truncated JSON"}
	}
	const unknown = "json: unknown field "
	if msg := err.Error(); strings.HasPrefix(msg, unknown) {
		name, uerr := strconv.Unquote(strings.TrimPrefix(msg, unknown))
		if uerr != nil {
			name = strings.TrimPrefix(msg, unknown)
		}
		if serverFields[name] {
			return &FieldError{Field: name, Problem: "is set by the server, not by the request"}
		}
		return &FieldError{Field: name, Problem: "unknown field"}
	}
	return &FieldError{Problem: "malformed JSON: " + err.Error()}
}

// decodeBatchFast decodes a batch with one decoder; ok is false for any
// error, which the caller then reports precisely.
func decodeBatchFast(data []byte, maxBatch int) ([]Revocation, bool) {
	var body struct {
		Revocations []input `json:"revocations"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, false
	}
	n := len(body.Revocations)
	if n == 0 || (maxBatch > 0 && n > maxBatch) {
		return nil, false
	}
	revs := make([]Revocation, n)
	for i := range body.Revocations {
		r, err := body.Revocations[i].revocation()
		if err != nil {
			return nil, false
		}
		revs[i] = r
	}
	return revs, true
}

// MaxBatch is the default largest number of revocations in one batch.
const MaxBatch = 10_000

// DecodeRequest decodes the body of POST /v1/revocations: either one
// revocation object, or {"revocations":[…]} with 1 to maxBatch of them. batch
// reports which form it was. Errors are *FieldErrors; inside a batch the field
// names the item ("revocations[3].sub").
func DecodeRequest(data []byte, maxBatch int) (revs []Revocation, batch bool, err error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, false, &FieldError{Problem: "empty body: a JSON object is required"}
	}
	// The common cases in one pass each: a single revocation, and a
	// well-formed batch. Anything else takes the slow path below, which
	// finds the item and field at fault.
	if !bytes.Contains(data, []byte(`"revocations"`)) {
		r, err := DecodeRevocation(data)
		if err != nil {
			return nil, false, err
		}
		return []Revocation{r}, false, nil
	}
	if revs, ok := decodeBatchFast(data, maxBatch); ok {
		return revs, true, nil
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, false, jsonFieldError(err)
	}
	raw, ok := probe["revocations"]
	if !ok {
		r, err := DecodeRevocation(data)
		if err != nil {
			return nil, false, err
		}
		return []Revocation{r}, false, nil
	}
	if len(probe) != 1 {
		return nil, true, &FieldError{Field: "revocations", Problem: "a batch object holds only the revocations array"}
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, true, &FieldError{Field: "revocations", Problem: "must be an array of revocation objects"}
	}
	if len(items) == 0 {
		return nil, true, &FieldError{Field: "revocations", Problem: "must not be empty"}
	}
	if maxBatch > 0 && len(items) > maxBatch {
		return nil, true, &FieldError{Field: "revocations", Problem: "more than " + strconv.Itoa(maxBatch) + " items; split the batch"}
	}
	revs = make([]Revocation, len(items))
	for i, item := range items {
		r, err := DecodeRevocation(item)
		if err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				return nil, true, fe.WithPrefix("revocations[" + strconv.Itoa(i) + "]")
			}
			return nil, true, err
		}
		revs[i] = r
	}
	return revs, true, nil
}
