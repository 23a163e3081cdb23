package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/auth"
	"github.com/revocast/revocast/internal/broadcaster"
	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/internal/testutil/inprocess"
	"github.com/revocast/revocast/pkg/client"
	"github.com/revocast/revocast/pkg/events"
)

// startBroadcaster runs an in-process broadcaster on 127.0.0.1:0 with a
// fresh embedded NATS and returns its URL.
func startBroadcaster(t testing.TB, mod func(*broadcaster.Config)) string {
	t.Helper()
	_, url := startBroadcasterServer(t, mod)
	return url
}

func startBroadcasterServer(t testing.TB, mod func(*broadcaster.Config)) (*broadcaster.Server, string) {
	t.Helper()
	return inprocess.Broadcaster(t, mod)
}

// syncBuffer is a bytes.Buffer that a running command may write while the
// test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// cliRun is how a command ended.
type cliRun struct {
	code           int
	stdout, stderr string
}

// cliCmd runs commands in-process with a controlled environment: nothing
// is read from the test process's own environment.
type cliCmd struct {
	t      *testing.T
	server string
	env    map[string]string
	stdin  io.Reader
	// hang is how long one command may run before the test calls it hung
	// (testutil.HangLimit unless set): a bound on a hang, not on speed.
	hang time.Duration
	// bulkHook adjusts revoke --jti-file's client.Bulk and progress display.
	bulkHook func(*client.Bulk, *bulkProgress)
}

func newCLI(t *testing.T, server string) *cliCmd {
	return &cliCmd{t: t, server: server, env: map[string]string{}}
}

func (c *cliCmd) getenv(k string) string { return c.env[k] }

// run runs one command to its end with the server's URL in
// REVOCAST_SERVER.
func (c *cliCmd) run(args ...string) cliRun {
	c.t.Helper()
	hang := c.hang
	if hang == 0 {
		hang = testutil.HangLimit
	}
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	return c.runCtx(ctx, args...)
}

func (c *cliCmd) runCtx(ctx context.Context, args ...string) cliRun {
	var stdout, stderr syncBuffer
	return c.start(ctx, &stdout, &stderr, args...)
}

