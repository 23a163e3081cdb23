package events

import (
	"encoding/json"
	"slices"
	"strconv"
	"sync/atomic"
)

// Token holds the facts about a verified JWT that revocations match against.
type Token struct {
	JTI string
	Sub string
	Iss string
	// Kid is the JOSE header's kid: written by whoever signed the token, so
	// a kid revocation matches it but never relies on it alone.
	Kid string
	// KeyID and KeyThumbprint name the key whose signature verified the
	// token: its kid in the key set (or a label the operator gave it) and
	// its RFC 7638 SHA-256 thumbprint. A kid revocation matches a token when
	// it names Kid, KeyID or KeyThumbprint.
	KeyID         string
	KeyThumbprint string
	// KeyAliases are the key's other kids in the key set: the same key
	// published under several kids, or also given as a PEM key. A kid
	// revocation matches them too.
	KeyAliases []string
	// KeyMemo, when set, is shared by every token the same key verified: a
	// denylist remembers there what it computed from the key's names, so
	// that checking a token does not compute it again. It is only an
	// optimisation: what it remembers is used only while the names match.
	KeyMemo *KeyMemo
	// IssuedAt is the iat claim in Unix seconds; HasIssuedAt is false when
	// the token has none.
	IssuedAt    int64
	HasIssuedAt bool
	// Claims holds the token's other claims, as decoded from JSON (strings,
	// float64 or json.Number, bools, …). It may also hold the registered
	// claims; they are not consulted.
	Claims map[string]any
}

// KeyMemo holds what a reader of Token (pkg/cache) remembers about one
// verifying key. The zero value is empty and ready to use; it is safe for
// concurrent use. Whoever stores a value must store values of one type.
type KeyMemo struct{ v atomic.Value }

// Load returns what was last stored, or nil.
func (m *KeyMemo) Load() any { return m.v.Load() }

// Store replaces what is remembered.
func (m *KeyMemo) Store(x any) { m.v.Store(x) }

// Matches reports whether the revocation applies to the token: every matcher
// that is set must match. It ignores expiry (see Expired) and does not
// allocate.
//
// A jti revocation matches its token whatever its iat. With issued_before,
// only tokens issued strictly before it match; a token without iat then
// matches too, because nothing shows it was issued later (fail closed).
func (r *Revocation) Matches(t *Token) bool {
	if r.JTI != "" && r.JTI != t.JTI {
		return false
	}
	if r.Sub != "" && r.Sub != t.Sub {
		return false
	}
	if r.Iss != "" && r.Iss != t.Iss {
		return false
	}
	if r.Kid != "" && r.Kid != t.Kid && r.Kid != t.KeyID && r.Kid != t.KeyThumbprint && !slices.Contains(t.KeyAliases, r.Kid) {
		return false
	}
	for name, want := range r.Claims {
		if !ClaimEquals(t.Claims[name], want) {
			return false
		}
	}
	if r.NeedsIssuedAt() && t.HasIssuedAt {
		// iat is whole seconds, the token was issued in [iat, iat+1): it is
		// "before" unless iat reaches the first whole second at or after
		// issued_before. The same second counts as before (fail closed).
		cut := r.IssuedBefore.Unix()
		if r.IssuedBefore.Nanosecond() > 0 {
			cut++
		}
		if t.IssuedAt >= cut {
			return false
		}
	}
	return true
}

// NeedsIssuedAt reports whether deciding this revocation needs the token's iat.
func (r *Revocation) NeedsIssuedAt() bool {
	return r.JTI == "" && !r.Ban && !r.IssuedBefore.IsZero()
}

// ClaimEquals compares a token's claim value with a matcher value (a string,
// float64 or bool). Numbers compare by value whatever their JSON type. An
// array claim (aud, groups, roles) matches when one of its elements does.
func ClaimEquals(got, want any) bool {
	switch g := got.(type) {
	case []any:
		for _, e := range g {
			if scalarEquals(e, want) {
				return true
			}
		}
		return false
	case []string: // claims built in Go rather than decoded from JSON
		w, ok := want.(string)
		if !ok {
			return false
		}
		for _, e := range g {
			if e == w {
				return true
			}
		}
		return false
	}
	return scalarEquals(got, want)
}

func scalarEquals(got, want any) bool {
	switch w := want.(type) {
	case string:
		g, ok := got.(string)
		return ok && g == w
	case bool:
		g, ok := got.(bool)
		return ok && g == w
	case float64:
		switch g := got.(type) {
		case float64:
			return g == w
		case json.Number:
			f, err := strconv.ParseFloat(string(g), 64)
			return err == nil && f == w
		case int64:
			return float64(g) == w
		case int:
			return float64(g) == w
		}
	}
	return false
}
