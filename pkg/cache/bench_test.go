package cache

import (
	"encoding/hex"
	"hash/maphash"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/revocast/revocast/pkg/events"
)

// Benchmarks, e.g.:
//
//	go test -run '^$' -bench . -benchmem -cpu 1,2 ./pkg/cache/
//
// The 1M fixtures take a few seconds to build, once per process.

const benchIss = "https://id.example.com"

// uuidLike returns a UUID-shaped jti (36 bytes), fresh on the heap.
func uuidLike(rng *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// benchFixture is a Denylist holding n live revocations shaped like a busy
// deployment: mostly jti revocations (logouts of single tokens), 1% subject
// logouts, a few compromised kids and two tenant-wide claim rules, all
// applied in one catch-up so that, past the default capacity, the oldest are
// in the spill tier.
type benchFixture struct {
	d   *Denylist
	now time.Time
	// Not revoked: fresh jti, some from logged-out users. miss cycles
	// through 64 tokens, so the slots it looks up stay in the CPU caches;
	// missCold through 64k, so that at 1M nearly every lookup is a cache
	// miss, as with real traffic from many users.
	miss, missCold []*events.Token
	hitExact       []*events.Token // revoked by an exact entry
	hitSpill       []*events.Token // revoked by a spilled entry (none below capacity)
}

var fixtures sync.Map // n → *benchFixture

func fixture(b *testing.B, n int) *benchFixture {
	b.Helper()
	if f, ok := fixtures.Load(n); ok {
		return f.(*benchFixture)
	}
	now := t0
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	d := New(WithClock(func() time.Time { return now }))
	f := &benchFixture{d: d, now: now}
	jtis := make([]string, 0, n)
	for i := range n {
		var r events.Revocation
		switch {
		case i%100 == 0:
			r = events.Revocation{Sub: "user-" + strconv.Itoa(i), Iss: benchIss, IssuedBefore: at(0), ExpiresAt: at(24 * time.Hour)}
		case i%10_000 == 1:
			r = events.Revocation{Kid: "key-" + strconv.Itoa(i)}
		default:
			r = events.Revocation{JTI: uuidLike(rng), ExpiresAt: at(time.Duration(1+i%24) * time.Hour)}
			jtis = append(jtis, r.JTI)
		}
		r.Key = r.ComputeKey()
		d.Apply(&r)
	}
	for _, tenant := range []string{"t1", "t2"} {
		d.Apply(withKey(events.Revocation{Iss: benchIss, Claims: map[string]any{"tenant": tenant}, IssuedBefore: at(-time.Hour), ExpiresAt: at(23 * time.Hour)}))
	}
	const pool, coldPool = 64, 1 << 16
	claims := make([]map[string]any, 4)
	for i := range claims {
		claims[i] = map[string]any{"tenant": "t" + strconv.Itoa(i)}
	}
	keyMemo := new(events.KeyMemo) // one verifying key, as the agent shares it
	newMiss := func(i int) events.Token {
		return events.Token{
			JTI: uuidLike(rng),
			Sub: "user-" + strconv.Itoa(rng.IntN(n)), // 1 in 100 logged out, but this token is newer
			Iss: benchIss,
			Kid: "key-current",
			// as an agent verifies it: the JWKS kid and the thumbprint of the
			// key that verified it are looked up as well
			KeyID:         "key-current",
			KeyThumbprint: "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
			KeyMemo:       keyMemo,
			IssuedAt:      now.Unix(),
			HasIssuedAt:   true,
			Claims:        claims[i%len(claims)],
		}
	}
	// The cold tokens are laid out one after the other and used in order,
	// so that reading them streams (as a just-parsed token is in cache),
	// while their lookups land all over the index.
	cold := make([]events.Token, coldPool)
	for i := range cold {
		cold[i] = newMiss(i)
		f.missCold = append(f.missCold, &cold[i])
	}
	for i := range pool {
		tok := newMiss(i)
		f.miss = append(f.miss, &tok)
		hit := tok
		hit.JTI = jtis[len(jtis)-1-rng.IntN(min(len(jtis), DefaultCapacity/2))]
		f.hitExact = append(f.hitExact, &hit)
		if n > 2*DefaultCapacity {
			spilled := tok
			spilled.JTI = jtis[rng.IntN(len(jtis)-2*DefaultCapacity)]
			f.hitSpill = append(f.hitSpill, &spilled)
		}
	}
	// Sanity: the fixture means what the benchmark names say.
	for i, tok := range f.missCold {
		if _, ok := d.Check(tok, now); ok {
			b.Fatalf("cold miss token %d revoked", i)
		}
	}
	for i := range pool {
		if _, ok := d.Check(f.miss[i], now); ok {
			b.Fatalf("miss token %d revoked", i)
		}
		if key, ok := d.Check(f.hitExact[i], now); !ok || key == "" {
			b.Fatalf("exact hit token %d: %q %v", i, key, ok)
		}
		if f.hitSpill != nil {
			if key, ok := d.Check(f.hitSpill[i], now); !ok || key != "" {
				b.Fatalf("spill hit token %d: %q %v", i, key, ok)
			}
		}
	}
	fixtures.Store(n, f)
	return f
}

func BenchmarkCheck(b *testing.B) {
	for _, n := range []struct {
		name string
		n    int
	}{{"1k", 1_000}, {"1M", 1_000_000}} {
		for _, c := range []string{"miss", "miss-cold", "hit-exact", "hit-spill"} {
			b.Run(n.name+"/"+c, func(b *testing.B) {
				f := fixture(b, n.n)
				toks := map[string][]*events.Token{"miss": f.miss, "miss-cold": f.missCold, "hit-exact": f.hitExact, "hit-spill": f.hitSpill}[c]
				if len(toks) == 0 {
					b.Skip("nothing spilled at this size")
				}
				want := !strings.HasPrefix(c, "miss")
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, ok := f.d.Check(toks[i&(len(toks)-1)], f.now); ok != want {
						b.Fatal("wrong answer")
					}
				}
				b.StopTimer()
				if !want {
					lookups, reads := slotReads(f.d, toks)
					b.ReportMetric(float64(reads)/float64(len(toks)), "slot-reads/op")
					b.ReportMetric(float64(reads)/float64(lookups), "hint-FP/lookup")
				}
			})
		}
	}
}

