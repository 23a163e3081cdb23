package cache

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/revocast/revocast/pkg/events"
)

// model is the obviously correct denylist: every revocation, checked one by
// one.
type model struct {
	leeway time.Duration
	revs   map[string]*events.Revocation
}

func (m *model) apply(r *events.Revocation, now time.Time) {
	if r.Expired(now, m.leeway) {
		delete(m.revs, r.Key)
		return
	}
	m.revs[r.Key] = r
}

func (m *model) denies(t *events.Token, now time.Time) bool {
	for _, r := range m.revs {
		if !r.Expired(now, m.leeway) && r.Matches(t) {
			return true
		}
	}
	return false
}

// gen draws revocations and tokens from small vocabularies so that they
// collide often. Times are whole seconds around t0.
type gen struct {
	rng    *rand.Rand
	single bool // only revocations with a single matcher (plus iss)
	scale  int  // multiplies the vocabularies of jtis, subs and kids; 0 means 1
	// now is the time around which times are drawn; nil means t0.
	now func() time.Time
}

func (g gen) origin() time.Time {
	if g.now == nil {
		return t0
	}
	return g.now()
}

func (g gen) pick(prefix string, n int) string { return prefix + strconv.Itoa(g.rng.IntN(n)) }

// pickN picks from a vocabulary that grows with the scale.
func (g gen) pickN(prefix string, n int) string { return g.pick(prefix, n*max(g.scale, 1)) }

func (g gen) sec(lo, hi int) events.Time {
	return events.Time{Time: g.origin().Add(time.Duration(lo+g.rng.IntN(hi-lo)) * time.Second)}
}

func (g gen) iss() string {
	return []string{"", "", "A", "B"}[g.rng.IntN(4)]
}

func (g gen) revocation() *events.Revocation {
	r := events.Revocation{Iss: g.iss()}
	shapes := 7
	if !g.single {
		shapes = 10
	}
	switch g.rng.IntN(shapes) {
	case 0, 1:
		r.JTI = g.pickN("j", 12)
	case 2:
		r.Sub = g.pickN("s", 6)
		r.IssuedBefore = g.sec(-50, 50)
	case 3:
		r.Sub = g.pickN("s", 6)
		r.Ban = true
	case 4:
		r.Kid = g.pickN("k", 4)
		if g.rng.IntN(2) == 0 {
			r.IssuedBefore = g.sec(-50, 50)
		}
	case 5:
		r.Claims = map[string]any{"tenant": g.pick("t", 3)}
		r.IssuedBefore = g.sec(-50, 50)
	case 6:
		r.Claims = map[string]any{"tenant": g.pick("t", 3)}
		r.Ban = true
	case 7: // multi-matcher from here on
		r.JTI = g.pickN("j", 12)
		r.Sub = g.pickN("s", 6)
	case 8:
		r.Sub = g.pickN("s", 6)
		r.Claims = map[string]any{"tenant": g.pick("t", 3)}
		r.IssuedBefore = g.sec(-50, 50)
	case 9:
		r.Kid = g.pickN("k", 4)
		r.Sub = g.pickN("s", 6)
		r.Ban = true
	}
	if g.rng.IntN(8) > 0 {
		r.ExpiresAt = g.sec(-20, 300)
	}
	return withKey(r)
}

func (g gen) token() *events.Token {
	t := &events.Token{Iss: g.iss()}
	if g.rng.IntN(4) > 0 {
		t.JTI = g.pickN("j", 14)
	}
	if g.rng.IntN(4) > 0 {
		t.Sub = g.pickN("s", 7)
	}
	if g.rng.IntN(4) > 0 {
		t.Kid = g.pickN("k", 5)
	}
	if g.rng.IntN(2) > 0 {
		t.Claims = map[string]any{"tenant": g.pick("t", 4)}
	}
	if g.rng.IntN(6) > 0 {
		t.IssuedAt, t.HasIssuedAt = g.origin().Unix()-60+int64(g.rng.IntN(120)), true
	}
	return t
}

// TestAgainstModel runs random Apply/Lift/Sweep/clock sequences on a
// Denylist with a tiny exact tier and on the model. The Denylist must deny
// whatever the model denies; with single-matcher revocations it must also
// allow whatever the model allows; and a key it reports must be a live
// revocation that matches.
func TestAgainstModel(t *testing.T) {
	const (
		seeds  = 24
		steps  = 400
		checks = 12
		leeway = 7 * time.Second
	)
	for _, single := range []bool{true, false} {
		name := "multi-matcher"
		if single {
			name = "single-matcher"
		}
		t.Run(name, func(t *testing.T) {
			for seed := range uint64(seeds) {
				g := gen{rng: rand.New(rand.NewPCG(seed, 42)), single: single}
				clock := newTestClock(t0)
				d := newDenylist(t, clock, WithCapacity(1+int(seed%4)), WithLeeway(leeway))
				m := &model{leeway: leeway, revs: map[string]*events.Revocation{}}
				var keys []string
				for step := range steps {
					now := clock.now()
					switch op := g.rng.IntN(20); {
					case op < 12:
						r := g.revocation()
						d.Apply(r)
						m.apply(r, now)
						keys = append(keys, r.Key)
					case op < 15 && len(keys) > 0:
						key := keys[g.rng.IntN(len(keys))]
						d.Lift(key)
						delete(m.revs, key)
					case op < 16:
						d.Sweep(now)
					case op < 19:
						clock.advance(time.Duration(g.rng.IntN(20)) * time.Second)
					default:
						d.Reset()
						clear(m.revs)
					}
					for range checks {
						tok := g.token()
						at := clock.now().Add(time.Duration(g.rng.IntN(30)) * time.Second)
						want := m.denies(tok, at)
						key, got := d.Check(tok, at)
						if want && !got {
							t.Fatalf("seed %d step %d: under-deny of %+v at %v\nmodel: %s", seed, step, *tok, at.Sub(t0), dump(m))
						}
						if single && got && !want {
							t.Fatalf("seed %d step %d: over-deny of %+v at %v\nmodel: %s", seed, step, *tok, at.Sub(t0), dump(m))
						}
						if key != "" {
							r := m.revs[key]
							if r == nil || r.Expired(at, leeway) || !r.Matches(tok) {
								t.Fatalf("seed %d step %d: key %s does not deny %+v", seed, step, key, *tok)
							}
						}
					}
				}
			}
		})
	}
}

