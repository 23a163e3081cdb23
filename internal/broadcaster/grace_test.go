package broadcaster_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/broadcaster"

	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/events/eventlog"
	"github.com/revocast/revocast/pkg/events/natslog"
)

// fullState reads a fresh subscriber's replay up to synced: what an agent
// that starts now receives. It returns the revocations by jti and the
// synced event's data.
func fullState(t *testing.T, base string) (map[string]events.Revocation, events.Synced) {
	t.Helper()
	sub := subscribe(t, base+"/v1/events")
	revs := map[string]events.Revocation{}
	var synced events.Synced
	for _, ev := range sub.until(t, events.TypeSynced) {
		switch ev.Type {
		case events.TypeRevoke:
			var r events.Revocation
			if err := json.Unmarshal(ev.Data, &r); err != nil {
				t.Fatalf("revoke event %s: %v", ev.Data, err)
			}
			revs[r.JTI] = r
		case events.TypeSynced:
			if err := json.Unmarshal(ev.Data, &synced); err != nil {
				t.Fatalf("synced event %s: %v", ev.Data, err)
			}
		}
	}
	return revs, synced
}

// TestExpiryGrace: a revocation stays in the log and in the full state a new
// subscriber receives until its expires_at plus the expiry grace G, also
// across a restart, so that an agent started just after expires_at still
// denies what a long-running agent denies for its leeway; listings hide it
// from expires_at. A revocation posted up to G after its expires_at is
// stored, one posted later is not. A lift outlives its revocation's
// expires_at by G too. The synced event tells agents L and G.
func TestExpiryGrace(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, base := embeddedNATS.start(t, func(c *broadcaster.Config) { c.Backend = natslog.Config{DataDir: dir} }) // restarts on the same data
	grace := events.DefaultExpiryGrace
	now := time.Now()
	at := func(d time.Duration) string { return now.Add(d).UTC().Format(time.RFC3339Nano) }

	// expires in a moment; the test waits until listings hide it
	soon := post(t, base, `{"jti":"expires in a moment","expires_at":"`+at(1500*time.Millisecond)+`"}`)

	tests := []struct {
		name   string
		post   func(t *testing.T) // stores (or not) a revocation of jti name
		stored bool               // in the full state after expires_at
	}{
		{"expires in a moment", func(t *testing.T) {}, true},
		{"expired within the grace", func(t *testing.T) {
			a := do(t, "POST", base+"/v1/revocations", `{"jti":"expired within the grace","expires_at":"`+at(-grace/2)+`"}`)
			if a.status != http.StatusCreated {
				t.Fatalf("POST of a revocation %v past expires_at (G = %v): %d %s, want 201", grace/2, grace, a.status, a.body)
			}
		}, true},
		{"expired beyond the grace", func(t *testing.T) {
			a := do(t, "POST", base+"/v1/revocations", `{"jti":"expired beyond the grace","expires_at":"`+at(-grace-time.Minute)+`"}`)
			var r stored
			a.decode(t, &r)
			if a.status != http.StatusOK || r.Status != "expired" {
				t.Fatalf("POST of a revocation past expires_at + G: %d %s, want 200 expired", a.status, a.body)
			}
		}, false},
		{"token expired within the grace (RFC 7009)", func(t *testing.T) {
			tok := unsignedJWT(`{"jti":"token expired within the grace (RFC 7009)","exp":` + strconv.FormatInt(now.Add(-grace/2).Unix(), 10) + `}`)
			head := headSeqOf(t, s)
			if a := do(t, "POST", base+"/v1/revoke", `{"token":"`+tok+`"}`, "Content-Type", "application/json"); a.status != http.StatusOK {
				t.Fatalf("POST /v1/revoke: %d %s", a.status, a.body)
			}
			if headSeqOf(t, s) == head {
				t.Fatal("a token that agents still accept for their leeway was not revoked")
			}
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.post(t) })
	}

	// listings may hide what expired; wait until they do
	testutil.Eventually(t, testutil.HangLimit, "the listing to hide the expired revocation", func() bool {
		return do(t, "GET", base+"/v1/revocations/"+soon.Key, "").status == http.StatusNotFound
	})
	if !time.Now().After(now.Add(1500 * time.Millisecond)) {
		t.Fatal("the listing hid a revocation before its expires_at")
	}

	// a lift of a revocation lives as long as the revocation would have
	short := post(t, base, `{"jti":"lifted","expires_at":"`+at(time.Minute)+`"}`)
	lift := do(t, "DELETE", base+"/v1/revocations/"+short.Key, "")
	var la liftAnswer
	lift.decode(t, &la)

	check := func(t *testing.T, base string) {
		revs, synced := fullState(t, base)
		for _, tc := range tests {
			if _, ok := revs[tc.name]; ok != tc.stored {
				t.Errorf("%s: in the full state of a new subscriber: %v, want %v", tc.name, ok, tc.stored)
			}
		}
		if synced.MaxTokenLifetime != int64(events.DefaultMaxTokenLifetime/time.Second) || synced.ExpiryGrace != int64(grace/time.Second) {
			t.Errorf("synced %+v: want max_token_lifetime %d and expiry_grace %d", synced,
				int64(events.DefaultMaxTokenLifetime/time.Second), int64(grace/time.Second))
		}
	}
	t.Run("new subscriber", func(t *testing.T) { check(t, base) })

	// the log itself keeps them: a restarted broadcaster replays them too
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// the lift is read from the log itself, while no broadcaster holds it
	lg, err := natslog.Config{DataDir: dir}.Connect(eventlog.ConnectOptions{ExpiryGrace: grace, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := lg.Open(ctx); err != nil {
		lg.Close()
		t.Fatal(err)
	}
	getter, ok := lg.(interface {
		GetSeq(context.Context, uint64) (eventlog.Record, error)
	})
	if !ok {
		lg.Close()
		t.Fatalf("the log %T cannot read a message by sequence", lg)
	}
	rec, err := getter.GetSeq(ctx, la.Seq)
	if cerr := lg.Close(); cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if want := short.ExpiresAt.Add(grace); rec.Type != events.TypeLift || rec.Expires.Before(want) {
		t.Errorf("the lift leaves the log at %v, before the revocation's expires_at + G = %v", rec.Expires, want)
	}
	_, base = embeddedNATS.start(t, func(c *broadcaster.Config) { c.Backend = natslog.Config{DataDir: dir} })
	t.Run("after a restart", func(t *testing.T) { check(t, base) })
}
