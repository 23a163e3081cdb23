package broadcaster_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/broadcaster"
	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/events/natslog"
	"github.com/revocast/revocast/pkg/sse"
)

func TestPostThenSubscribe(t *testing.T) { testPostThenSubscribe(t, embeddedNATS) }

func testPostThenSubscribe(t *testing.T, on backend) {
	s, base := on.start(t, nil)
	first := post(t, base, `{"jti":"token-1","reason":"logout"}`)
	if first.Status != "created" || !events.ValidKey(first.Key) || !idPattern.MatchString(first.ID) || first.Actor == "" {
		t.Fatalf("stored revocation %+v", first)
	}
	logout := post(t, base, `{"sub":"alice"}`)

	// a fresh subscriber gets the whole live state, then synced
	sub := subscribe(t, base+"/v1/events")
	evs := sub.until(t, events.TypeSynced)
	if len(evs) != 3 {
		t.Fatalf("got %d events before synced, want 2 + synced: %+v", len(evs)-1, evs)
	}
	for i, want := range []stored{first, logout} {
		ev := evs[i]
		if ev.Type != events.TypeRevoke || ev.ID != want.ID || !idPattern.MatchString(ev.ID) {
			t.Fatalf("event %d = %+v, want revoke with id %s", i, ev, want.ID)
		}
		if bytes.ContainsAny(ev.Data, "\n") {
			t.Fatalf("data spans lines: %q", ev.Data)
		}
		var rev events.Revocation
		if err := json.Unmarshal(ev.Data, &rev); err != nil || rev.Key != want.Key || rev.ID != want.ID || rev.Seq != want.Seq {
			t.Fatalf("data %s: %v", ev.Data, err)
		}
	}
	var synced events.Synced
	if err := json.Unmarshal(evs[2].Data, &synced); err != nil || synced.Head != logout.ID {
		t.Fatalf("synced = %s, want head %s", evs[2].Data, logout.ID)
	}

	// then live events
	third := post(t, base, `{"kid":"key-2023"}`)
	ev := sub.next(t)
	if ev.Type != events.TypeRevoke || ev.ID != third.ID {
		t.Fatalf("live event %+v, want %s", ev, third.ID)
	}
	if got := metric(t, s, "revocast_broadcaster_live_entries"); got != 3 {
		t.Fatalf("mirror holds %v entries", got)
	}

	// the stream headers documented in docs/api.md
	for k, v := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := sub.resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

func TestResume(t *testing.T) { testResume(t, embeddedNATS) }

func testResume(t *testing.T, on backend) {
	_, base := on.start(t, nil)
	var ids []string
	for i := range 5 {
		ids = append(ids, post(t, base, fmt.Sprintf(`{"jti":"t%d"}`, i)).ID)
	}
	epoch := strconv.FormatUint(headOf(t, base).Epoch, 10)

	types := func(evs []sse.Event) string {
		var b strings.Builder
		for _, ev := range evs {
			b.WriteString(ev.Type)
			if ev.ID != "" && ev.Type == events.TypeRevoke {
				b.WriteString("(" + ev.ID + ")")
			}
			b.WriteString(" ")
		}
		return b.String()
	}
	after2 := "revoke(" + ids[3] + ") revoke(" + ids[4] + ") synced "
	full := "revoke(" + ids[0] + ") revoke(" + ids[1] + ") revoke(" + ids[2] + ") " + after2
	tests := []struct {
		name   string
		url    string
		header []string
		want   string
	}{
		{"header", "/v1/events", []string{"Last-Event-ID", ids[2]}, after2},
		{"query parameter", "/v1/events?last_event_id=" + ids[2], nil, after2},
		{"header wins over query", "/v1/events?last_event_id=" + ids[0], []string{"Last-Event-ID", ids[2]}, after2},
		{"at the head", "/v1/events", []string{"Last-Event-ID", ids[4]}, "synced "},
		{"unknown epoch", "/v1/events", []string{"Last-Event-ID", "12345-2"}, "reset " + full},
		{"beyond the head", "/v1/events", []string{"Last-Event-ID", epoch + "-999"}, "reset " + full},
		{"now", "/v1/events?last_event_id=now", nil, "synced "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sub := subscribe(t, base+tc.url, tc.header...)
			evs := sub.until(t, events.TypeSynced)
			if got := types(evs); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			if evs[0].Type == events.TypeReset && (evs[0].ID != "" && evs[0].ID != tc.header[1] || string(evs[0].Data) != "{}") {
				t.Fatalf("reset event %+v: want no id and data {}", evs[0])
			}
		})
	}
	for _, bad := range []string{"garbage", "1-", "-1", "1-2-3", "x-1"} {
		t.Run("malformed "+bad, func(t *testing.T) {
			a := do(t, "GET", base+"/v1/events", "", "Last-Event-ID", bad)
			var e apiError
			a.decode(t, &e)
			if a.status != http.StatusBadRequest || e.Field != "Last-Event-ID" {
				t.Fatalf("got %d %s", a.status, a.body)
			}
			a = do(t, "GET", base+"/v1/events?last_event_id="+bad, "")
			a.decode(t, &e)
			if a.status != http.StatusBadRequest || e.Field != "last_event_id" {
				t.Fatalf("query: got %d %s", a.status, a.body)
			}
		})
	}
}

