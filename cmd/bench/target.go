package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/revocast/revocast/pkg/client"
)

// target is the broadcaster being measured: a process this tool started
// (owned) or the one given with --target.
type target struct {
	URL   string // http://127.0.0.1:PORT
	Pprof string // base URL of its pprof listener; empty: none
	owned bool

	cmd     *exec.Cmd
	dir     string
	logPath string
	done    chan struct{}
	waitErr error
}

// host is the address subscribers dial.
func (t *target) host() string {
	u, _ := url.Parse(t.URL)
	return u.Host
}

// prepareBinary builds the broadcaster (or takes --broadcaster-bin) and
// finds out whether it has a pprof listener.
func (r *runner) prepareBinary(ctx context.Context) error {
	info := BroadcasterInfo{Mode: "own process"}
	if r.cfg.BroadcasterBin != "" {
		p, err := filepath.Abs(r.cfg.BroadcasterBin)
		if err != nil {
			return err
		}
		r.bin = p
	} else {
		root, err := moduleRoot(ctx)
		if err != nil {
			return err
		}
		r.bin = filepath.Join(r.tmp, "broadcaster")
		bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(bctx, "go", "build", "-o", r.bin, "./cmd/broadcaster")
		cmd.Dir = root
		fmt.Fprintf(r.out, "building the broadcaster: (cd %s && go build -o %s ./cmd/broadcaster)\n", root, r.bin)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/broadcaster: %w\n%s", err, out)
		}
		info.Source = root
		info.Commit = gitCommit(ctx, root)
	}
	info.Binary = r.bin
	// the flag list tells whether this broadcaster can serve pprof
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	help, _ := exec.CommandContext(hctx, r.bin, "--help").CombinedOutput()
	if !bytes.Contains(help, []byte("-addr")) {
		return fmt.Errorf("%s does not look like the revocast broadcaster (--help: %.200q)", r.bin, help)
	}
	r.pprofFlag = bytes.Contains(help, []byte("-pprof-addr"))
	r.connsFlag = bytes.Contains(help, []byte("-max-conns-per-addr"))
	info.Pprof = r.pprofFlag
	r.res.Broadcaster = info
	return nil
}

// moduleRoot is the directory of the revocast go.mod, from the working
// directory.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the revocast module: run from its root, or pass --broadcaster-bin PATH or --target URL")
	}
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	if !bytes.Contains(b, []byte("module github.com/revocast/revocast\n")) {
		return "", fmt.Errorf("%s is not the revocast module: run from its root, or pass --broadcaster-bin PATH or --target URL", gomod)
	}
	return filepath.Dir(gomod), nil
}

func gitCommit(ctx context.Context, dir string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	commit := strings.TrimSpace(string(out))
	if st, err := exec.CommandContext(ctx, "git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		commit += "+dirty"
	}
	return commit
}

// startBroadcaster runs the binary on 127.0.0.1 with a fresh data directory
// and the flags the measurements need, and waits until it is ready.
func (r *runner) startBroadcaster(ctx context.Context) (*target, error) {
	r.spawned++
	dir := filepath.Join(r.tmp, "run"+strconv.Itoa(r.spawned))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := range 3 { // a free port may be taken between probe and use
		addr, err := freeLoopbackAddr()
		if err != nil {
			return nil, err
		}
		subs := max(r.cfg.Subscribers, r.cfg.MemorySubscribers) + 100
		args := []string{
			"--addr", addr,
			"--data", filepath.Join(dir, "data"),
			"--log-level", "warn",
			"--rate-limit", "0",
			"--max-subscribers", strconv.Itoa(max(subs, 20_000)),
			"--max-subscribers-per-principal", strconv.Itoa(max(subs, 20_000)), // every subscriber comes from 127.0.0.1
			"--max-batch", strconv.Itoa(max(r.cfg.Batch, 10_000)),
			"--max-body-bytes", strconv.Itoa(max(r.cfg.Batch*256, 1<<20)),
		}
		t := &target{URL: "http://" + addr, owned: true, dir: dir, done: make(chan struct{}),
			logPath: filepath.Join(dir, fmt.Sprintf("broadcaster-%d.log", attempt))}
		if r.pprofFlag {
			paddr, err := freeLoopbackAddr()
			if err != nil {
				return nil, err
			}
			args = append(args, "--pprof-addr", paddr)
			t.Pprof = "http://" + paddr
		}
		if r.connsFlag {
			// every simulated client connects from loopback
			args = append(args, "--max-conns-per-addr", "0")
		}
		args = append(args, r.cfg.BroadcasterArgs...)
		logf, err := os.Create(t.logPath)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(r.bin, args...)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.Env = childEnv()
		setParentDeathSignal(cmd)
		if err := cmd.Start(); err != nil {
			logf.Close()
			return nil, fmt.Errorf("start %s: %w", r.bin, err)
		}
		t.cmd = cmd
		go func() {
			t.waitErr = cmd.Wait()
			logf.Close()
			close(t.done)
		}()
		r.res.Broadcaster.Args = args
		r.res.Broadcaster.Started++
		r.logf("broadcaster pid %d: %s %s", cmd.Process.Pid, r.bin, strings.Join(args, " "))
		if lastErr = t.waitReady(ctx, r.http, ""); lastErr == nil {
			return t, nil
		}
		t.stop()
		if !strings.Contains(t.logTail(20), "address already in use") {
			break
		}
	}
	return nil, lastErr
}

