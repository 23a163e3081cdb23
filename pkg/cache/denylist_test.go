package cache

import (
	"strconv"
	"testing"
	"time"

	"github.com/revocast/revocast/pkg/events"
)

// probe is a token and whether a revocation denies it, in the exact tier and
// once spilled (where multi-matcher revocations may deny more, never less).
type probe struct {
	name     string
	tok      *events.Token
	deny     bool
	overDeny bool // once spilled, the revocation also denies this token
}

type shapeCase struct {
	name   string
	rev    events.Revocation
	rule   bool // claims-only: never spills
	probes []probe
}

func shapeCases() []shapeCase {
	day := at(24 * time.Hour)
	acme := map[string]any{"tenant": "acme"}
	return []shapeCase{
		{
			name: "jti",
			rev:  events.Revocation{JTI: "j1", ExpiresAt: day},
			probes: []probe{
				{name: "same jti", tok: &events.Token{JTI: "j1"}, deny: true},
				{name: "same jti any iss", tok: &events.Token{JTI: "j1", Iss: "B"}, deny: true},
				{name: "same jti any iat", tok: iat(events.Token{JTI: "j1"}, time.Hour), deny: true},
				{name: "other jti", tok: &events.Token{JTI: "j2", Sub: "j1"}},
				{name: "no jti", tok: &events.Token{Sub: "alice"}},
			},
		},
		{
			name: "jti scoped to iss",
			rev:  events.Revocation{JTI: "j1", Iss: "A", ExpiresAt: day},
			probes: []probe{
				{name: "same iss", tok: &events.Token{JTI: "j1", Iss: "A"}, deny: true},
				{name: "other iss", tok: &events.Token{JTI: "j1", Iss: "B"}},
				{name: "no iss", tok: &events.Token{JTI: "j1"}},
			},
		},
		{
			name: "sub logout",
			rev:  events.Revocation{Sub: "alice", IssuedBefore: at(0), ExpiresAt: day},
			probes: []probe{
				{name: "issued before", tok: iat(events.Token{Sub: "alice"}, -time.Hour), deny: true},
				{name: "issued a second before", tok: iat(events.Token{Sub: "alice"}, -time.Second), deny: true},
				{name: "issued at", tok: iat(events.Token{Sub: "alice"}, 0)},
				{name: "issued after", tok: iat(events.Token{Sub: "alice"}, time.Hour)},
				{name: "without iat fails closed", tok: &events.Token{Sub: "alice"}, deny: true},
				{name: "any iss", tok: iat(events.Token{Sub: "alice", Iss: "B"}, -time.Hour), deny: true},
				{name: "other sub", tok: iat(events.Token{Sub: "bob"}, -time.Hour)},
			},
		},
		{
			name: "sub logout scoped to iss",
			rev:  events.Revocation{Sub: "alice", Iss: "A", IssuedBefore: at(0), ExpiresAt: day},
			probes: []probe{
				{name: "same iss", tok: iat(events.Token{Sub: "alice", Iss: "A"}, -time.Hour), deny: true},
				{name: "other iss", tok: iat(events.Token{Sub: "alice", Iss: "B"}, -time.Hour)},
				{name: "no iss", tok: iat(events.Token{Sub: "alice"}, -time.Hour)},
				{name: "issued after", tok: iat(events.Token{Sub: "alice", Iss: "A"}, time.Hour)},
			},
		},
		{
			name: "ban",
			rev:  events.Revocation{Sub: "alice", Ban: true},
			probes: []probe{
				{name: "issued before", tok: iat(events.Token{Sub: "alice"}, -time.Hour), deny: true},
				{name: "issued after", tok: iat(events.Token{Sub: "alice"}, time.Hour), deny: true},
				{name: "other sub", tok: iat(events.Token{Sub: "bob"}, time.Hour)},
			},
		},
		{
			name: "kid",
			rev:  events.Revocation{Kid: "k1"},
			probes: []probe{
				{name: "issued before", tok: iat(events.Token{Kid: "k1"}, -time.Hour), deny: true},
				{name: "issued after", tok: iat(events.Token{Kid: "k1"}, time.Hour), deny: true},
				{name: "other kid", tok: iat(events.Token{Kid: "k2", Sub: "k1"}, time.Hour)},
			},
		},
		{
			name: "kid with issued_before",
			rev:  events.Revocation{Kid: "k1", IssuedBefore: at(0)},
			probes: []probe{
				{name: "issued before", tok: iat(events.Token{Kid: "k1"}, -time.Hour), deny: true},
				{name: "issued after", tok: iat(events.Token{Kid: "k1"}, time.Hour)},
			},
		},
		{
			name: "claims rule",
			rev:  events.Revocation{Iss: "A", Claims: acme, IssuedBefore: at(0), ExpiresAt: day},
			rule: true,
			probes: []probe{
				{name: "tenant issued before", tok: iat(events.Token{Iss: "A", Claims: map[string]any{"tenant": "acme"}}, -time.Hour), deny: true},
				{name: "tenant issued after", tok: iat(events.Token{Iss: "A", Claims: map[string]any{"tenant": "acme"}}, time.Hour)},
				{name: "other tenant", tok: iat(events.Token{Iss: "A", Claims: map[string]any{"tenant": "other"}}, -time.Hour)},
				{name: "other iss", tok: iat(events.Token{Iss: "B", Claims: map[string]any{"tenant": "acme"}}, -time.Hour)},
				{name: "no claims", tok: iat(events.Token{Iss: "A"}, -time.Hour)},
			},
		},
		{
			name: "claims rule without iss",
			rev:  events.Revocation{Claims: map[string]any{"tier": 2.0}, Ban: true},
			rule: true,
			probes: []probe{
				{name: "any iss", tok: &events.Token{Iss: "B", Claims: map[string]any{"tier": 2.0}}, deny: true},
				{name: "number type", tok: &events.Token{Claims: map[string]any{"tier": int64(2)}}, deny: true},
				{name: "other value", tok: &events.Token{Claims: map[string]any{"tier": 3.0}}},
			},
		},
		{
			name: "multi-matcher",
			rev:  events.Revocation{Sub: "alice", Iss: "A", Claims: acme, IssuedBefore: at(0), ExpiresAt: day},
			probes: []probe{
				{name: "all match", tok: iat(events.Token{Sub: "alice", Iss: "A", Claims: map[string]any{"tenant": "acme"}}, -time.Hour), deny: true},
				{name: "other tenant", tok: iat(events.Token{Sub: "alice", Iss: "A", Claims: map[string]any{"tenant": "other"}}, -time.Hour), overDeny: true},
				{name: "issued after", tok: iat(events.Token{Sub: "alice", Iss: "A", Claims: map[string]any{"tenant": "acme"}}, time.Hour)},
				{name: "other iss", tok: iat(events.Token{Sub: "alice", Iss: "B", Claims: map[string]any{"tenant": "acme"}}, -time.Hour)},
				{name: "other sub", tok: iat(events.Token{Sub: "bob", Iss: "A", Claims: map[string]any{"tenant": "acme"}}, -time.Hour)},
			},
		},
		{
			name: "jti and sub",
			rev:  events.Revocation{JTI: "j1", Sub: "alice", ExpiresAt: day},
			probes: []probe{
				{name: "both", tok: &events.Token{JTI: "j1", Sub: "alice"}, deny: true},
				{name: "jti only", tok: &events.Token{JTI: "j1", Sub: "bob"}, overDeny: true},
				{name: "sub only", tok: &events.Token{JTI: "j2", Sub: "alice"}},
			},
		},
	}
}

