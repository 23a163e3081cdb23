package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
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

// The times a revocation may name: from the Unix epoch (agents decode
// nothing earlier) to the last second RFC 3339 can write, far enough for
// any real use and small enough that arithmetic on it never overflows.
var (
	minTime = time.Unix(0, 0).UTC()
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// maxUnixLiteral bounds the length of a time given as Unix seconds, so that
// decoding it exactly stays cheap.
const maxUnixLiteral = 64

// parseTime decodes an RFC 3339 string or Unix seconds into UTC. It accepts
// only what it can store exactly and decode again: the range is checked
// after conversion to UTC ("1970-01-01T00:30:00+14:00" is 1969), and a
// value finer than a nanosecond, which would be stored rounded, is refused.
func parseTime(data []byte) (time.Time, error) {
	data = bytes.TrimSpace(data)
	var v time.Time
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return time.Time{}, errors.New("must be an RFC 3339 time or Unix seconds")
		}
		var err error
		if v, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return time.Time{}, errors.New("must be an RFC 3339 time (e.g. 2026-01-01T15:04:05Z) or Unix seconds")
		}
		if fractionDigits(s) > 9 {
			return time.Time{}, errors.New("finer than a nanosecond")
		}
	} else {
		var err error
		if v, err = parseUnix(string(data)); err != nil {
			return time.Time{}, err
		}
	}
	v = v.UTC()
	if v.Before(minTime) || v.After(maxTime) {
		return time.Time{}, errors.New("out of range (1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z)")
	}
	return v, nil
}

// fractionDigits counts the digits of the fractional second of an RFC 3339
// time.
func fractionDigits(s string) int {
	i := strings.IndexByte(s, '.')
	if i < 0 {
		return 0
	}
	n := 0
	for _, c := range []byte(s[i+1:]) {
		if c < '0' || c > '9' {
			break
		}
		n++
	}
	return n
}

// parseUnix decodes positive Unix seconds exactly: a float64 cannot hold
// most decimal fractions, and 1900000000.123 would be stored as
// 1900000000.122999906.
func parseUnix(lit string) (time.Time, error) {
	const bad = "must be an RFC 3339 time or Unix seconds"
	if len(lit) > maxUnixLiteral {
		return time.Time{}, errors.New(bad)
	}
	// syntax and a first range check, before any exact arithmetic
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return time.Time{}, errors.New(bad)
	}
	if f <= 0 || f > float64(maxTime.Unix()) {
		return time.Time{}, errors.New("out of range (1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z)")
	}
	r, ok := new(big.Rat).SetString(lit)
	if !ok || r.Sign() <= 0 {
		return time.Time{}, errors.New(bad)
	}
	sec := new(big.Int).Quo(r.Num(), r.Denom()) // positive: the floor
	ns := new(big.Rat).Sub(r, new(big.Rat).SetInt(sec))
	ns.Mul(ns, big.NewRat(1e9, 1))
	if !ns.IsInt() {
		return time.Time{}, errors.New("finer than a nanosecond")
	}
	if !sec.IsInt64() { // excluded by the range check above
		return time.Time{}, errors.New(bad)
	}
	return time.Unix(sec.Int64(), ns.Num().Int64()), nil
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