func (c *cliCmd) start(ctx context.Context, stdout, stderr *syncBuffer, args ...string) cliRun {
	if c.server != "" && c.env["REVOCAST_SERVER"] == "" {
		c.env["REVOCAST_SERVER"] = c.server
	}
	stdin := c.stdin
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	env := cliEnv{getenv: c.getenv, stdin: stdin, stdout: stdout, stderr: stderr, bulkHook: c.bulkHook}
	code := exitCode(dispatch(ctx, args, env), stderr)
	return cliRun{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// ok fails the test unless the command succeeded.
func (c *cliCmd) ok(args ...string) cliRun {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// fails checks the exit code of a failing command.
func (c *cliCmd) fails(code int, args ...string) cliRun {
	c.t.Helper()
	r := c.run(args...)
	if r.code != code {
		c.t.Fatalf("%v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, r.code, code, r.stdout, r.stderr)
	}
	if n := strings.Count(r.stderr, "revocast: "); n != 1 || strings.Count(r.stderr[strings.Index(r.stderr, "revocast: "):], "\n") != 1 {
		c.t.Errorf("%v: want the error on one line at the end of stderr:\n%s", args, r.stderr)
	}
	return r
}

type storedRevocation struct {
	events.Revocation
	Status string `json:"status"`
}

func decodeStored(t *testing.T, line string) storedRevocation {
	t.Helper()
	var r storedRevocation
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("decode %q: %v", line, err)
	}
	return r
}

// field returns the value of a "name  value" line of the readable output.
func field(t *testing.T, out, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` +(.*)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q line in:\n%s", name, out)
	}
	return m[1]
}

func TestCLIRevokeShapes(t *testing.T) {
	t.Parallel()
	cli := newCLI(t, startBroadcaster(t, nil))

	// one token, readable output
	r := cli.ok("revoke", "--jti", "9f3c2a7e", "--expires-at", "+2h", "--reason", "logged out")
	if got, want := field(t, r.stdout, "key"), (&events.Revocation{JTI: "9f3c2a7e"}).ComputeKey(); got != want {
		t.Fatalf("key %s, want %s", got, want)
	}
	if field(t, r.stdout, "status") != "created" || field(t, r.stdout, "matches") != "jti=9f3c2a7e" ||
		field(t, r.stdout, "reason") != "logged out" || field(t, r.stdout, "actor") != "anonymous" {
		t.Fatalf("output:\n%s", r.stdout)
	}
	if exp := field(t, r.stdout, "expires"); !strings.Contains(exp, "(in 1h59m") && !strings.Contains(exp, "(in 2h0m") {
		t.Fatalf("expires %q, want about 2h from now", exp)
	}
	if !regexp.MustCompile(`^\d+-\d+$`).MatchString(field(t, r.stdout, "id")) {
		t.Fatalf("id %q", field(t, r.stdout, "id"))
	}

	// each shape, as JSON
	unix := time.Now().Add(time.Hour).Unix()
	hourAgo := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	for _, tc := range []struct {
		args  []string
		want  events.Revocation
		check func(r storedRevocation) bool
	}{
		{[]string{"--jti", "j-unix", "--expires-at", fmt.Sprint(unix)}, events.Revocation{JTI: "j-unix"},
			func(r storedRevocation) bool { return r.ExpiresAt.Unix() == unix }},
		{[]string{"--sub", "alice"}, events.Revocation{Sub: "alice"},
			func(r storedRevocation) bool { return !r.IssuedBefore.IsZero() && !r.ExpiresAt.IsZero() }},
		{[]string{"--sub", "bob", "--issued-before", hourAgo.Format(time.RFC3339)}, events.Revocation{Sub: "bob"},
			func(r storedRevocation) bool { return r.IssuedBefore.Equal(hourAgo) }},
		{[]string{"--sub", "mallory", "--ban", "--reason", "abuse"}, events.Revocation{Sub: "mallory", Ban: true},
			func(r storedRevocation) bool { return r.Ban && r.ExpiresAt.IsZero() && r.Reason == "abuse" }},
		{[]string{"--kid", "2024-signing-key", "--expires-at", "+7d"}, events.Revocation{Kid: "2024-signing-key"},
			func(r storedRevocation) bool { return time.Until(r.ExpiresAt.Time) > 6*24*time.Hour }},
		{[]string{"--iss", "https://idp.example.com", "--claim", "tenant=acme", "--claim", "level:=3", "--claim", "admin:=true"},
			events.Revocation{Iss: "https://idp.example.com", Claims: map[string]any{"tenant": "acme", "level": 3.0, "admin": true}},
			func(r storedRevocation) bool {
				return r.Claims["tenant"] == "acme" && r.Claims["level"] == 3.0 && r.Claims["admin"] == true
			}},
	} {
		r := cli.ok(append([]string{"revoke", "--json"}, tc.args...)...)
		got := decodeStored(t, r.stdout)
		if got.Status != "created" || got.Key != tc.want.ComputeKey() || got.ID == "" || !tc.check(got) {
			t.Errorf("%v: %s", tc.args, r.stdout)
		}
	}

	// a claim value that reads as a number stays a string, and is shown quoted
	r = cli.ok("revoke", "--claim", "tenant=42")
	if m := field(t, r.stdout, "matches"); !strings.HasPrefix(m, `claims.tenant="42" issued_before=`) {
		t.Errorf("matches %s", m)
	}

	// Idempotency-Key: the retry is answered with the first result
	first := decodeStored(t, cli.ok("revoke", "--json", "--sub", "carol", "--idempotency-key", "logout-4711").stdout)
	r = cli.ok("revoke", "--sub", "carol", "--idempotency-key", "logout-4711")
	if !strings.HasPrefix(field(t, r.stdout, "status"), "duplicate") || field(t, r.stdout, "id") != first.ID {
		t.Errorf("retry with the same Idempotency-Key:\n%s", r.stdout)
	}

	// already expired: answered, not published
	r = cli.ok("revoke", "--jti", "old", "--expires-at", "2020-01-01T00:00:00Z")
	if !strings.HasPrefix(field(t, r.stdout, "status"), "expired") {
		t.Errorf("expired revocation:\n%s", r.stdout)
	}
}

func TestCLIRevokeUsageErrors(t *testing.T) {
	t.Parallel()
	// No server: every one of these must be refused before anything is sent.
	cli := newCLI(t, "http://127.0.0.1:1")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"revoke"}, "say what to revoke"},
		{[]string{"revoke", "--reason", "x"}, "say what to revoke"},
		{[]string{"revoke", "--jti", "a", "--ban"}, "--ban"},
		{[]string{"revoke", "--jti", "a", "--issued-before", "1700000000"}, "--issued-before"},
		{[]string{"revoke", "--claim", "iat:=5"}, "--claim iat"},
		{[]string{"revoke", "--claim", "noequals"}, "name=value"},
		{[]string{"revoke", "--claim", "x:={}"}, "not an object"},
		{[]string{"revoke", "--claim", "a=1", "--claim", "a=2"}, "twice"},
		{[]string{"revoke", "--sub", "a", "--expires-at", "tomorrow"}, "RFC 3339"},
		{[]string{"revoke", "--sub", "a", "--expires-at", "+-5m"}, "+90m"},
		{[]string{"revoke", "--sub", "a", "--issued-before", "+5m"}, "RFC 3339"},
		{[]string{"revoke", "alice"}, "unexpected argument"},
		{[]string{"revoke", "--sub", "a", "--batch-size", "10"}, "--jti-file"},
		{[]string{"revoke", "--jti-file", "x", "--sub", "a"}, "only --iss"},
		{[]string{"revoke", "--nope"}, "not defined"},
		{[]string{"revoke", "--sub", "a", "--server", "ftp://x"}, "--server"},
		{[]string{"revoke", "--sub", "a", "--timeout", "0s"}, "--timeout"},
		{[]string{"lift"}, "KEY"},
		{[]string{"lift", "nothex"}, "not a key"},
		{[]string{"lift", "986f32452606733205c8f7e1b38bcb24", "--sub", "a"}, "not both"},
		{[]string{"list", "--limit", "5000"}, "--limit"},
		{[]string{"tail", "--all", "--from", "1-2"}, "exclude"},
		{[]string{"tail", "--from", "garbage"}, "event id"},
		{[]string{"nosuchcommand"}, "unknown command"},
	} {
		r := cli.run(tc.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", tc.args, r.code, r.stderr, exitUsage, tc.want)
		}
	}
}

func TestCLIListAndLift(t *testing.T) {
	t.Parallel()
	cli := newCLI(t, startBroadcaster(t, nil))
	cli.ok("revoke", "--jti", "j1", "--reason", "logged out")
	cli.ok("revoke", "--sub", "alice")
	ban := decodeStored(t, cli.ok("revoke", "--json", "--sub", "mallory", "--ban", "--reason", "abuse\x1b[31m red").stdout)
	kid := decodeStored(t, cli.ok("revoke", "--json", "--kid", "k1").stdout)

	// the table: a header and one aligned row each
	r := cli.ok("list")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 5 || !regexp.MustCompile(`^KEY +MATCHES +EXPIRES +REASON +ACTOR$`).MatchString(lines[0]) {
		t.Fatalf("table:\n%s", r.stdout)
	}
	col := strings.Index(lines[0], "MATCHES")
	for _, l := range lines[1:] {
		if len(l) < col || l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("row not aligned with the header:\n%s\n%s", lines[0], l)
		}
	}
	if !strings.Contains(r.stdout, "sub=mallory ban") || !strings.Contains(r.stdout, "never") || strings.Contains(r.stdout, "\x1b") {
		t.Errorf("table:\n%q", r.stdout)
	}

	// --json: one object per line, filters
	r = cli.ok("list", "--json", "--sub", "mallory")
	if got := decodeStored(t, strings.TrimSpace(r.stdout)); got.Key != ban.Key || got.Reason != "abuse\x1b[31m red" {
		t.Fatalf("list --json --sub mallory: %s", r.stdout)
	}
	r = cli.ok("list", "--json")
	if n := strings.Count(r.stdout, "\n"); n != 4 {
		t.Fatalf("list --json: %d lines:\n%s", n, r.stdout)
	}

	// paging
	r = cli.ok("list", "--limit", "3", "--json")
	if strings.Count(r.stdout, "\n") != 3 || !strings.Contains(r.stderr, "--after") {
		t.Fatalf("one page of 3: %s\nstderr: %s", r.stdout, r.stderr)
	}
	after := regexp.MustCompile(`--after (\d+)`).FindStringSubmatch(r.stderr)[1]
	if r2 := cli.ok("list", "--limit", "3", "--json", "--after", after); strings.Count(r2.stdout, "\n") != 1 {
		t.Fatalf("second page: %s", r2.stdout)
	}
	if r := cli.ok("list", "--limit", "1", "--all", "--json"); strings.Count(r.stdout, "\n") != 4 || r.stderr != "" {
		t.Fatalf("--all with pages of 1: %s\nstderr: %s", r.stdout, r.stderr)
	}

	// lift by key, by matchers, then an unknown key
	r = cli.ok("lift", kid.Key, "--reason", "rotated")
	if field(t, r.stdout, "status") != "lifted" || field(t, r.stdout, "key") != kid.Key {
		t.Fatalf("lift by key:\n%s", r.stdout)
	}
	r = cli.ok("lift", "--sub", "mallory", "--ban", "--json")
	var lifted struct{ Key, ID, Status string }
	if json.Unmarshal([]byte(r.stdout), &lifted) != nil || lifted.Key != ban.Key || lifted.Status != "lifted" || lifted.ID == "" {
		t.Fatalf("lift by matchers: %s", r.stdout)
	}
	r = cli.fails(exitNotFound, "lift", "--sub", "mallory", "--ban")
	if !strings.Contains(r.stderr, ban.Key) || !strings.Contains(r.stderr, "--sub mallory --ban") {
		t.Errorf("404 message: %s", r.stderr)
	}
	if r := cli.ok("list", "--json"); strings.Count(r.stdout, "\n") != 2 {
		t.Fatalf("after two lifts: %s", r.stdout)
	}
}

func TestCLIExitCodesFromServer(t *testing.T) {
	t.Parallel()
	cli := newCLI(t, startBroadcaster(t, nil))
	// 400: the server's own limit on expires_at, which the CLI cannot know
	r := cli.fails(exitInvalid, "revoke", "--kid", "k", "--expires-at", "+3650d")
	if !strings.Contains(r.stderr, "expires_at") || !strings.Contains(r.stderr, "400") {
		t.Errorf("400 message: %s", r.stderr)
	}
	// 404
	cli.fails(exitNotFound, "lift", "986f32452606733205c8f7e1b38bcb24")
	// unreachable
	r = newCLI(t, "http://127.0.0.1:1").fails(exitFailure, "list")
	if !strings.Contains(r.stderr, "cannot reach the broadcaster at http://127.0.0.1:1") {
		t.Errorf("unreachable: %s", r.stderr)
	}
}

func TestCLIAuth(t *testing.T) {
	t.Parallel()
	reader, _ := auth.GenerateKey()
	revoker, _ := auth.GenerateKey()
	ks, err := auth.ParseKeys(strings.NewReader(auth.KeyLine("dashboard", auth.RoleReader, reader) + "\n" +
		auth.KeyLine("ops", auth.RoleRevoker, revoker) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	base := startBroadcaster(t, func(c *broadcaster.Config) { c.Auth = auth.New(ks, nil) })

	anon := newCLI(t, base)
	r := anon.fails(exitAuth, "revoke", "--sub", "x")
	if !strings.Contains(r.stderr, "401") || !strings.Contains(r.stderr, "no token was sent") {
		t.Errorf("401: %s", r.stderr)
	}
	anon.fails(exitAuth, "list")
	anon.fails(exitAuth, "tail")

	ro := newCLI(t, base)
	ro.env["REVOCAST_TOKEN"] = reader
	r = ro.fails(exitAuth, "revoke", "--sub", "x")
	if !strings.Contains(r.stderr, "403") || !strings.Contains(r.stderr, "REVOCAST_TOKEN") || strings.Contains(r.stderr, reader) {
		t.Errorf("403: %s", r.stderr)
	}
	ro.ok("list")

	// the token from a file (the flag wins over the environment)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(revoker+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rw := newCLI(t, base)
	rw.env["REVOCAST_TOKEN"] = reader
	r = rw.ok("revoke", "--json", "--sub", "x", "--token-file", file)
	if got := decodeStored(t, r.stdout); got.Actor != "ops" {
		t.Errorf("actor %q, want ops", got.Actor)
	}
	// REVOCAST_TOKEN_FILE is the fallback when there is no REVOCAST_TOKEN
	rw2 := newCLI(t, base)
	rw2.env["REVOCAST_TOKEN_FILE"] = file
	rw2.ok("revoke", "--sub", "y")

	bad := newCLI(t, base)
	bad.env["REVOCAST_TOKEN"] = "rvc_wrong"
	r = bad.fails(exitAuth, "list")
	if strings.Contains(r.stderr, "rvc_wrong") {
		t.Errorf("the token was printed: %s", r.stderr)
	}
	bad.env["REVOCAST_TOKEN"] = "two words"
	if r := bad.fails(exitAuth, "list"); strings.Contains(r.stderr, "two words") {
		t.Errorf("the token was printed: %s", r.stderr)
	}
}

// fakeAPI answers every request with a fixed status and body.
func fakeAPI(t *testing.T, status int, body string, header ...string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestCLIExitCodesForStatuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		body   string
		header []string
		code   int
		want   string
	}{
		{401, `{"error":"authentication required"}`, nil, exitAuth, "REVOCAST_TOKEN"},
		{403, `{"error":"this credential has the role reader; revoker is needed"}`, nil, exitAuth, "role reader"},
		{404, `{"error":"no live revocation with this key","field":"key"}`, nil, exitNotFound, "not found"},
		{400, `{"error":"sub: must be a string","field":"sub"}`, nil, exitInvalid, "[field sub]"},
		{413, `{"error":"body larger than 1048576 bytes"}`, nil, exitInvalid, "body larger"},
		{429, `{"error":"too many requests"}`, []string{"Retry-After", "7"}, exitRateLimited, "retry after 7s"},
		{503, `{"error":"not acknowledged"}`, []string{"Retry-After", "1"}, exitFailure, "503"},
		{500, `internal error`, nil, exitFailure, "500"},
		{302, ``, []string{"Location", "https://elsewhere.example/"}, exitFailure, "https://elsewhere.example/"},
	} {
		cli := newCLI(t, fakeAPI(t, tc.status, tc.body, tc.header...))
		for _, args := range [][]string{{"revoke", "--sub", "a"}, {"lift", "986f32452606733205c8f7e1b38bcb24"}, {"list"}} {
			r := cli.run(args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("%d on %v: exit %d, stderr %q; want %d mentioning %q", tc.status, args, r.code, r.stderr, tc.code, tc.want)
			}
		}
	}
}

func TestCLICAFile(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer rvc_tls" {
			w.WriteHeader(401)
			return
		}
		_, _ = io.WriteString(w, `{"revocations":[{"key":"a232a84724b5e621ec27189b06169fbd","sub":"alice","actor":"ops"}]}`)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	srv.StartTLS()
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	cli := newCLI(t, srv.URL)
	cli.env["REVOCAST_TOKEN"] = "rvc_tls"
	if r := cli.fails(exitFailure, "list"); !strings.Contains(r.stderr, "certificate") {
		t.Errorf("without --ca-file: %s", r.stderr)
	}
	cli.env["REVOCAST_CA_FILE"] = ca
	if r := cli.ok("list"); !strings.Contains(r.stdout, "sub=alice") {
		t.Errorf("with $REVOCAST_CA_FILE: %s", r.stdout)
	}
	r := cli.fails(exitUsage, "list", "--ca-file", filepath.Join(t.TempDir(), "missing.pem"))
	if !strings.Contains(r.stderr, "--ca-file") {
		t.Errorf("missing CA file: %s", r.stderr)
	}
}

// quietProxy forwards to target without logging the streams it cuts.
func quietProxy(target *url.URL) *httputil.ReverseProxy {
	p := httputil.NewSingleHostReverseProxy(target)
	p.ErrorLog = log.New(io.Discard, "", 0)
	return p
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startTail runs tail in the background until the returned stop is called.
func startTail(t *testing.T, cli *cliCmd, args ...string) (stdout, stderr *syncBuffer, stop func() cliRun) {
	t.Helper()
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan cliRun, 1)
	go func() { done <- cli.start(ctx, stdout, stderr, append([]string{"tail"}, args...)...) }()
	stopped := false
	var res cliRun
	stop = func() cliRun {
		if !stopped {
			stopped = true
			cancel()
			select {
			case res = <-done:
			case <-time.After(testutil.HangLimit):
				t.Fatalf("tail did not stop within %v of its context ending", testutil.HangLimit)
			}
		}
		return res
	}
	t.Cleanup(func() { stop() })
	return stdout, stderr, stop
}

func TestCLITail(t *testing.T) {
	t.Parallel()
	base := startBroadcaster(t, nil)
	cli := newCLI(t, base)
	before := decodeStored(t, cli.ok("revoke", "--json", "--sub", "before").stdout)

	out, _, stop := startTail(t, cli)
	waitFor(t, "synced", testutil.HangLimit, func() bool { return strings.Contains(out.String(), " synced head=") })
	rev := decodeStored(t, cli.ok("revoke", "--json", "--jti", "j-live", "--sub", "alice", "--reason", "stolen laptop").stdout)
	waitFor(t, "the revoke line", testutil.HangLimit, func() bool { return strings.Contains(out.String(), "revoke key="+rev.Key) })
	cli.ok("lift", rev.Key)
	waitFor(t, "the lift line", testutil.HangLimit, func() bool { return strings.Contains(out.String(), "lift key="+rev.Key) })
	if r := stop(); r.code != 0 {
		t.Fatalf("tail ended with %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want synced, revoke, lift; got:\n%s", out.String())
	}
	re := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d) revoke key=` + rev.Key + ` id=` + regexp.QuoteMeta(rev.ID) +
		` jti=j-live sub=alice expires=\S+ reason="stolen laptop" actor=anonymous$`)
	if !re.MatchString(lines[1]) {
		t.Errorf("revoke line %q", lines[1])
	}
	if !regexp.MustCompile(`^\S+ lift key=` + rev.Key + ` id=\d+-\d+$`).MatchString(lines[2]) {
		t.Errorf("lift line %q", lines[2])
	}
	if strings.Contains(out.String(), before.Key) {
		t.Errorf("live-only tail printed a revocation from before it started:\n%s", out.String())
	}

	// --all: the whole state, then synced; --json
	out, _, stop = startTail(t, cli, "--all", "--json")
	waitFor(t, "synced", testutil.HangLimit, func() bool { return strings.Contains(out.String(), `"event":"synced"`) })
	stop()
	var first struct {
		Event, ID string
		Data      events.Revocation
	}
	if err := json.Unmarshal([]byte(strings.SplitN(out.String(), "\n", 2)[0]), &first); err != nil ||
		first.Event != "revoke" || first.ID != before.ID || first.Data.Key != before.Key {
		t.Fatalf("tail --all --json: %v\n%s", err, out.String())
	}

	// --from: everything after an id
	out, _, stop = startTail(t, cli, "--from", before.ID)
	waitFor(t, "synced", testutil.HangLimit, func() bool { return strings.Contains(out.String(), " synced head=") })
	stop()
	// the lift replaced the revocation in the log: the replay has the lift only
	if !strings.Contains(out.String(), "lift key="+rev.Key) || strings.Contains(out.String(), "key="+before.Key) {
		t.Fatalf("tail --from %s:\n%s", before.ID, out.String())
	}
}

// TestCLITailResumesAfterDisconnect cuts the stream after the first synced
// and before any event: the reconnection must resume at that head, not at
// a new "now", so a revocation posted in between is not lost.
func TestCLITailResumesAfterDisconnect(t *testing.T) {
	t.Parallel()
	base := startBroadcaster(t, func(c *broadcaster.Config) { c.Retry = 50 * time.Millisecond })
	target, _ := url.Parse(base)
	var mu sync.Mutex
	var seen []string // Last-Event-ID and query of each stream request
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Last-Event-ID")+"|"+r.URL.RawQuery)
		mu.Unlock()
		quietProxy(target).ServeHTTP(w, r)
	}))
	defer proxy.Close()
	requests := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), seen...) }

	cli := newCLI(t, base)
	tailCLI := newCLI(t, proxy.URL)
	out, errOut, stop := startTail(t, tailCLI)
	waitFor(t, "synced", testutil.HangLimit, func() bool { return strings.Contains(out.String(), " synced head=") })
	head := regexp.MustCompile(`synced head=(\S+)`).FindStringSubmatch(out.String())[1]

	proxy.CloseClientConnections()
	rev := decodeStored(t, cli.ok("revoke", "--json", "--jti", "during-the-gap").stdout)
	waitFor(t, "the revocation posted while disconnected", testutil.HangLimit, func() bool {
		return strings.Contains(out.String(), "revoke key="+rev.Key)
	})
	stop()
	reqs := requests()
	if len(reqs) < 2 || reqs[0] != "|last_event_id=now" || reqs[1] != head+"|" {
		t.Fatalf("stream requests (Last-Event-ID|query) %q; want the first live only, the second from %s", reqs, head)
	}
	if !strings.Contains(errOut.String(), "reconnect") {
		t.Errorf("stderr does not mention the reconnection:\n%s", errOut.String())
	}
	if n := strings.Count(out.String(), "revoke key="+rev.Key); n != 1 {
		t.Errorf("the revocation was printed %d times", n)
	}
}

