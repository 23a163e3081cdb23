package broadcaster_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/broadcaster"

	"github.com/nats-io/nats.go"

	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/events/natslog"
)

// TestHeartbeatCost: the heartbeat promise (a node pings only while it has
// caught up with the stream leader) costs one check of the leader per
// heartbeat interval per node, not one per subscriber, and every subscriber
// still gets its pings. The broadcaster runs against a NATS server of the
// test's own, where every JetStream API request is counted by subject. Set
// REVOCAST_HEARTBEAT_SUBSCRIBERS to change the number of subscribers (1000).
func TestHeartbeatCost(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("opens a thousand streams; skipped under -short")
	}
	subscribers := 1000
	if v := os.Getenv("REVOCAST_HEARTBEAT_SUBSCRIBERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("REVOCAST_HEARTBEAT_SUBSCRIBERS=%q: want a positive number", v)
		}
		subscribers = n
	}
	const heartbeat = 500 * time.Millisecond
	const pingsToMeasure = 20

	ns := testutil.StartNATS(t)
	var (
		mu       sync.Mutex
		requests = map[string]int{}
	)
	nc, err := nats.Connect(ns.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Subscribe("$JS.API.>", func(m *nats.Msg) {
		// $JS.API.STREAM.MSG.GET.REVOCAST → STREAM.MSG.GET
		name := strings.TrimSuffix(strings.TrimPrefix(m.Subject, "$JS.API."), ".REVOCAST")
		mu.Lock()
		requests[name]++
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	_, base := startServer(t, func(c *broadcaster.Config) {
		c.Backend = natslog.Config{URLs: []string{ns.URL}}
		c.Heartbeat = heartbeat
		c.MaxSubscribers = subscribers + 10
		c.MaxSubscribersPerPrincipal = subscribers + 10 // all from one address
	})

	pings := make([]atomic.Int64, subscribers)
	var wg sync.WaitGroup
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	}()
	addr := strings.TrimPrefix(base, "http://")
	for i := range subscribers {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET /v1/events?last_event_id=now HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != http.StatusOK {
				return
			}
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					if err != io.EOF && !strings.Contains(err.Error(), "closed") {
						t.Logf("subscriber %d: %v", i, err)
					}
					return
				}
				if line == ": ping\n" {
					pings[i].Add(1)
				}
			}
		}()
	}
	everyonePinged := func() bool {
		for i := range pings {
			if pings[i].Load() == 0 {
				return false
			}
		}
		return true
	}
	testutil.Eventually(t, 2*time.Minute, "a ping on every subscriber", everyonePinged)

	snapshot := func() (map[string]int, []int64) {
		mu.Lock()
		defer mu.Unlock()
		r := map[string]int{}
		for k, v := range requests {
			r[k] = v
		}
		p := make([]int64, len(pings))
		for i := range pings {
			p[i] = pings[i].Load()
		}
		return r, p
	}
	reqBefore, pingsBefore := snapshot()
	start := time.Now()
	// measure over the time every subscriber takes to get pingsToMeasure
	// more pings
	testutil.Eventually(t, 5*time.Minute, "more pings on every subscriber", func() bool {
		for i := range pings {
			if pings[i].Load() < pingsBefore[i]+pingsToMeasure {
				return false
			}
		}
		return true
	})
	elapsed := time.Since(start)
	reqAfter, pingsAfter := snapshot()

	var names []string
	for name := range reqAfter {
		if reqAfter[name] > reqBefore[name] {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var report []string
	for _, name := range names {
		d := reqAfter[name] - reqBefore[name]
		report = append(report, fmt.Sprintf("%s %d (%.2f/s)", name, d, float64(d)/elapsed.Seconds()))
	}
	silent := 0
	var total int64
	for i := range pingsAfter {
		d := pingsAfter[i] - pingsBefore[i]
		total += d
		if d == 0 {
			silent++
		}
	}
	t.Logf("%d subscribers, heartbeat %v, over %v: JetStream API requests: %s; pings per subscriber %.1f",
		subscribers, heartbeat, elapsed.Round(time.Millisecond), strings.Join(report, ", "), float64(total)/float64(subscribers))
	if silent > 0 {
		t.Errorf("%d of %d subscribers got no ping in %v", silent, subscribers, elapsed)
	}
	// the leader is asked once per heartbeat interval by the heartbeat
	// check, and once a second by the consumer's stall watcher: per
	// subscriber it would be thousands
	gets := reqAfter["STREAM.MSG.GET"] - reqBefore["STREAM.MSG.GET"]
	if bound := int(elapsed/heartbeat) + int(elapsed/time.Second) + 4; gets > bound {
		t.Errorf("%d requests for the next message in %v: more than one per heartbeat interval and one a second (%d)", gets, elapsed, bound)
	}
}
