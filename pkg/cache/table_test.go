package cache

import (
	"hash/maphash"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/revocast/revocast/pkg/events"
)

// checkTable verifies the linear-probing invariant: every slot is reachable
// from its home without crossing an empty slot, and n counts the slots.
func checkTable[S probeSlot](t *testing.T, tb *table[S]) {
	t.Helper()
	size := len(tb.slots)
	used := 0
	for j, s := range tb.slots {
		if s.id() == 0 {
			continue
		}
		used++
		for i := home(s.id(), size); i != j; i = (i + 1) % size {
			if tb.slots[i].id() == 0 {
				t.Fatalf("slot %d (home %d) unreachable: slot %d is empty", j, home(s.id(), size), i)
			}
		}
	}
	if used != tb.n {
		t.Fatalf("n = %d, %d slots used", tb.n, used)
	}
	if !tb.hinted {
		if tb.hints != nil {
			t.Fatalf("unhinted table has %d bytes of hints", len(tb.hints))
		}
		return
	}
	if size == 0 {
		return
	}
	if len(tb.hints) != size+hintClone {
		t.Fatalf("%d hints for %d slots", len(tb.hints), size)
	}
	for j, s := range tb.slots {
		want := uint8(0)
		if s.id() != 0 {
			want = hintOf(s.id())
		}
		if got := tb.hints[j]; got != want {
			t.Fatalf("slot %d (id %#x): hint %#x, want %#x", j, s.id(), got, want)
		}
		if j < hintClone && tb.hints[size+j] != want {
			t.Fatalf("slot %d: cloned hint %#x, want %#x", j, tb.hints[size+j], want)
		}
	}
}

func TestTableAgainstModel(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		tb := table[fpSlot]{hinted: seed%2 == 0}
		tb.resize(tableMinSlots)
		model := map[fpSlot]int{}
		for step := range 2000 {
			// Homes crowd the end of the table so that runs wrap around,
			// and few distinct slots repeat so that duplicates occur.
			p := uint64(60+rng.IntN(8)) % tableMinSlots
			// The bits above the tag take 4 values, so hints (never 0)
			// repeat.
			s := fpSlot{fp: p<<58 | uint64(rng.IntN(4))<<tagBits | uint64(rng.IntN(2))<<3 | 2, exp: uint32(rng.IntN(3))}
			if rng.IntN(2) == 0 && tb.n < 40 { // stay below the resize threshold
				tb.insert(s)
				model[s]++
			} else if i := tb.findSlot(s); i >= 0 {
				if model[s] == 0 {
					t.Fatalf("seed %d step %d: found %+v, not in the model", seed, step, s)
				}
				tb.deleteAt(i)
				model[s]--
			} else if model[s] > 0 {
				t.Fatalf("seed %d step %d: %+v lost", seed, step, s)
			}
			checkTable(t, &tb)
			if tb.hinted {
				checkHintedLookups(t, &tb)
			}
			if len(tb.slots) != tableMinSlots {
				t.Fatalf("table resized to %d", len(tb.slots))
			}
		}
		for s, n := range model {
			for ; n > 0; n-- {
				i := tb.findSlot(s)
				if i < 0 {
					t.Fatalf("seed %d: %+v lost", seed, s)
				}
				tb.deleteAt(i)
			}
		}
		if tb.n != 0 {
			t.Fatalf("seed %d: %d slots left", seed, tb.n)
		}
	}
}

func TestTableGrowsAndShrinks(t *testing.T) {
	for _, hinted := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "hinted"}[hinted], func(t *testing.T) {
			testTableGrowsAndShrinks(t, hinted)
		})
	}
}