func TestCLIKeygen(t *testing.T) {
	t.Parallel()
	cli := newCLI(t, "")
	r := cli.ok("keygen", "--name", "ci-deploy", "--role", "revoker")
	lines := strings.Split(r.stdout, "\n")
	if len(lines) != 3 || lines[2] != "" {
		t.Fatalf("stdout must be exactly two lines:\n%q", r.stdout)
	}
	key, line := lines[0], lines[1]
	if !strings.HasPrefix(key, auth.KeyPrefix) || len(key) < 40 || line != auth.KeyLine("ci-deploy", auth.RoleRevoker, key) {
		t.Fatalf("key %q, line %q", key, line)
	}
	ks, err := auth.ParseKeys(strings.NewReader(line))
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := ks.Lookup(key); !ok || p.Name != "ci-deploy" || p.Role != auth.RoleRevoker {
		t.Fatalf("the key file line does not accept the key: %+v %v", p, ok)
	}
	if !strings.Contains(r.stderr, "REVOCAST_TOKEN") || strings.Contains(r.stderr, key) {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if again := cli.ok("keygen", "--name", "ci-deploy", "--role", "revoker"); strings.HasPrefix(again.stdout, key) {
		t.Error("two keys are equal")
	}
	r = cli.ok("keygen", "--name", "dash", "--role", "reader", "--json")
	var j struct{ Name, Role, Key, KeyLine string }
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
		t.Fatal(err)
	}
	var raw map[string]string
	_ = json.Unmarshal([]byte(r.stdout), &raw)
	if j.Name != "dash" || j.Role != "reader" || raw["key_line"] != auth.KeyLine("dash", auth.RoleReader, j.Key) {
		t.Fatalf("keygen --json: %s", r.stdout)
	}
	cli.fails(exitUsage, "keygen", "--name", "ci", "--role", "admin")
	cli.fails(exitUsage, "keygen", "--name", "has space", "--role", "reader")
	cli.fails(exitUsage, "keygen", "--role", "reader")
}

