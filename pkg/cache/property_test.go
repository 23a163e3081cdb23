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
}

func (g gen) pick(prefix string, n int) string { return prefix + strconv.Itoa(g.rng.IntN(n)) }

// pickN picks from a vocabulary that grows with the scale.
func (g gen) pickN(prefix string, n int) string { return g.pick(prefix, n*max(g.scale, 1)) }

func (g gen) sec(lo, hi int) events.Time {
	return at(time.Duration(lo+g.rng.IntN(hi-lo)) * time.Second)
}

func (g gen) iss() string {
	return []string{"", "", "A", "B"}[g.rng.IntN(4)]
}

func (g gen) revocation() *events.Revocation {
	r := events.Revocation{Iss: g.iss()}
	shapes := 6
	if !g.single {
		shapes = 9
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
	case 6: // multi-matcher from here on
		r.JTI = g.pickN("j", 12)
		r.Sub = g.pickN("s", 6)
	case 7:
		r.Sub = g.pickN("s", 6)
		r.Claims = map[string]any{"tenant": g.pick("t", 3)}
		r.IssuedBefore = g.sec(-50, 50)
	case 8:
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
		t.IssuedAt, t.HasIssuedAt = t0.Unix()-60+int64(g.rng.IntN(120)), true
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