func TestLiftReplaceAndExpiry(t *testing.T) { testLiftReplaceAndExpiry(t, embeddedNATS) }

func testLiftReplaceAndExpiry(t *testing.T, on backend) {
	_, base := on.start(t, nil)
	ban := post(t, base, `{"sub":"mallory","ban":true,"reason":"abuse"}`)
	sub := subscribe(t, base+"/v1/events")
	sub.until(t, events.TypeSynced)

	// re-revoking the same key replaces it
	again := post(t, base, `{"sub":"mallory","ban":true,"reason":"abuse, again"}`)
	if again.Key != ban.Key || again.Seq <= ban.Seq {
		t.Fatalf("re-revoke %+v vs %+v", again, ban)
	}
	if ev := sub.next(t); ev.ID != again.ID {
		t.Fatalf("live %+v", ev)
	}
	var list listAnswer
	do(t, "GET", base+"/v1/revocations", "").decode(t, &list)
	if len(list.Revocations) != 1 || !bytes.Contains(list.Revocations[0], []byte("abuse, again")) {
		t.Fatalf("list after replace: %s", list.Revocations)
	}

	// lift replaces the revocation with a lift event
	a := do(t, "DELETE", base+"/v1/revocations/"+ban.Key, "")
	var lift liftAnswer
	a.decode(t, &lift)
	if a.status != http.StatusOK || lift.Key != ban.Key || !idPattern.MatchString(lift.ID) {
		t.Fatalf("lift: %d %s", a.status, a.body)
	}
	ev := sub.next(t)
	if ev.Type != events.TypeLift || ev.ID != lift.ID || string(ev.Data) != `{"key":"`+ban.Key+`"}` {
		t.Fatalf("lift event %+v", ev)
	}
	if a := do(t, "DELETE", base+"/v1/revocations/"+ban.Key, ""); a.status != http.StatusNotFound {
		t.Fatalf("second lift: %d", a.status)
	}
	if a := do(t, "GET", base+"/v1/revocations/"+ban.Key, ""); a.status != http.StatusNotFound {
		t.Fatalf("GET lifted: %d", a.status)
	}
	if a := do(t, "DELETE", base+"/v1/revocations/nothex", ""); a.status != http.StatusBadRequest {
		t.Fatalf("malformed key: %d", a.status)
	}
	if a := do(t, "DELETE", base+"/v1/revocations/"+strings.Repeat("0", 32), ""); a.status != http.StatusNotFound {
		t.Fatalf("unknown key: %d", a.status)
	}
	// a fresh subscriber sees the lift, not the revocation
	fresh := subscribe(t, base+"/v1/events")
	evs := fresh.until(t, events.TypeSynced)
	if len(evs) != 2 || evs[0].Type != events.TypeLift {
		t.Fatalf("fresh subscriber after lift: %+v", evs)
	}

	// expiry hides: a revocation expiring in a second leaves the list; the
	// replay keeps it for the expiry grace (TestExpiryGrace)
	// (it must be seen live first: on a machine too loaded to post and
	// read it within its life, it is posted again with a longer one)
	var short stored
	for life := 1500 * time.Millisecond; ; life *= 2 {
		if life > testutil.HangLimit {
			t.Fatalf("a revocation expiring in %v was never seen live", life/2)
		}
		jti := fmt.Sprintf("short-lived-%v", life)
		exp := time.Now().Add(life).UTC().Format(time.RFC3339Nano)
		a := do(t, "POST", base+"/v1/revocations", `{"jti":"`+jti+`","expires_at":"`+exp+`"}`)
		if a.status != http.StatusCreated {
			continue // expired before it was stored
		}
		a.decode(t, &short)
		if do(t, "GET", base+"/v1/revocations/"+short.Key, "").status == http.StatusOK {
			break
		}
	}
	deadline := time.Now().Add(testutil.HangLimit)
	for do(t, "GET", base+"/v1/revocations/"+short.Key, "").status != http.StatusNotFound {
		if time.Now().After(deadline) {
			t.Fatalf("revocation still listed %v after it expired", testutil.HangLimit)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
	// already expired: not published
	a = do(t, "POST", base+"/v1/revocations", `{"jti":"old","expires_at":"2020-01-01T00:00:00Z"}`)
	var r stored
	a.decode(t, &r)
	if a.status != http.StatusOK || r.Status != "expired" || r.ID != "" {
		t.Fatalf("expired POST: %d %s", a.status, a.body)
	}
}

func TestIdempotencyAndBadInput(t *testing.T) { testIdempotencyAndBadInput(t, embeddedNATS) }

func testIdempotencyAndBadInput(t *testing.T, on backend) {
	_, base := on.start(t, func(c *broadcaster.Config) { c.MaxBodyBytes = 4096; c.MaxBatch = 3 })
	a := post(t, base, `{"jti":"once"}`, "Idempotency-Key", "req-42")
	b := do(t, "POST", base+"/v1/revocations", `{"jti":"once"}`, "Idempotency-Key", "req-42")
	var second stored
	b.decode(t, &second)
	if b.status != http.StatusOK || second.Status != "duplicate" || second.ID != a.ID {
		t.Fatalf("retry: %d %s (first %s)", b.status, b.body, a.ID)
	}
	if c := do(t, "POST", base+"/v1/revocations", `{"jti":"other"}`, "Idempotency-Key", "req-42"); c.status != http.StatusConflict {
		t.Fatalf("same key, other body: %d %s", c.status, c.body)
	}
	if head := headSeq(t, base); head != a.Seq {
		t.Fatalf("head %d: the retry was stored again", head)
	}

	tests := []struct {
		name   string
		body   string
		status int
		field  string
	}{
		{"unknown field", `{"jti":"x","colour":"red"}`, 400, "colour"},
		{"no matcher", `{"reason":"?"}`, 400, "jti"},
		{"wrong type", `{"sub":7}`, 400, "sub"},
		{"bad time", `{"jti":"x","expires_at":"soon"}`, 400, "expires_at"},
		{"server field", `{"jti":"x","actor":"me"}`, 400, "actor"},
		{"batch item", `{"revocations":[{"jti":"a"},{"jti":""}]}`, 400, "revocations[1].jti"},
		{"batch limit", `{"revocations":[{"jti":"a"},{"jti":"b"},{"jti":"c"},{"jti":"d"}]}`, 400, "revocations"},
		{"not json", `jti=x`, 400, ""},
		{"too large", `{"jti":"` + strings.Repeat("x", 5000) + `"}`, 413, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, "POST", base+"/v1/revocations", tc.body)
			var e apiError
			a.decode(t, &e)
			if a.status != tc.status || e.Field != tc.field || e.Error == "" {
				t.Fatalf("got %d %s, want %d field %q", a.status, a.body, tc.status, tc.field)
			}
		})
	}
	if head := headSeq(t, base); head != a.Seq {
		t.Fatal("a refused request changed the log")
	}
}

