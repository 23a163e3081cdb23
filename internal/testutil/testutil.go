// Package testutil runs the real revocast binaries in tests: it builds them
// once per test process, starts them on 127.0.0.1 with a temporary data
// directory, waits until they listen and are ready, and stops or kills them.
// Only tests import it.
//
// Its functions are safe for concurrent use by parallel tests.
package testutil

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// HangLimit is how long a test waits for anything (a process listening or
// ready, an event delivered, a revocation applied, a goroutine returning)
// before calling it hung and failing. It is minutes, not seconds: on a
// loaded 2-core machine the suite runs many packages at once, under the
// race detector, and what takes milliseconds alone can take tens of
// seconds. Slow is not wrong; how fast something happens is measured by a
// benchmark (and cmd/bench), never asserted by a test's deadline.
const HangLimit = 3 * time.Minute

var (
	buildMu  sync.Mutex
	binDir   string
	binaries = map[string]string{}
)

// moduleRoot finds the directory holding go.mod, from this source file.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Binary builds the command in cmd/<name> once per test process and returns
// the path of the executable. Call Cleanup from TestMain to remove it.
func Binary(t testing.TB, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := binaries[name]; ok {
		return p
	}
	if binDir == "" {
		dir, err := os.MkdirTemp("", "revocast-test-bin-")
		if err != nil {
			t.Fatal(err)
		}
		binDir = dir
	}
	out := filepath.Join(binDir, name)
	cmd := exec.Command("go", "build", "-o", out, "./cmd/"+name)
	cmd.Dir = moduleRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/%s: %v\n%s", name, err, b)
	}
	binaries[name] = out
	return out
}

// Cleanup removes the binaries Binary built. Call it from TestMain after
// m.Run.
func Cleanup() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if binDir != "" {
		os.RemoveAll(binDir)
		binDir = ""
		binaries = map[string]string{}
	}
}

// FreeAddr returns a 127.0.0.1 address whose port is free and reserved for
// this test, for a process that binds it later (or must come back on it
// after a restart). See FreeAddrOn.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return FreeAddrOn(t, "127.0.0.1")
}

// FreeAddrOn returns host:port with a port that is free now and stays
// reserved for the test until it ends.
//
// A port from net.Listen(":0") would not do: the kernel takes it from its
// ephemeral range, the same range it draws the source ports of outgoing
// connections from, so between closing that listener and the process
// binding the port, any connection on the machine (a NATS route, another
// test's HTTP client) may take it, and the process fails with "address
// already in use". FreeAddrOn picks ports outside the ephemeral range,
// which the kernel never hands out on its own, and reserves each with a
// file created exclusively in a directory that all of the user's test
// processes share, so that parallel test binaries do not pick the same
// one.
func FreeAddrOn(t testing.TB, host string) string {
	t.Helper()
	lo, hi := assignablePorts()
	dir := reservationDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		port := lo + rand.IntN(hi-lo+1)
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		mark := filepath.Join(dir, strconv.Itoa(port))
		f, err := os.OpenFile(mark, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			if stale(mark) {
				os.Remove(mark)
			}
			continue // reserved by another test
		}
		f.Close()
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			os.Remove(mark)
			continue // in use by something else
		}
		ln.Close()
		t.Cleanup(func() { os.Remove(mark) })
		return addr
	}
	t.Fatalf("no free port on %s in %d-%d", host, lo, hi)
	return ""
}

// reservationDir is where FreeAddrOn reserves ports: one directory per
// user, so that another user's directory (mode 0700) cannot lock this one
// out of a shared temporary directory.
func reservationDir() string {
	return filepath.Join(os.TempDir(), "revocast-test-ports-"+strconv.Itoa(os.Getuid()))
}

// staleReservation is how old a port's reservation file must be to be
// taken for one a crashed test left behind: longer than any test runs.
const staleReservation = time.Hour

func stale(mark string) bool {
	fi, err := os.Stat(mark)
	return err == nil && time.Since(fi.ModTime()) > staleReservation
}

