package deployments_test

// What can be checked here without Docker, Kubernetes or systemd running:
//
//   - every YAML file parses (every document of it);
//   - every command line and REVOCAST_* variable of the compose file, the
//     Kubernetes manifests, the systemd units and their env files names a
//     flag the real binary has (from its --flags-json);
//   - the compose file's and the StatefulSet's exact command lines, with only
//     host names, ports and paths replaced, start a real 3-node cluster on
//     127.0.0.1 that becomes ready and replicates a revocation, and the
//     agents (and the embedded demo) start with theirs and become ready; the
//     systemd units' command lines and env files start a broadcaster and an
//     agent;
//   - the Dockerfile pins its base images by digest, copies only paths that
//     exist, covers every package the programs are built from, builds static
//     binaries and runs as non-root.
//
// This file holds what the targets share: YAML loading, the binaries' flags
// (from --flags-json), invocations (a binary as a manifest runs it) and
// running them on 127.0.0.1. Each target has its own file: compose_test.go,
// kubernetes_test.go, systemd_test.go, dockerfile_test.go and
// local_cluster_test.go.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/revocast/revocast/internal/envflag"
	"github.com/revocast/revocast/internal/testutil"
)

var (
	extraMu  sync.Mutex
	extraDir string // binaries built here besides testutil's (examples/embedded)
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.Cleanup()
	extraMu.Lock()
	if extraDir != "" {
		os.RemoveAll(extraDir)
	}
	extraMu.Unlock()
	os.Exit(code)
}

// The repository root is the build context of the image; this package is
// deployments/.
const repoRoot = ".."

// ---------------------------------------------------------------------------
// YAML
// ---------------------------------------------------------------------------

// yamlDocs parses every document of a YAML file; empty documents (a lone
// "---" or only comments) are skipped.
func yamlDocs(t *testing.T, file string) []*yaml.Node {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", file, len(docs)+1, err)
		}
		if len(n.Content) == 0 || (n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Tag == "!!null") {
			continue
		}
		docs = append(docs, &n)
	}
	return docs
}

func yamlFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestYAMLParses parses every YAML file of this directory, every document of
// each, with a real YAML parser (which also refuses duplicate keys).
func TestYAMLParses(t *testing.T) {
	files := yamlFiles(t)
	for _, want := range []string{"docker-compose.yml", "kubernetes/broadcaster.yaml", "kubernetes/resource-server.yaml", "kubernetes/kustomization.yaml"} {
		if !slices.Contains(files, filepath.FromSlash(want)) {
			t.Errorf("%s is missing", want)
		}
	}
	for _, f := range files {
		docs := yamlDocs(t, f)
		if len(docs) == 0 {
			t.Errorf("%s: no YAML document", f)
		}
		for i, d := range docs {
			if d.Content[0].Kind != yaml.MappingNode {
				t.Errorf("%s: document %d is not a mapping", f, i+1)
			}
		}
	}
}

// ---------------------------------------------------------------------------
// The binaries and their flags
// ---------------------------------------------------------------------------

type flagDef struct {
	name   string
	isBool bool
	typ    string // envflag's type name: string, bool, int, duration, list…
	env    string // REVOCAST_…, or "" (examples/embedded reads no environment)
}

// program is a binary and the flags it has.
type program struct {
	name  string // broadcaster, agent, embedded
	bin   string
	flags map[string]flagDef
	envs  map[string]string // variable → flag
}

var (
	programsMu sync.Mutex
	programs   = map[string]*program{}
)

// binary builds the named program: cmd/broadcaster and cmd/agent through
// testutil, examples/embedded here.
func binary(t *testing.T, name string) string {
	t.Helper()
	if name != "embedded" {
		return testutil.Binary(t, name)
	}
	extraMu.Lock()
	defer extraMu.Unlock()
	if extraDir == "" {
		d, err := os.MkdirTemp("", "revocast-deployments-bin-")
		if err != nil {
			t.Fatal(err)
		}
		extraDir = d
	}
	out := filepath.Join(extraDir, "embedded")
	if _, err := os.Stat(out); err == nil {
		return out
	}
	cmd := exec.Command("go", "build", "-o", out, "./examples/embedded")
	cmd.Dir = repoRoot
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/embedded: %v\n%s", err, b)
	}
	return out
}