func TestShapes(t *testing.T) {
	for _, tc := range shapeCases() {
		t.Run(tc.name, func(t *testing.T) {
			for _, tier := range []string{"exact", "spilled"} {
				t.Run(tier, func(t *testing.T) {
					d := newDenylist(t, nil, WithCapacity(2))
					r := withKey(tc.rev)
					d.Apply(r)
					spilled := tier == "spilled"
					if spilled {
						spillAll(t, d)
						st := d.Stats()
						if tc.rule {
							if st.ClaimRules != 1 || st.Spilled != 0 {
								t.Fatalf("claims rule: stats %+v, want it kept as a rule", st)
							}
						} else if st.Spilled != 1 || st.SpilledTotal != 1 {
							t.Fatalf("stats %+v, want one spilled revocation", st)
						}
					}
					for _, p := range tc.probes {
						t.Run(p.name, func(t *testing.T) {
							want := p.deny || (spilled && p.overDeny && !tc.rule)
							key := wantCheck(t, d, p.tok, t0, want)
							wantKey := ""
							if p.deny && (!spilled || tc.rule) {
								wantKey = r.Key
							}
							if key != wantKey {
								t.Errorf("key = %q, want %q", key, wantKey)
							}
						})
					}
				})
			}
		})
	}
}

func TestApplyComputesMissingKey(t *testing.T) {
	d := newDenylist(t, nil)
	d.Apply(&events.Revocation{JTI: "j1"})
	want := (&events.Revocation{JTI: "j1"}).ComputeKey()
	if key := wantCheck(t, d, &events.Token{JTI: "j1"}, t0, true); key != want {
		t.Fatalf("key = %q, want ComputeKey %q", key, want)
	}
	d.Lift(want)
	wantCheck(t, d, &events.Token{JTI: "j1"}, t0, false)
}

