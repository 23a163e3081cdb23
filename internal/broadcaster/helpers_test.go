package broadcaster_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/auth"
	"github.com/revocast/revocast/internal/broadcaster"
	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/internal/testutil/inprocess"
	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/events/eventlog"
	"github.com/revocast/revocast/pkg/events/memlog"
	"github.com/revocast/revocast/pkg/events/natslog"
	"github.com/revocast/revocast/pkg/sse"
)

// backend is where a test's broadcaster keeps its log.
type backend int

const (
	embeddedNATS backend = iota // a NATS server in the broadcaster (the default)
	externalNATS                // a NATS server of its own, as in production clusters
	memoryLog                   // memlog: no NATS at all
)

// startServer runs a broadcaster on 127.0.0.1:0 with a fresh embedded NATS.
func startServer(t *testing.T, mod func(*broadcaster.Config)) (*broadcaster.Server, string) {
	t.Helper()
	return memoryLog.start(t, mod)
}

// start runs a broadcaster on 127.0.0.1:0 whose log is on b, fresh.
func (b backend) start(t *testing.T, mod func(*broadcaster.Config)) (*broadcaster.Server, string) {
	t.Helper()
	if testing.Short() && b != memoryLog {
		t.Skip("JetStream backend: skipped with -short (the same test runs on the memory log)")
	}
	var backend eventlog.Backend
	switch b {
	case embeddedNATS:
		backend = natslog.Config{DataDir: t.TempDir()}
	case externalNATS:
		backend = natslog.Config{URLs: []string{testutil.StartNATS(t).URL}}
	case memoryLog:
		backend = memlog.Config{}
	}
	return inprocess.Broadcaster(t, func(cfg *broadcaster.Config) {
		cfg.Backend, cfg.Logger = backend, testLogger(t)
		if mod != nil {
			mod(cfg) // a test that configures NATS gets NATS
		}
		if _, jetstream := cfg.Backend.(natslog.Config); jetstream && testing.Short() {
			t.Skip("needs JetStream: skipped with -short")
		}
	})
}

// testLogger sends the server's log to the test's output when
// REVOCAST_TEST_LOG is set (debug level), and nowhere otherwise.
func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("REVOCAST_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("decode %s: %v", a.body, err)
	}
}