// listFlags runs "<bin> --flags-json", the binary's own machine-readable
// list of its flags (envflag.FlagInfo).
func listFlags(t *testing.T, name, bin string) []envflag.FlagInfo {
	t.Helper()
	cmd := exec.Command(bin, "--flags-json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s --flags-json: %v\n%s", name, err, stderr.Bytes())
	}
	var flags []envflag.FlagInfo
	if err := json.Unmarshal(out, &flags); err != nil {
		t.Fatalf("%s --flags-json: %v\n%s", name, err, out)
	}
	return flags
}

// embeddedFlags reads the flags of examples/embedded from its source: an
// example kept to the standard flag package, it has no --flags-json. Every
// fs.String/Bool/Int/Duration("name", …) call of main.go is a flag.
func embeddedFlags(t *testing.T) []envflag.FlagInfo {
	t.Helper()
	file := filepath.Join(repoRoot, "examples", "embedded", "main.go")
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var flags []envflag.FlagInfo
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) < 2 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "fs" {
			return true
		}
		typ := strings.ToLower(sel.Sel.Name)
		if !slices.Contains([]string{"string", "bool", "int", "duration"}, typ) {
			return true
		}
		if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
			name, _ := strconv.Unquote(lit.Value)
			flags = append(flags, envflag.FlagInfo{Name: name, Type: typ})
		}
		return true
	})
	return flags
}

// loadProgram builds a program and learns its flags: from --flags-json for
// the broadcaster and the agent, from the source for examples/embedded.
func loadProgram(t *testing.T, name string) *program {
	t.Helper()
	programsMu.Lock()
	p, ok := programs[name]
	programsMu.Unlock()
	if ok {
		return p
	}
	bin := binary(t, name)
	var list []envflag.FlagInfo
	if name == "embedded" {
		list = embeddedFlags(t)
	} else {
		list = listFlags(t, name, bin)
	}
	p = &program{name: name, bin: bin, flags: map[string]flagDef{}, envs: map[string]string{}}
	for _, f := range list {
		p.flags[f.Name] = flagDef{name: f.Name, isBool: f.Type == "bool", typ: f.Type, env: f.Env}
		if f.Env != "" {
			p.envs[f.Env] = f.Name
		}
	}
	if len(p.flags) < 5 || p.flags["addr"].name == "" {
		t.Fatalf("%s: found %d flags, no --addr: %+v", name, len(p.flags), list)
	}
	if name != "embedded" {
		for _, f := range p.flags {
			if f.env != envflag.EnvName(f.name) {
				t.Fatalf("%s --flags-json: flag --%s has variable %q", name, f.name, f.env)
			}
		}
	}
	programsMu.Lock()
	programs[name] = p
	programsMu.Unlock()
	return p
}

// setting is one flag given on a command line or through its variable.
type setting struct {
	flag    flagDef
	value   string
	fromEnv bool
}

// parseArgs checks a command line against the program's flags: flags only
// ("--name=value", "--name value", "--bool"), no positional argument. It
// reports every problem and returns the settings it could read.
func (p *program) parseArgs(args []string) ([]setting, error) {
	var out []setting
	var errs []error
	for i := 0; i < len(args); i++ {
		a := args[i]
		if i == 0 && p.name == "broadcaster" && a == "serve" {
			continue
		}
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			errs = append(errs, fmt.Errorf("unexpected argument %q (only flags are expected)", a))
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		def, ok := p.flags[name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s has no flag --%s", p.name, name))
			if !hasValue && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				i++ // its value, presumably
			}
			continue
		}
		switch {
		case def.isBool && !hasValue:
			value = "true"
		case def.isBool:
			if _, err := strconv.ParseBool(value); err != nil {
				errs = append(errs, fmt.Errorf("--%s=%s: not a boolean", name, value))
				continue
			}
		case !hasValue:
			if i+1 == len(args) {
				errs = append(errs, fmt.Errorf("--%s needs a value", name))
				continue
			}
			i++
			value = args[i]
		}
		out = append(out, setting{flag: def, value: value})
	}
	return out, errors.Join(errs...)
}

