package faults

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/revocast/revocast/internal/testutil"
	"github.com/revocast/revocast/pkg/client"
	"github.com/revocast/revocast/pkg/events"
)

// The route port of an embedded NATS server is a way into the stream that
// bypasses the HTTP API: a server that joins the cluster can publish a lift
// straight into the stream (no credential, no audit line) and every agent
// applies it. These tests run a cluster of two real broadcasters and a
// rogue NATS server, in the test's process, that tries to join through the
// route port.

const routeCluster = "revocast-routes"

// rogue is a NATS server that solicits a route to a broadcaster's cluster
// port, with a client connected to it.
type rogue struct {
	ns   *server.Server
	nc   *nats.Conn
	logs *rogueLog
}

// rogueLog records what the rogue server logs, for the test's failure
// messages.
type rogueLog struct {
	mu     sync.Mutex
	errors []string
}

func (l *rogueLog) add(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errors = append(l.errors, fmt.Sprintf(format, v...))
}

func (l *rogueLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.errors, "\n")
}

func (l *rogueLog) Noticef(string, ...any)         {}
func (l *rogueLog) Warnf(format string, v ...any)  { l.add(format, v...) }
func (l *rogueLog) Fatalf(format string, v ...any) { l.add(format, v...) }
func (l *rogueLog) Errorf(format string, v ...any) { l.add(format, v...) }
func (l *rogueLog) Debugf(string, ...any)          {}
func (l *rogueLog) Tracef(string, ...any)          {}

// startRogue runs a NATS server in this process that solicits a route to
// target (nats://[user:password@]host:port), with tlsConfig on its routes
// when not nil. Its own route port is on host, where the cluster's other
// nodes can reach it once they hear of it: a full mesh.
func startRogue(t *testing.T, host, target string, tlsConfig *tls.Config) *rogue {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	opts := &server.Options{
		ServerName: "rogue",
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		NoSigs:     true,
		Cluster: server.ClusterOpts{
			Name: routeCluster,
			Host: host,
			Port: server.RANDOM_PORT,
		},
		Routes: []*url.URL{u},
	}
	if tlsConfig != nil {
		opts.Cluster.TLSConfig = tlsConfig
		opts.Cluster.TLSTimeout = 5
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	logs := &rogueLog{}
	ns.SetLoggerV2(logs, true, false, false)
	ns.Start()
	if !ns.ReadyForConnections(hangLimit) {
		t.Fatalf("rogue NATS server not ready after %v", hangLimit)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- the rogue's warnings and errors:\n%s", logs)
		}
	})
	return &rogue{ns: ns, nc: nc, logs: logs}
}

// seesStream reports whether the rogue's client can reach the cluster's
// JetStream API and get the stream's description.
func (r *rogue) seesStream() bool {
	msg, err := r.nc.Request("$JS.API.STREAM.INFO.REVOCAST", nil, time.Second)
	if err != nil {
		return false
	}
	var info struct {
		Config struct {
			Name string `json:"name"`
		} `json:"config"`
	}
	return json.Unmarshal(msg.Data, &info) == nil && info.Config.Name == "REVOCAST"
}

