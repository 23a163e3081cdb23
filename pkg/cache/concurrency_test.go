package cache

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/revocast/revocast/pkg/events"
)

// TestConcurrentUse checks under -race that readers never see a pinned
// revocation forgotten, nor an unrelated token denied, while writers churn
// the exact tier (spilling the pinned ones), lift, advance the clock and
// sweep in slices.
func TestConcurrentUse(t *testing.T) {
	const (
		pinned  = 200
		readers = 3
		checks  = 3000
		// Each writer goes on at least this long, so that the churn
		// spills every pinned revocation however fast the readers are.
		minWrites = 2000
	)
	clock := newTestClock(t0)
	d := newDenylist(t, clock, WithCapacity(32))
	d.sweepChunk = 13

	pinnedToks := make([]*events.Token, 0, pinned)
	for i := range pinned {
		s := strconv.Itoa(i)
		if i%2 == 0 {
			d.Apply(withKey(events.Revocation{JTI: "pinned-" + s, ExpiresAt: at(1000 * time.Hour)}))
			pinnedToks = append(pinnedToks, &events.Token{JTI: "pinned-" + s})
		} else {
			d.Apply(withKey(events.Revocation{Sub: "pinned-" + s, Iss: "A", Ban: true}))
			pinnedToks = append(pinnedToks, iat(events.Token{Sub: "pinned-" + s, Iss: "A"}, time.Hour))
		}
	}

	var stop atomic.Bool
	var writers, readersWG sync.WaitGroup
	for w := range 2 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := 0; i < minWrites || !stop.Load(); i++ {
				s := strconv.Itoa(w) + "-" + strconv.Itoa(i)
				switch i % 10 {
				case 0, 1, 2, 3, 4:
					d.Apply(withKey(events.Revocation{JTI: "churn-" + s, ExpiresAt: events.Time{Time: clock.now().Add(time.Minute)}}))
				case 5, 6:
					d.Apply(withKey(events.Revocation{Sub: "churn-" + s, IssuedBefore: at(0), ExpiresAt: events.Time{Time: clock.now().Add(time.Minute)}}))
				case 7:
					d.Lift((&events.Revocation{JTI: "churn-" + strconv.Itoa(w) + "-" + strconv.Itoa(i-7)}).ComputeKey())
				case 8:
					clock.advance(10 * time.Second)
				case 9:
					d.Sweep(clock.now())
					_ = d.Stats()
				}
			}
		}()
	}
	for r := range readers {
		readersWG.Add(1)
		go func() {
			defer readersWG.Done()
			unrelated := &events.Token{JTI: "unrelated", Sub: "unrelated", Kid: "unrelated", Iss: "A"}
			for i := range checks {
				tok := pinnedToks[(i*7+r)%len(pinnedToks)]
				if _, ok := d.Check(tok, clock.now()); !ok {
					t.Errorf("pinned token %+v admitted", *tok)
					return
				}
				if _, ok := d.Check(unrelated, clock.now()); ok {
					t.Errorf("unrelated token denied")
					return
				}
			}
		}()
	}
	readersWG.Wait()
	stop.Store(true)
	writers.Wait()

	st := d.Stats()
	if st.SpilledTotal < pinned {
		t.Errorf("stats %+v: the churn should have spilled the pinned revocations", st)
	}
	for _, tok := range pinnedToks {
		wantCheck(t, d, tok, clock.now(), true)
	}
}

// TestConcurrentGrowth checks under -race that readers never miss a pinned
// revocation nor deny an unrelated token while writers make the fingerprint
// index grow (bursts of applies), shift (lifts) and shrink (sweeps that drop
// most of it), so that its slots and hints move under the readers' feet
// between their read locks.
func TestConcurrentGrowth(t *testing.T) {
	const (
		pinned  = 300
		readers = 2
		cycles  = 12
		burst   = 3000
	)
	clock := newTestClock(t0)
	d := newDenylist(t, clock, WithCapacity(64))
	d.sweepChunk = 257

	var pinnedToks, unrelated []*events.Token
	for i := range pinned {
		s := strconv.Itoa(i)
		switch i % 3 {
		case 0:
			d.Apply(withKey(events.Revocation{JTI: "pinned-" + s}))
			pinnedToks = append(pinnedToks, &events.Token{JTI: "pinned-" + s})
		case 1:
			d.Apply(withKey(events.Revocation{Sub: "pinned-" + s, Iss: "A", IssuedBefore: at(time.Hour)}))
			pinnedToks = append(pinnedToks, iat(events.Token{Sub: "pinned-" + s, Iss: "A"}, 0))
		default:
			d.Apply(withKey(events.Revocation{Kid: "pinned-" + s}))
			pinnedToks = append(pinnedToks, &events.Token{Kid: "pinned-" + s})
		}
		unrelated = append(unrelated, iat(events.Token{JTI: "free-" + s, Sub: "pinned-" + s, Iss: "B", Kid: "free-" + s}, 0))
	}

	var done atomic.Bool
	var readersWG sync.WaitGroup
	for r := range readers {
		readersWG.Add(1)
		go func() {
			defer readersWG.Done()
			for i := r; !done.Load(); i++ {
				tok := pinnedToks[i%pinned]
				if _, ok := d.Check(tok, clock.now()); !ok {
					t.Errorf("pinned token %+v admitted", *tok)
					return
				}
				if _, ok := d.Check(unrelated[i%pinned], clock.now()); ok {
					t.Errorf("unrelated token %+v denied", *unrelated[i%pinned])
					return
				}
			}
		}()
	}
	size := func() int {
		d.mu.RLock()
		defer d.mu.RUnlock()
		return len(d.fps.slots)
	}
	grew, shrank := 0, 0
	for c := range cycles {
		before := size()
		exp := events.Time{Time: clock.now().Add(time.Minute)}
		for i := range burst {
			s := strconv.Itoa(c) + "-" + strconv.Itoa(i)
			if i%2 == 0 {
				d.Apply(withKey(events.Revocation{JTI: "churn-" + s, ExpiresAt: exp}))
			} else {
				d.Apply(withKey(events.Revocation{Sub: "churn-" + s, Iss: "A", Ban: true, ExpiresAt: exp}))
			}
			if i%5 == 4 {
				d.Lift((&events.Revocation{JTI: "churn-" + strconv.Itoa(c) + "-" + strconv.Itoa(i-4)}).ComputeKey())
			}
		}
		if size() > before {
			grew++
		}
		before = size()
		clock.advance(2 * time.Minute)
		d.Sweep(clock.now())
		if size() < before {
			shrank++
		}
	}
	done.Store(true)
	readersWG.Wait()
	if grew == 0 || shrank == 0 {
		t.Errorf("the index grew %d times and shrank %d times: both should happen", grew, shrank)
	}
	for _, tok := range pinnedToks {
		wantCheck(t, d, tok, clock.now(), true)
	}
}