func testTableGrowsAndShrinks(t *testing.T, hinted bool) {
	tb := table[liftSlot]{hinted: hinted}
	rng := rand.New(rand.NewPCG(7, 7))
	ids := make([]uint64, 10_000)
	for i := range ids {
		ids[i] = rng.Uint64() | 1
		tb.insert(liftSlot{key: ids[i], rec: fpSlot{fp: uint64(i) + 1}})
		if load := float64(tb.n) / float64(len(tb.slots)); load > 0.8 {
			t.Fatalf("load %.2f after %d inserts", load, i+1)
		}
	}
	checkTable(t, &tb)
	for i, id := range ids {
		j := tb.find(id)
		if j < 0 || tb.slots[j].rec.fp != uint64(i)+1 {
			t.Fatalf("id %d not found", i)
		}
	}
	if hinted {
		checkHintedLookups(t, &tb)
	}
	for _, id := range ids[100:] {
		tb.deleteAt(tb.find(id))
	}
	tb.shrink()
	checkTable(t, &tb)
	if hinted {
		checkHintedLookups(t, &tb)
	}
	if len(tb.slots) > 4*100 {
		t.Fatalf("%d slots for 100 entries after shrink", len(tb.slots))
	}
	for _, id := range ids[:100] {
		if tb.find(id) < 0 {
			t.Fatal("lost an entry in shrink")
		}
	}
	if tb.find(0xdead) >= 0 {
		t.Fatal("found an id never inserted")
	}
}

// checkHintedLookups checks that walking the hints of the run of every id
// in the table, four at a time with candidates as Denylist.probe does, finds
// its slot.
func checkHintedLookups[S probeSlot](t *testing.T, tb *table[S]) {
	t.Helper()
	size := len(tb.slots)
	for j, s := range tb.slots {
		if s.id() == 0 {
			continue
		}
		if !slices.Contains(hintedCandidates(tb, s.id()), j) {
			t.Fatalf("slot %d (id %#x, home %d) not among the candidates", j, s.id(), home(s.id(), size))
		}
	}
}

// hintedCandidates returns the slots the hints point at for id, walking its
// run from its home.
func hintedCandidates[S probeSlot](tb *table[S], id uint64) []int {
	var found []int
	size := len(tb.slots)
	for i, n := home(id, size), 0; n <= size; n += hintLanes {
		match, more := tb.candidates(i, hintOf(id))
		for ; match != 0; match &= match - 1 {
			found = append(found, (i+bits.TrailingZeros64(match)/8)%size)
		}
		if !more {
			break
		}
		i = (i + hintLanes) % size
	}
	return found
}

// TestCandidates compares candidates with a lane-by-lane reading on hint
// words made of empty lanes, the wanted hint, its neighbours (borrows) and
// others: every lane with the hint before the first empty one must be
// flagged, the lowest flagged lane must have the hint, no lane at or past
// the first empty one may be flagged, and more must tell whether there is
// an empty lane.
func TestCandidates(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	tb := table[fpSlot]{hinted: true, slots: make([]fpSlot, 1), hints: make([]byte, hintLanes)}
	for range 200_000 {
		h := uint8(1 + rng.IntN(0xff))
		if rng.IntN(4) == 0 {
			h = []uint8{1, 2, 0x7f, 0x80, 0x81, 0xff}[rng.IntN(6)]
		}
		lanes := tb.hints
		for j := range lanes {
			switch rng.IntN(6) {
			case 0:
				lanes[j] = 0
			case 1, 2:
				lanes[j] = h
			case 3:
				lanes[j] = h + 1
			case 4:
				lanes[j] = h - 1
			default:
				lanes[j] = uint8(rng.Uint32())
			}
		}
		match, more := tb.candidates(0, h)
		firstEmpty := slices.Index(lanes, 0)
		if more != (firstEmpty < 0) {
			t.Fatalf("lanes %#x, hint %#x: more = %v", lanes, h, more)
		}
		if firstEmpty < 0 {
			firstEmpty = hintLanes
		}
		for j, v := range lanes {
			flagged := match>>(8*j+7)&1 == 1
			switch {
			case j >= firstEmpty && flagged:
				t.Fatalf("lanes %#x, hint %#x: lane %d flagged at or past the first empty one (%#x)", lanes, h, j, match)
			case j < firstEmpty && v == h && !flagged:
				t.Fatalf("lanes %#x, hint %#x: lane %d not flagged (%#x)", lanes, h, j, match)
			}
		}
		if match&^0x8080_8080_8080_8080 != 0 {
			t.Fatalf("match %#x has bits outside the lane flags", match)
		}
		if match != 0 && lanes[bits.TrailingZeros64(match)/8] != h {
			t.Fatalf("lanes %#x, hint %#x: lowest flagged lane is not h (%#x)", lanes, h, match)
		}
	}
}