func TestCLIHelp(t *testing.T) {
	t.Parallel()
	cli := newCLI(t, "")
	for name := range subcommands {
		if _, ok := commandSummaries[name]; !ok {
			t.Errorf("help does not describe %s", name)
		}
		if name == "help" {
			continue
		}
		r := cli.run(name, "--help")
		if r.code != 0 || !strings.Contains(r.stderr, "Usage: revocast "+name) {
			t.Errorf("%s --help: exit %d\n%s", name, r.code, r.stderr)
		}
		if name != "keygen" && name != "thumbprint" && (!strings.Contains(r.stderr, "-server") || !strings.Contains(r.stderr, "$REVOCAST_SERVER") || !strings.Contains(r.stderr, "-token-file")) {
			t.Errorf("%s --help lacks the connection flags:\n%s", name, r.stderr)
		}
	}
	r := cli.ok("help")
	for name := range commandSummaries {
		if !strings.Contains(r.stdout, "  "+name+" ") {
			t.Errorf("help lacks %s:\n%s", name, r.stdout)
		}
	}
	if r := cli.run("help", "revoke"); r.code != 0 || !strings.Contains(r.stderr, "-jti-file") || !strings.Contains(r.stderr, "-claim") {
		t.Errorf("help revoke:\n%s", r.stderr)
	}
	cli.fails(exitUsage, "help", "nosuch")
}

