package broadcaster_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/revocast/revocast/internal/broadcaster"
	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/events/natslog"
)

// TestSuiteOnExternalNATS runs the broadcaster's main tests again with the
// log in a NATS deployment of its own instead of the embedded server.
func TestSuiteOnExternalNATS(t *testing.T) {
	t.Parallel()
	for name, test := range suite {
		t.Run(name, func(t *testing.T) { test(t, externalNATS) })
	}
}

// TestSuiteOnMemoryLog runs them with the log in memory (memlog): the
// broadcaster relies only on eventlog.Log.
func TestSuiteOnMemoryLog(t *testing.T) {
	t.Parallel()
	for name, test := range suite {
		t.Run(name, func(t *testing.T) { test(t, memoryLog) })
	}
}

// suite is the broadcaster's main tests, by backend.
var suite = map[string]func(*testing.T, backend){
	"PostThenSubscribe":      testPostThenSubscribe,
	"Resume":                 testResume,
	"LiftReplaceAndExpiry":   testLiftReplaceAndExpiry,
	"IdempotencyAndBadInput": testIdempotencyAndBadInput,
	"Batch":                  testBatch,
	"RoleMatrix":             testRoleMatrix,
}

// TestExternalNATS runs the broadcaster against a NATS deployment of its
// own (given by several URLs, the first of them dead): revocations, the
// stream, resume; and when an operator deletes the stream, subscribers are
// cut off and told to reset when they come back, and the new stream is
// served.
func TestExternalNATS(t *testing.T) {
	t.Parallel()
	n := testutil.StartNATS(t)
	dead := "nats://127.0.0.1:" + freePort(t)
	data := t.TempDir()
	_, base := startServer(t, func(c *broadcaster.Config) {
		c.Backend = natslog.Config{DataDir: data, URLs: []string{dead, n.URL}}
		c.EpochCheckInterval = 100 * time.Millisecond
	})
	first := post(t, base, `{"jti":"ext-1"}`)
	second := post(t, base, `{"sub":"ext-user"}`)
	sub := subscribe(t, base+"/v1/events", "Last-Event-ID", first.ID)
	evs := sub.until(t, events.TypeSynced)
	if len(evs) != 2 || evs[0].ID != second.ID {
		t.Fatalf("resume over external NATS: %+v", evs)
	}
	if entries, _ := os.ReadDir(filepath.Join(data)); len(entries) != 0 {
		t.Fatalf("the broadcaster wrote %d entries in its data directory: it ran NATS itself", len(entries))
	}

	// an operator deletes the stream: the broadcaster creates it anew
	nc, err := nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	oldEpoch := headOf(t, base).Epoch
	if err := js.DeleteStream(context.Background(), natslog.DefaultStreamName); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, testutil.HangLimit, "a new epoch", func() bool {
		id, a := readyHead(t, base)
		return a.status == http.StatusOK && id.Epoch != oldEpoch
	})
	// the connected subscriber was cut off
	deadline := time.After(testutil.HangLimit)
	for open := true; open; {
		select {
		case _, open = <-sub.events:
		case <-deadline:
			t.Fatalf("a subscriber of the deleted stream stayed connected for %v", testutil.HangLimit)
		}
	}
	third := post(t, base, `{"jti":"ext-3"}`)
	again := subscribe(t, base+"/v1/events", "Last-Event-ID", second.ID)
	evs = again.until(t, events.TypeSynced)
	if len(evs) != 3 || evs[0].Type != events.TypeReset || evs[1].ID != third.ID {
		t.Fatalf("after the stream was created anew: %+v", evs)
	}
}
