package cache

import (
	"encoding/binary"
	"math/bits"
)

// table is an open-addressing hash table with linear probing and
// backward-shift deletion (no tombstones), for the Denylist's fingerprint
// index and lift index.
//
// Why not a Go map: at a million entries Go's maps sit near half load (each
// 1024-slot group doubles when 7/8 full, and with uniform hashes they all
// fill at once), which would cost ~90 bytes per spilled revocation for the
// two indexes instead of ~65 (~67 with the hints). These tables grow by
// 1.5× at 80 % load, so they stay between 53 % and 80 % full, where a miss
// still looks at about two or three slots (one or two cache lines).
//
// Slots are addressed by multiply-shift ("fastrange") on the id with its low
// tagBits bits cleared, so the size need not be a power of two and slots
// whose ids differ only in those bits share a probe run. Ids are uniform
// 64-bit hashes; id 0 marks an empty slot.
//
// A hinted table also keeps a byte per slot, 8 more bits of its id, in an
// array of its own (the way Swiss tables keep control bytes), so that a
// lookup can tell from the hints alone, one word and no branch per eight
// slots, that its id is absent, without reading the slots: at a million
// entries the slots fill tens of megabytes, out of the CPU caches, while
// the hints fill one or two and stay in them. Every write of a slot goes
// through set, which writes its hint too, under whatever lock guards the
// table, so that no lookup can miss a slot because of its hint.
type table[S probeSlot] struct {
	slots []S
	// hints, when hinted: hintOf(id) per slot, 0 if empty, then a copy of
	// the first hintClone slots' hints, so that reading hintLanes hints from
	// any slot sees the run wrap around.
	hints  []byte
	hinted bool
	n      int
}

type probeSlot interface {
	comparable
	id() uint64
}

const (
	tableMinSlots = 64
	tagBits       = 4
	tagMask       = 1<<tagBits - 1
	hintLanes     = 8 // hints read at once: a uint64
	hintClone     = hintLanes - 1
)

func home(id uint64, size int) int {
	hi, _ := bits.Mul64(id&^tagMask, uint64(size))
	return int(hi)
}

// hintOf is the byte of an id that a hinted table keeps apart from its
// slot: the 8 bits just above the tag, independent of home (which takes the
// high bits). Never 0, the empty slot.
func hintOf(id uint64) uint8 { return max(uint8(id>>tagBits), 1) }

// candidates returns, for a hinted, non-empty table, which of the slots i to
// i+7 (wrapping around) may hold an id with hint h: bit 8j+7 of match is set
// for slot i+j; only slots before the first empty one are flagged, and more
// reports whether the run of i goes on past the eight.
//
// It is one load and a few ALU operations (SWAR on eight byte lanes): no
// branch to mispredict per slot, as a slot-by-slot loop has when the runs
// it meets vary in length. Every slot with hint h is flagged; a borrow may
// also flag a slot above a flagged one, so the caller compares the slot's
// id anyway, as it must for hints that are merely equal.
func (t *table[S]) candidates(i int, h uint8) (match uint64, more bool) {
	const lo, hi = 0x0101_0101_0101_0101, 0x8080_8080_8080_8080
	w := binary.LittleEndian.Uint64(t.hints[i:])
	x := w ^ uint64(h)*lo
	match = (x - lo) &^ x & hi
	empty := (w - lo) &^ w & hi // the lowest flagged lane is truly empty
	first := empty & -empty
	return match & (first - 1), first == 0
}

// set writes slot i and its hint.
func (t *table[S]) set(i int, s S) {
	t.slots[i] = s
	if t.hinted {
		var h uint8
		if id := s.id(); id != 0 {
			h = hintOf(id)
		}
		t.hints[i] = h
		if i < hintClone {
			t.hints[len(t.slots)+i] = h
		}
	}
}

func (t *table[S]) insert(s S) {
	if (t.n+1)*5 > len(t.slots)*4 {
		t.resize(max(tableMinSlots, len(t.slots)*3/2))
	}
	i := home(s.id(), len(t.slots))
	for t.slots[i].id() != 0 {
		if i++; i == len(t.slots) {
			i = 0
		}
	}
	t.set(i, s)
	t.n++
}

// find returns the index of the first slot whose id is id, or -1.
func (t *table[S]) find(id uint64) int {
	if t.n == 0 {
		return -1
	}
	for i := home(id, len(t.slots)); ; {
		switch t.slots[i].id() {
		case 0:
			return -1
		case id:
			return i
		}
		if i++; i == len(t.slots) {
			i = 0
		}
	}
}

// findSlot returns the index of a slot equal to s, or -1.
func (t *table[S]) findSlot(s S) int {
	if t.n == 0 {
		return -1
	}
	for i := home(s.id(), len(t.slots)); ; {
		if t.slots[i] == s {
			return i
		}
		if t.slots[i].id() == 0 {
			return -1
		}
		if i++; i == len(t.slots) {
			i = 0
		}
	}
}

// deleteAt empties slot i and moves later members of its probe run back, so
// that every remaining slot is still reachable from its home. Slots only
// ever move towards lower indices (cyclically).
func (t *table[S]) deleteAt(i int) {
	var zero S
	size := len(t.slots)
	for j := i; ; {
		if j++; j == size {
			j = 0
		}
		id := t.slots[j].id()
		if id == 0 {
			break
		}
		h := home(id, size)
		// The slot at j stays unless the hole at i lies cyclically in
		// [h, j), i.e. unless h lies cyclically in (i, j].
		if i <= j {
			if i < h && h <= j {
				continue
			}
		} else if i < h || h <= j {
			continue
		}
		t.set(i, t.slots[j])
		i = j
	}
	t.set(i, zero)
	t.n--
}

func (t *table[S]) resize(size int) {
	old := t.slots
	t.slots = make([]S, size)
	t.hints = nil
	if t.hinted {
		t.hints = make([]byte, size+hintClone)
	}
	t.n = 0
	for _, s := range old {
		if s.id() == 0 {
			continue
		}
		i := home(s.id(), size)
		for t.slots[i].id() != 0 {
			if i++; i == size {
				i = 0
			}
		}
		t.set(i, s)
		t.n++
	}
}

// shrink gives memory back after a sweep emptied most of the table.
func (t *table[S]) shrink() {
	switch {
	case t.n == 0:
		t.slots, t.hints = nil, nil
	case len(t.slots) > tableMinSlots && t.n*8 < len(t.slots):
		t.resize(max(tableMinSlots, t.n*2))
	}
}
