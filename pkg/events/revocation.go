package events

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"time"
)

// Event types on the SSE stream (the "event:" field).
const (
	TypeRevoke = "revoke"
	TypeLift   = "lift"
	TypeSynced = "synced"
	TypeReset  = "reset"
)

// DefaultMaxTokenLifetime is the longest lifetime revocast assumes a token can
// have. It sets the default expiry of a revocation: a jti revocation can be
// forgotten once its token must have expired, a logout once every token issued
// before it must have.
const DefaultMaxTokenLifetime = 24 * time.Hour

// DefaultExpiryGrace is G, how long past its expires_at a revocation stays in
// the log and in the full state that a new subscriber receives. An agent
// accepts a token up to its leeway past exp and so keeps enforcing a
// revocation that long past expires_at; an agent started in that window must
// still receive it. An agent's leeway must stay below G.
const DefaultExpiryGrace = 2 * time.Minute

// Limits on what one revocation may hold. They keep a single event small
// enough for one SSE line and bound what an agent stores per revocation.
const (
	MaxValueLength  = 1024 // bytes in jti, sub, iss, kid, a claim name or a string claim value
	MaxReasonLength = 1024
	MaxClaims       = 16
)

// reservedClaims have a field of their own (or are time claims that a claim
// equality matcher cannot sensibly express).
var reservedClaims = map[string]string{
	"jti": "use the jti field",
	"sub": "use the sub field",
	"iss": "use the iss field",
	"kid": "use the kid field",
	"iat": "use issued_before",
	"exp": "use expires_at",
	"nbf": "not a matchable claim",
}

// Revocation is a set of matchers: a token is revoked when it matches all of
// them. The JSON form is the wire contract (docs/design.md).
type Revocation struct {
	// Set by the server.
	Key string `json:"key,omitempty"`
	ID  string `json:"id,omitempty"`
	Seq uint64 `json:"seq,omitempty"`

	// Matchers.
	JTI    string         `json:"jti,omitempty"`
	Sub    string         `json:"sub,omitempty"`
	Iss    string         `json:"iss,omitempty"`
	Kid    string         `json:"kid,omitempty"`
	Claims map[string]any `json:"claims,omitempty"` // values are string, float64 or bool

	IssuedBefore Time   `json:"issued_before,omitzero"`
	Ban          bool   `json:"ban,omitempty"`
	ExpiresAt    Time   `json:"expires_at,omitzero"`
	Reason       string `json:"reason,omitempty"`

	// Set by the server.
	RevokedAt Time   `json:"revoked_at,omitzero"`
	Actor     string `json:"actor,omitempty"`
}

// Lift is the payload of a lift event: the revocation with this key no longer
// applies.
type Lift struct {
	Key string `json:"key"`
}

// Synced is the payload of a synced event: the subscriber has every live event
// up to Head. It also tells subscribers the broadcaster's settings that an
// agent must follow to decide like the broadcaster's revocations assume.
type Synced struct {
	Head string `json:"head"`
	// MaxTokenLifetime is L in seconds: the agent refuses tokens that live
	// longer (a revocation's default expiry assumes none does). Zero when
	// the broadcaster does not say (older versions).
	MaxTokenLifetime int64 `json:"max_token_lifetime,omitempty"`
	// ExpiryGrace is G in seconds: how long revocations outlive their
	// expires_at in the full state. An agent's leeway must stay below it.
	ExpiryGrace int64 `json:"expiry_grace,omitempty"`
}

// Policy holds the settings that Prepare applies to a revocation.
type Policy struct {
	// MaxTokenLifetime is L of docs/design.md; zero means DefaultMaxTokenLifetime.
	MaxTokenLifetime time.Duration
	// MaxExpiry bounds how far ahead expires_at may be (the log's retention);
	// zero means no bound.
	MaxExpiry time.Duration
}

func (p Policy) lifetime() time.Duration {
	if p.MaxTokenLifetime <= 0 {
		return DefaultMaxTokenLifetime
	}
	return p.MaxTokenLifetime
}