func TestParseArgsInterspersed(t *testing.T) {
	t.Parallel()
	fs := newCmdFlags("x", "", "", cliEnv{getenv: func(string) string { return "" }, stderr: io.Discard})
	var reason string
	var b bool
	fs.FlagSet.StringVar(&reason, "reason", "", "")
	fs.FlagSet.BoolVar(&b, "b", false, "")
	pos, err := parseArgs(fs, []string{"KEY", "--reason", "r", "OTHER", "-b", "--", "--not-a-flag"})
	if err != nil || reason != "r" || !b || strings.Join(pos, " ") != "KEY OTHER --not-a-flag" {
		t.Fatalf("pos %q reason %q b %v err %v", pos, reason, b, err)
	}
}

func TestClaimFlag(t *testing.T) {
	t.Parallel()
	var c claimFlag
	for _, s := range []string{"tenant=acme", "level:=3", "admin:=true", `name:="x y"`, "url=https://a/b?c=d", "ns:role:=1.5", "empty="} {
		if err := c.Set(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	want := map[string]any{"tenant": "acme", "level": 3.0, "admin": true, "name": "x y", "url": "https://a/b?c=d", "ns:role": 1.5, "empty": ""}
	m := (&matcherFlags{claims: c}).revocation().Claims
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Fatalf("claims %v, want %v", m, want)
	}
	for _, bad := range []string{"x", "=v", ":=1", "a:=[1]", "a:=null", "a:=1 2", "a:=nope"} {
		var c claimFlag
		if err := c.Set(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseTimeArg(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2026-01-02T15:04:05Z":      time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC),
		"2026-01-02T16:04:05+01:00": time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC),
		"1767225600":                time.Unix(1767225600, 0).UTC(),
		"+90m":                      now.Add(90 * time.Minute),
		"+7d":                       now.Add(7 * 24 * time.Hour),
		"+1h30m":                    now.Add(90 * time.Minute),
	} {
		got, err := parseTimeArg("expires-at", in, true, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("%s: %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "tomorrow", "2026-01-02", "+", "+0s", "-5", "+xd"} {
		if _, err := parseTimeArg("expires-at", bad, true, now); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := parseTimeArg("issued-before", "+5m", false, now); err == nil {
		t.Error("a relative --issued-before was accepted")
	}
}

func TestPrintable(t *testing.T) {
	t.Parallel()
	if got := printable("ok\x1b[2J\u202eevil\ttab"); got != "ok?[2J?evil?tab" {
		t.Errorf("printable: %q", got)
	}
	if got := quoteValue("a b"); got != `"a b"` {
		t.Errorf("quoteValue: %q", got)
	}
	if got := quoteValue("\x1b[31m"); got != `"\x1b[31m"` {
		t.Errorf("quoteValue: %q", got)
	}
}

func TestConnSetup(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		server, token, want, warn string
	}{
		{"127.0.0.1:8080", "rvc_x", "http://127.0.0.1:8080/v1/revocations", ""},
		{"https://revocast.example.com/prefix/", "rvc_x", "https://revocast.example.com/prefix/v1/revocations", ""},
		{"http://revocast.example.com", "rvc_x", "http://revocast.example.com/v1/revocations", "plain http"},
		{"http://revocast.example.com", "", "http://revocast.example.com/v1/revocations", ""},
		{"http://localhost:8080", "rvc_x", "http://localhost:8080/v1/revocations", ""},
	} {
		var stderr bytes.Buffer
		env := cliEnv{getenv: func(k string) string {
			if k == "REVOCAST_TOKEN" {
				return tc.token
			}
			return ""
		}, stderr: &stderr}
		var c apiConn
		fs := newCmdFlags("x", "", "", env)
		c.addFlags(fs)
		if err := fs.Parse([]string{"--server", tc.server}); err != nil {
			t.Fatal(err)
		}
		if err := c.setup(fs, env); err != nil {
			t.Fatalf("%s: %v", tc.server, err)
		}
		if got := c.cl.URL("/v1/revocations", nil); got != tc.want {
			t.Errorf("%s: endpoint %s, want %s", tc.server, got, tc.want)
		}
		if (tc.warn == "") != (stderr.Len() == 0) || !strings.Contains(stderr.String(), tc.warn) {
			t.Errorf("%s with token %q: stderr %q", tc.server, tc.token, stderr.String())
		}
	}
}