func TestBatch(t *testing.T) { testBatch(t, embeddedNATS) }

func testBatch(t *testing.T, on backend) {
	_, base := on.start(t, nil)
	var items []string
	for i := range 500 {
		items = append(items, fmt.Sprintf(`{"jti":"bulk-%d"}`, i))
	}
	items = append(items, `{"jti":"stale","expires_at":1}`)
	body := `{"revocations":[` + strings.Join(items, ",") + `]}`
	a := do(t, "POST", base+"/v1/revocations", body, "Idempotency-Key", "bulk-1")
	var ans batchAnswer
	a.decode(t, &ans)
	if a.status != http.StatusCreated || ans.Created != 500 || ans.Expired != 1 || len(ans.Revocations) != 501 {
		t.Fatalf("batch: %d created=%d expired=%d failed=%d", a.status, ans.Created, ans.Expired, ans.Failed)
	}
	for i, r := range ans.Revocations[:500] {
		if r.Status != "created" || r.JTI != fmt.Sprintf("bulk-%d", i) || !idPattern.MatchString(r.ID) {
			t.Fatalf("item %d: %+v", i, r)
		}
	}
	// the same batch again is recognised item by item
	do(t, "POST", base+"/v1/revocations", body, "Idempotency-Key", "bulk-1").decode(t, &ans)
	if ans.Duplicates != 500 || ans.Created != 0 {
		t.Fatalf("retried batch: %+v", ans.Created)
	}
	// listing pages through all of them
	seen := 0
	after := ""
	for page := 0; page < 10; page++ {
		var list listAnswer
		do(t, "GET", base+"/v1/revocations?limit=200&after="+after, "").decode(t, &list)
		seen += len(list.Revocations)
		if list.Next == "" {
			break
		}
		after = list.Next
	}
	if seen != 500 {
		t.Fatalf("listed %d of 500", seen)
	}
	var list listAnswer
	do(t, "GET", base+"/v1/revocations?jti=bulk-42", "").decode(t, &list)
	if len(list.Revocations) != 1 || !bytes.Contains(list.Revocations[0], []byte(`"bulk-42"`)) {
		t.Fatalf("filter: %s", list.Revocations)
	}
	if a := do(t, "GET", base+"/v1/revocations?limit=0", ""); a.status != http.StatusBadRequest {
		t.Fatalf("limit=0: %d", a.status)
	}
}