// assignablePorts returns a range of ports, above the well-known ones,
// that the kernel does not use as ephemeral ports. Linux publishes its
// ephemeral range; elsewhere, and if it cannot be read, the range below
// 32768 is outside every common default (Linux 32768-60999, BSD, macOS
// and Windows 49152-65535).
func assignablePorts() (lo, hi int) {
	lo, hi = 20000, 32767
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return lo, hi
	}
	elo, err1 := strconv.Atoi(f[0])
	ehi, err2 := strconv.Atoi(f[1])
	switch {
	case err1 != nil || err2 != nil:
		return lo, hi
	case elo-1 >= lo+1000: // room below the ephemeral range
		return lo, elo - 1
	case ehi+1 <= 64535: // room above it
		return ehi + 1, 65535
	default: // no room: the bind check is all that is left
		return lo, hi
	}
}

// Process is a running revocast binary.
type Process struct {
	t    testing.TB
	cmd  *exec.Cmd
	Addr string // the HTTP address it listens on
	URL  string // "http://" + Addr
	logs *SyncBuffer
	done chan struct{}
	err  error
}

// SyncBuffer collects output written from other goroutines (a process's
// log, a slog handler's); safe for concurrent use. The zero value is empty.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Start runs the named binary with args plus --log-format json, waits until
// its log says "<name> listening" (and reads the address from it) and, when
// readyPath is not empty, until that path answers 200. The process is killed
// when the test ends, if it still runs; its log is printed when the test
// failed.
func Start(t testing.TB, name string, readyPath string, args ...string) *Process {
	t.Helper()
	bin := Binary(t, name)
	args = append(args, "--log-format", "json")
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	cmd.Dir = t.TempDir()
	logs := &SyncBuffer{}
	pr, pw := io.Pipe()
	cmd.Stdout = logs
	cmd.Stderr = io.MultiWriter(logs, pw)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Process{t: t, cmd: cmd, logs: logs, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("--- log of %s %s:\n%s", name, strings.Join(args, " "), p.Logs())
		}
	})

	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			var line struct {
				Msg    string `json:"msg"`
				Addr   string `json:"addr"`
				Scheme string `json:"scheme"`
			}
			if !sent && json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == name+" listening" {
				if line.Scheme == "" {
					line.Scheme = "http"
				}
				addr <- line.Scheme + "://" + line.Addr
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case u := <-addr:
		p.URL = u
		p.Addr = u[strings.Index(u, "://")+3:]
	case <-p.done:
		t.Fatalf("%s exited before listening: %v\n%s", name, p.err, p.Logs())
	case <-time.After(HangLimit):
		t.Fatalf("%s not listening after %v\n%s", name, HangLimit, p.Logs())
	}
	if readyPath != "" {
		p.WaitReady(HangLimit, readyPath)
	}
	return p
}

// WaitReady polls path until it answers 200.
func (p *Process) WaitReady(d time.Duration, path string) {
	p.t.Helper()
	deadline := time.Now().Add(d)
	// readiness only: the test's own requests check certificates
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // readiness probe of a test process
	}}
	for {
		resp, err := client.Get(p.URL + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.done:
			p.t.Fatalf("process exited while waiting for %s: %v\n%s", path, p.err, p.Logs())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s not ready after %v (last: %v)\n%s", p.URL+path, d, err, p.Logs())
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}

// Logs returns what the process logged so far.
func (p *Process) Logs() string { return p.logs.String() }

// Kill sends SIGKILL and waits for the process to exit.
func (p *Process) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits up to d for a clean exit; it returns the
// exit error (nil for a clean exit).
func (p *Process) Stop(d time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		p.Kill()
		return fmt.Errorf("did not exit within %v of SIGTERM", d)
	}
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.done }

// Pid is the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Eventually polls cond until it holds, failing the test if it does not
// within d. d is for catching hangs, not a speed assertion: pass
// HangLimit unless the test is about a bound the design promises.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition inside a deadline
	}
}
