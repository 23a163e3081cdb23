package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/events"
	"github.com/revocast/revocast/pkg/sse"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.Cleanup()
	os.Exit(code)
}

func TestFlagsFallBackToEnvironment(t *testing.T) {
	env := map[string]string{
		"REVOCAST_ADDR":               "0.0.0.0:9999",
		"REVOCAST_MAX_TOKEN_LIFETIME": "2h",
		"REVOCAST_NATS_URL":           "nats://a:4222,nats://b:4222",
	}
	sf, err := parseFlags([]string{"--heartbeat", "5s", "--log-format", "json"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg := sf.cfg
	if cfg.Addr != "0.0.0.0:9999" || cfg.MaxTokenLifetime != 2*time.Hour || cfg.Heartbeat != 5*time.Second ||
		len(sf.nats.URLs) != 2 || sf.nats.DataDir != "./data" || sf.log.format != "json" {
		t.Fatalf("config %+v, log %+v", cfg, sf.log)
	}
	if _, err := parseFlags([]string{"--help"}, func(string) string { return "" }, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	if _, err := parseFlags([]string{"extra"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Fatal("a stray argument was accepted")
	}
}

type client struct {
	t    *testing.T
	base string
}

func (c client) post(body string) events.Revocation {
	c.t.Helper()
	resp, err := http.Post(c.base+"/v1/revocations", "application/json", strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var r events.Revocation
	if resp.StatusCode != http.StatusCreated || json.NewDecoder(resp.Body).Decode(&r) != nil {
		c.t.Fatalf("POST %s: %d", body, resp.StatusCode)
	}
	return r
}

// stream reads a fresh subscription up to synced and returns the events.
func (c client) stream(lastEventID string) []sse.Event {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", c.base+"/v1/events", nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := sse.NewDecoder(resp.Body)
	var out []sse.Event
	for {
		ev, err := dec.Next()
		if err != nil {
			c.t.Fatalf("stream: %v after %d events", err, len(out))
		}
		out = append(out, ev)
		if ev.Type == events.TypeSynced {
			return out
		}
	}
}

// TestRestartAfterSIGKILL: the real binary is killed without warning; on
// the same data directory the live state and its IDs come back, and new IDs
// continue after the old ones.
func TestRestartAfterSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real binary twice; skipped under -short")
	}
	data := t.TempDir()
	addr := testutil.FreeAddr(t)
	p := testutil.Start(t, "broadcaster", "/readyz", "--addr", addr, "--data", data)
	c := client{t, p.URL}
	var posted []events.Revocation
	for _, body := range []string{`{"jti":"j1"}`, `{"sub":"alice"}`, `{"kid":"k1","reason":"leaked"}`, `{"sub":"bob","ban":true}`} {
		posted = append(posted, c.post(body))
	}
	lift, err := http.NewRequest("DELETE", p.URL+"/v1/revocations/"+posted[3].Key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := http.DefaultClient.Do(lift); err != nil || resp.StatusCode != 200 {
		t.Fatalf("lift: %v %v", resp, err)
	}
	before := c.stream("")
	p.Kill()

	p2 := testutil.Start(t, "broadcaster", "/readyz", "--addr", addr, "--data", data)
	c2 := client{t, p2.URL}
	after := c2.stream("")
	if len(after) != len(before) {
		t.Fatalf("after restart %d events, before %d", len(after), len(before))
	}
	for i := range before {
		if before[i].ID != after[i].ID || before[i].Type != after[i].Type || string(before[i].Data) != string(after[i].Data) {
			t.Fatalf("event %d differs after restart:\n%+v\n%+v", i, before[i], after[i])
		}
	}
	// resuming with an ID from before the crash works on the new process
	// (kid, then the lift that replaced bob's ban, then synced)
	resumed := c2.stream(posted[1].ID)
	if len(resumed) != 3 || resumed[0].ID != posted[2].ID || resumed[1].Type != events.TypeLift || resumed[2].Type != events.TypeSynced {
		t.Fatalf("resume after restart: %+v", resumed)
	}
	next := c2.post(`{"jti":"j2"}`)
	last, _ := events.ParseEventID(after[len(after)-2].ID)
	id, _ := events.ParseEventID(next.ID)
	if id.Epoch != last.Epoch || id.Seq <= last.Seq {
		t.Fatalf("new ID %s does not continue after %s", next.ID, after[len(after)-2].ID)
	}
}

// TestCurlFollowsTheStream drives the real binary with curl, as a user
// would.
func TestCurlFollowsTheStream(t *testing.T) {
	curl := testutil.Curl(t)
	p := testutil.Start(t, "broadcaster", "/readyz", "--data", t.TempDir(), "--addr", "127.0.0.1:0")

	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
	defer cancel()
	follow := exec.CommandContext(ctx, curl, "-sN", p.URL+"/v1/events")
	out, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = follow.Wait() })
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	waitLine := func(want string) {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("curl's stream ended before %q", want)
				}
				if strings.HasPrefix(l, want) {
					return
				}
			case <-ctx.Done():
				t.Fatalf("no line %q from curl -N within %v", want, testutil.HangLimit)
			}
		}
	}
	waitLine("retry: ")
	waitLine("event: synced")

	post := exec.CommandContext(ctx, curl, "-s", "-X", "POST", p.URL+"/v1/revocations",
		"-H", "Content-Type: application/json", "-d", `{"jti":"from-curl","reason":"curl test"}`)
	body, err := post.Output()
	if err != nil {
		t.Fatalf("curl POST: %v", err)
	}
	var r events.Revocation
	if err := json.Unmarshal(body, &r); err != nil || r.ID == "" {
		t.Fatalf("curl POST answered %s", body)
	}
	waitLine("id: " + r.ID)
	waitLine("event: revoke")
	waitLine(`data: {"key":"` + r.Key + `"`)

	// resume with Last-Event-ID: nothing after it yet, so synced comes
	// first (read up to it, however long that takes; ctx ends a hang)
	resume := exec.CommandContext(ctx, curl, "-sN", "-H", "Last-Event-ID: "+r.ID, p.URL+"/v1/events")
	rout, err := resume.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := resume.Start(); err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	synced := false
	sc := bufio.NewScanner(rout)
	for !synced && sc.Scan() {
		got.WriteString(sc.Text() + "\n")
		synced = strings.HasPrefix(sc.Text(), "event: synced")
	}
	_ = resume.Process.Kill()
	_ = resume.Wait()
	if !synced || strings.Contains(got.String(), "event: revoke") {
		t.Fatalf("resumed stream (read up to synced, for at most %v): want synced and no revoke:\n%s", testutil.HangLimit, got.String())
	}
}