// Prepare validates r as posted by an operator and fills in what the server
// decides: the issued_before and expires_at defaults, revoked_at and the key.
// It returns a *FieldError naming the offending field. Prepare does not reject
// a revocation that has already expired: callers check Expired and skip it.
func (p Policy) Prepare(r *Revocation, now time.Time) error {
	if err := r.validate(); err != nil {
		return err
	}
	now = now.UTC()
	r.RevokedAt = Time{now}
	if r.IssuedBefore.IsZero() && (r.Sub != "" || len(r.Claims) > 0) && r.JTI == "" && r.Kid == "" && !r.Ban {
		r.IssuedBefore = Time{now}
	}
	if r.ExpiresAt.IsZero() {
		switch {
		case r.JTI != "":
			r.ExpiresAt = Time{now.Add(p.lifetime())}
		case !r.IssuedBefore.IsZero():
			r.ExpiresAt = Time{r.IssuedBefore.Add(p.lifetime())}
		}
	}
	if r.ExpiresAt.After(maxTime) {
		// issued_before + L: an agent could not decode it
		return &FieldError{Field: "expires_at", Problem: "out of range (issued_before plus the maximum token lifetime is after 9999-12-31T23:59:59Z)"}
	}
	if p.MaxExpiry > 0 && !r.ExpiresAt.IsZero() && r.ExpiresAt.After(now.Add(p.MaxExpiry)) {
		return &FieldError{Field: "expires_at", Problem: "must be within " + p.MaxExpiry.String() + " from now (omit it for a revocation that lasts until lifted)"}
	}
	r.Key = r.ComputeKey()
	return nil
}

func (r *Revocation) validate() error {
	if r.JTI == "" && r.Sub == "" && r.Kid == "" && len(r.Claims) == 0 {
		return &FieldError{Field: "jti", Problem: "at least one of jti, sub, kid or claims is required"}
	}
	for _, f := range []struct{ name, value string }{
		{"jti", r.JTI}, {"sub", r.Sub}, {"iss", r.Iss}, {"kid", r.Kid},
	} {
		if len(f.value) > MaxValueLength {
			return &FieldError{Field: f.name, Problem: "longer than " + strconv.Itoa(MaxValueLength) + " bytes"}
		}
	}
	if len(r.Reason) > MaxReasonLength {
		return &FieldError{Field: "reason", Problem: "longer than " + strconv.Itoa(MaxReasonLength) + " bytes"}
	}
	if r.Claims != nil && len(r.Claims) == 0 {
		return &FieldError{Field: "claims", Problem: "must not be empty when given"}
	}
	if len(r.Claims) > MaxClaims {
		return &FieldError{Field: "claims", Problem: "more than " + strconv.Itoa(MaxClaims) + " claims"}
	}
	for _, name := range slices.Sorted(maps.Keys(r.Claims)) {
		field := "claims." + name
		if name == "" || len(name) > MaxValueLength {
			return &FieldError{Field: "claims", Problem: "claim names must be 1 to " + strconv.Itoa(MaxValueLength) + " bytes"}
		}
		if hint, ok := reservedClaims[name]; ok {
			return &FieldError{Field: field, Problem: "reserved claim: " + hint}
		}
		v, err := normalizeClaimValue(r.Claims[name])
		if err != nil {
			return &FieldError{Field: field, Problem: err.Error()}
		}
		r.Claims[name] = v
	}
	if r.Ban && r.JTI != "" {
		return &FieldError{Field: "ban", Problem: "a jti names a single token; ban needs sub, kid or claims instead"}
	}
	if !r.IssuedBefore.IsZero() {
		if r.JTI != "" {
			return &FieldError{Field: "issued_before", Problem: "not allowed with jti: a jti revocation matches its token whatever its iat"}
		}
		if r.Ban {
			return &FieldError{Field: "issued_before", Problem: "not allowed with ban: a ban matches tokens issued at any time"}
		}
	}
	return nil
}

type claimValueError string

func (e claimValueError) Error() string { return string(e) }