func TestApplyReplacesSameKey(t *testing.T) {
	for _, tier := range []string{"exact", "spilled"} {
		t.Run(tier, func(t *testing.T) {
			d := newDenylist(t, nil, WithCapacity(4))
			before := iat(events.Token{Sub: "alice"}, -time.Hour)
			between := iat(events.Token{Sub: "alice"}, 30*time.Minute)
			d.Apply(withKey(events.Revocation{Sub: "alice", IssuedBefore: at(0), ExpiresAt: at(24 * time.Hour)}))
			if tier == "spilled" {
				spillAll(t, d)
			}
			wantCheck(t, d, before, t0, true)
			wantCheck(t, d, between, t0, false)

			// A second logout of the same subject has the same key: it
			// replaces the first, which is then not counted twice.
			d.Apply(withKey(events.Revocation{Sub: "alice", IssuedBefore: at(time.Hour), ExpiresAt: at(25 * time.Hour)}))
			wantCheck(t, d, before, t0, true)
			wantCheck(t, d, between, t0, true)
			fillers := 0
			if tier == "spilled" {
				fillers = d.capacity
			}
			if st := d.Stats(); st.Exact+st.Spilled != 1+fillers {
				t.Fatalf("stats %+v: want %d revocations in all (1 logout + fillers)", st, 1+fillers)
			}

			// Replaced by an already expired revocation: removed.
			d.Apply(withKey(events.Revocation{Sub: "alice", IssuedBefore: at(-48 * time.Hour), ExpiresAt: at(-time.Hour)}))
			wantCheck(t, d, before, t0, false)
		})
	}
}

