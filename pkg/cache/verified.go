package cache

import (
	"hash/maphash"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// DefaultVerifiedCapacity is the capacity NewVerified uses for a
// non-positive argument.
const DefaultVerifiedCapacity = 10_000

// Verified remembers the claims of tokens whose signature and claims were
// verified, so that a token presented again skips signature verification
// until it expires. It never replaces the denylist: pkg/agent checks every
// request's token against the Denylist, cached or not. When the set of
// trusted keys changes (a JWKS refresh), call Purge, so that no token signed
// by a key that is no longer trusted is accepted from the cache.
//
// Entries are kept in an LRU keyed by a 64-bit hash of the raw token (with a
// per-cache seed); each keeps the raw token too and a hit requires it to be
// byte-equal, so a hash collision is a miss, never another token's claims.
//
// Verified is safe for concurrent use. The claims are returned as stored:
// when C holds references (a map), callers must not mutate them.
type Verified[C any] struct {
	seed maphash.Seed

	mu  sync.Mutex // Get moves the entry to the front: it writes.
	lru *simplelru.LRU[uint64, verifiedEntry[C]]
}

type verifiedEntry[C any] struct {
	raw     string
	claims  C
	expires time.Time
}

// NewVerified returns an empty cache of at most capacity tokens
// (DefaultVerifiedCapacity if capacity < 1).
func NewVerified[C any](capacity int) *Verified[C] {
	if capacity < 1 {
		capacity = DefaultVerifiedCapacity
	}
	lru, err := simplelru.NewLRU[uint64, verifiedEntry[C]](capacity, nil)
	if err != nil {
		panic("cache: " + err.Error()) // unreachable: capacity ≥ 1
	}
	return &Verified[C]{seed: maphash.MakeSeed(), lru: lru}
}

// Get returns the claims stored for exactly this raw token, if they have not
// expired at now.
func (v *Verified[C]) Get(raw string, now time.Time) (C, bool) {
	h := maphash.String(v.seed, raw)
	v.mu.Lock()
	e, ok := v.lru.Get(h)
	if ok && e.raw == raw {
		if now.Before(e.expires) {
			v.mu.Unlock()
			return e.claims, true
		}
		v.lru.Remove(h)
	}
	v.mu.Unlock()
	var zero C
	return zero, false
}

// Add stores the claims of a verified raw token until expires (the token's
// exp, plus whatever leeway the verifier grants). A zero expires is not
// cached: the agent requires exp, and nothing should skip verification
// forever. Add keeps a copy of raw, so a token sliced from a larger buffer
// does not pin the buffer.
func (v *Verified[C]) Add(raw string, claims C, expires time.Time) {
	if expires.IsZero() {
		return
	}
	h := maphash.String(v.seed, raw)
	e := verifiedEntry[C]{raw: strings.Clone(raw), claims: claims, expires: expires}
	v.mu.Lock()
	v.lru.Add(h, e)
	v.mu.Unlock()
}

// Purge forgets every token; pkg/agent calls it when the trusted keys change.
func (v *Verified[C]) Purge() {
	v.mu.Lock()
	v.lru.Purge()
	v.mu.Unlock()
}

// Len returns the number of cached tokens, expired ones included until they
// are looked up or evicted.
func (v *Verified[C]) Len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.lru.Len()
}