// publishLift writes a lift of key straight to the stream's subject, as a
// rogue cluster member would, bypassing the HTTP API.
func (r *rogue) publishLift(t *testing.T, key string) {
	t.Helper()
	m := nats.NewMsg("revocast.rev." + key)
	m.Header.Set("Revocast-Type", "lift")
	m.Data = []byte(`{"key":"` + key + `","actor":"rogue"}`)
	if err := r.nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	if err := r.nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// revoke posts a ban of sub to a node and returns its key.
func revoke(t *testing.T, n *node, sub string) string {
	t.Helper()
	api := n.api(t)
	deadline := time.Now().Add(hangLimit)
	for {
		st, err := api.Revoke(t.Context(), events.Revocation{Sub: sub, Ban: true}, client.WriteOptions{})
		if err == nil {
			if st.Status == client.StatusCreated && st.Key != "" {
				return st.Key
			}
			err = fmt.Errorf("status %q, key %q", st.Status, st.Key)
		}
		if time.Now().After(deadline) {
			t.Fatalf("revoke %s on %s: %v", sub, n.name, err)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition with a deadline
	}
}

// listed reports how many live revocations of sub a node lists.
func listed(t *testing.T, n *node, sub string) int {
	t.Helper()
	page, err := n.api(t).List(t.Context(), client.ListOptions{Sub: sub})
	if err != nil {
		t.Fatalf("list on %s: %v", n.name, err)
	}
	return len(page.Revocations)
}

// routeTLS is a certificate authority and a certificate it signed, usable
// both as a route's server and as its client (mutual TLS).
type routeTLS struct {
	caFile, certFile, keyFile string
	config                    *tls.Config // the same, for a server in this process
}

func newRouteTLS(t *testing.T, hosts ...net.IP) routeTLS {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "revocast routes test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "revocast route"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  hosts,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rt := routeTLS{
		caFile:   write("ca.pem", "CERTIFICATE", caDER),
		certFile: write("route.pem", "CERTIFICATE", leafDER),
		keyFile:  write("route-key.pem", "PRIVATE KEY", keyDER),
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	rt.config = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
	return rt
}

// twoNodes returns two broadcasters that form one cluster on host with the
// extra flags, the stream replicated on both.
func twoNodes(t *testing.T, host string, extra ...string) []*node {
	t.Helper()
	nodes := make([]*node, 2)
	for i := range nodes {
		nodes[i] = &node{name: fmt.Sprintf("n%d", i+1), addr: testutil.FreeAddr(t), clusterAddr: testutil.FreeAddrOn(t, host), data: t.TempDir()}
	}
	var routes []string
	for _, n := range nodes {
		routes = append(routes, "nats://"+n.clusterAddr)
	}
	for _, n := range nodes {
		n.args = append([]string{"--cluster-name", routeCluster, "--cluster-addr", n.clusterAddr,
			"--routes", strings.Join(routes, ","), "--replicas", "2"}, extra...)
	}
	return nodes
}

// nonLoopbackIP returns an IPv4 address of this machine that is not
// loopback, or nil.
func nonLoopbackIP() net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			if ln, err := net.Listen("tcp", net.JoinHostPort(ipn.IP.String(), "0")); err == nil {
				ln.Close()
				return ipn.IP
			}
		}
	}
	return nil
}