func TestLift(t *testing.T) {
	revs := []events.Revocation{
		{JTI: "j1", ExpiresAt: at(time.Hour)},
		{Sub: "alice", Ban: true},
		{Kid: "k1"},
		{Claims: map[string]any{"tenant": "acme"}, Ban: true},
	}
	toks := []*events.Token{
		{JTI: "j1"},
		{Sub: "alice"},
		{Kid: "k1"},
		{Claims: map[string]any{"tenant": "acme"}},
	}
	for _, tier := range []string{"exact", "spilled"} {
		t.Run(tier, func(t *testing.T) {
			d := newDenylist(t, nil, WithCapacity(3))
			for i := range revs {
				d.Apply(withKey(revs[i]))
			}
			if tier == "spilled" {
				spillAll(t, d)
			}
			d.Lift("00000000000000000000000000000000") // unknown: no-op
			d.Lift("not a key")
			for i := range revs {
				wantCheck(t, d, toks[i], t0, true)
			}
			for i := range revs {
				d.Lift(revs[i].ComputeKey())
				wantCheck(t, d, toks[i], t0, false)
				for j := i + 1; j < len(revs); j++ {
					wantCheck(t, d, toks[j], t0, true)
				}
			}
			if st := d.Stats(); st.Spilled != 0 || st.ClaimRules != 0 {
				t.Fatalf("after lifting everything: %+v", st)
			}
		})
	}
}

func TestLiftKeepsSharedFingerprint(t *testing.T) {
	// A logout and a ban of the same subject spill under one fingerprint.
	logout := withKey(events.Revocation{Sub: "alice", IssuedBefore: at(0), ExpiresAt: at(24 * time.Hour)})
	ban := withKey(events.Revocation{Sub: "alice", Ban: true})
	old := iat(events.Token{Sub: "alice"}, -time.Hour)
	fresh := iat(events.Token{Sub: "alice"}, time.Hour)

	for _, lift := range []string{"ban", "logout"} {
		t.Run("lift "+lift, func(t *testing.T) {
			d := newDenylist(t, nil, WithCapacity(2))
			d.Apply(logout)
			d.Apply(ban)
			spillAll(t, d)
			if st := d.Stats(); st.Spilled != 2 {
				t.Fatalf("stats %+v: want both spilled", st)
			}
			wantCheck(t, d, old, t0, true)
			wantCheck(t, d, fresh, t0, true)
			if lift == "ban" {
				d.Lift(ban.Key)
				wantCheck(t, d, old, t0, true) // the logout stays
				wantCheck(t, d, fresh, t0, false)
			} else {
				d.Lift(logout.Key)
				wantCheck(t, d, old, t0, true) // the ban stays
				wantCheck(t, d, fresh, t0, true)
			}
		})
	}
}

func TestReset(t *testing.T) {
	d := newDenylist(t, nil, WithCapacity(2))
	d.Apply(withKey(events.Revocation{JTI: "j1"}))
	d.Apply(withKey(events.Revocation{Sub: "alice", Ban: true}))
	d.Apply(withKey(events.Revocation{Kid: "k1"}))
	d.Apply(withKey(events.Revocation{Claims: map[string]any{"tenant": "acme"}, Ban: true}))
	before := d.Stats()
	if before.Spilled != 1 || before.Exact != 2 || before.ClaimRules != 1 {
		t.Fatalf("stats before Reset %+v", before)
	}
	d.Reset()
	for _, tok := range []*events.Token{{JTI: "j1"}, {Sub: "alice"}, {Kid: "k1"}, {Claims: map[string]any{"tenant": "acme"}}} {
		wantCheck(t, d, tok, t0, false)
	}
	after := d.Stats()
	if after != (Stats{SpilledTotal: before.SpilledTotal, Expired: before.Expired}) {
		t.Fatalf("stats after Reset %+v: want empty tiers, counters kept", after)
	}
	// Still usable.
	d.Apply(withKey(events.Revocation{JTI: "j1"}))
	wantCheck(t, d, &events.Token{JTI: "j1"}, t0, true)
}

