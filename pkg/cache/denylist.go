package cache

import (
	"hash/maphash"
	"maps"
	"math"
	"math/bits"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/revocast/revocast/pkg/events"
)

// Denylist holds the live revocations of one agent and answers whether a
// token is revoked, in time independent of how many revocations it holds and
// without allocating.
//
// Every revocation with a jti, sub or kid has a primary matcher: its jti if
// it has one, else its sub, else its kid, together with its iss when it has
// one. One fingerprint index (64-bit hashes with a per-Denylist seed) finds
// the revocations of a primary matcher; Check hashes the token's jti, sub,
// the names of its key (header kid, verifying key's kid and thumbprint) and
// iss once each and looks up only the kinds of matcher that some revocation
// uses.
//
// A token that is not revoked, the common case, is told apart by the
// index's hints (a byte per slot, see table) without reading the slots: at
// a million revocations the slots fill ~26 MB, so that reading them costs a
// main-memory access per lookup, while the hints fill ~1.6 MB and stay in
// the CPU caches. A lookup reads a slot only when a hint matches: where the
// matcher is revoked, or, by chance, about once in 90 lookups.
//
// Behind the index, revocations live in one of two tiers:
//
//   - The exact tier: the capacity (WithCapacity) most recently applied
//     revocations, with their matchers (not their reason or actor); a
//     candidate found through the index is confirmed with
//     Revocation.Matches, so the exact tier denies exactly what the
//     revocations match.
//   - The spill tier: when the exact tier is full, the oldest revocation is
//     evicted; if it is still live it is spilled: only its fingerprint, its
//     expiry and its issued_before cut remain (16 bytes, plus 24 in an index
//     by key for lifts). It keeps denying every token it denied: exactly the
//     same tokens when the primary matcher (with its iss) was its only
//     matcher, since a jti, sub or kid revocation has no other condition
//     than its issued_before, which is kept. A revocation with more matchers
//     then denies more than it did: a jti+sub revocation every token with
//     that jti; a sub+claims logout that subject's tokens issued before it
//     in every tenant; a kid+claims revocation every token with that kid.
//     That over-denial is the price of never forgetting; it lasts until the
//     revocation expires or is lifted, and Stats.SpilledTotal (a metric in
//     pkg/agent) tells when the capacity is too small. Two different
//     matchers sharing a fingerprint would also over-deny: with 60-bit
//     fingerprints, about one lookup in 10^12 at a million revocations.
//     Spilled expiries are kept in whole seconds, rounded up.
//
// Claims-only revocations (tenant-wide logouts: no jti, sub or kid) have no
// primary matcher to index. They are the claim rules: a plain list, checked
// one by one, never evicted and never spilled; there should be few. A token
// issued at or after the issued_before of every rule (none of them a ban)
// skips the list.
//
// A revocation without expires_at lives until lifted, in either tier.
// Expired revocations stop denying at once; Sweep reclaims their memory.
//
// The zero Denylist is not usable; call New.
type Denylist struct {
	// Immutable after New.
	capacity int
	leeway   time.Duration
	now      func() time.Time
	// Seeded per Denylist (and per kind of matcher), so that nobody can
	// precompute values whose fingerprints collide in every agent.
	seeds      [numKinds]maphash.Seed
	issSeed    maphash.Seed
	keySeed    maphash.Seed
	sweepChunk int // spillSweepChunk; tests make it small

	// mu guards everything below. Check takes it for reading only; nothing
	// holds it across I/O (there is none in this package).
	mu    sync.RWMutex
	lru   *simplelru.LRU[string, *entry] // exact tier by key, in order of application
	slab  []*entry                       // exact tier by slab index (exact slots point here)
	free  []uint32                       // unused slab indexes
	fps   table[fpSlot]                  // every jti/sub/kid revocation, exact or spilled
	lifts table[liftSlot]                // spilled revocations by key fingerprint
	tags  [tagKinds]int                  // slots in fps per kind and iss-or-not
	// kidHint counts the kid fingerprints in fps by their top bits. A
	// token's key has up to three names (header kid, JWKS kid, thumbprint)
	// and there are few kid revocations: this small table, which stays in
	// the CPU caches, spares most names the lookup in the large index.
	kidHint *[kidHintSize]uint32
	rules   []*entry       // claim rules
	ruleAt  map[string]int // key → index in rules
	// rulesCut: a token with an iat at or after it matches no claim rule,
	// all of which then need the iat (see setRulesCut).
	rulesCut int64

	spilled      int
	spilledTotal uint64
	expiredTotal uint64
}

