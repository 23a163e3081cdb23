package deployments_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/revocast/revocast/internal/testutil"
)

// ---------------------------------------------------------------------------
// local-cluster.sh
// ---------------------------------------------------------------------------

var readmeFlag = regexp.MustCompile(`--(addr|cluster-addr|data) (\S+)`)

// TestLocalClusterScript runs deployments/local-cluster.sh, which the
// README offers instead of its three terminals: its defaults are the
// README's ports and data directories; with other ports it starts three
// broadcasters that form one cluster, and SIGINT stops all three.
func TestLocalClusterScript(t *testing.T) {
	script, err := os.ReadFile("local-cluster.sh")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(doc, []byte("deployments/local-cluster.sh")) {
		t.Errorf("README.md no longer mentions deployments/local-cluster.sh")
	}
	{
		text := testutil.DocSection(t, "README.md", "### Three nodes on one machine")
		var addrs, clusters, data []string
		for _, m := range readmeFlag.FindAllStringSubmatch(text, -1) {
			switch m[1] {
			case "addr":
				addrs = append(addrs, strings.TrimPrefix(m[2], "127.0.0.1:"))
			case "cluster-addr":
				clusters = append(clusters, strings.TrimPrefix(m[2], "127.0.0.1:"))
			case "data":
				data = append(data, m[2])
			}
		}
		for _, want := range []string{
			"HTTP_PORTS:-" + strings.Join(addrs, " ") + "}",
			"CLUSTER_PORTS:-" + strings.Join(clusters, " ") + "}",
		} {
			if len(addrs) != 3 || len(clusters) != 3 || !bytes.Contains(script, []byte(want)) {
				t.Errorf("local-cluster.sh: want the README's nodes, ${%s (README: --addr %v, --cluster-addr %v)", want, addrs, clusters)
			}
		}
		if len(data) != 3 || data[0] != "./data-n1" || !bytes.Contains(script, []byte("DATA_PREFIX:-./data-n}")) {
			t.Errorf("local-cluster.sh: want the README's data directories ./data-n1…3 (README: %v)", data)
		}
	}
	if testing.Short() {
		t.Skip("does not start the script with -short")
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	if out, err := exec.Command(bash, "-n", "local-cluster.sh").CombinedOutput(); err != nil {
		t.Fatalf("bash -n local-cluster.sh: %v\n%s", err, out)
	}
	var httpPorts, clusterPorts []string
	for range 3 {
		_, p, _ := net.SplitHostPort(testutil.FreeAddr(t))
		httpPorts = append(httpPorts, p)
		_, p, _ = net.SplitHostPort(testutil.FreeAddr(t))
		clusterPorts = append(clusterPorts, p)
	}
	cmd := exec.Command(bash, "local-cluster.sh")
	cmd.Env = append(os.Environ(), "HTTP_PORTS="+strings.Join(httpPorts, " "), "CLUSTER_PORTS="+strings.Join(clusterPorts, " "),
		"DATA_PREFIX="+filepath.Join(t.TempDir(), "n"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var logs bytes.Buffer
	var mu sync.Mutex
	cmd.Stdout = lockedWriter{&mu, &logs}
	cmd.Stderr = lockedWriter{&mu, &logs}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	pgid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-pgid, syscall.SIGKILL) // whatever of the script's group is left
		if t.Failed() {
			mu.Lock()
			t.Logf("--- output of local-cluster.sh:\n%s", logs.String())
			mu.Unlock()
		}
	})
	urls := make([]string, 3)
	for i, p := range httpPorts {
		urls[i] = "http://127.0.0.1:" + p
		deadline := time.Now().Add(testutil.HangLimit) // includes go build
		for {
			resp, err := httpClient.Get(urls[i] + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case err := <-exited:
				t.Fatalf("local-cluster.sh exited: %v", err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s/readyz: not ready after %v", urls[i], testutil.HangLimit)
			}
			time.Sleep(100 * time.Millisecond) // polling a condition with a deadline
		}
	}
	checkLeader(t, urls, []string{"n1", "n2", "n3"})

	// Ctrl-C
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		// The script's INT trap exits 130 after stopping the nodes.
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 130 {
			t.Errorf("local-cluster.sh after SIGINT: %v, want exit status 130", err)
		}
	case <-time.After(testutil.HangLimit):
		t.Fatalf("local-cluster.sh still runs %v after SIGINT", testutil.HangLimit)
	}
	for _, u := range urls {
		if resp, err := httpClient.Get(u + "/healthz"); err == nil {
			resp.Body.Close()
			t.Errorf("%s still answers after local-cluster.sh stopped", u)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

var httpClient = &http.Client{Timeout: testutil.HangLimit}

// get fetches url, failing the test if it cannot.
func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, b
}

// checkLeader asks each broadcaster (by URL) for its NATS server name and
// the stream's leader: the names must be these, and all must agree on one
// leader, which is one of them.
func checkLeader(t *testing.T, urls, names []string) {
	t.Helper()
	leaders := map[string]bool{}
	for i, u := range urls {
		deadline := time.Now().Add(testutil.HangLimit)
		for {
			status, body := get(t, u+"/readyz?leader")
			var r struct {
				Server       string `json:"server"`
				StreamLeader string `json:"stream_leader"`
			}
			_ = json.Unmarshal(body, &r)
			if status == http.StatusOK && r.StreamLeader != "" {
				if r.Server != names[i] {
					t.Errorf("%s/readyz names server %q, want %q", u, r.Server, names[i])
				}
				leaders[r.StreamLeader] = true
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s/readyz?leader after %v: %d %s", u, testutil.HangLimit, status, body)
			}
			time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
		}
	}
	if len(leaders) != 1 {
		t.Errorf("the broadcasters name different stream leaders: %v", leaders)
	}
	for l := range leaders {
		if !slices.Contains(names, l) {
			t.Errorf("stream leader %q is none of the servers %v", l, names)
		}
	}
}