func TestExpiry(t *testing.T) {
	const leeway = 90 * time.Second
	exp := at(time.Hour)
	cases := []struct {
		name string
		rev  events.Revocation
		tok  *events.Token
	}{
		{"jti", events.Revocation{JTI: "j1", ExpiresAt: exp}, &events.Token{JTI: "j1"}},
		{"ban", events.Revocation{Sub: "alice", Ban: true, ExpiresAt: exp}, &events.Token{Sub: "alice"}},
		{"kid", events.Revocation{Kid: "k1", Iss: "A", ExpiresAt: exp}, &events.Token{Kid: "k1", Iss: "A"}},
		{"claims", events.Revocation{Claims: map[string]any{"t": "x"}, Ban: true, ExpiresAt: exp}, &events.Token{Claims: map[string]any{"t": "x"}}},
	}
	for _, tc := range cases {
		for _, tier := range []string{"exact", "spilled"} {
			t.Run(tc.name+"/"+tier, func(t *testing.T) {
				clock := newTestClock(t0)
				d := newDenylist(t, clock, WithLeeway(leeway), WithCapacity(1))
				d.Apply(withKey(tc.rev))
				if tier == "spilled" {
					spillAll(t, d)
				}
				end := exp.Add(leeway)
				wantCheck(t, d, tc.tok, t0, true)
				wantCheck(t, d, tc.tok, exp.Time, true)                  // within the leeway
				wantCheck(t, d, tc.tok, end.Add(-time.Nanosecond), true) // last instant
				wantCheck(t, d, tc.tok, end, false)                      // forgotten before any Sweep
				if n := d.Sweep(end.Add(-time.Second)); n != 0 {
					t.Fatalf("Sweep before the end dropped %d", n)
				}
				before := d.Stats()
				if n := d.Sweep(end); n != 1 {
					t.Fatalf("Sweep at the end dropped %d, want 1", n)
				}
				after := d.Stats()
				if after.Expired != before.Expired+1 {
					t.Fatalf("Expired total %d → %d, want +1", before.Expired, after.Expired)
				}
				// Applying an expired revocation again does not bring it back.
				clock.set(end)
				d.Apply(withKey(tc.rev))
				wantCheck(t, d, tc.tok, t0, false)
			})
		}
	}
}

func TestEvictionDropsExpired(t *testing.T) {
	clock := newTestClock(t0)
	d := newDenylist(t, clock, WithCapacity(1))
	d.Apply(withKey(events.Revocation{JTI: "j1", ExpiresAt: at(time.Minute)}))
	clock.advance(time.Hour)
	d.Apply(withKey(events.Revocation{JTI: "j2", ExpiresAt: at(2 * time.Hour)}))
	if st := d.Stats(); st.Spilled != 0 || st.SpilledTotal != 0 || st.Expired != 1 || st.Exact != 1 {
		t.Fatalf("stats %+v: an expired entry must be dropped, not spilled", st)
	}
}

func TestSweepCounts(t *testing.T) {
	d := newDenylist(t, nil, WithCapacity(10))
	const n = 50 // 10 exact, 40 spilled
	for i := range n {
		d.Apply(withKey(events.Revocation{JTI: "j" + strconv.Itoa(i), ExpiresAt: at(time.Duration(i+1) * time.Minute)}))
	}
	d.Apply(withKey(events.Revocation{Claims: map[string]any{"t": "x"}, ExpiresAt: at(5 * time.Minute)}))
	d.Apply(withKey(events.Revocation{Sub: "alice", Ban: true})) // never expires
	if n := d.Sweep(t0); n != 0 {
		t.Fatalf("Sweep(t0) = %d", n)
	}
	// At +5m, j0..j4 and the claims rule have expired.
	if got := d.Sweep(t0.Add(5 * time.Minute)); got != 6 {
		t.Fatalf("Sweep(+5m) = %d, want 6", got)
	}
	if got := d.Sweep(t0.Add(5 * time.Minute)); got != 0 {
		t.Fatalf("second Sweep(+5m) = %d, want 0", got)
	}
	if got := d.Sweep(t0.Add(1000 * time.Hour)); got != n-5 {
		t.Fatalf("Sweep(far future) = %d, want %d", got, n-5)
	}
	st := d.Stats()
	if st.Exact != 1 || st.Spilled != 0 || st.ClaimRules != 0 || st.Expired != n+1 {
		t.Fatalf("stats %+v: want only the ban left and %d expired", st, n+1)
	}
	wantCheck(t, d, &events.Token{Sub: "alice"}, t0.Add(1000*time.Hour), true)
}