// parseEnv checks REVOCAST_* variables against the program's flags; other
// variables are not the program's business.
func (p *program) parseEnv(env map[string]string) ([]setting, error) {
	var out []setting
	var errs []error
	for _, k := range sortedKeys(env) {
		if !strings.HasPrefix(k, "REVOCAST_") {
			continue
		}
		name, ok := p.envs[k]
		if !ok {
			errs = append(errs, fmt.Errorf("%s reads no variable %s", p.name, k))
			continue
		}
		out = append(out, setting{flag: p.flags[name], value: env[k], fromEnv: true})
	}
	return out, errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// ---------------------------------------------------------------------------
// Invocations: a binary as a manifest runs it
// ---------------------------------------------------------------------------

// invocation is one process a manifest describes: its command line and
// environment as written, and how its paths and host names map to this
// machine.
type invocation struct {
	source string // for messages: "docker-compose.yml service revocast-1"
	host   string // compose service or pod name
	hosts  []string
	labels map[string]string
	prog   *program
	args   []string
	env    map[string]string
	// files maps container paths (files or directories) to files here.
	files map[string]string
	// volumes are container paths backed by a persistent volume.
	volumes map[string]bool
	// namedPorts: container port names (Kubernetes) → numbers.
	namedPorts map[string]int

	settings []setting
	listen   map[int]string // container port → 127.0.0.1:port standing in
	runArgs  []string
	runEnv   map[string]string
}

func (inv *invocation) parse(t *testing.T) {
	t.Helper()
	s, err := inv.prog.parseArgs(inv.args)
	if err != nil {
		t.Errorf("%s: %v", inv.source, err)
	}
	e, err := inv.prog.parseEnv(inv.env)
	if err != nil {
		t.Errorf("%s: %v", inv.source, err)
	}
	inv.settings = append(e, s...)
}

// value is the flag's effective value as the program sees it: the command
// line wins over the variable.
func (inv *invocation) value(name string) (string, bool) {
	v, ok := "", false
	for _, s := range inv.settings {
		if s.flag.name == name && (!ok || !s.fromEnv) {
			v, ok = s.value, true
		}
	}
	return v, ok
}

func (inv *invocation) onCommandLine(flag string) bool {
	return slices.ContainsFunc(inv.settings, func(s setting) bool { return s.flag.name == flag && !s.fromEnv })
}

// dockerImage is what the Dockerfile says about the image's defaults.
type dockerImage struct {
	entrypoint string
	cmd        []string
	env        map[string]string
	binaries   map[string]bool // files copied to / of the final stage
}

func ourImage(ref string) bool {
	name, _, _ := strings.Cut(ref, "@")
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	return name == "revocast" || strings.HasSuffix(name, "/revocast")
}

// programOf maps an entrypoint to the program it runs.
func programOf(t *testing.T, img dockerImage, entrypoint string) (*program, error) {
	if entrypoint == "" {
		entrypoint = img.entrypoint
	}
	if !img.binaries[strings.TrimPrefix(entrypoint, "/")] || !strings.HasPrefix(entrypoint, "/") {
		return nil, fmt.Errorf("entrypoint %q is not a binary the Dockerfile copies to /", entrypoint)
	}
	return loadProgram(t, strings.TrimPrefix(entrypoint, "/")), nil
}

// ---------------------------------------------------------------------------
// Running invocations on 127.0.0.1
// ---------------------------------------------------------------------------

// world runs invocations on this machine: it gives each listen address a
// free 127.0.0.1 port, maps the host names and ports the manifests name to
// them, each container path to a file here, each data volume to a temporary
// directory.
type world struct {
	t        *testing.T
	invs     []*invocation
	services []k8sService // Kubernetes Services; compose services are invocations' hosts
	// apiKeys rewrites an --api-keys file before the broadcaster reads it
	apiKeys func(hostFile string) string
}

type k8sService struct {
	name     string
	selector map[string]string
	ports    []servicePort
}

var k8sSvcSuffix = regexp.MustCompile(`\.[a-z0-9-]+\.svc(\.cluster\.local)?$`)

func (w *world) resolve(host string, port int) (string, bool) {
	host = k8sSvcSuffix.ReplaceAllString(host, "")
	for _, inv := range w.invs {
		if slices.Contains(inv.hosts, host) {
			a, ok := inv.listen[port]
			return a, ok
		}
	}
	for _, s := range w.services {
		if s.name != host {
			continue
		}
		for _, sp := range s.ports {
			if sp.Port != port {
				continue
			}
			for _, inv := range w.invs {
				if !selects(s.selector, inv.labels) {
					continue
				}
				target := sp.TargetPort
				if target == "" {
					target = strconv.Itoa(sp.Port)
				}
				cp, err := strconv.Atoi(target)
				if err != nil {
					cp = inv.namedPorts[target]
				}
				if a, ok := inv.listen[cp]; ok {
					return a, true
				}
			}
		}
	}
	return "", false
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

var (
	listenFlags = map[string]bool{"addr": true, "cluster-addr": true}
	// flags whose URLs the program connects to (--issuer and --audience are
	// names, not addresses)
	connectFlags = map[string]bool{"broadcaster": true, "routes": true, "nats-url": true, "jwks": true, "auth-jwks": true, "token-jwks": true}
)

// prepare allocates the listen addresses of every invocation, then rewrites
// their command lines and variables.
func (w *world) prepare() {
	t := w.t
	t.Helper()
	for _, inv := range w.invs {
		inv.listen = map[int]string{}
		for _, s := range inv.settings {
			if !listenFlags[s.flag.name] {
				continue
			}
			host, p, err := net.SplitHostPort(s.value)
			port, perr := strconv.Atoi(p)
			if err != nil || perr != nil {
				t.Errorf("%s: --%s=%s: want host:port", inv.source, s.flag.name, s.value)
				continue
			}
			if !slices.Contains([]string{"", "0.0.0.0", "::", "127.0.0.1", "localhost"}, host) {
				t.Errorf("%s: --%s=%s: listen on all interfaces or on loopback, not on a name", inv.source, s.flag.name, s.value)
			}
			if _, ok := inv.listen[port]; !ok {
				inv.listen[port] = testutil.FreeAddr(t)
			}
		}
	}
	for _, inv := range w.invs {
		inv.runArgs, inv.runEnv = nil, map[string]string{}
		for _, s := range inv.settings {
			if s.fromEnv && inv.onCommandLine(s.flag.name) {
				continue // the flag wins: the variable has no effect
			}
			v := w.rewrite(inv, s)
			if s.fromEnv {
				inv.runEnv[s.flag.env] = v
			} else {
				inv.runArgs = append(inv.runArgs, "--"+s.flag.name+"="+v)
			}
		}
	}
}

// rewrite replaces host names, ports and paths in one flag's value; every
// other value is kept as written.
func (w *world) rewrite(inv *invocation, s setting) string {
	t := w.t
	t.Helper()
	v := s.value
	switch {
	case listenFlags[s.flag.name]:
		_, p, _ := net.SplitHostPort(v)
		port, _ := strconv.Atoi(p)
		return inv.listen[port]
	case connectFlags[s.flag.name]:
		items := strings.Split(v, ",")
		for i, item := range items {
			u, err := url.Parse(strings.TrimSpace(item))
			if err != nil || u.Host == "" {
				t.Errorf("%s: --%s: %q is not a URL", inv.source, s.flag.name, item)
				continue
			}
			port := u.Port()
			if port == "" {
				port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
			}
			n, _ := strconv.Atoi(port)
			a, ok := w.resolve(u.Hostname(), n)
			if !ok {
				t.Errorf("%s: --%s: %s names no process of this deployment listening on port %d", inv.source, s.flag.name, item, n)
				continue
			}
			u.Host = a
			items[i] = u.String()
		}
		return strings.Join(items, ",")
	case strings.HasPrefix(v, "/"):
		items := strings.Split(v, ",")
		for i, item := range items {
			items[i] = w.path(inv, s.flag.name, item)
		}
		return strings.Join(items, ",")
	}
	return v
}

func (w *world) path(inv *invocation, flag, p string) string {
	t := w.t
	t.Helper()
	if flag == "data" {
		if !inv.volumes[p] {
			t.Errorf("%s: --data=%s is not on a persistent volume: the revocations would not survive a restart", inv.source, p)
		}
		return t.TempDir()
	}
	// the longest mount that holds p
	best := ""
	for target := range inv.files {
		if (p == target || strings.HasPrefix(p, strings.TrimSuffix(target, "/")+"/")) && len(target) > len(best) {
			best = target
		}
	}
	if best == "" {
		t.Errorf("%s: --%s=%s: nothing is mounted there", inv.source, flag, p)
		return p
	}
	host := filepath.Join(inv.files[best], filepath.FromSlash(strings.TrimPrefix(p, best)))
	if _, err := os.Stat(host); err != nil {
		t.Errorf("%s: --%s=%s: %v", inv.source, flag, p, err)
	}
	abs, err := filepath.Abs(host)
	if err != nil {
		t.Fatal(err)
	}
	if flag == "api-keys" && w.apiKeys != nil {
		return w.apiKeys(abs)
	}
	return abs
}

// setEnv gives the processes started next exactly these REVOCAST_*
// variables of theirs (an empty value is unset to the binaries).
func setEnv(t *testing.T, prog *program, env map[string]string) {
	t.Helper()
	if len(env) > 0 {
		t.Logf("%s: environment %v", prog.name, env)
	}
	for v := range prog.envs {
		if _, ok := os.LookupEnv(v); ok {
			t.Setenv(v, "")
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
}

// asyncTB lets testutil.Start run on a goroutine of its own: a fatal
// failure is reported with Errorf, which any goroutine may call, and ends
// only that goroutine.
type asyncTB struct{ testing.TB }

func (a asyncTB) Fatal(args ...any) { a.TB.Helper(); a.TB.Error(args...); runtime.Goexit() }
func (a asyncTB) Fatalf(format string, args ...any) {
	a.TB.Helper()
	a.TB.Errorf(format, args...)
	runtime.Goexit()
}
func (a asyncTB) FailNow() { a.TB.Fail(); runtime.Goexit() }

// startAll starts the invocations at once (a cluster's first node is not
// ready without the others) and returns once each listens.
func startAll(t *testing.T, invs []*invocation) []*testutil.Process {
	t.Helper()
	for _, inv := range invs[1:] {
		if !mapsEqual(inv.runEnv, invs[0].runEnv) || inv.prog != invs[0].prog {
			t.Fatalf("%s and %s differ in program or environment: cannot start them together", invs[0].source, inv.source)
		}
	}
	setEnv(t, invs[0].prog, invs[0].runEnv)
	t.Logf("%s and the others: environment %v", invs[0].source, invs[0].runEnv)
	procs := make([]*testutil.Process, len(invs))
	var wg sync.WaitGroup
	for i, inv := range invs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			procs[i] = testutil.Start(asyncTB{t}, inv.prog.name, "", inv.runArgs...)
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return procs
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// waitFor polls url until it answers 200, or fails the test at the deadline
// or when the process exits.
func waitFor(t *testing.T, p *testutil.Process, url string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for {
		resp, err := httpClient.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
		} else {
			last = err.Error()
		}
		if p != nil {
			select {
			case <-p.Exited():
				t.Fatalf("%s: the process exited\n%s", url, p.Logs())
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not 200 after %v (last: %s)", url, d, last)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
}

func request(t *testing.T, method, url, token string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp.StatusCode, b
}

// keygen makes an API key with the real broadcaster: the key and its line
// for an --api-keys file.
func keygen(t *testing.T, name, role string) (key, line string) {
	t.Helper()
	out, err := exec.Command(binary(t, "revocast"), "keygen", "--name", name, "--role", role).Output()
	if err != nil {
		t.Fatalf("revocast keygen: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("revocast keygen printed %q", out)
	}
	return lines[0], lines[1]
}

// withRevoker returns a function that copies an --api-keys file and adds a
// revoker key made for this test (none is committed).
func withRevoker(t *testing.T, line string) func(string) string {
	return func(file string) string {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "api-keys.txt")
		if err := os.WriteFile(out, append(b, []byte("\n"+line+"\n")...), 0o600); err != nil {
			t.Fatal(err)
		}
		return out
	}
}

// checkOneCluster asks each broadcaster for its NATS server name and the
// stream's leader: the names must be the --server-name of each, and all must
// agree on one leader, which is one of them.
func checkOneCluster(t *testing.T, procs []*testutil.Process, invs []*invocation) {
	t.Helper()
	urls := make([]string, len(procs))
	names := make([]string, len(procs))
	for i, p := range procs {
		urls[i] = p.URL
		names[i], _ = invs[i].value("server-name")
	}
	checkLeader(t, urls, names)
}

func checkLeader(t *testing.T, urls, names []string) {
	t.Helper()
	leaders := map[string]bool{}
	for i, u := range urls {
		deadline := time.Now().Add(15 * time.Second)
		for {
			status, body := request(t, http.MethodGet, u+"/readyz?leader", "", nil)
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
				t.Fatalf("%s/readyz?leader: %d %s", u, status, body)
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

// checkReplication posts a revocation to the first broadcaster and reads it
// back from the second (GET) and the third (the SSE stream).
func checkReplication(t *testing.T, procs []*testutil.Process, revoker, reader string) {
	t.Helper()
	jti := fmt.Sprintf("deployments-test-%d", time.Now().UnixNano())
	status, body := request(t, http.MethodPost, procs[0].URL+"/v1/revocations", revoker,
		[]byte(`{"jti":"`+jti+`","reason":"deployments test"}`))
	if status != http.StatusCreated {
		t.Fatalf("POST /v1/revocations to %s: %d %s", procs[0].URL, status, body)
	}
	var rev struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal(body, &rev); err != nil || rev.Key == "" {
		t.Fatalf("POST /v1/revocations: %s (%v)", body, err)
	}
	// the second node's mirror shows it (with the committed reader key)
	deadline := time.Now().Add(15 * time.Second)
	for {
		status, body = request(t, http.MethodGet, procs[1].URL+"/v1/revocations/"+rev.Key, reader, nil)
		if status == http.StatusOK && strings.Contains(string(body), jti) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s/v1/revocations/%s: %d %s", procs[1].URL, rev.Key, status, body)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
	// the third node streams it
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, procs[2].URL+"/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+reader)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s/v1/events: %v", procs[2].URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/v1/events: %d", procs[2].URL, resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data:") && strings.Contains(sc.Text(), `"key":"`+rev.Key+`"`) {
			return
		}
	}
	t.Fatalf("%s/v1/events never sent revocation %s: %v", procs[2].URL, rev.Key, sc.Err())
}

func byProgram(invs []*invocation, name string) []*invocation {
	var out []*invocation
	for _, inv := range invs {
		if inv.prog.name == name {
			out = append(out, inv)
		}
	}
	return out
}