// TestBinaryRefusesPublicAddressWithoutCredentials runs the real binary as
// an operator would: it must exit at once, non-zero, saying what to do.
func TestBinaryRefusesPublicAddressWithoutCredentials(t *testing.T) {
	bin := testutil.Binary(t, "broadcaster")
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--addr", "0.0.0.0:0", "--data", t.TempDir())
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("exit: %v\n%s", err, out)
	}
	for _, want := range []string{"refusing to listen beyond loopback without credentials", "--api-keys", "--insecure"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the message lacks %q:\n%s", want, out)
		}
	}
}

// TestBinaryRefusesReplicasWithoutCluster: --replicas 3 on a standalone
// embedded server would wait for ever for peers that cannot exist; the
// binary refuses at once, with a usage exit code and a message.
func TestBinaryRefusesReplicasWithoutCluster(t *testing.T) {
	bin := testutil.Binary(t, "broadcaster")
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--replicas", "3")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("still running after %v:\n%s", testutil.HangLimit, out)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitUsage {
		t.Fatalf("exit: %v, want code %d\n%s", err, exitUsage, out)
	}
	for _, want := range []string{"--replicas 3 needs a cluster", "--cluster-name", "--nats-url"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the message lacks %q:\n%s", want, out)
		}
	}
}

// TestSecondBroadcasterOnSameDataDirRefuses: two processes on one data
// directory would share the file store behind each other's back and lose
// acknowledged writes; the second refuses to start and names the first.
// Once the first is gone (even killed), the directory is free again.
func TestSecondBroadcasterOnSameDataDirRefuses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real binary; skipped under -short")
	}
	data := t.TempDir()
	first := testutil.Start(t, "broadcaster", "/readyz", "--addr", testutil.FreeAddr(t), "--data", data)
	acked := client{t, first.URL}.post(`{"jti":"before-the-second"}`)

	bin := testutil.Binary(t, "broadcaster")
	ctx, cancel := context.WithTimeout(context.Background(), testutil.HangLimit)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--addr", "127.0.0.1:0", "--data", data).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the second broadcaster still runs after %v on the first one's data directory:\n%s", testutil.HangLimit, out)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("exit: %v\n%s", err, out)
	}
	want := data + " is in use by pid " + strconv.Itoa(first.Pid())
	if !strings.Contains(string(out), want) {
		t.Fatalf("the message does not say %q:\n%s", want, out)
	}

	// the first one was left alone
	c := client{t, first.URL}
	c.post(`{"jti":"after-the-second"}`)
	first.Kill()
	second := testutil.Start(t, "broadcaster", "/readyz", "--addr", testutil.FreeAddr(t), "--data", data)
	state := client{t, second.URL}.stream("")
	if len(state) != 3 || state[0].ID != acked.ID {
		t.Fatalf("after the first was killed, the directory holds %+v", state)
	}
}

// TestClientCommandsPointToRevocast: the client commands moved to the
// revocast binary; broadcaster names it and exits with the usage code.
func TestClientCommandsPointToRevocast(t *testing.T) {
	var out bytes.Buffer
	env := cliEnv{getenv: func(string) string { return "" }, stdin: strings.NewReader(""), stdout: &out, stderr: &out}
	for _, name := range clientCommands {
		out.Reset()
		code := exitCode(dispatch(context.Background(), []string{name, "--sub", "alice"}, env), &out)
		if code != exitUsage || !strings.Contains(out.String(), "revocast "+name) || strings.Count(out.String(), "\n") != 1 {
			t.Errorf("broadcaster %s: exit %d, want %d and one line naming revocast %s:\n%s", name, code, exitUsage, name, out.String())
		}
	}
}