// TestRogueServerCannotJoinRoutes: a NATS server that reaches a route port
// without the cluster's secret (or a certificate of the cluster's CA) never
// joins: it never sees the stream, and a lift it publishes never reaches
// it. A cluster on a non-loopback address without either is refused at
// start; --insecure, and a loopback address, still let anyone local join
// (the rogue does, which shows that the test sees a join when there is one).
func TestRogueServerCannotJoinRoutes(t *testing.T) {
	skipShort(t)
	secretFile := filepath.Join(t.TempDir(), "cluster-secret")
	if err := os.WriteFile(secretFile, []byte("the routes' shared secret, 16+ chars\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ip := nonLoopbackIP()
	exposed := "127.0.0.1"
	if ip != nil {
		exposed = ip.String()
	}
	hostIPs := []net.IP{net.IPv4(127, 0, 0, 1)}
	if ip != nil {
		hostIPs = append(hostIPs, ip)
	}
	good := newRouteTLS(t, hostIPs...)
	other := newRouteTLS(t, hostIPs...) // a CA the cluster does not trust
	tlsFlags := []string{"--cluster-tls-cert", good.certFile, "--cluster-tls-key", good.keyFile, "--cluster-tls-ca", good.caFile}

	cases := []struct {
		name  string
		host  string // the cluster addresses' host
		flags []string
		// the rogue's route: user info for the target URL, TLS config
		userinfo    *url.Userinfo
		rogueTLS    *tls.Config
		wantRefused bool // the broadcaster refuses to start
		wantJoin    bool
	}{
		{name: "exposed without secret is refused", host: exposed, wantRefused: true},
		{name: "secret, rogue without credentials", host: exposed, flags: []string{"--cluster-secret-file", secretFile}},
		{name: "secret, rogue with a wrong secret", host: exposed, flags: []string{"--cluster-secret-file", secretFile},
			userinfo: url.UserPassword("revocast", "not the routes' shared secret")},
		{name: "route TLS, rogue without TLS", host: exposed, flags: tlsFlags},
		{name: "route TLS, rogue with a certificate of another CA", host: exposed, flags: tlsFlags, rogueTLS: other.config},
		{name: "route TLS and secret, rogue with the secret but no certificate", host: exposed,
			flags:    append([]string{"--cluster-secret-file", secretFile}, tlsFlags...),
			userinfo: url.UserPassword("revocast", "the routes' shared secret, 16+ chars")},
		// positive control: what an open route port lets a rogue do
		{name: "insecure without secret: the rogue joins", host: exposed, flags: []string{"--insecure"}, wantJoin: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if ip == nil && tc.wantRefused {
				t.Skip("no non-loopback address on this machine")
			}
			nodes := twoNodes(t, tc.host, tc.flags...)
			if tc.wantRefused {
				for _, n := range nodes {
					checkRefused(t, n)
				}
				return
			}
			startAll(t, nodes)
			victim := "victim-" + strings.ReplaceAll(tc.name, " ", "-")
			key := revoke(t, nodes[0], victim)

			target := &url.URL{Scheme: "nats", Host: nodes[0].clusterAddr, User: tc.userinfo}
			r := startRogue(t, tc.host, target.String(), tc.rogueTLS)
			if tc.wantJoin {
				// it joins, sees the stream, and its lift is applied
				testutil.Eventually(t, 2*time.Minute, "the rogue to join, see the stream and lift the ban", func() bool {
					if r.ns.NumRoutes() > 0 {
						r.publishLift(t, key)
					}
					return r.ns.NumRoutes() > 0 && r.seesStream() && listed(t, nodes[1], victim) == 0
				})
				return
			}
			// it tries, again and again (the node logs each refusal), and
			// meanwhile never sees the stream, and its lifts go nowhere.
			// (A route being refused counts as a route while it is being
			// refused, so the number of routes proves nothing here.)
			testutil.Eventually(t, 2*time.Minute, "the rogue's repeated attempts", func() bool {
				if r.seesStream() {
					t.Fatal("the rogue sees the stream")
				}
				r.publishLift(t, key)
				return refusedRoutes(nodes[0]) >= 3
			})
			r.ns.Shutdown()
			r.ns.WaitForShutdown()
			// a revocation posted after the rogue is gone shows each node's
			// view is current: the victim's ban is still there
			sentinel := "sentinel-" + strings.ReplaceAll(tc.name, " ", "-")
			revoke(t, nodes[1], sentinel)
			for _, n := range nodes {
				testutil.Eventually(t, 2*time.Minute, n.name+" listing the sentinel revocation", func() bool {
					return listed(t, n, sentinel) == 1
				})
				if got := listed(t, n, victim); got != 1 {
					t.Errorf("%s lists %d bans of %s, want 1: the rogue's lift reached the stream", n.name, got, victim)
				}
			}
		})
	}
}

// refusedRoutes counts the route connections a node closed for a reason
// other than a duplicate or the peer closing: its refusals (failed
// authentication, failed TLS handshake).
func refusedRoutes(n *node) int {
	c := 0
	for _, line := range strings.Split(n.proc.Logs(), "\n") {
		if strings.Contains(line, "Router connection closed") && !strings.Contains(line, "Duplicate Route") &&
			!strings.Contains(line, "Client Closed") {
			c++
		}
	}
	return c
}

// checkRefused starts a node that must refuse to start: exit code 2 and a
// message saying what to configure.
func checkRefused(t *testing.T, n *node) {
	t.Helper()
	bin := testutil.Binary(t, "broadcaster")
	args := append([]string{"--addr", n.addr, "--data", n.data, "--server-name", n.name}, n.args...)
	code, out := runToExit(t, bin, args...)
	if code != 2 {
		t.Fatalf("%s: exit code %d, want 2 (refused)\n%s", n.name, code, out)
	}
	for _, want := range []string{"cluster", "--cluster-secret-file", "--cluster-tls-cert", "--insecure"} {
		if !strings.Contains(out, want) {
			t.Errorf("%s: the message lacks %q:\n%s", n.name, want, out)
		}
	}
}

// runToExit runs bin until it exits and returns its exit code and output;
// a process that starts listening instead is killed and fails the test.
func runToExit(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, append(args, "--log-format", "json")...)
	cmd.Dir = t.TempDir()
	pr, pw := io.Pipe()
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan struct{})
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if !sent && strings.Contains(sc.Text(), `"msg":"broadcaster listening"`) {
				close(listening)
				sent = true
			}
		}
	}()
	exited := make(chan error, 1)
	go func() { err := cmd.Wait(); pw.Close(); exited <- err }()
	select {
	case err := <-exited:
		<-scanned
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), out.String()
	case <-listening:
		_ = cmd.Process.Kill()
		<-exited //nolint:errcheck // killed on purpose
		<-scanned
		t.Fatalf("it started instead of refusing:\n%s", out.String())
	case <-time.After(hangLimit):
		_ = cmd.Process.Kill()
		<-exited //nolint:errcheck // killed on purpose
		<-scanned
		t.Fatalf("neither exited nor listening after 2m:\n%s", out.String())
	}
	return 0, ""
}