// childEnv is this process's environment without REVOCAST_* variables, so
// that the broadcaster runs with the flags given and nothing else.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REVOCAST_") {
			env = append(env, kv)
		}
	}
	return env
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitReady polls /readyz until it answers 200.
func (t *target) waitReady(ctx context.Context, c *http.Client, token string) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var last string
	for {
		status, body, err := doRequest(ctx, c, http.MethodGet, t.URL+"/readyz", token, nil, nil)
		if err == nil && status == http.StatusOK {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%d %s", status, bytes.TrimSpace(body))
		}
		if t.owned {
			select {
			case <-t.done:
				return fmt.Errorf("the broadcaster exited before it was ready: %w\n%s", t.waitErr, t.logTail(20))
			default:
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready (last answer: %s): %w", t.URL, last, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop ends an owned broadcaster: SIGTERM, then SIGKILL after 10 s.
func (t *target) stop() {
	if !t.owned || t.cmd == nil || t.cmd.Process == nil {
		return
	}
	select {
	case <-t.done:
		return
	default:
	}
	_ = t.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-t.done:
	case <-time.After(10 * time.Second):
		_ = t.cmd.Process.Kill()
		<-t.done
	}
}

// logTail returns the end of an owned broadcaster's log.
func (t *target) logTail(lines int) string {
	if !t.owned {
		return ""
	}
	b, err := os.ReadFile(t.logPath)
	if err != nil || len(b) == 0 {
		return ""
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	all = all[max(0, len(all)-lines):]
	return "   broadcaster log (" + t.logPath + "):\n   | " + strings.Join(all, "\n   | ") + "\n"
}

// newHTTPClient is a keep-alive client for loopback, with no proxy and no
// overall timeout (each request has its own context).
func newHTTPClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}}
}

// requestTimeout bounds every request the tool makes.
const requestTimeout = 60 * time.Second

// api is a pkg/client client of t over the tool's keep-alive pool, for the
// revocations posted one at a time. It never retries: a retried POST would
// be measured as one slow one.
func (r *runner) api(t *target) (*client.Client, error) {
	return client.New(t.URL, client.WithToken(r.cfg.Token), client.WithHTTPClient(r.http), client.WithRetries(0),
		client.WithRequestTimeout(requestTimeout), client.WithUserAgent("revocast-bench"))
}

// doRequest sends one request and reads the whole answer into buf (reused
// when given).
func doRequest(ctx context.Context, c *http.Client, method, u, token string, body []byte, buf *bytes.Buffer) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return resp.StatusCode, nil, err
	}
	return resp.StatusCode, buf.Bytes(), nil
}

// metrics reads the broadcaster's /metrics as name (with labels, as
// exposed) to value.
func (r *runner) metrics(ctx context.Context, t *target) (map[string]float64, error) {
	status, body, err := doRequest(ctx, r.http, http.MethodGet, t.URL+"/metrics", r.cfg.Token, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: status %d", status)
	}
	return parseMetrics(body), nil
}

// parseMetrics reads the Prometheus text format, enough for gauges and
// counters.
func parseMetrics(b []byte) map[string]float64 {
	m := make(map[string]float64, 256)
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m
}

// forceGC makes the broadcaster collect garbage through its pprof listener
// (the heap profile with gc=1 runs a GC first). It reports false when the
// broadcaster has no pprof listener.
func (r *runner) forceGC(ctx context.Context, t *target) (bool, error) {
	if t.Pprof == "" {
		return false, nil
	}
	for range 2 { // the second one also frees what finalizers released
		status, _, err := doRequest(ctx, r.http, http.MethodGet, t.Pprof+"/debug/pprof/heap?gc=1", "", nil, nil)
		if err != nil {
			return false, fmt.Errorf("force a GC through pprof: %w", err)
		}
		if status != http.StatusOK {
			return false, fmt.Errorf("force a GC through pprof: status %d", status)
		}
	}
	return true, nil
}

// startCPUProfile takes a CPU profile of the broadcaster for d into
// <profile-dir>/<name>.pprof, in the background; the returned function
// waits until it is saved. Without --profile-dir or a pprof listener it
// does nothing.
func (r *runner) startCPUProfile(ctx context.Context, name string, d time.Duration) (wait func()) {
	if r.cfg.ProfileDir == "" || r.cur.Pprof == "" {
		return func() {}
	}
	if r.cfg.CPUProfileSeconds > 0 {
		d = time.Duration(r.cfg.CPUProfileSeconds) * time.Second
	}
	secs := max(1, int((d+time.Second-1)/time.Second))
	path := filepath.Join(r.cfg.ProfileDir, name+".pprof")
	done := make(chan struct{})
	r.profiles.Go(func() {
		defer close(done)
		r.saveProfile(ctx, name, path, "/debug/pprof/profile?seconds="+strconv.Itoa(secs), time.Duration(secs)*time.Second+30*time.Second)
	})
	return func() { <-done }
}

// saveProfile fetches a profile from the broadcaster's pprof listener into
// path and records it in the results (or logs why it could not).
func (r *runner) saveProfile(ctx context.Context, name, path, query string, timeout time.Duration) {
	err := func() error {
		pctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(pctx, http.MethodGet, r.cur.Pprof+query, nil)
		if err != nil {
			return err
		}
		resp, err := r.http.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, resp.Body)
		return errors.Join(err, f.Close())
	}()
	r.profMu.Lock()
	defer r.profMu.Unlock()
	if err != nil {
		fmt.Fprintf(r.out, "   (profile %s failed: %v)\n", name, err)
		return
	}
	if r.res.Profiles == nil {
		r.res.Profiles = map[string]string{}
	}
	r.res.Profiles[name] = path
}

func isLoopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