// kind names a revocation's primary matcher.
type kind uint8

const (
	kindRule kind = iota // claims only: a claim rule
	kindJTI
	kindSub
	kindKid
	numKinds
)

// spillSweepChunk bounds how many slots Sweep visits per hold of the write
// lock, so that sweeping millions of spilled revocations never stalls checks
// for more than some tens of microseconds.
const spillSweepChunk = 1 << 14

// Fingerprints: the low tagBits bits are a tag, the rest is the hash. The tag
// keeps kinds apart (a jti and a sub with the same value do not collide),
// makes fingerprints non-zero (0 is the empty slot), lets Check skip the
// lookups that cannot hit, and tells exact slots from spilled ones. Slots
// differing only in the tag share a probe run (see home).
const (
	tagIss   = 1 << 0 // bit 0: the revocation names an iss; bits 1-2: kind
	tagExact = 1 << 3 // the slot stands for an exact-tier entry
	tagKinds = 8      // values of the low 3 bits
)

// Why the index and the spill tier look like this:
//
//   - Fingerprints, not strings: a spilled revocation must cost a few bytes,
//     not its jti (36 bytes and a header) and key; 60 bits make a false
//     match negligible, and a false match can only over-deny.
//   - One index for both tiers: a token that is not revoked (the common
//     case) costs one probe per kind of matcher in use, whichever tier holds
//     the revocations, and eviction rewrites a slot in place.
//   - An expiry per slot rather than buckets by expiry hour: Check looks at
//     one probe run instead of one per bucket, a spilled revocation stops
//     denying within a second of its end instead of up to an hour late (a
//     ban with expires_at would visibly outlive it), and lifts find their
//     slot directly. The price is that Sweep scans the slots instead of
//     dropping whole buckets: a few milliseconds per million, in slices,
//     off the check path.
//   - Hints inside the index rather than a negative filter in front of it
//     (a blocked Bloom filter, say): a filter cannot forget, so every lift,
//     expiry and replacement would leave stale bits until a rebuild, at a
//     million revocations milliseconds of work to slice around the write
//     lock while applies go on, where an entry that moves or arrives
//     meanwhile must not be missed. Hints are written with their slots:
//     never stale, never a false negative, nothing to rebuild. For about
//     the same memory (a byte per slot, 1.25 to 1.9 per revocation as the
//     load varies, against 1.25 for a 10-bit Bloom filter) they let
//     through about as many lookups by chance (~1 %), and checks measured
//     faster with them than behind such a filter. A filter keyed by the
//     value alone would let a token's lookups with and without its iss
//     share a line, but the spill tier keeps only the combined
//     fingerprint, from which no such filter could be rebuilt.
//   - One hint byte, not two: twice the array, out of the caches more
//     often, costs checks more than the one-in-90 slot reads it saves.

// fpSlot is a slot of the fingerprint index. A spilled revocation is all in
// its slot. For an exact-tier entry fp has tagExact set and exp holds the
// entry's slab index.
type fpSlot struct {
	fp uint64
	// exp is the Unix second from which a spilled revocation no longer
	// denies: expires_at + leeway rounded up, so never earlier than the exact
	// tier would forget it. 0: until lifted.
	exp uint32
	// cut: a spilled revocation denies only tokens with iat < cut, or without
	// iat, as Revocation.Matches does with issued_before. 0: any iat.
	cut uint32
}

func (s fpSlot) id() uint64 { return s.fp }

func (s fpSlot) live(nowSec int64) bool { return s.exp == 0 || nowSec < int64(s.exp) }