func dump(m *model) string {
	s := ""
	for _, r := range m.revs {
		s += "\n  " + r.Key[:8] + " jti=" + r.JTI + " sub=" + r.Sub + " iss=" + r.Iss + " kid=" + r.Kid +
			" ban=" + strconv.FormatBool(r.Ban) + " ib=" + r.IssuedBefore.Sub(t0).String() + " exp=" + r.ExpiresAt.Sub(t0).String()
	}
	return s
}

// tokenNear returns a token built from r's matchers, so that it is denied
// while r is live, or, one time in three, with one matcher changed, so that
// it is denied only if another revocation matches it.
func (g gen) tokenNear(r *events.Revocation) *events.Token {
	t := &events.Token{JTI: r.JTI, Sub: r.Sub, Iss: r.Iss, Kid: r.Kid, Claims: r.Claims}
	if g.rng.IntN(2) == 0 {
		t.IssuedAt, t.HasIssuedAt = g.origin().Unix()-60+int64(g.rng.IntN(120)), true
	}
	if g.rng.IntN(3) == 0 {
		switch g.rng.IntN(4) {
		case 0:
			t.JTI = g.pickN("j", 14)
		case 1:
			t.Sub = g.pickN("s", 7)
		case 2:
			t.Kid = g.pickN("k", 5)
		default:
			t.Iss = g.iss()
		}
	}
	return t
}

// TestAgainstModelGrowth is TestAgainstModel with vocabularies large enough
// that the fingerprint index grows, shrinks after sweeps, and its hints are
// rewritten by every kind of change (insert, backward shift, spill in place,
// resize): in bulk applies and lifts, sweeps that empty most of it, and
// resets. After every step the tables must be consistent (hints included),
// and checks of tokens near live revocations must agree with the model.
func TestAgainstModelGrowth(t *testing.T) {
	const (
		seeds  = 6
		steps  = 120
		checks = 40
		leeway = 7 * time.Second
	)
	for seed := range uint64(seeds) {
		clock := newTestClock(t0)
		g := gen{rng: rand.New(rand.NewPCG(seed, 43)), single: seed%2 == 0, scale: 300, now: clock.now}
		d := newDenylist(t, clock, WithCapacity(1+int(seed)*40), WithLeeway(leeway))
		d.sweepChunk = 1 + int(seed)*37
		m := &model{leeway: leeway, revs: map[string]*events.Revocation{}}
		var keys []string
		var grew, shrank, denied int
		size := 0
		for step := range steps {
			now := clock.now()
			switch op := g.rng.IntN(20); {
			case op < 10:
				for range 1 + g.rng.IntN(400) {
					r := g.revocation()
					d.Apply(r)
					m.apply(r, now)
					keys = append(keys, r.Key)
				}
			case op < 14 && len(keys) > 0:
				for range 1 + g.rng.IntN(200) {
					key := keys[g.rng.IntN(len(keys))]
					d.Lift(key)
					delete(m.revs, key)
				}
			case op < 16:
				d.Sweep(now)
			case op < 19:
				clock.advance(time.Duration(g.rng.IntN(120)) * time.Second)
			case g.rng.IntN(3) == 0:
				d.Reset()
				clear(m.revs)
			default: // most revocations expire: the index shrinks
				clock.advance(400 * time.Second)
				d.Sweep(clock.now())
			}
			switch n := len(d.fps.slots); {
			case n > size && size > 0:
				grew++
			case n < size && n > 0:
				shrank++
			}
			size = len(d.fps.slots)
			checkTable(t, &d.fps)
			checkTable(t, &d.lifts)
			if step%10 == 0 {
				checkHintedLookups(t, &d.fps)
			}
			live := make([]*events.Revocation, 0, len(m.revs))
			for _, r := range m.revs {
				live = append(live, r)
			}
			for c := range checks {
				tok := g.token()
				if c%2 == 0 && len(live) > 0 {
					tok = g.tokenNear(live[g.rng.IntN(len(live))])
				}
				at := clock.now().Add(time.Duration(g.rng.IntN(30)) * time.Second)
				want := m.denies(tok, at)
				_, got := d.Check(tok, at)
				if want {
					denied++
				}
				if want && !got {
					t.Fatalf("seed %d step %d: under-deny of %+v at %v (%d live)", seed, step, *tok, at.Sub(t0), len(m.revs))
				}
				if g.single && got && !want {
					t.Fatalf("seed %d step %d: over-deny of %+v at %v", seed, step, *tok, at.Sub(t0))
				}
			}
		}
		if st := d.Stats(); st.SpilledTotal == 0 || grew == 0 || shrank == 0 || denied < steps {
			t.Errorf("seed %d: the sequence should spill, grow and shrink the index and deny often: %+v, grew %d, shrank %d, denied %d",
				seed, st, grew, shrank, denied)
		}
		t.Logf("seed %d: grew %d, shrank %d, denied %d of %d", seed, grew, shrank, denied, steps*checks)
	}
}
