// This file is in package broadcaster, not broadcaster_test: it tests the
// unexported fleet (the agents' records and their exchange between nodes)
// alone, which the HTTP API shows only through one node at a time.

package broadcaster

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/hub"
	"github.com/revocast/revocast/pkg/events"
)

// TestFleetAcrossNodes passes the records two nodes would write to the
// positions bucket from one to the other, as the bucket's watch does.
func TestFleetAcrossNodes(t *testing.T) {
	h := hub.New(7)
	nodes := map[string]*fleet{}
	for _, name := range []string{"n1", "n2"} {
		f := newFleet(name, time.Minute, 5*time.Minute)
		f.epoch, f.head = h.Epoch, func() uint64 { return 10 }
		nodes[name] = f
	}
	n1, n2 := nodes["n1"], nodes["n2"]
	exchange := func(t *testing.T, from, to *fleet) {
		t.Helper()
		for k, v := range from.flushRecords() {
			to.remoteUpdate(k, v)
		}
	}
	sub := h.Subscribe(0)
	defer sub.Close()
	left := n1.connect("api", "i1", sub)
	exchange(t, n1, n2)

	for _, tc := range []struct {
		name     string
		node     *fleet
		instance string
		applied  uint64
		wantErr  error
	}{
		{"the streaming node", n1, "i1", 4, nil},
		{"another node passes it on", n2, "i1", 6, nil},
		{"an instance no node streams", n2, "nobody", 6, errUnknownInstance},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.node.report(tc.instance, events.EventID{Epoch: 7, Seq: tc.applied}); !errors.Is(err, tc.wantErr) {
				t.Fatalf("report: %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				return
			}
			exchange(t, n2, n1)
			exchange(t, n1, n2)
			for name, f := range nodes {
				l := f.list()
				if len(l) != 1 || l[0].Applied != "7-"+strconv.FormatUint(tc.applied, 10) || l[0].Node != "n1" || !l[0].Connected || !l[0].Fresh {
					t.Fatalf("%s lists %+v", name, l)
				}
				if e, _ := f.enforcementOf(tc.applied); e.Agents != 1 || e.Applied != 1 {
					t.Fatalf("%s: enforcement %+v", name, e)
				}
				if e, _ := f.enforcementOf(tc.applied + 1); e.Applied != 0 || len(e.Pending) != 1 || e.Pending[0].Instance != "i1" {
					t.Fatalf("%s: enforcement of a later event %+v", name, e)
				}
			}
		})
	}
	t.Run("an older report from another node changes nothing", func(t *testing.T) {
		if err := n2.report("i1", events.EventID{Epoch: 7, Seq: 2}); err != nil {
			t.Fatal(err)
		}
		exchange(t, n2, n1)
		if l := n1.list(); l[0].Applied != "7-6" {
			t.Fatalf("n1 lists %+v", l)
		}
	})
	t.Run("disconnected", func(t *testing.T) {
		left()
		exchange(t, n1, n2)
		for name, f := range nodes {
			if l := f.list(); len(l) != 1 || l[0].Connected || l[0].DisconnectedAt == nil {
				t.Fatalf("%s lists %+v", name, l)
			}
			if e, _ := f.enforcementOf(1); e.Agents != 0 {
				t.Fatalf("%s counts a disconnected agent: %+v", name, e)
			}
		}
	})
}
