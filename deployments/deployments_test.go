package deployments_test

// What can be checked here without Docker, Kubernetes or systemd running:
//
//   - every YAML file parses (every document of it);
//   - deployments/kubernetes renders with the kustomize library (krusty, what
//     "kubectl kustomize" runs), and every rendered object decodes strictly
//     into its k8s.io/api type: an unknown kind, an unknown field or a value
//     of the wrong type fails; the Kubernetes checks read these objects;
//   - docker-compose.yml loads with compose-go, the loader of "docker
//     compose", which validates it against the compose-spec schema and
//     checks its consistency; the compose checks read its services;
//   - every command line and REVOCAST_* variable of the compose file, the
//     Kubernetes manifests, the systemd units and their env files names a
//     flag the real binary has (from its --flags-json);
//   - every address they listen on is host:port on all interfaces or on
//     loopback, every file they read is mounted and exists, --data is on a
//     persistent volume;
//   - the binaries accept each process's configuration: "<binary>
//     --check-config" with its command line and variables as written, only
//     mounted paths mapped to the files here (nothing is started);
//   - the Dockerfile pins its base images by digest, copies only paths that
//     exist, covers every package the programs are built from, builds static
//     binaries and runs as non-root;
//   - local-cluster.sh (the only thing started) forms a cluster of three.
//
// Kustomize, the schema check and the compose loader are the real libraries
// (sigs.k8s.io/kustomize/api, k8s.io/api, compose-go), imported by these
// tests alone: they run on a fresh machine with only Go, without kubectl,
// Docker or systemd. Which URL reaches which process (DNS, Services and
// their selectors, ports) is not emulated here; a real deployment tells.
//
// This file holds what the targets share: YAML loading, the binaries' flags
// (from --flags-json), invocations (a binary as a manifest runs it) and
// checking them. Each target has its own file: compose_test.go,
// kubernetes_test.go, systemd_test.go, dockerfile_test.go and
// local_cluster_test.go.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/revocast/revocast/internal/envflag"
	"github.com/revocast/revocast/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.Cleanup()
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
	bin   string // "" for embedded, which is not run
	flags map[string]flagDef
	envs  map[string]string // variable → flag
}

var (
	programsMu sync.Mutex
	programs   = map[string]*program{}
)

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
	var bin string
	var list []envflag.FlagInfo
	if name == "embedded" {
		list = embeddedFlags(t) // never run: no binary to build
	} else {
		bin = testutil.Binary(t, name)
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
// environment as written, and how its paths map to this machine.
type invocation struct {
	source string // for messages: "docker-compose.yml service revocast-1"
	host   string // compose service, pod or unit name
	prog   *program
	args   []string
	env    map[string]string
	// files maps container paths (files or directories) to files here.
	files map[string]string
	// volumes are container paths backed by a persistent volume.
	volumes map[string]bool
	// probePaths: the paths of the kubelet's HTTP probes of the container
	// (Kubernetes)
	probePaths []string

	settings []setting
	// checkArgs and checkEnv are the settings with paths mapped to files
	// here, for --check-config
	checkArgs []string
	checkEnv  map[string]string
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
	t.Helper()
	if entrypoint == "" {
		entrypoint = img.entrypoint
	}
	if !img.binaries[strings.TrimPrefix(entrypoint, "/")] || !strings.HasPrefix(entrypoint, "/") {
		return nil, fmt.Errorf("entrypoint %q is not a binary the Dockerfile copies to /", entrypoint)
	}
	return loadProgram(t, strings.TrimPrefix(entrypoint, "/")), nil
}

// ---------------------------------------------------------------------------
// Checking a deployment's processes
// ---------------------------------------------------------------------------

var listenFlags = map[string]bool{"addr": true, "cluster-addr": true}

// checkInvocations checks each process of a deployment statically: its
// listen addresses are host:port on all interfaces or on loopback, every
// file it reads is mounted and exists here, --data is on a persistent
// volume, and the binary accepts the configuration (--check-config), with
// only mounted paths mapped to files here. Nothing is started.
func checkInvocations(t *testing.T, invs []*invocation) {
	t.Helper()
	for _, inv := range invs {
		inv.checkArgs, inv.checkEnv = nil, map[string]string{}
		for _, s := range inv.settings {
			if s.fromEnv && inv.onCommandLine(s.flag.name) {
				continue // the flag wins: the variable has no effect
			}
			if listenFlags[s.flag.name] {
				checkListen(t, inv, s)
			}
			v := s.value
			if strings.HasPrefix(v, "/") {
				items := strings.Split(v, ",")
				for i, item := range items {
					items[i] = mapPath(t, inv, s.flag.name, item)
				}
				v = strings.Join(items, ",")
			}
			if s.fromEnv {
				inv.checkEnv[s.flag.env] = v
			} else {
				inv.checkArgs = append(inv.checkArgs, "--"+s.flag.name+"="+v)
			}
		}
		checkConfig(t, inv)
	}
}

// checkListen: a listen address is host:port, on all interfaces or on
// loopback (a name would listen wherever it resolves).
func checkListen(t *testing.T, inv *invocation, s setting) {
	t.Helper()
	host, p, err := net.SplitHostPort(s.value)
	if _, perr := strconv.Atoi(p); err != nil || perr != nil {
		t.Errorf("%s: --%s=%s: want host:port", inv.source, s.flag.name, s.value)
		return
	}
	if !slices.Contains([]string{"", "0.0.0.0", "::", "127.0.0.1", "localhost"}, host) {
		t.Errorf("%s: --%s=%s: listen on all interfaces or on loopback, not on a name", inv.source, s.flag.name, s.value)
	}
}

// checkConfig runs "<binary> --check-config" with the invocation's
// settings (paths mapped to files here, everything else as written, so
// listen addresses keep their exposure) and no other REVOCAST_* variable:
// values parse, files hold what they should, flags that go together do.
func checkConfig(t *testing.T, inv *invocation) {
	t.Helper()
	if inv.prog.name == "embedded" {
		return // no such mode; its flags are plain strings
	}
	args := append([]string{"--check-config"}, inv.checkArgs...)
	cmd := exec.Command(inv.prog.bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envflag.Prefix) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for _, k := range sortedKeys(inv.checkEnv) {
		cmd.Env = append(cmd.Env, k+"="+inv.checkEnv[k])
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%s: %s refuses the configuration: %v\n%s\nargs %q, environment %v", inv.source, inv.prog.name, err, out, args, inv.checkEnv)
	}
}

// mapPath maps a path a flag names to the file here that is mounted there:
// --data must be on a persistent volume (a fresh directory stands for it),
// any other path must be in a mount of a file or directory that exists.
func mapPath(t *testing.T, inv *invocation, flag, p string) string {
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
	return abs
}

// keygen makes an API key with the real broadcaster: the key and its line
// for an --api-keys file.
func keygen(t *testing.T, name, role string) (key, line string) {
	t.Helper()
	out, err := exec.Command(testutil.Binary(t, "revocast"), "keygen", "--name", name, "--role", role).Output()
	if err != nil {
		t.Fatalf("revocast keygen: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("revocast keygen printed %q", out)
	}
	return lines[0], lines[1]
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