func TestSpillSlot(t *testing.T) {
	cases := []struct {
		name     string
		rev      events.Revocation
		leeway   time.Duration
		exp, cut uint32
	}{
		{name: "no expiry", rev: events.Revocation{Sub: "a", Ban: true}},
		{name: "whole second", rev: events.Revocation{JTI: "j", ExpiresAt: at(0)}, exp: uint32(t0.Unix())},
		{name: "leeway", rev: events.Revocation{JTI: "j", ExpiresAt: at(0)}, leeway: time.Minute, exp: uint32(t0.Unix() + 60)},
		{name: "fraction rounds up", rev: events.Revocation{JTI: "j", ExpiresAt: at(time.Millisecond)}, exp: uint32(t0.Unix() + 1)},
		{name: "beyond 2106 lives until lifted", rev: events.Revocation{JTI: "j", ExpiresAt: events.Time{Time: time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)}}},
		{name: "cut", rev: events.Revocation{Sub: "a", IssuedBefore: at(0)}, cut: uint32(t0.Unix())},
		{name: "cut fraction rounds up", rev: events.Revocation{Sub: "a", IssuedBefore: at(time.Millisecond)}, cut: uint32(t0.Unix() + 1)},
		{name: "cut ignored with jti", rev: events.Revocation{JTI: "j", IssuedBefore: at(0)}},
		{name: "cut ignored with ban", rev: events.Revocation{Sub: "a", Ban: true, IssuedBefore: at(0)}},
		{name: "cut beyond 2106 denies any iat", rev: events.Revocation{Sub: "a", IssuedBefore: events.Time{Time: time.Unix(math.MaxUint32+10, 0)}}},
		{name: "cut before 1970", rev: events.Revocation{Kid: "k", IssuedBefore: events.Time{Time: time.Unix(-10, 0)}}, cut: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := New(WithLeeway(tc.leeway))
			s := d.newEntry(&tc.rev, "k", 1).spill()
			if s.exp != tc.exp {
				t.Errorf("exp = %d, want %d", s.exp, tc.exp)
			}
			if s.cut != tc.cut {
				t.Errorf("cut = %d, want %d", s.cut, tc.cut)
			}
			if s.fp == 0 || s.fp&tagExact != 0 {
				t.Errorf("fp = %#x", s.fp)
			}
		})
	}
}

func TestKeyFP(t *testing.T) {
	d := New()
	cases := []struct {
		key  string
		want uint64
	}{
		{"0123456789abcdef0123456789abcdef", 0x0123456789abcdef},
		{"ffffffffffffffff0000000000000000", math.MaxUint64},
		{"00000000000000000000000000000000", 1}, // 0 is the empty slot
	}
	for _, tc := range cases {
		if got := d.keyFP(tc.key); got != tc.want {
			t.Errorf("keyFP(%q) = %#x, want %#x", tc.key, got, tc.want)
		}
	}
	// Not a ComputeKey key: hashed, stable, distinct.
	if a, b := d.keyFP("k1"), d.keyFP("k2"); a == b || a != d.keyFP("k1") || a == 0 {
		t.Errorf("keyFP of non-hex keys: %#x %#x", a, b)
	}
}

func TestKeyFPAgreesWithValidKey(t *testing.T) {
	d := New()
	rng := rand.New(rand.NewPCG(9, 9))
	const alphabet = "0123456789abcdefABCDEFgz/-"
	for range 10_000 {
		b := make([]byte, 30+rng.IntN(4))
		for i := range b {
			if rng.IntN(8) == 0 {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			} else {
				b[i] = alphabet[rng.IntN(16)]
			}
		}
		key := string(b)
		var want uint64
		if events.ValidKey(key) {
			for _, c := range key[:16] {
				if c <= '9' {
					want = want<<4 | uint64(c-'0')
				} else {
					want = want<<4 | uint64(c-'a'+10)
				}
			}
			want = max(want, 1)
		} else {
			want = max(maphash.String(d.keySeed, key), 1)
		}
		if got := d.keyFP(key); got != want {
			t.Fatalf("keyFP(%q) = %#x, want %#x", key, got, want)
		}
	}
}