// slotReads returns how many lookups in the fingerprint index checking
// these tokens makes, and how many slots those lookups read: for tokens that
// are not revoked, each read is a false positive of the hints, and at 1M a
// likely cache miss. It follows checkIndex.
func slotReads(d *Denylist, toks []*events.Token) (lookups, reads int) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, t := range toks {
		for k := kindJTI; k < numKinds; k++ {
			v := tokenValue(t, k)
			if v == "" {
				continue
			}
			h := maphash.String(d.seeds[k], v)
			for _, withIss := range []bool{false, true} {
				if d.tags[fpTag(k, withIss)] == 0 || withIss && t.Iss == "" {
					continue
				}
				fp := matcherFP(h, k, maphash.String(d.issSeed, t.Iss), withIss)
				lookups++
				reads += len(hintedCandidates(&d.fps, fp))
			}
		}
	}
	return lookups, reads
}

func BenchmarkCheckParallel(b *testing.B) {
	for _, c := range []string{"miss", "miss-cold", "hit-spill"} {
		b.Run("1M/"+c, func(b *testing.B) {
			f := fixture(b, 1_000_000)
			toks := map[string][]*events.Token{"miss": f.miss, "miss-cold": f.missCold, "hit-spill": f.hitSpill}[c]
			want := !strings.HasPrefix(c, "miss")
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := rand.IntN(len(toks))
				for pb.Next() {
					i++
					if _, ok := f.d.Check(toks[i&(len(toks)-1)], f.now); ok != want {
						b.Error("wrong answer")
						return
					}
				}
			})
		})
	}
}

// BenchmarkMemory1M measures the heap a Denylist holds per live revocation
// after a catch-up of 1M jti revocations with UUID-like jtis and the default
// capacity. Each revocation's strings are fresh, as decoding JSON makes
// them, and only the Denylist keeps them.
func BenchmarkMemory1M(b *testing.B) {
	const n = 1_000_000
	for range b.N {
		rng := rand.New(rand.NewPCG(1, 2))
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		before := ms.HeapAlloc
		d := New(WithClock(func() time.Time { return t0 }))
		for i := range n {
			r := events.Revocation{JTI: uuidLike(rng), ExpiresAt: at(time.Duration(1+i%24) * time.Hour)}
			r.Key = r.ComputeKey()
			d.Apply(&r)
		}
		runtime.GC()
		runtime.ReadMemStats(&ms)
		after := ms.HeapAlloc
		st := d.Stats()
		if st.Exact+st.Spilled != n {
			b.Fatalf("stats %+v", st)
		}
		b.ReportMetric(float64(after-before)/n, "B/revocation")
		b.ReportMetric(float64(len(d.fps.slots)*16+len(d.fps.hints)+len(d.lifts.slots)*24)/n, "index-B/revocation")
		runtime.KeepAlive(d)
	}
}