// denies reports whether a spilled revocation applies to t, given that t's
// matcher has its fingerprint.
func (s fpSlot) denies(t *events.Token, nowSec int64) bool {
	return s.live(nowSec) && (s.cut == 0 || !t.HasIssuedAt || t.IssuedAt < int64(s.cut))
}

// liftSlot indexes a spilled revocation by the fingerprint of its key. It
// holds the whole spilled slot: several spilled revocations may share a
// fingerprint (a logout and a ban of one subject), and a lift must remove
// its own. Two slots equal in all fields deny the same tokens, so removing
// either is right.
type liftSlot struct {
	key uint64
	rec fpSlot
}

func (s liftSlot) id() uint64 { return s.key }

// entry is a revocation in the exact tier or among the claim rules: what
// Matches needs, the deadline, and where it is indexed.
type entry struct {
	key                string
	jti, sub, iss, kid string
	claims             map[string]any
	issuedBefore       events.Time
	deadline           time.Time // expires_at + leeway; zero: until lifted
	fp                 uint64    // primary matcher's fingerprint, tagExact clear; 0 for claim rules
	kf                 uint64    // keyFP(key): eviction need not touch the key's bytes
	idx                uint32    // slab index
	ban                bool
	needsIAT           bool
}

// live is !Revocation.Expired(now, leeway).
func (e *entry) live(now time.Time) bool { return e.deadline.IsZero() || now.Before(e.deadline) }

func (e *entry) matches(t *events.Token) bool {
	r := events.Revocation{
		JTI: e.jti, Sub: e.sub, Iss: e.iss, Kid: e.kid, Claims: e.claims,
		IssuedBefore: e.issuedBefore, Ban: e.ban,
	}
	return r.Matches(t)
}

// cut is the iat cut of Revocation.Matches: with issued_before (when
// needsIAT), only tokens with iat < cut match.
func (e *entry) cut() int64 { return unixCeil(e.issuedBefore.Time) }

// ruleCut is the cut of a claim rule for rulesCut: none (the latest
// possible) if it does not depend on the iat.
func (e *entry) ruleCut() int64 {
	if !e.needsIAT {
		return math.MaxInt64
	}
	return e.cut()
}

// setRulesCut recomputes rulesCut after claim rules went away. Tenant-wide
// logouts (claims and issued_before) are what claim rules are for: tokens
// issued since then, nearly all, skip the list without reading it.
func (d *Denylist) setRulesCut() {
	d.rulesCut = math.MinInt64 // no rules: nothing to match
	for _, e := range d.rules {
		d.rulesCut = max(d.rulesCut, e.ruleCut())
	}
}

// spill returns the slot that stands for e once spilled.
func (e *entry) spill() fpSlot {
	s := fpSlot{fp: e.fp}
	if !e.deadline.IsZero() {
		s.exp = clampSec(unixCeil(e.deadline))
	}
	if e.needsIAT {
		s.cut = clampSec(e.cut())
	}
	return s
}

// clampSec fits Unix seconds into a slot field so that the slot denies at
// least what the revocation does: past 2106 it becomes 0 ("until lifted",
// "any iat"), before 1970 the earliest second.
func clampSec(s int64) uint32 {
	if s > math.MaxUint32 {
		return 0
	}
	return uint32(max(s, 1))
}