func TestOptions(t *testing.T) {
	d := New(WithCapacity(0), WithLeeway(-time.Hour), WithClock(nil))
	if d.capacity != DefaultCapacity || d.leeway != DefaultLeeway || d.now == nil {
		t.Fatalf("invalid options must be ignored: capacity %d leeway %v", d.capacity, d.leeway)
	}
	d.Apply(nil) // no-op
	if st := d.Stats(); st != (Stats{}) {
		t.Fatalf("stats %+v", st)
	}
}

// TestFarBeyondCapacity holds 100 times more live revocations than the exact
// tier: none may be forgotten, none may leak onto unrelated tokens.
func TestFarBeyondCapacity(t *testing.T) {
	const (
		capacity = 100
		n        = 10_000
	)
	clock := newTestClock(t0)
	d := newDenylist(t, clock, WithCapacity(capacity))
	d.sweepChunk = 97 // sweep in many slices

	type item struct {
		rev     *events.Revocation
		match   *events.Token // denied while rev is live
		nomatch *events.Token // never denied
	}
	items := make([]item, n)
	for i := range items {
		s := strconv.Itoa(i)
		exp := at(time.Duration(1+i%48) * time.Hour)
		switch i % 5 {
		case 0:
			items[i] = item{
				rev:     withKey(events.Revocation{JTI: "jti-" + s, ExpiresAt: exp}),
				match:   &events.Token{JTI: "jti-" + s, Sub: "user-" + s},
				nomatch: &events.Token{JTI: "jti-x" + s, Sub: "user-" + s},
			}
		case 1:
			items[i] = item{
				rev:     withKey(events.Revocation{JTI: "jti-" + s, Iss: "A", ExpiresAt: exp}),
				match:   &events.Token{JTI: "jti-" + s, Iss: "A"},
				nomatch: &events.Token{JTI: "jti-" + s, Iss: "B"},
			}
		case 2:
			items[i] = item{
				rev:     withKey(events.Revocation{Sub: "logout-" + s, IssuedBefore: at(0), ExpiresAt: exp}),
				match:   iat(events.Token{Sub: "logout-" + s}, -time.Minute),
				nomatch: iat(events.Token{Sub: "logout-" + s}, time.Minute),
			}
		case 3:
			items[i] = item{
				rev:     withKey(events.Revocation{Kid: "kid-" + s, ExpiresAt: exp}),
				match:   iat(events.Token{Kid: "kid-" + s}, time.Minute),
				nomatch: iat(events.Token{Kid: "kid-x" + s, Sub: "kid-" + s}, time.Minute),
			}
		case 4:
			items[i] = item{
				rev:     withKey(events.Revocation{Sub: "banned-" + s, Iss: "A", Ban: true, ExpiresAt: exp}),
				match:   iat(events.Token{Sub: "banned-" + s, Iss: "A"}, time.Minute),
				nomatch: iat(events.Token{Sub: "banned-" + s, Iss: "B"}, time.Minute),
			}
		}
		d.Apply(items[i].rev)
	}
	st := d.Stats()
	if st.Exact != capacity || st.Spilled != n-capacity || st.SpilledTotal != n-capacity {
		t.Fatalf("stats %+v: want %d exact, %d spilled", st, capacity, n-capacity)
	}
	for i, it := range items {
		key, ok := d.Check(it.match, t0)
		if !ok {
			t.Fatalf("revocation %d (%+v) forgotten", i, *it.rev)
		}
		if i >= n-capacity && key != it.rev.Key {
			t.Fatalf("revocation %d is in the exact tier: key %q, want %q", i, key, it.rev.Key)
		}
		if _, ok := d.Check(it.nomatch, t0); ok {
			t.Fatalf("revocation %d (%+v) denies unrelated token %+v", i, *it.rev, *it.nomatch)
		}
	}

	t.Run("lift spilled", func(t *testing.T) {
		for i := 0; i < n-capacity; i += 7 {
			d.Lift(items[i].rev.Key)
		}
		for i, it := range items {
			lifted := i < n-capacity && i%7 == 0
			if _, ok := d.Check(it.match, t0); ok == lifted {
				t.Fatalf("revocation %d: revoked = %v after lifting every 7th", i, ok)
			}
		}
	})

	t.Run("shared fingerprint", func(t *testing.T) {
		// A logout of a banned subject: both end up spilled under (A, sub).
		ban := items[4].rev
		logout := withKey(events.Revocation{Sub: ban.Sub, Iss: "A", IssuedBefore: at(0), ExpiresAt: at(time.Hour)})
		d.Apply(logout)
		spillAll(t, d)
		d.Lift(ban.Key)
		wantCheck(t, d, iat(events.Token{Sub: ban.Sub, Iss: "A"}, -time.Minute), t0, true)
		wantCheck(t, d, iat(events.Token{Sub: ban.Sub, Iss: "A"}, time.Minute), t0, false)
	})

	t.Run("expiry", func(t *testing.T) {
		now := t0.Add(24 * time.Hour)
		for i, it := range items {
			lifted := i < n-capacity && i%7 == 0
			live := !it.rev.Expired(now, 0) && !lifted
			if _, ok := d.Check(it.match, now); ok != live {
				t.Fatalf("revocation %d at +24h: revoked = %v, want %v", i, ok, live)
			}
		}
		before := d.Stats()
		swept := d.Sweep(now)
		after := d.Stats()
		if swept == 0 || after.Expired != before.Expired+uint64(swept) ||
			after.Exact+after.Spilled != before.Exact+before.Spilled-swept {
			t.Fatalf("Sweep = %d: stats %+v → %+v", swept, before, after)
		}
		for i, it := range items {
			lifted := i < n-capacity && i%7 == 0
			live := !it.rev.Expired(now, 0) && !lifted
			if _, ok := d.Check(it.match, now); ok != live {
				t.Fatalf("revocation %d after Sweep: revoked = %v, want %v", i, ok, live)
			}
		}
	})
}