// BenchmarkApply measures Apply of jti revocations with keys set, as they
// arrive from the broadcaster, with the default capacity.
//
//   - catch-up: into a new Denylist, as after a start or a reset; past 64k
//     every Apply also spills one. Batches of 4096 are made with the timer
//     stopped, with fresh strings as a decoder makes them. This includes
//     growing the heap and the indexes.
//   - replace-1M: re-applying (with a new expiry) revocations of a Denylist
//     that holds 1M, in random order: mostly spilled ones, each of which
//     moves back to the exact tier and spills another.
func BenchmarkApply(b *testing.B) {
	b.Run("catch-up", func(b *testing.B) {
		const batch = 4096
		rng := rand.New(rand.NewPCG(3, 4))
		d := New(WithClock(func() time.Time { return t0 }))
		exp := at(time.Hour)
		revs := make([]events.Revocation, batch)
		b.ReportAllocs()
		b.ResetTimer()
		for done := 0; done < b.N; {
			b.StopTimer()
			n := min(batch, b.N-done)
			for i := range n {
				revs[i] = events.Revocation{Key: randomKey(rng), JTI: uuidLike(rng), ExpiresAt: exp}
			}
			b.StartTimer()
			for i := range n {
				d.Apply(&revs[i])
			}
			done += n
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "revocations/s")
	})
	b.Run("replace-1M", func(b *testing.B) {
		const batch = 4096
		f := replaceFixture()
		rng := rand.New(rand.NewPCG(5, 6))
		revs := make([]events.Revocation, batch)
		b.ReportAllocs()
		b.ResetTimer()
		for done := 0; done < b.N; {
			b.StopTimer()
			n := min(batch, b.N-done)
			for i := range n {
				p := &f.revs[rng.IntN(len(f.revs))]
				revs[i] = events.Revocation{Key: strings.Clone(p[1]), JTI: strings.Clone(p[0]), ExpiresAt: at(time.Duration(1+i) * time.Second)}
			}
			b.StartTimer()
			for i := range n {
				f.d.Apply(&revs[i])
			}
			done += n
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "revocations/s")
	})
}

func randomKey(rng *rand.Rand) string {
	var key [16]byte
	for j := range key {
		key[j] = byte(rng.Uint32())
	}
	return hex.EncodeToString(key[:])
}

// replaceFixture is a Denylist of 1M jti revocations and their (jti, key).
var replaceFixture = sync.OnceValue(func() (f struct {
	d    *Denylist
	revs [][2]string
}) {
	rng := rand.New(rand.NewPCG(7, 8))
	f.d = New(WithClock(func() time.Time { return t0 }))
	f.revs = make([][2]string, 1_000_000)
	for i := range f.revs {
		f.revs[i] = [2]string{uuidLike(rng), randomKey(rng)}
		f.d.Apply(&events.Revocation{Key: f.revs[i][1], JTI: f.revs[i][0], ExpiresAt: at(time.Hour)})
	}
	return f
})

// fakeJWT returns a string shaped like a compact JWS of about 800 bytes.
func fakeJWT(i int) string {
	return "eyJhbGciOiJSUzI1NiIsImtpZCI6ImtleS0xIn0." + strings.Repeat("x", 400) + strconv.Itoa(i) + "." + strings.Repeat("s", 342)
}

func BenchmarkVerifiedGet(b *testing.B) {
	type claims struct {
		Sub string
		Exp int64
	}
	v := NewVerified[claims](DefaultVerifiedCapacity)
	toks := make([]string, 1024)
	for i := range toks {
		toks[i] = fakeJWT(i)
		v.Add(toks[i], claims{Sub: "user"}, t0.Add(time.Hour))
	}
	// Misses are the same length and differ only at the end, the worst
	// case for telling them apart.
	misses := make([]string, len(toks))
	for i := range misses {
		misses[i] = fakeJWT(i+len(toks)) + "z"
	}
	for _, c := range []struct {
		name string
		toks []string
		want bool
	}{{"hit", toks, true}, {"miss", misses, false}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, ok := v.Get(c.toks[i&(len(c.toks)-1)], t0); ok != c.want {
					b.Fatal("wrong answer")
				}
			}
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := rand.IntN(len(c.toks))
				for pb.Next() {
					i++
					if _, ok := v.Get(c.toks[i&(len(c.toks)-1)], t0); ok != c.want {
						b.Error("wrong answer")
						return
					}
				}
			})
		})
	}
}