// unixCeil is t in Unix seconds, rounded up.
func unixCeil(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

func fpTag(k kind, withIss bool) uint64 {
	tag := uint64(k) << 1
	if withIss {
		tag |= tagIss
	}
	return tag
}

// matcherFP is the fingerprint of a primary matcher from the hash of its
// value and, when the revocation names an issuer, the hash of the issuer:
// XOR of two independently seeded hashes is a good hash of the pair.
func matcherFP(h uint64, k kind, hIss uint64, withIss bool) uint64 {
	if withIss {
		h ^= hIss
	}
	return h&^tagMask | fpTag(k, withIss)
}

func primary(r *events.Revocation) (kind, string) {
	switch {
	case r.JTI != "":
		return kindJTI, r.JTI
	case r.Sub != "":
		return kindSub, r.Sub
	case r.Kid != "":
		return kindKid, r.Kid
	}
	return kindRule, ""
}

func tokenValue(t *events.Token, k kind) string {
	switch k {
	case kindJTI:
		return t.JTI
	case kindSub:
		return t.Sub
	case kindKid:
		return t.Kid
	}
	return ""
}

// New returns an empty Denylist.
func New(opts ...Option) *Denylist {
	cfg := config{capacity: DefaultCapacity, leeway: DefaultLeeway, now: time.Now}
	for _, opt := range opts {
		opt(&cfg)
	}
	d := &Denylist{
		capacity:   cfg.capacity,
		leeway:     cfg.leeway,
		now:        cfg.now,
		issSeed:    maphash.MakeSeed(),
		keySeed:    maphash.MakeSeed(),
		sweepChunk: spillSweepChunk,
	}
	for k := range d.seeds {
		d.seeds[k] = maphash.MakeSeed()
	}
	d.reset()
	return d
}

// kidHintSize is the number of kidHint counters (a power of two).
const kidHintSize = 1 << 12

func kidHintAt(fp uint64) uint64 { return fp >> 52 }

// count records that a slot with fingerprint fp was added (delta 1) to or
// removed (-1) from the index.
func (d *Denylist) count(fp uint64, delta int) {
	d.tags[fp&(tagKinds-1)] += delta
	if kind(fp>>1&3) == kindKid {
		d.kidHint[kidHintAt(fp)] += uint32(delta) // wraps back on removal; 2^32 revocations never fit
	}
}

func (d *Denylist) reset() {
	lru, err := simplelru.NewLRU[string, *entry](d.capacity, nil)
	if err != nil {
		panic("cache: " + err.Error()) // unreachable: capacity ≥ 1
	}
	d.lru = lru
	d.slab, d.free = nil, nil
	d.fps, d.lifts = table[fpSlot]{hinted: true}, table[liftSlot]{}
	d.tags = [tagKinds]int{}
	d.kidHint = new([kidHintSize]uint32)
	d.rules = nil
	d.ruleAt = make(map[string]int)
	d.setRulesCut()
	d.spilled = 0
}

// Apply adds the revocation, replacing any revocation with the same key
// (r.Key, or r.ComputeKey() when it is empty). A revocation that has already
// expired (by the clock of WithClock, with the leeway) only removes the one
// it replaces. Apply keeps its own copy of what it needs from r.
func (d *Denylist) Apply(r *events.Revocation) {
	if r == nil {
		return
	}
	key := r.Key
	if key == "" {
		key = r.ComputeKey()
	}
	kf := d.keyFP(key)
	now := d.now()
	if r.Expired(now, d.leeway) {
		d.mu.Lock()
		d.remove(key, kf)
		d.mu.Unlock()
		return
	}
	e := d.newEntry(r, key, kf) // copy and hash before taking the lock

	d.mu.Lock()
	defer d.mu.Unlock()
	d.remove(key, kf)
	if e.fp == 0 {
		d.ruleAt[key] = len(d.rules)
		d.rules = append(d.rules, e)
		d.rulesCut = max(d.rulesCut, e.ruleCut())
		return
	}
	if d.lru.Len() >= d.capacity {
		d.evictOldest(now)
	}
	d.lru.Add(key, e)
	if n := len(d.free); n > 0 {
		e.idx = d.free[n-1]
		d.free = d.free[:n-1]
		d.slab[e.idx] = e
	} else {
		e.idx = uint32(len(d.slab))
		d.slab = append(d.slab, e)
	}
	d.fps.insert(fpSlot{fp: e.fp | tagExact, exp: e.idx})
	d.count(e.fp, 1)
}

func (d *Denylist) newEntry(r *events.Revocation, key string, kf uint64) *entry {
	e := &entry{
		key:          key,
		kf:           kf,
		jti:          r.JTI,
		sub:          r.Sub,
		iss:          r.Iss,
		kid:          r.Kid,
		claims:       maps.Clone(r.Claims),
		issuedBefore: r.IssuedBefore,
		ban:          r.Ban,
	}
	if !r.ExpiresAt.IsZero() {
		e.deadline = r.ExpiresAt.Add(d.leeway)
	}
	e.needsIAT = r.NeedsIssuedAt()
	if k, v := primary(r); k != kindRule {
		var hIss uint64
		if r.Iss != "" {
			hIss = maphash.String(d.issSeed, r.Iss)
		}
		e.fp = matcherFP(maphash.String(d.seeds[k], v), k, hIss, r.Iss != "")
	}
	return e
}

// Lift removes the revocation with this key, wherever it is kept. An unknown
// key is a no-op.
func (d *Denylist) Lift(key string) {
	kf := d.keyFP(key)
	d.mu.Lock()
	d.remove(key, kf)
	d.mu.Unlock()
}

// Reset forgets every revocation (the stream told the agent to start over).
// The totals in Stats keep counting.
func (d *Denylist) Reset() {
	d.mu.Lock()
	d.reset()
	d.mu.Unlock()
}

// Check reports whether a live revocation matches the token: one that
// Matches it and has not Expired at now (with the leeway), whether or not
// Sweep has run. key is the matching revocation's key when it came from the
// exact tier or the claim rules, "" when it came from the spill tier, which
// keeps no keys.
func (d *Denylist) Check(t *events.Token, now time.Time) (key string, revoked bool) {
	d.mu.RLock()
	key, revoked = d.check(t, now)
	d.mu.RUnlock()
	return key, revoked
}

func (d *Denylist) check(t *events.Token, now time.Time) (string, bool) {
	if d.fps.n > 0 {
		if key, ok := d.checkIndex(t, now); ok {
			return key, true
		}
	}
	if t.HasIssuedAt && t.IssuedAt >= d.rulesCut {
		return "", false // issued after every claim rule's issued_before
	}
	for _, e := range d.rules {
		// Cheap rejections first: Matches ranges over the claims map.
		if e.iss != "" && e.iss != t.Iss {
			continue
		}
		if e.needsIAT && t.HasIssuedAt && t.IssuedAt >= e.cut() {
			continue
		}
		if e.live(now) && e.matches(t) {
			return e.key, true
		}
	}
	return "", false
}

// checkIndex looks t up in the fingerprint index, one kind of matcher after
// the other. Hashing every kind first, to read all their hints at once so
// that the cache misses overlap, measured no faster on tokens that are not
// revoked (BenchmarkCheck/1M/miss-cold) and made hits pay for hashes they
// do not need.
func (d *Denylist) checkIndex(t *events.Token, now time.Time) (string, bool) {
	var hIss uint64
	issHashed := false
	for k := kindJTI; k < numKinds; k++ {
		plain := d.tags[fpTag(k, false)] > 0
		scoped := t.Iss != "" && d.tags[fpTag(k, true)] > 0
		if !plain && !scoped {
			continue
		}
		if k == kindKid {
			if key, ok := d.checkKid(t, plain, scoped, &hIss, &issHashed, now); ok {
				return key, true
			}
			continue
		}
		v := tokenValue(t, k)
		if v == "" {
			continue
		}
		h := maphash.String(d.seeds[k], v)
		if plain {
			if key, ok := d.probe(matcherFP(h, k, 0, false), t, now); ok {
				return key, true
			}
		}
		if scoped {
			if !issHashed {
				hIss, issHashed = maphash.String(d.issSeed, t.Iss), true
			}
			if key, ok := d.probe(matcherFP(h, k, hIss, true), t, now); ok {
				return key, true
			}
		}
	}
	return "", false
}

// checkKid looks up the kid revocations of every name of t's key: a kid
// revocation names a key by the token's header kid or by the verifying
// key's kid, thumbprint or aliases. The names' hashes come from the key's
// memo when t has one; otherwise each distinct name is hashed here. It is
// kept apart from the jti and sub lookups, which have one name each, so
// that they do not pay for this loop.
func (d *Denylist) checkKid(t *events.Token, plain, scoped bool, hIss *uint64, issHashed *bool, now time.Time) (string, bool) {
	if names := d.keyNames(t); names != nil {
		return d.checkKeyNames(t, names, plain, scoped, hIss, issHashed, now)
	}
	values := [3]string{t.Kid, t.KeyID, t.KeyThumbprint}
	for i := 0; i < len(values)+len(t.KeyAliases); i++ {
		var v string
		if i < len(values) {
			v = values[i]
			if v == "" || (i > 0 && (v == values[0] || (i == 2 && v == values[1]))) {
				continue
			}
		} else {
			v = t.KeyAliases[i-len(values)]
		}
		if key, ok := d.probeKid(maphash.String(d.seeds[kindKid], v), t, plain, scoped, hIss, issHashed, now); ok {
			return key, true
		}
	}
	return "", false
}

// keyNameHashes is what a denylist remembers in a verifying key's
// events.KeyMemo: the key's distinct names and their hashes under this
// denylist's kid seed.
type keyNameHashes struct {
	owner   *Denylist
	keyID   string
	thumb   string
	aliases []string
	names   []string
	hashes  []uint64
}

// keyNames returns the hashes of the names of the key that verified t,
// remembered in t.KeyMemo, or nil when t has no memo. The names are
// compared on every use, so a memo that a token shares with another key,
// or a key whose names changed, is computed again rather than trusted.
func (d *Denylist) keyNames(t *events.Token) *keyNameHashes {
	if t.KeyMemo == nil {
		return nil
	}
	if m, _ := t.KeyMemo.Load().(*keyNameHashes); m != nil && m.owner == d &&
		m.keyID == t.KeyID && m.thumb == t.KeyThumbprint && slices.Equal(m.aliases, t.KeyAliases) {
		return m
	}
	m := &keyNameHashes{owner: d, keyID: t.KeyID, thumb: t.KeyThumbprint, aliases: slices.Clone(t.KeyAliases)}
	for _, n := range append([]string{t.KeyID, t.KeyThumbprint}, t.KeyAliases...) {
		if n != "" && !slices.Contains(m.names, n) {
			m.names = append(m.names, n)
			m.hashes = append(m.hashes, maphash.String(d.seeds[kindKid], n))
		}
	}
	t.KeyMemo.Store(m)
	return m
}

// checkKeyNames looks up the kid revocations of every name of the key that
// verified t (hashed once per key) and of t's header kid.
func (d *Denylist) checkKeyNames(t *events.Token, names *keyNameHashes, plain, scoped bool, hIss *uint64, issHashed *bool, now time.Time) (string, bool) {
	headerNamed := t.Kid == ""
	for i, n := range names.names {
		headerNamed = headerNamed || n == t.Kid
		if key, ok := d.probeKid(names.hashes[i], t, plain, scoped, hIss, issHashed, now); ok {
			return key, true
		}
	}
	if headerNamed {
		return "", false
	}
	return d.probeKid(maphash.String(d.seeds[kindKid], t.Kid), t, plain, scoped, hIss, issHashed, now)
}

// probeKid probes the kid revocations of the name with hash h, unscoped and
// scoped to t's issuer, skipping the index when the kid hint table shows
// that no revocation has that fingerprint.
func (d *Denylist) probeKid(h uint64, t *events.Token, plain, scoped bool, hIss *uint64, issHashed *bool, now time.Time) (string, bool) {
	if plain {
		if fp := matcherFP(h, kindKid, 0, false); d.kidHint[kidHintAt(fp)] != 0 {
			if key, ok := d.probe(fp, t, now); ok {
				return key, true
			}
		}
	}
	if scoped {
		if !*issHashed {
			*hIss, *issHashed = maphash.String(d.issSeed, t.Iss), true
		}
		if fp := matcherFP(h, kindKid, *hIss, true); d.kidHint[kidHintAt(fp)] != 0 {
			return d.probe(fp, t, now)
		}
	}
	return "", false
}

// probe looks at the slots with fingerprint fp: an exact entry that matches
// t gives its key; a spilled slot that denies t gives "" unless an exact
// entry in the same run also matches. It reads the run eight hints at a
// time and touches a slot only when its hint is fp's, so that a miss
// usually costs one read of the hints and no read of the slots.
func (d *Denylist) probe(fp uint64, t *events.Token, now time.Time) (string, bool) {
	slots := d.fps.slots
	want := hintOf(fp)
	spilled := false
	for i := home(fp, len(slots)); ; {
		match, more := d.fps.candidates(i, want)
		for ; match != 0; match &= match - 1 {
			j := i + bits.TrailingZeros64(match)/8
			if j >= len(slots) {
				j -= len(slots)
			}
			s := &slots[j]
			if s.fp&^tagExact != fp {
				continue // a hint collision (or a lane flagged by a borrow)
			}
			if s.fp&tagExact == 0 {
				spilled = spilled || s.denies(t, now.Unix())
			} else if e := d.slab[s.exp]; e.live(now) && e.matches(t) {
				return e.key, true
			}
		}
		if !more {
			return "", spilled
		}
		if i += hintLanes; i >= len(slots) {
			i -= len(slots)
		}
	}
}

// Sweep drops the revocations that have expired at now from every tier and
// returns how many it dropped. Check already ignores them; Sweep gives back
// their memory. pkg/agent calls it periodically. It takes the write lock in
// short slices, so a large spill tier does not stall checks.
func (d *Denylist) Sweep(now time.Time) int {
	d.mu.Lock()
	n := 0
	for _, e := range d.slab {
		if e != nil && !e.live(now) {
			d.lru.Remove(e.key)
			d.dropExact(e)
			n++
		}
	}
	kept := d.rules[:0]
	for _, e := range d.rules {
		if !e.live(now) {
			delete(d.ruleAt, e.key)
			n++
			continue
		}
		d.ruleAt[e.key] = len(kept)
		kept = append(kept, e)
	}
	clear(d.rules[len(kept):])
	d.rules = kept
	d.setRulesCut()
	d.expiredTotal += uint64(n)
	d.mu.Unlock()

	return n + d.sweepSpilled(now.Unix())
}

// sweepSpilled sweeps the spill tier a chunk at a time, letting checks and
// applies in between. A slot that moves behind the cursor meanwhile (a
// resize, a backward shift) waits for the next Sweep: Check ignores expired
// slots anyway, and a spilled slot and its lift slot expire together.
func (d *Denylist) sweepSpilled(nowSec int64) int {
	dropped := 0
	for i := 0; ; {
		d.mu.Lock()
		fps := &d.fps
		for end := min(i+d.sweepChunk, len(fps.slots)); i < end; {
			s := fps.slots[i]
			if s.fp == 0 || s.fp&tagExact != 0 || s.live(nowSec) {
				i++
				continue
			}
			fps.deleteAt(i) // refills slot i: look at it again
			d.count(s.fp, -1)
			d.spilled--
			d.expiredTotal++
			dropped++
		}
		done := i >= len(fps.slots)
		d.mu.Unlock()
		if done {
			break
		}
	}
	for i := 0; ; {
		d.mu.Lock()
		lifts := &d.lifts
		for end := min(i+d.sweepChunk, len(lifts.slots)); i < end; {
			if s := lifts.slots[i]; s.key == 0 || s.rec.live(nowSec) {
				i++
				continue
			}
			lifts.deleteAt(i)
		}
		done := i >= len(lifts.slots)
		if done {
			d.fps.shrink()
			d.lifts.shrink()
		}
		d.mu.Unlock()
		if done {
			return dropped
		}
	}
}

// Stats describes a Denylist: the sizes at the moment of the call, and
// totals since New.
type Stats struct {
	Exact      int // revocations in the exact tier
	Spilled    int // revocations in the spill tier
	ClaimRules int // claims-only revocations (never evicted)

	SpilledTotal uint64 // live revocations moved from the exact to the spill tier
	Expired      uint64 // revocations dropped because they had expired (Sweep, eviction)
}

// Stats returns the current sizes and the totals.
func (d *Denylist) Stats() Stats {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return Stats{
		Exact:        d.lru.Len(),
		Spilled:      d.spilled,
		ClaimRules:   len(d.rules),
		SpilledTotal: d.spilledTotal,
		Expired:      d.expiredTotal,
	}
}

// remove drops the revocation with this key (kf = keyFP(key)) from whichever
// tier holds it. d.mu must be held.
func (d *Denylist) remove(key string, kf uint64) {
	if e, ok := d.lru.Peek(key); ok {
		d.lru.Remove(key)
		d.dropExact(e)
		return
	}
	if i, ok := d.ruleAt[key]; ok {
		last := len(d.rules) - 1
		d.rules[i] = d.rules[last]
		d.ruleAt[d.rules[i].key] = i
		d.rules[last] = nil
		d.rules = d.rules[:last]
		delete(d.ruleAt, key)
		d.setRulesCut()
		return
	}
	if d.spilled == 0 {
		return
	}
	li := d.lifts.find(kf)
	if li < 0 {
		return
	}
	rec := d.lifts.slots[li].rec
	d.lifts.deleteAt(li)
	if i := d.fps.findSlot(rec); i >= 0 {
		d.fps.deleteAt(i)
		d.count(rec.fp, -1)
		d.spilled--
	}
}

// exactSlot returns the position of e's slot in fps.
func (d *Denylist) exactSlot(e *entry) int {
	return d.fps.findSlot(fpSlot{fp: e.fp | tagExact, exp: e.idx})
}

// dropExact removes e, already removed from the LRU, from the index and the
// slab. d.mu must be held.
func (d *Denylist) dropExact(e *entry) {
	if i := d.exactSlot(e); i >= 0 {
		d.fps.deleteAt(i)
		d.count(e.fp, -1)
	}
	d.slab[e.idx] = nil
	d.free = append(d.free, e.idx)
}

// evictOldest makes room in the exact tier. The oldest entry's slot turns
// into a spilled slot in place (same fingerprint but for the tag, so same
// probe run) if the entry is still live at now, and is dropped otherwise.
// d.mu must be held.
func (d *Denylist) evictOldest(now time.Time) {
	_, e, ok := d.lru.RemoveOldest()
	if !ok {
		return
	}
	if !e.live(now) {
		d.dropExact(e)
		d.expiredTotal++
		return
	}
	rec := e.spill()
	if i := d.exactSlot(e); i >= 0 {
		d.fps.set(i, rec)
	} else { // unreachable; but never lose a revocation over it
		d.fps.insert(rec)
		d.count(rec.fp, 1)
	}
	d.slab[e.idx] = nil
	d.free = append(d.free, e.idx)
	d.lifts.insert(liftSlot{key: e.kf, rec: rec})
	d.spilled++
	d.spilledTotal++
}

// keyFP is the lift index's fingerprint of a revocation key. Keys from
// ComputeKey are hex of a SHA-256 prefix, already uniform: their first 16
// hex digits are the fingerprint, no hashing needed. Other strings (made-up
// keys) are hashed. Never 0, the empty slot.
func (d *Denylist) keyFP(key string) uint64 {
	if len(key) == 32 {
		// Table-driven and branch-free: hex digits are random, branching on
		// each would mispredict half the time.
		var v uint64
		var bad byte
		for i := 0; i < 16; i++ {
			x := hexDigit[key[i]]
			bad |= x
			v = v<<4 | uint64(x&0xf)
		}
		for i := 16; i < 32; i++ {
			bad |= hexDigit[key[i]]
		}
		if bad <= 0xf { // events.ValidKey(key)
			return max(v, 1)
		}
	}
	return max(maphash.String(d.keySeed, key), 1)
}

// hexDigit maps a byte to its value as a lowercase hex digit, other bytes to
// 0xff.
var hexDigit = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c - 'a' + 10)
	}
	return t
}()