func do(t *testing.T, method, url string, body string, header ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		if http.CanonicalHeaderKey(header[i]) == "Host" {
			req.Host = header[i+1] // the client sends req.Host, not Header["Host"]
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

// result is one revocation in an answer to a write (see appendResult).
type result struct {
	events.Revocation
	// Status is created, duplicate (an earlier request with the same
	// Idempotency-Key stored it), expired (not published: it had already
	// expired) or failed.
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

type batchAnswer struct {
	Revocations []result `json:"revocations"`
	Created     int      `json:"created"`
	Duplicates  int      `json:"duplicates"`
	Expired     int      `json:"expired"`
	Failed      int      `json:"failed"`
}

type stored struct {
	events.Revocation
	Status string `json:"status"`
}

func post(t *testing.T, base, body string, header ...string) stored {
	t.Helper()
	a := do(t, "POST", base+"/v1/revocations", body, header...)
	if a.status != http.StatusCreated {
		t.Fatalf("POST %s: %d %s", body, a.status, a.body)
	}
	var r stored
	a.decode(t, &r)
	return r
}

// subscriber reads one SSE stream over a real socket.
type subscriber struct {
	resp   *http.Response
	dec    *sse.Decoder
	events chan sse.Event
	done   chan struct{}
}

func subscribe(t *testing.T, url string, header ...string) *subscriber {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	s := &subscriber{resp: resp, dec: sse.NewDecoder(resp.Body), events: make(chan sse.Event, 1024), done: make(chan struct{})}
	stop := make(chan struct{})
	go func() {
		defer close(s.done)
		defer close(s.events)
		for {
			ev, err := s.dec.Next()
			if err != nil {
				return
			}
			select {
			case s.events <- ev:
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() { close(stop); resp.Body.Close(); <-s.done })
	return s
}

func (s *subscriber) next(t *testing.T) sse.Event {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatal("stream ended")
		}
		return ev
	case <-time.After(testutil.HangLimit):
		t.Fatalf("no event within %v", testutil.HangLimit)
	}
	return sse.Event{}
}

// until reads events up to and including the first of type typ.
func (s *subscriber) until(t *testing.T, typ string) []sse.Event {
	t.Helper()
	var out []sse.Event
	for {
		ev := s.next(t)
		out = append(out, ev)
		if ev.Type == typ {
			return out
		}
	}
}

var idPattern = regexp.MustCompile(`^[0-9]+-[0-9]+$`)

func waitGroup(t *testing.T, wg *sync.WaitGroup, d time.Duration, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// keys returns an Authenticator with a reader and a revoker key.
func keys(t *testing.T) (a *auth.Authenticator, reader, revoker string) {
	t.Helper()
	reader, _ = auth.GenerateKey()
	revoker, _ = auth.GenerateKey()
	ks, err := auth.ParseKeys(strings.NewReader(
		auth.KeyLine("dashboard", auth.RoleReader, reader) + "\n" + auth.KeyLine("ops", auth.RoleRevoker, revoker) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return auth.New(ks, nil), reader, revoker
}

func bearer(key string) []string {
	if key == "" {
		return nil
	}
	return []string{"Authorization", "Bearer " + key}
}

func doForm(t *testing.T, u, form, key string) answer {
	t.Helper()
	h := []string{"Content-Type", "application/x-www-form-urlencoded"}
	h = append(h, bearer(key)...)
	return do(t, "POST", u, form, h...)
}

// unsignedJWT builds a token with alg none: fine for decode-only paths.
func unsignedJWT(payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc([]byte(payload)) + "."
}

func freePort(t *testing.T) string {
	t.Helper()
	_, port, _ := net.SplitHostPort(testutil.FreeAddr(t))
	return port
}

// apiError is the body of every error answer (docs/api.md).
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// liftAnswer is the answer to DELETE /v1/revocations/{key}.
type liftAnswer struct {
	Key    string `json:"key"`
	ID     string `json:"id"`
	Seq    uint64 `json:"seq"`
	Status string `json:"status"` // lifted or duplicate
}

// listAnswer is a page of GET /v1/revocations.
type listAnswer struct {
	Revocations []json.RawMessage `json:"revocations"`
	Next        string            `json:"next,omitempty"`
}

// headOf is the event ID of the last event the broadcaster at base fanned
// out, as /readyz reports it.
func headOf(t *testing.T, base string) events.EventID {
	t.Helper()
	id, a := readyHead(t, base)
	if a.status != http.StatusOK {
		t.Fatalf("readyz: %d %s", a.status, a.body)
	}
	return id
}

// readyHead asks /readyz once: the head when it answers 200, and its
// answer.
func readyHead(t *testing.T, base string) (events.EventID, answer) {
	t.Helper()
	a := do(t, "GET", base+"/readyz", "")
	if a.status != http.StatusOK {
		return events.EventID{}, a
	}
	var r struct {
		Head string `json:"head"`
	}
	a.decode(t, &r)
	id, err := events.ParseEventID(r.Head)
	if err != nil {
		t.Fatalf("readyz head %q: %v", r.Head, err)
	}
	return id, a
}

// headSeq is the stream sequence of the last event fanned out.
func headSeq(t *testing.T, base string) uint64 {
	t.Helper()
	return headOf(t, base).Seq
}

// metric is the value of the server's metric name (a gauge or a counter
// without labels), read from its registry.
func metric(t *testing.T, s *broadcaster.Server, name string) float64 {
	t.Helper()
	families, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != 0 {
				continue
			}
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// headSeqOf is the stream sequence of the last event s fanned out, from its
// metrics (head_sequence).
func headSeqOf(t *testing.T, s *broadcaster.Server) uint64 {
	t.Helper()
	return uint64(metric(t, s, "revocast_broadcaster_head_sequence"))
}