func TestCheckDoesNotAllocate(t *testing.T) {
	d := newDenylist(t, nil, WithCapacity(16))
	for i := range 64 {
		s := strconv.Itoa(i)
		d.Apply(withKey(events.Revocation{JTI: "j" + s}))
		d.Apply(withKey(events.Revocation{Sub: "s" + s, Iss: "A", IssuedBefore: at(0)}))
		d.Apply(withKey(events.Revocation{Kid: "k" + s}))
	}
	d.Apply(withKey(events.Revocation{Iss: "A", Claims: map[string]any{"tenant": "acme"}, Ban: true}))
	toks := map[string]*events.Token{
		"miss":       iat(events.Token{JTI: "x", Sub: "y", Kid: "z", Iss: "A", Claims: map[string]any{"tenant": "other"}}, 0),
		"exact hit":  {JTI: "j63"},
		"spill hit":  iat(events.Token{Sub: "s0", Iss: "A"}, -time.Hour),
		"rule hit":   {Iss: "A", Claims: map[string]any{"tenant": "acme"}},
		"empty":      {},
		"near miss":  iat(events.Token{Sub: "s0", Iss: "A"}, time.Hour),
		"other iss ": iat(events.Token{Sub: "s0", Iss: "B"}, -time.Hour),
	}
	for name, tok := range toks {
		t.Run(name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, func() { d.Check(tok, t0) }); n != 0 {
				t.Fatalf("Check allocates %v times", n)
			}
		})
	}
}
