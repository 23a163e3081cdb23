// Package cache holds the agent-side caches of revocast: the local denylist
// that every token check consults, and a cache of verified tokens that lets a
// repeated token skip signature verification.
//
// pkg/agent is the user: it applies the revoke, lift and reset events it
// follows from the broadcaster to a Denylist, sweeps it periodically, turns
// Stats into metrics, and asks Check on every request (after verifying the
// JWT, possibly through Verified).
//
// Everything here is in memory: no I/O, no goroutines, no timers. Time comes
// in as an argument or through WithClock, so callers and tests decide what
// "now" is. All types are safe for concurrent use; Check and Verified.Get do
// not allocate. A Check of a token that is not revoked usually reads, per
// kind of matcher in use, one word of hints that stays in the CPU caches
// even at a million revocations, rather than the index itself in main
// memory (see Denylist).
//
// The denylist never forgets a live revocation. Its exact tier is bounded
// (WithCapacity); a live revocation evicted from it moves to a compact spill
// tier of 64-bit fingerprints that keeps denying what it denied, at the price
// of denying slightly more for revocations with several matchers (see
// Denylist). Claims-only revocations are kept apart and are never evicted.
package cache