// TestManySubscribers: 1,000 concurrent SSE subscribers all receive one
// posted event, and one that stops reading is cut off without holding up
// the others.
func TestManySubscribers(t *testing.T) {
	t.Parallel()
	s, base := startServer(t, func(c *broadcaster.Config) {
		c.WriteTimeout = 500 * time.Millisecond
		c.MaxConnsPerAddr = -1 // a thousand connect at once from one address
	})
	const n = 1000
	tr := &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: 0}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var synced, received sync.WaitGroup
	synced.Add(n)
	received.Add(n)
	receivedAt := make([]time.Time, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			defer received.Done()
			// a connection may fail when the machine is overloaded (a header
			// timeout under -race with other packages' tests running): a real
			// client retries, and so does this one, a few times
			var resp *http.Response
			var err error
			for attempt := 0; attempt < 3; attempt++ {
				req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/events?last_event_id=now", nil)
				if resp, err = client.Do(req); err == nil {
					break
				}
			}
			if err != nil {
				errs <- fmt.Errorf("subscriber %d: %w", i, err)
				synced.Done()
				return
			}
			defer resp.Body.Close()
			dec := sse.NewDecoder(resp.Body)
			isSynced := false
			defer func() {
				if !isSynced {
					synced.Done()
				}
			}()
			for {
				ev, err := dec.Next()
				if err != nil {
					errs <- fmt.Errorf("subscriber %d: stream ended: %w", i, err)
					return
				}
				if ev.Type == events.TypeSynced && !isSynced {
					isSynced = true
					synced.Done()
				}
				if ev.Type == events.TypeRevoke && bytes.Contains(ev.Data, []byte(`"for-everyone"`)) {
					receivedAt[i] = time.Now()
					return
				}
			}
		}()
	}
	waitGroup(t, &synced, testutil.HangLimit, "1000 subscribers to sync")

	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	before := metric(t, s, "revocast_broadcaster_subscribers")
	// a subscriber that never reads: a raw socket that sends the request
	// a small receive buffer set before connecting keeps the kernel from
	// absorbing megabytes on its behalf
	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var sockErr error
		if err := c.Control(func(fd uintptr) {
			sockErr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return sockErr
	}}
	conn, err := dialer.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	testutil.Eventually(t, testutil.HangLimit, "the stalled subscriber to connect", func() bool {
		return metric(t, s, "revocast_broadcaster_subscribers") == before+1
	})

	sent := time.Now()
	post(t, base, `{"jti":"for-everyone"}`)
	acked := time.Now()
	waitGroup(t, &received, testutil.HangLimit, "every subscriber to receive the event")
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	var latest time.Time
	for _, at := range receivedAt {
		if at.After(latest) {
			latest = at
		}
	}
	// The broadcaster answers a POST once its own fan-out has the event, so
	// most receipts precede the acknowledgement.
	t.Logf("%d subscribers: POST sent to last receipt %v; acknowledgement to last receipt %v",
		n, latest.Sub(sent), max(0, latest.Sub(acked)))

	// now flood: the stalled subscriber's socket and buffer fill and it is
	// disconnected; a reading subscriber still gets the last event.
	reader := subscribe(t, base+"/v1/events?last_event_id=now")
	reader.until(t, events.TypeSynced)
	reason := strings.Repeat("r", 900)
	var last stored
	for b := 0; b < 40 && metric(t, s, "revocast_broadcaster_slow_subscriber_disconnects_total") == 0; b++ {
		var items []string
		for i := range 200 {
			items = append(items, fmt.Sprintf(`{"jti":"flood-%d-%d","reason":"%s"}`, b, i, reason))
		}
		var ans batchAnswer
		do(t, "POST", base+"/v1/revocations", `{"revocations":[`+strings.Join(items, ",")+`]}`).decode(t, &ans)
		last.ID = ans.Revocations[len(ans.Revocations)-1].ID
	}
	testutil.Eventually(t, testutil.HangLimit, "the stalled subscriber to be disconnected", func() bool {
		return metric(t, s, "revocast_broadcaster_slow_subscriber_disconnects_total") >= 1
	})
	for {
		ev := reader.next(t)
		if ev.ID == last.ID {
			break
		}
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	t.Parallel()
	_, base := startServer(t, nil)
	if a := do(t, "GET", base+"/healthz", ""); a.status != 200 {
		t.Fatalf("healthz %d", a.status)
	}
	if a := do(t, "GET", base+"/readyz", ""); a.status != 200 || !bytes.Contains(a.body, []byte("ready")) {
		t.Fatalf("readyz %d %s", a.status, a.body)
	}
	post(t, base, `{"jti":"m"}`)
	a := do(t, "GET", base+"/metrics", "")
	for _, name := range []string{
		`revocast_broadcaster_events_published_total{type="revoke"} 1`,
		"revocast_broadcaster_subscribers 0",
		"revocast_broadcaster_slow_subscriber_disconnects_total 0",
		"revocast_broadcaster_replays_total 0",
		"revocast_broadcaster_resets_total 0",
		"revocast_broadcaster_publish_duration_seconds_count 1",
	} {
		if !bytes.Contains(a.body, []byte(name)) {
			t.Errorf("metrics lack %q", name)
		}
	}
}

func TestShutdownEndsStreams(t *testing.T) {
	t.Parallel()
	cfg := broadcaster.Config{Addr: "127.0.0.1:0", Backend: natslog.Config{DataDir: t.TempDir()}}
	s, err := broadcaster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-s.Ready()
	resp, err := http.Get("http://" + s.Addr() + "/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with an open stream: %v", err)
	}
	// ended, not waited out: a shutdown that waited for the stream would
	// have run to its deadline (however long it took otherwise)
	if ctx.Err() != nil {
		t.Fatalf("shutdown with an open stream waited out its deadline: took %v", time.Since(start))
	}
	if _, err := io.ReadAll(br); err != nil && !strings.Contains(err.Error(), "EOF") {
		t.Logf("stream ended with %v", err)
	}
}