func normalizeClaimValue(v any) (any, error) {
	switch x := v.(type) {
	case string:
		if len(x) > MaxValueLength {
			return nil, claimValueError("longer than " + strconv.Itoa(MaxValueLength) + " bytes")
		}
		return x, nil
	case bool:
		return x, nil
	case float64:
		return x, nil
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return nil, claimValueError("number out of range")
		}
		return f, nil
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	default:
		return nil, claimValueError("must be a string, number or boolean")
	}
}

// ComputeKey derives the revocation's key from its matchers: the same
// matchers give the same key, so posting them again replaces the revocation
// and a lift names it. issued_before and expires_at are not part of it (a
// second logout of a user replaces the first), ban is (a logout must not
// replace a ban). The key is 32 lowercase hex digits, safe in a NATS subject
// and a URL path.
func (r *Revocation) ComputeKey() string { return r.key("revocast-key-v1", false) }

// TokenKey is the key of a revocation posted with the token it revokes
// (RFC 7009), which needs no operator credential. It is derived in another
// domain than ComputeKey, from the matchers and also issued_before and
// expires_at, so it never equals an operator's key, nor the key of another
// token's revocation that differs in anything: storing it replaces nothing
// but an identical revocation, so it can never narrow or shorten one.
// Agents treat keys as opaque; only an operator lifts it, by this key.
func (r *Revocation) TokenKey() string { return r.key("revocast-token-key-v1", true) }

func (r *Revocation) key(domain string, withTimes bool) string {
	h := sha256.New()
	var buf [8]byte
	field := func(name string, value string) {
		h.Write([]byte(name))
		binary.BigEndian.PutUint64(buf[:], uint64(len(value)))
		h.Write(buf[:])
		h.Write([]byte(value))
	}
	field(domain, "")
	field("jti", r.JTI)
	field("sub", r.Sub)
	field("iss", r.Iss)
	field("kid", r.Kid)
	for _, name := range slices.Sorted(maps.Keys(r.Claims)) {
		field("claim", name)
		canon, _ := json.Marshal(r.Claims[name])
		field("value", string(canon))
	}
	if r.Ban {
		field("ban", "true")
	}
	if withTimes {
		field("issued_before", timeField(r.IssuedBefore))
		field("expires_at", timeField(r.ExpiresAt))
	}
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:16])
}

func timeField(t Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// ValidKey reports whether s has the form of a key returned by ComputeKey.
func ValidKey(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Expired reports whether the revocation may be forgotten at now: its
// expires_at plus leeway has passed. A revocation without expires_at never
// expires.
func (r *Revocation) Expired(now time.Time, leeway time.Duration) bool {
	return !r.ExpiresAt.IsZero() && !now.Before(r.ExpiresAt.Add(leeway))
}

// storedPrefix starts the JSON of every stored revocation: encoding/json
// writes the fields in declaration order, key first, and a stored
// revocation has a key but neither id nor seq.
const storedPrefix = `{"key":"`

// AppendWithID appends to dst the JSON of a revocation as the stream and the
// API show it — with its event id and seq after the key — given the JSON it
// was stored with (MarshalStored). Splicing the two fields in saves
// decoding and encoding every revocation again on its way to thousands of
// subscribers. ok is false when stored is not in the expected form; the
// caller then decodes it.
func AppendWithID(dst, stored []byte, id string, seq uint64) (out []byte, ok bool) {
	end := len(storedPrefix) + 32 // the closing quote of the 32-hex-digit key
	if len(stored) <= end+1 || string(stored[:len(storedPrefix)]) != storedPrefix || stored[end] != '"' ||
		(stored[end+1] != ',' && stored[end+1] != '}') {
		return dst, false
	}
	dst = append(dst, stored[:end+1]...)
	dst = append(dst, `,"id":"`...)
	dst = append(dst, id...)
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	return append(dst, stored[end+1:]...), true
}

// MarshalStored encodes a prepared revocation (Key set) as it is stored in
// the log: without id and seq, which the log assigns.
func MarshalStored(r *Revocation) ([]byte, error) {
	stored := *r
	stored.Seq, stored.ID = 0, ""
	return json.Marshal(&stored)
}
