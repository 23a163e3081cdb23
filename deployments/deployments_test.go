package deployments_test

// What can be checked here without Docker, Kubernetes or systemd running:
//
//   - every YAML file parses (every document of it);
//   - every command line and REVOCAST_* variable of the compose file, the
//     Kubernetes manifests, the systemd units and their env files names a
//     flag the real binary has (from its --help);
//   - the compose file's and the StatefulSet's exact command lines, with only
//     host names, ports and paths replaced, start a real 3-node cluster on
//     127.0.0.1 that becomes ready and replicates a revocation, and the
//     agents (and the embedded demo) start with theirs and become ready; the
//     systemd units' command lines and env files start a broadcaster and an
//     agent;
//   - the Dockerfile pins its base images by digest, copies only paths that
//     exist, covers every package the programs are built from, builds static
//     binaries and runs as non-root.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

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

// stringList is a compose command or entrypoint: a list, or a string split
// into words.
type stringList []string

func (s *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if strings.ContainsAny(n.Value, `"'\$`) {
			return fmt.Errorf("line %d: write %q as a list: this test does not do shell quoting", n.Line, n.Value)
		}
		*s = strings.Fields(n.Value)
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return err
	}
	*s = l
	return nil
}

// envMap is a compose environment: a mapping or a list of NAME=VALUE.
type envMap map[string]string

func (e *envMap) UnmarshalYAML(n *yaml.Node) error {
	m := map[string]string{}
	if n.Kind == yaml.SequenceNode {
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		for _, kv := range l {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
	} else if err := n.Decode(&m); err != nil {
		return err
	}
	*e = m
	return nil
}

type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Entrypoint  stringList `yaml:"entrypoint"`
	Command     stringList `yaml:"command"`
	Environment envMap     `yaml:"environment"`
	Volumes     []string   `yaml:"volumes"`
	Ports       []string   `yaml:"ports"`
	ReadOnly    bool       `yaml:"read_only"`
	CapDrop     []string   `yaml:"cap_drop"`
	SecurityOpt []string   `yaml:"security_opt"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	docs := yamlDocs(t, "docker-compose.yml")
	if len(docs) != 1 {
		t.Fatalf("docker-compose.yml: %d documents, want 1", len(docs))
	}
	var cf composeFile
	if err := docs[0].Decode(&cf); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if len(cf.Services) == 0 {
		t.Fatal("docker-compose.yml: no services")
	}
	return cf
}

// Kubernetes: only the fields these tests read.

type objectMeta struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
}

type k8sObject struct {
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   objectMeta        `yaml:"metadata"`
	Spec       yaml.Node         `yaml:"spec"`
	Data       map[string]string `yaml:"data"`
	file       string
}

type servicePort struct {
	Name       string `yaml:"name"`
	Port       int    `yaml:"port"`
	TargetPort string `yaml:"targetPort"`
}

type serviceSpec struct {
	ClusterIP                string            `yaml:"clusterIP"`
	PublishNotReadyAddresses bool              `yaml:"publishNotReadyAddresses"`
	Selector                 map[string]string `yaml:"selector"`
	Ports                    []servicePort     `yaml:"ports"`
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type podTemplate struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     podSpec    `yaml:"spec"`
}

type statefulSetSpec struct {
	ServiceName          string        `yaml:"serviceName"`
	Replicas             int           `yaml:"replicas"`
	PodManagementPolicy  string        `yaml:"podManagementPolicy"`
	Selector             labelSelector `yaml:"selector"`
	Template             podTemplate   `yaml:"template"`
	VolumeClaimTemplates []struct {
		Metadata objectMeta `yaml:"metadata"`
	} `yaml:"volumeClaimTemplates"`
}

type deploymentSpec struct {
	Replicas int           `yaml:"replicas"`
	Selector labelSelector `yaml:"selector"`
	Template podTemplate   `yaml:"template"`
}

type pdbSpec struct {
	MaxUnavailable string        `yaml:"maxUnavailable"`
	MinAvailable   string        `yaml:"minAvailable"`
	Selector       labelSelector `yaml:"selector"`
}

type podSpec struct {
	TerminationGracePeriodSeconds *int  `yaml:"terminationGracePeriodSeconds"`
	EnableServiceLinks            *bool `yaml:"enableServiceLinks"`
	SecurityContext               struct {
		RunAsNonRoot *bool  `yaml:"runAsNonRoot"`
		RunAsUser    *int64 `yaml:"runAsUser"`
		FSGroup      *int64 `yaml:"fsGroup"`
	} `yaml:"securityContext"`
	Containers     []container `yaml:"containers"`
	InitContainers []container `yaml:"initContainers"`
	Volumes        []volume    `yaml:"volumes"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Env     []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		SubPath   string `yaml:"subPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	StartupProbe   *probe `yaml:"startupProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext *struct {
		AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
		RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
		RunAsUser                *int64 `yaml:"runAsUser"`
		Privileged               *bool  `yaml:"privileged"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
}

type keyToPath struct {
	Key  string `yaml:"key"`
	Path string `yaml:"path"`
}

type volume struct {
	Name   string `yaml:"name"`
	Secret *struct {
		SecretName string      `yaml:"secretName"`
		Items      []keyToPath `yaml:"items"`
	} `yaml:"secret"`
	ConfigMap *struct {
		Name  string      `yaml:"name"`
		Items []keyToPath `yaml:"items"`
	} `yaml:"configMap"`
	EmptyDir              any `yaml:"emptyDir"`
	PersistentVolumeClaim any `yaml:"persistentVolumeClaim"`
}

type generator struct {
	Name  string   `yaml:"name"`
	Files []string `yaml:"files"`
}

type kustomization struct {
	Resources          []string    `yaml:"resources"`
	SecretGenerator    []generator `yaml:"secretGenerator"`
	ConfigMapGenerator []generator `yaml:"configMapGenerator"`
}

// k8sManifests is what kustomization.yaml puts together.
type k8sManifests struct {
	kust    kustomization
	objects []k8sObject
	// files of Secrets and ConfigMaps: name → key → file on disk
	secrets    map[string]map[string]string
	configMaps map[string]map[string]string
}

const k8sDir = "kubernetes"

func loadKubernetes(t *testing.T) *k8sManifests {
	t.Helper()
	m := &k8sManifests{secrets: map[string]map[string]string{}, configMaps: map[string]map[string]string{}}
	kd := yamlDocs(t, filepath.Join(k8sDir, "kustomization.yaml"))
	if len(kd) != 1 {
		t.Fatalf("kustomization.yaml: %d documents", len(kd))
	}
	if err := kd[0].Decode(&m.kust); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	// every manifest in the directory is part of the kustomization
	listed := map[string]bool{}
	for _, r := range m.kust.Resources {
		listed[filepath.Clean(r)] = true
	}
	entries, err := os.ReadDir(k8sDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		n := e.Name()
		if (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) && n != "kustomization.yaml" && !listed[n] {
			t.Errorf("kubernetes/%s is not listed in kustomization.yaml resources", n)
		}
	}
	for _, r := range m.kust.Resources {
		file := filepath.Join(k8sDir, r)
		for i, d := range yamlDocs(t, file) {
			var o k8sObject
			if err := d.Decode(&o); err != nil {
				t.Fatalf("%s document %d: %v", file, i+1, err)
			}
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
				t.Errorf("%s document %d: apiVersion, kind and metadata.name are required", file, i+1)
			}
			o.file = file
			m.objects = append(m.objects, o)
			if o.Kind == "ConfigMap" {
				files := map[string]string{}
				for k, v := range o.Data {
					p := filepath.Join(t.TempDir(), k)
					if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
						t.Fatal(err)
					}
					files[k] = p
				}
				m.configMaps[o.Metadata.Name] = files
			}
		}
	}
	gen := func(kind string, gens []generator, into map[string]map[string]string) {
		for _, g := range gens {
			files := map[string]string{}
			for _, f := range g.Files {
				key, src, ok := strings.Cut(f, "=")
				if !ok {
					key, src = path.Base(f), f
				}
				p := filepath.Join(k8sDir, filepath.FromSlash(src))
				if _, err := os.Stat(p); err != nil {
					t.Errorf("kustomization.yaml %s %s: %v", kind, g.Name, err)
				}
				files[key] = p
			}
			into[g.Name] = files
		}
	}
	gen("secretGenerator", m.kust.SecretGenerator, m.secrets)
	gen("configMapGenerator", m.kust.ConfigMapGenerator, m.configMaps)
	return m
}

func (m *k8sManifests) all(kind string) []k8sObject {
	var out []k8sObject
	for _, o := range m.objects {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func decodeSpec[T any](t *testing.T, o k8sObject) T {
	t.Helper()
	var s T
	if err := o.Spec.Decode(&s); err != nil {
		t.Fatalf("%s %s %s: spec: %v", o.file, o.Kind, o.Metadata.Name, err)
	}
	return s
}

// ---------------------------------------------------------------------------
// The binaries and their flags
// ---------------------------------------------------------------------------

type flagDef struct {
	name   string
	isBool bool
	env    string // REVOCAST_…, or "" (examples/embedded reads no environment)
}

// program is a binary and the flags its --help lists.
type program struct {
	name  string // broadcaster, agent, embedded
	bin   string
	flags map[string]flagDef
	envs  map[string]string // variable → flag
}

var (
	programsMu sync.Mutex
	programs   = map[string]*program{}
	flagLine   = regexp.MustCompile(`^  -([a-z0-9][a-z0-9-]*)(?: (\S+))?$`)
	envInUsage = regexp.MustCompile(`\(\$(REVOCAST_[A-Z0-9_]+)\)`)
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

// loadProgram builds a program and reads its flags from --help, whose lines
// look like "  -flag value" (no type word for a boolean), then indented usage
// ending in "($REVOCAST_FLAG)".
func loadProgram(t *testing.T, name string) *program {
	t.Helper()
	programsMu.Lock()
	p, ok := programs[name]
	programsMu.Unlock()
	if ok {
		return p
	}
	bin := binary(t, name)
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", name, err, out)
	}
	p = &program{name: name, bin: bin, flags: map[string]flagDef{}, envs: map[string]string{}}
	var cur string
	for _, line := range strings.Split(string(out), "\n") {
		if m := flagLine.FindStringSubmatch(line); m != nil {
			cur = m[1]
			p.flags[cur] = flagDef{name: cur, isBool: m[2] == ""}
			continue
		}
		if cur != "" && strings.HasPrefix(line, "    ") {
			if m := envInUsage.FindStringSubmatch(line); m != nil {
				d := p.flags[cur]
				d.env = m[1]
				p.flags[cur] = d
				p.envs[m[1]] = cur
			}
		}
	}
	if len(p.flags) < 5 || p.flags["addr"].name == "" {
		t.Fatalf("%s --help: found %d flags (is the help format still \"  -flag value\"?)\n%s", name, len(p.flags), out)
	}
	if name != "embedded" {
		for _, f := range p.flags {
			if f.env == "" {
				t.Fatalf("%s --help: flag -%s names no $REVOCAST_ variable", name, f.name)
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

func composeInvocations(t *testing.T, cf composeFile, img dockerImage) []*invocation {
	t.Helper()
	var out []*invocation
	for _, name := range sortedKeys(cf.Services) {
		svc := cf.Services[name]
		src := "docker-compose.yml service " + name
		if !ourImage(svc.Image) {
			continue
		}
		var ep string
		var args []string
		if len(svc.Entrypoint) > 0 {
			// compose drops the image's CMD when entrypoint is set
			ep, args = svc.Entrypoint[0], append(slices.Clone([]string(svc.Entrypoint[1:])), svc.Command...)
		} else {
			args = slices.Clone([]string(svc.Command))
			if len(args) == 0 {
				args = slices.Clone(img.cmd)
			}
		}
		prog, err := programOf(t, img, ep)
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		inv := &invocation{source: src, host: name, hosts: []string{name}, prog: prog, args: args,
			env: map[string]string{}, files: map[string]string{}, volumes: map[string]bool{}}
		for k, v := range img.env {
			if _, ok := prog.envs[k]; ok {
				inv.env[k] = v
			}
		}
		maps.Copy(inv.env, svc.Environment)
		for _, v := range svc.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) < 2 {
				t.Errorf("%s: volume %q: want SOURCE:TARGET[:MODE]", src, v)
				continue
			}
			source, target := parts[0], parts[1]
			if strings.HasPrefix(source, ".") || strings.HasPrefix(source, "/") {
				hostPath := filepath.Join(".", filepath.FromSlash(source)) // relative to the compose file's directory
				if _, err := os.Stat(hostPath); err != nil {
					t.Errorf("%s: bind mount %q: %v", src, v, err)
				}
				inv.files[target] = hostPath
			} else {
				if _, ok := cf.Volumes[source]; !ok {
					t.Errorf("%s: volume %q is not declared under volumes:", src, source)
				}
				inv.volumes[target] = true
			}
		}
		inv.parse(t)
		out = append(out, inv)
	}
	return out
}

var k8sVar = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// podInvocations: the revocast containers of a pod template, for one pod.
func (m *k8sManifests) podInvocations(t *testing.T, img dockerImage, file, podName string, labels map[string]string, spec podSpec, pvcs map[string]bool) []*invocation {
	t.Helper()
	var out []*invocation
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		if !ourImage(c.Image) {
			continue
		}
		src := fmt.Sprintf("%s pod %s container %s", file, podName, c.Name)
		env := map[string]string{}
		for _, e := range c.Env {
			switch {
			case e.ValueFrom == nil:
				env[e.Name] = k8sVar.ReplaceAllStringFunc(e.Value, func(s string) string { return expand(env, s) })
			case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
				env[e.Name] = podName
			case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
				env[e.Name] = "default"
			default:
				t.Errorf("%s: env %s: this test cannot evaluate its valueFrom", src, e.Name)
			}
		}
		var ep string
		var args []string
		switch {
		case len(c.Command) > 0:
			// a command without args drops the image's CMD too
			ep, args = c.Command[0], append(slices.Clone(c.Command[1:]), c.Args...)
		case len(c.Args) > 0:
			args = slices.Clone(c.Args)
		default:
			args = slices.Clone(img.cmd)
		}
		for i, a := range args {
			args[i] = k8sVar.ReplaceAllStringFunc(a, func(s string) string { return expand(env, s) })
		}
		prog, err := programOf(t, img, ep)
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		inv := &invocation{source: src, host: podName, hosts: []string{podName}, labels: labels, prog: prog, args: args,
			env: map[string]string{}, files: map[string]string{}, volumes: map[string]bool{}, namedPorts: map[string]int{}}
		for k, v := range img.env {
			if _, ok := prog.envs[k]; ok {
				inv.env[k] = v
			}
		}
		maps.Copy(inv.env, env)
		for _, p := range c.Ports {
			if p.Name != "" {
				inv.namedPorts[p.Name] = p.ContainerPort
			}
		}
		vols := map[string]volume{}
		for _, v := range spec.Volumes {
			vols[v.Name] = v
		}
		for _, vm := range c.VolumeMounts {
			if pvcs[vm.Name] {
				inv.volumes[vm.MountPath] = true
				continue
			}
			v, ok := vols[vm.Name]
			if !ok {
				t.Errorf("%s: volumeMount %s: no such volume", src, vm.Name)
				continue
			}
			var keys map[string]string
			var items []keyToPath
			switch {
			case v.Secret != nil:
				keys, items = m.secrets[v.Secret.SecretName], v.Secret.Items
				if keys == nil {
					t.Errorf("%s: Secret %s is neither generated nor defined", src, v.Secret.SecretName)
				}
			case v.ConfigMap != nil:
				keys, items = m.configMaps[v.ConfigMap.Name], v.ConfigMap.Items
				if keys == nil {
					t.Errorf("%s: ConfigMap %s is neither generated nor defined", src, v.ConfigMap.Name)
				}
			case v.PersistentVolumeClaim != nil:
				inv.volumes[vm.MountPath] = true
				continue
			default: // emptyDir: scratch space, not data
				continue
			}
			// the files the volume shows: every key, or the items
			shown := map[string]string{}
			if len(items) == 0 {
				for k, f := range keys {
					shown[k] = f
				}
			}
			for _, it := range items {
				f, ok := keys[it.Key]
				if !ok {
					t.Errorf("%s: volume %s: no key %s", src, v.Name, it.Key)
				}
				shown[it.Path] = f
			}
			if vm.SubPath != "" {
				f, ok := shown[vm.SubPath]
				if !ok {
					t.Errorf("%s: volumeMount %s: subPath %s is not in the volume", src, vm.Name, vm.SubPath)
				}
				inv.files[vm.MountPath] = f
				continue
			}
			for rel, f := range shown {
				inv.files[path.Join(vm.MountPath, rel)] = f
			}
		}
		inv.parse(t)
		out = append(out, inv)
	}
	return out
}

func expand(env map[string]string, ref string) string {
	name := ref[2 : len(ref)-1]
	if v, ok := env[name]; ok {
		return v
	}
	return ref // Kubernetes leaves unknown references as they are
}

// k8sInvocations: the StatefulSet's pods (revocast-0…) and one pod of each
// Deployment, with the Services that front them.
func (m *k8sManifests) k8sInvocations(t *testing.T, img dockerImage) (sts, deploys []*invocation) {
	t.Helper()
	for _, o := range m.all("StatefulSet") {
		s := decodeSpec[statefulSetSpec](t, o)
		pvcs := map[string]bool{}
		for _, v := range s.VolumeClaimTemplates {
			pvcs[v.Metadata.Name] = true
		}
		for i := range s.Replicas {
			pod := fmt.Sprintf("%s-%d", o.Metadata.Name, i)
			invs := m.podInvocations(t, img, o.file, pod, s.Template.Metadata.Labels, s.Template.Spec, pvcs)
			for _, inv := range invs {
				inv.hosts = append(inv.hosts, pod+"."+s.ServiceName)
			}
			sts = append(sts, invs...)
		}
	}
	for _, o := range m.all("Deployment") {
		s := decodeSpec[deploymentSpec](t, o)
		deploys = append(deploys, m.podInvocations(t, img, o.file, o.Metadata.Name+"-0", s.Template.Metadata.Labels, s.Template.Spec, nil)...)
	}
	return sts, deploys
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

func (a asyncTB) Fatal(args ...any) { a.Helper(); a.Error(args...); runtime.Goexit() }
func (a asyncTB) Fatalf(format string, args ...any) {
	a.Helper()
	a.Errorf(format, args...)
	runtime.Goexit()
}
func (a asyncTB) FailNow() { a.Fail(); runtime.Goexit() }

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

// ---------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------

// pinnedImage is an image reference with a digest.
var pinnedImage = regexp.MustCompile(`^[^@\s]+@sha256:[0-9a-f]{64}$`)

type dockerStage struct {
	base, name string
	instrs     [][2]string // instruction, arguments
}

func parseDockerfile(t *testing.T) []dockerStage {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var stages []dockerStage
	var logical string
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if logical == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasPrefix(trimmed, "#") { // a comment inside a continued instruction
			continue
		}
		if strings.HasSuffix(trimmed, `\`) {
			logical += strings.TrimSuffix(trimmed, `\`) + " "
			continue
		}
		logical += trimmed
		instr, args, _ := strings.Cut(logical, " ")
		instr, args = strings.ToUpper(instr), strings.TrimSpace(args)
		logical = ""
		if instr == "FROM" {
			f := strings.Fields(args)
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				f = f[1:]
			}
			st := dockerStage{base: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			if instr != "ARG" {
				t.Fatalf("Dockerfile: %s before FROM", instr)
			}
			continue
		}
		stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, [2]string{instr, args})
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: %d stages, want a build stage and a runtime stage", len(stages))
	}
	return stages
}

// execForm parses ["a", "b"] (or a shell-form string, split into words).
func execForm(t *testing.T, s string) []string {
	t.Helper()
	if strings.HasPrefix(s, "[") {
		var l []string
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("Dockerfile: %s: %v", s, err)
		}
		return l
	}
	return strings.Fields(s)
}

func imageDefaults(t *testing.T) dockerImage {
	t.Helper()
	stages := parseDockerfile(t)
	final := stages[len(stages)-1]
	img := dockerImage{env: map[string]string{}, binaries: map[string]bool{}}
	for _, in := range final.instrs {
		switch in[0] {
		case "ENTRYPOINT":
			ep := execForm(t, in[1])
			if len(ep) != 1 {
				t.Fatalf("Dockerfile: ENTRYPOINT %s: want one binary (flags go in CMD)", in[1])
			}
			img.entrypoint = ep[0]
		case "CMD":
			img.cmd = execForm(t, in[1])
		case "ENV":
			for _, kv := range strings.Fields(in[1]) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("Dockerfile: ENV %s: write NAME=VALUE", in[1])
				}
				img.env[k] = v
			}
		case "COPY":
			f := strings.Fields(in[1])
			var srcs []string
			from := false
			for _, a := range f {
				if strings.HasPrefix(a, "--from=") {
					from = true
				}
				if !strings.HasPrefix(a, "--") {
					srcs = append(srcs, a)
				}
			}
			if from && len(srcs) >= 2 && srcs[len(srcs)-1] == "/" {
				for _, s := range srcs[:len(srcs)-1] {
					img.binaries[path.Base(s)] = true
				}
			}
		}
	}
	return img
}

// TestDockerfile: a multi-stage build of static binaries whose final stage
// runs as non-root, that copies only what exists and everything the
// programs are built from.
func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t)
	final := stages[len(stages)-1]

	// every base image pinned by digest: a tag moves, a digest does not
	names := map[string]bool{}
	for _, st := range stages {
		if !names[st.base] && !pinnedImage.MatchString(st.base) {
			t.Errorf("Dockerfile: FROM %s: pin it by digest, image[:tag]@sha256:<64 hex digits> (the Dockerfile says how)", st.base)
		}
		names[st.name] = st.name != ""
	}

	// non-root: a nonroot base, and no USER switching back to root
	user := ""
	if strings.Contains(final.base, ":nonroot") || strings.HasSuffix(final.base, "-nonroot") {
		user = "nonroot"
	}
	for _, in := range final.instrs {
		if in[0] == "USER" {
			user = in[1]
		}
	}
	if name, _, _ := strings.Cut(user, ":"); user == "" || name == "root" || name == "0" {
		t.Errorf("Dockerfile: the final stage runs as %q: want a non-root USER or a nonroot base image", user)
	}

	// the build: CGO_ENABLED=0, -trimpath, the packages exist
	var buildPkgs []string
	var copied []string
	for _, st := range stages[:len(stages)-1] {
		for _, in := range st.instrs {
			switch in[0] {
			case "RUN":
				if !strings.Contains(in[1], "go build") {
					continue
				}
				if !strings.Contains(in[1], "CGO_ENABLED=0") && !stageEnvHas(st, "CGO_ENABLED=0") {
					t.Errorf("Dockerfile: go build without CGO_ENABLED=0: %s", in[1])
				}
				if !strings.Contains(in[1], "-trimpath") {
					t.Errorf("Dockerfile: go build without -trimpath: %s", in[1])
				}
				for _, w := range strings.Fields(in[1]) {
					if strings.HasPrefix(w, "./") {
						buildPkgs = append(buildPkgs, w)
					}
				}
			case "COPY":
				f := strings.Fields(in[1])
				var srcs []string
				from := false
				for _, a := range f {
					if strings.HasPrefix(a, "--from=") {
						from = true
					}
					if !strings.HasPrefix(a, "--") {
						srcs = append(srcs, a)
					}
				}
				if from || len(srcs) < 2 {
					continue
				}
				for _, s := range srcs[:len(srcs)-1] {
					if strings.ContainsAny(s, "*?[") {
						t.Errorf("Dockerfile: COPY %s: name paths, not patterns", s)
						continue
					}
					if _, err := os.Stat(filepath.Join(repoRoot, filepath.FromSlash(s))); err != nil {
						t.Errorf("Dockerfile: COPY %s: not in the build context (the repository root): %v", s, err)
					}
					copied = append(copied, path.Clean(s))
				}
			}
		}
	}
	for _, want := range []string{"go.mod", "go.sum"} {
		if !slices.Contains(copied, want) {
			t.Errorf("Dockerfile: %s is not copied", want)
		}
	}
	for _, want := range []string{"./cmd/broadcaster", "./cmd/revocast", "./cmd/agent", "./examples/embedded"} {
		if !slices.Contains(buildPkgs, want) {
			t.Errorf("Dockerfile: go build does not build %s (builds %v)", want, buildPkgs)
		}
	}
	if len(buildPkgs) == 0 {
		t.Fatal("Dockerfile: no go build of ./… packages")
	}

	// every package of the module the programs import is copied in
	args := append([]string{"list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}"}, buildPkgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v", strings.Join(args, " "), err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			t.Fatal(err)
		}
		rel = filepath.ToSlash(rel)
		if !slices.ContainsFunc(copied, func(c string) bool { return rel == c || strings.HasPrefix(rel, c+"/") }) {
			t.Errorf("Dockerfile: package %s is imported but not copied into the build stage", rel)
		}
	}

	// the runtime: what the manifests expect of the image
	img := imageDefaults(t)
	for _, b := range []string{"broadcaster", "agent", "embedded"} {
		if !img.binaries[b] {
			t.Errorf("Dockerfile: the final stage has no /%s", b)
		}
	}
	if img.entrypoint != "/broadcaster" {
		t.Errorf("Dockerfile: ENTRYPOINT %q, want /broadcaster", img.entrypoint)
	}
	var exposed, volumes []string
	for _, in := range final.instrs {
		switch in[0] {
		case "EXPOSE":
			exposed = append(exposed, strings.Fields(in[1])...)
		case "VOLUME":
			volumes = append(volumes, execForm(t, in[1])...)
		}
	}
	for _, p := range []string{"8080", "6222", "9090"} {
		if !slices.Contains(exposed, p) && !slices.Contains(exposed, p+"/tcp") {
			t.Errorf("Dockerfile: port %s is not exposed", p)
		}
	}
	if !slices.Contains(volumes, "/data") {
		t.Errorf("Dockerfile: no VOLUME /data")
	}
	// the image's variables and default command are the broadcaster's
	b := loadProgram(t, "broadcaster")
	if _, err := b.parseEnv(img.env); err != nil {
		t.Errorf("Dockerfile ENV: %v", err)
	}
	if _, err := b.parseArgs(img.cmd); err != nil {
		t.Errorf("Dockerfile CMD: %v", err)
	}
}

func stageEnvHas(st dockerStage, kv string) bool {
	for _, in := range st.instrs {
		if (in[0] == "ENV" || in[0] == "ARG") && strings.Contains(in[1], kv) {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// docker-compose.yml
// ---------------------------------------------------------------------------

// TestComposeFile checks the compose file without running it: flags and
// variables exist, the cluster is consistent, ports are published on
// loopback only, the image is built from this repository.
func TestComposeFile(t *testing.T) {
	cf := loadCompose(t)
	img := imageDefaults(t)
	invs := composeInvocations(t, cf, img)
	brs := byProgram(invs, "broadcaster")
	if len(brs) != 3 {
		t.Fatalf("docker-compose.yml: %d broadcasters, want 3", len(brs))
	}
	if len(byProgram(invs, "agent")) != 1 || len(byProgram(invs, "embedded")) != 1 {
		t.Errorf("docker-compose.yml: want one agent and one examples/embedded service")
	}
	names := map[string]bool{}
	dataVolumes := map[string]bool{}
	for _, inv := range brs {
		name, _ := inv.value("server-name")
		if name == "" || names[name] {
			t.Errorf("%s: --server-name %q: must be set and unique", inv.source, name)
		}
		names[name] = true
		if c, _ := inv.value("cluster-name"); c != "revocast" {
			t.Errorf("%s: --cluster-name %q, want revocast", inv.source, c)
		}
		if r, _ := inv.value("replicas"); r != strconv.Itoa(len(brs)) {
			t.Errorf("%s: --replicas %q, want %d", inv.source, r, len(brs))
		}
		if _, ok := inv.value("api-keys"); !ok {
			t.Errorf("%s: no --api-keys: a broadcaster beyond loopback needs credentials", inv.source)
		}
		for _, v := range cf.Services[inv.host].Volumes {
			if src, target, _ := strings.Cut(v, ":"); strings.HasPrefix(target, "/data") {
				if dataVolumes[src] {
					t.Errorf("%s: volume %s is shared with another node", inv.source, src)
				}
				dataVolumes[src] = true
			}
		}
	}
	for _, name := range sortedKeys(cf.Services) {
		svc := cf.Services[name]
		for _, p := range svc.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("docker-compose.yml service %s: port %q is published beyond the host's loopback", name, p)
			}
			if strings.HasSuffix(p, ":6222") {
				t.Errorf("docker-compose.yml service %s: the route port is published: keep it on the compose network", name)
			}
		}
		if ourImage(svc.Image) {
			if svc.Build.Context != "" {
				if _, err := os.Stat(filepath.Join(svc.Build.Context, filepath.FromSlash(svc.Build.Dockerfile))); err != nil {
					t.Errorf("docker-compose.yml service %s: build: %v", name, err)
				}
			}
			if !svc.ReadOnly || !slices.Contains(svc.CapDrop, "ALL") || !slices.Contains(svc.SecurityOpt, "no-new-privileges:true") {
				t.Errorf("docker-compose.yml service %s: want read_only, cap_drop ALL and no-new-privileges", name)
			}
		}
	}
	// the routes: every peer, on its cluster port, and the agents' URLs: a
	// broadcaster's HTTP port (resolving does the checking)
	w := &world{t: t, invs: invs}
	w.prepare()
	for _, inv := range brs {
		routes, _ := inv.value("routes")
		for _, peer := range brs {
			if peer != inv && !strings.Contains(routes, "//"+peer.host+":") {
				t.Errorf("%s: --routes %s misses %s", inv.source, routes, peer.host)
			}
		}
	}
}

// TestComposeCluster starts the compose file's command lines: three
// broadcasters that form a cluster and replicate a revocation, the agent and
// the embedded demo, which become ready.
func TestComposeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster, an agent and the demo (skipped with -short)")
	}
	cf := loadCompose(t)
	invs := composeInvocations(t, cf, imageDefaults(t))
	if t.Failed() {
		t.FailNow()
	}
	revoker, line := keygen(t, "deployments-test", "revoker")
	w := &world{t: t, invs: invs, apiKeys: withRevoker(t, line)}
	w.prepare()
	if t.Failed() {
		t.FailNow()
	}
	brs := byProgram(invs, "broadcaster")
	procs := startAll(t, brs)
	for _, p := range procs {
		waitFor(t, p, p.URL+"/readyz", 60*time.Second)
	}
	checkOneCluster(t, procs, brs)
	agent := byProgram(invs, "agent")[0]
	tokenFile, _ := agent.value("token-file")
	reader := readToken(t, w.path(agent, "token-file", tokenFile))
	checkReplication(t, procs, revoker, reader)

	setEnv(t, agent.prog, agent.runEnv)
	ap := testutil.Start(t, "agent", "/readyz", agent.runArgs...)
	if status, _ := request(t, http.MethodGet, ap.URL+"/auth", "", nil); status != http.StatusUnauthorized {
		t.Errorf("agent GET /auth without a token: %d, want 401", status)
	}

	demo := byProgram(invs, "embedded")[0]
	runEmbedded(t, demo)
}

func readToken(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// runEmbedded runs examples/embedded (plain flags, text logs: not for
// testutil.Start) until its /readyz answers 200.
func runEmbedded(t *testing.T, inv *invocation) {
	t.Helper()
	if len(inv.runEnv) > 0 {
		t.Fatalf("%s: examples/embedded reads no variables", inv.source)
	}
	cmd := exec.Command(inv.prog.bin, inv.runArgs...)
	var logs bytes.Buffer
	var mu sync.Mutex
	cmd.Stdout = lockedWriter{&mu, &logs}
	cmd.Stderr = lockedWriter{&mu, &logs}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			mu.Lock()
			t.Logf("--- log of examples/embedded %s:\n%s", strings.Join(inv.runArgs, " "), logs.String())
			mu.Unlock()
		}
	})
	addr, _ := inv.value("addr")
	_, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	url := "http://" + inv.listen[port] + "/readyz"
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := httpClient.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			t.Fatalf("examples/embedded exited before it was ready")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not ready after 30s", url)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
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

// ---------------------------------------------------------------------------
// Kubernetes
// ---------------------------------------------------------------------------

func (m *k8sManifests) services(t *testing.T) []k8sService {
	var out []k8sService
	for _, o := range m.all("Service") {
		s := decodeSpec[serviceSpec](t, o)
		out = append(out, k8sService{name: o.Metadata.Name, selector: s.Selector, ports: s.Ports})
	}
	return out
}

// TestKubernetesManifests checks the manifests without a cluster: flags and
// variables exist, the StatefulSet forms its cluster from stable names, the
// Services, the PodDisruptionBudget and the probes fit it, the containers
// are locked down.
func TestKubernetesManifests(t *testing.T) {
	m := loadKubernetes(t)
	img := imageDefaults(t)
	stsInvs, depInvs := m.k8sInvocations(t, img)

	stss := m.all("StatefulSet")
	if len(stss) != 1 {
		t.Fatalf("want one StatefulSet, got %d", len(stss))
	}
	st := stss[0]
	sts := decodeSpec[statefulSetSpec](t, st)
	where := st.file + " StatefulSet " + st.Metadata.Name
	if sts.Replicas != 3 {
		t.Errorf("%s: replicas %d, want 3", where, sts.Replicas)
	}
	if sts.PodManagementPolicy != "Parallel" {
		t.Errorf("%s: podManagementPolicy %q: want Parallel (pod 0 is never ready before the others exist)", where, sts.PodManagementPolicy)
	}
	if !selects(sts.Selector.MatchLabels, sts.Template.Metadata.Labels) {
		t.Errorf("%s: the selector does not select the template's labels", where)
	}
	if len(sts.VolumeClaimTemplates) == 0 {
		t.Errorf("%s: no volumeClaimTemplates", where)
	}
	if g := sts.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g < 10 {
		t.Errorf("%s: terminationGracePeriodSeconds must be set (at least 10)", where)
	}

	// the headless Service the pods' DNS names come from
	var headless *serviceSpec
	for _, o := range m.all("Service") {
		if o.Metadata.Name == sts.ServiceName {
			s := decodeSpec[serviceSpec](t, o)
			headless = &s
		}
	}
	if headless == nil {
		t.Fatalf("%s: serviceName %s: no such Service", where, sts.ServiceName)
	}
	if headless.ClusterIP != "None" || !headless.PublishNotReadyAddresses {
		t.Errorf("Service %s: want clusterIP None and publishNotReadyAddresses (peers must resolve before they are ready)", sts.ServiceName)
	}
	if !selects(headless.Selector, sts.Template.Metadata.Labels) {
		t.Errorf("Service %s does not select the StatefulSet's pods", sts.ServiceName)
	}
	portNames := map[string]bool{}
	for _, p := range headless.Ports {
		portNames[p.Name] = true
	}
	if !portNames["http"] || !portNames["cluster"] {
		t.Errorf("Service %s: want ports http and cluster, got %v", sts.ServiceName, headless.Ports)
	}

	// the pods: names, routes, replicas, data on the claim, probes, lockdown
	if len(stsInvs) != sts.Replicas {
		t.Fatalf("%s: %d revocast containers for %d replicas", where, len(stsInvs), sts.Replicas)
	}
	for i, inv := range stsInvs {
		if inv.prog.name != "broadcaster" {
			t.Errorf("%s: runs %s, want the broadcaster", inv.source, inv.prog.name)
		}
		if n, _ := inv.value("server-name"); n != inv.host {
			t.Errorf("%s: --server-name %q, want the pod name %s", inv.source, n, inv.host)
		}
		if r, _ := inv.value("replicas"); r != strconv.Itoa(sts.Replicas) {
			t.Errorf("%s: --replicas %q, want %d", inv.source, r, sts.Replicas)
		}
		routes, _ := inv.value("routes")
		for j := range sts.Replicas {
			peer := fmt.Sprintf("//%s-%d.%s", st.Metadata.Name, j, sts.ServiceName)
			if !strings.Contains(routes, peer) {
				t.Errorf("%s: --routes %s misses %s", inv.source, routes, peer)
			}
		}
		if _, ok := inv.value("api-keys"); !ok && i == 0 {
			t.Errorf("%s: no --api-keys", inv.source)
		}
	}
	w := &world{t: t, invs: append(slices.Clone(stsInvs), depInvs...), services: m.services(t)}
	w.prepare() // resolves every URL and mounted path, or says which not

	for _, o := range append(m.all("StatefulSet"), m.all("Deployment")...) {
		var spec podSpec
		if o.Kind == "StatefulSet" {
			spec = decodeSpec[statefulSetSpec](t, o).Template.Spec
		} else {
			spec = decodeSpec[deploymentSpec](t, o).Template.Spec
		}
		checkPodSpec(t, o.file+" "+o.Kind+" "+o.Metadata.Name, spec)
	}

	// one PodDisruptionBudget over the broadcasters: one pod at a time
	found := false
	for _, o := range m.all("PodDisruptionBudget") {
		p := decodeSpec[pdbSpec](t, o)
		if selects(p.Selector.MatchLabels, sts.Template.Metadata.Labels) {
			found = true
			if p.MaxUnavailable != "1" {
				t.Errorf("PodDisruptionBudget %s: maxUnavailable %q, want 1", o.Metadata.Name, p.MaxUnavailable)
			}
		}
	}
	if !found {
		t.Errorf("no PodDisruptionBudget selects the broadcasters")
	}

	// the resource server: an agent sidecar next to the app
	if len(depInvs) != 1 || depInvs[0].prog.name != "agent" {
		t.Fatalf("want one Deployment with one agent container, got %d revocast containers", len(depInvs))
	}
	if a, _ := depInvs[0].value("addr"); !strings.HasPrefix(a, "127.0.0.1:") {
		t.Errorf("%s: --addr %q: the sidecar's introspection has no authentication, keep it on the pod's loopback", depInvs[0].source, a)
	}
	if len(nginxProbeRoutes(t, m)) == 0 {
		t.Errorf("resource-server.yaml: the nginx configuration routes no agent probe")
	}
}

func checkPodSpec(t *testing.T, where string, spec podSpec) {
	t.Helper()
	if spec.EnableServiceLinks == nil || *spec.EnableServiceLinks {
		t.Errorf("%s: enableServiceLinks must be false: Service links would set REVOCAST_* variables", where)
	}
	if sc := spec.SecurityContext; sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("%s: the pod's securityContext must set runAsNonRoot", where)
	}
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		cw := where + " container " + c.Name
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s: securityContext: want allowPrivilegeEscalation false, readOnlyRootFilesystem true, capabilities drop ALL", cw)
		}
		if sc != nil && sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			t.Errorf("%s: runs as root", cw)
		}
		if c.ReadinessProbe == nil || c.LivenessProbe == nil {
			t.Errorf("%s: want a readiness and a liveness probe", cw)
		}
		if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
			t.Errorf("%s: want cpu and memory requests and a memory limit", cw)
		}
	}
}

var (
	nginxLocation = regexp.MustCompile(`location\s*=\s*(\S+)\s*\{[^}]*proxy_pass\s+http://(\S+?)(/\S*);`)
	nginxUpstream = regexp.MustCompile(`upstream\s+(\S+)\s*\{[^}]*server\s+(\S+);`)
)

// nginxProbeRoutes reads the resource server's nginx configuration: which
// agent path each "location = /path" forwards to.
func nginxProbeRoutes(t *testing.T, m *k8sManifests) map[string]string {
	t.Helper()
	routes := map[string]string{}
	for _, files := range m.configMaps {
		f, ok := files["nginx.conf"]
		if !ok {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		upstreams := map[string]string{}
		for _, u := range nginxUpstream.FindAllStringSubmatch(string(b), -1) {
			upstreams[u[1]] = u[2]
		}
		for _, l := range nginxLocation.FindAllStringSubmatch(string(b), -1) {
			target := l[2]
			if a, ok := upstreams[target]; ok {
				target = a
			}
			routes[l[1]] = target + l[3]
		}
	}
	return routes
}

// TestKubernetesCluster starts the StatefulSet's command line for its three
// pods ($(POD_NAME) = revocast-0…2) and the resource server's agent, as
// Kubernetes would run them, and probes them as the kubelet would.
func TestKubernetesCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster and an agent (skipped with -short)")
	}
	m := loadKubernetes(t)
	img := imageDefaults(t)
	stsInvs, depInvs := m.k8sInvocations(t, img)
	if t.Failed() {
		t.FailNow()
	}
	revoker, line := keygen(t, "deployments-test", "revoker")
	w := &world{t: t, invs: append(slices.Clone(stsInvs), depInvs...), services: m.services(t), apiKeys: withRevoker(t, line)}
	w.prepare()
	if t.Failed() {
		t.FailNow()
	}
	procs := startAll(t, stsInvs)
	sts := decodeSpec[statefulSetSpec](t, m.all("StatefulSet")[0])
	c := sts.Template.Spec.Containers[0]
	// the kubelet's probes, on each pod: startup and liveness at once,
	// readiness once the quorum is there
	for i, p := range procs {
		for _, pr := range []*probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
			if pr == nil || pr.HTTPGet == nil {
				continue
			}
			waitFor(t, p, "http://"+probeAddr(t, stsInvs[i], pr.HTTPGet.Port)+pr.HTTPGet.Path, 60*time.Second)
		}
	}
	checkOneCluster(t, procs, stsInvs)
	agent := depInvs[0]
	tokenFile, _ := agent.value("token-file")
	reader := readToken(t, w.path(agent, "token-file", tokenFile))
	// posted to the last pod, read from the others
	checkReplication(t, []*testutil.Process{procs[2], procs[0], procs[1]}, revoker, reader)

	setEnv(t, agent.prog, agent.runEnv)
	ap := testutil.Start(t, "agent", "", agent.runArgs...)
	// the agent's probes go through nginx: check nginx forwards them to the
	// agent's address, and that the agent answers them
	routes := nginxProbeRoutes(t, m)
	addr, _ := agent.value("addr")
	var agentC container
	for _, o := range m.all("Deployment") {
		for _, cc := range decodeSpec[deploymentSpec](t, o).Template.Spec.Containers {
			if cc.Name == "agent" {
				agentC = cc
			}
		}
	}
	for _, pr := range []*probe{agentC.StartupProbe, agentC.ReadinessProbe, agentC.LivenessProbe} {
		if pr == nil || pr.HTTPGet == nil {
			continue
		}
		target, ok := routes[pr.HTTPGet.Path]
		if !ok {
			t.Errorf("agent probe %s: nginx has no \"location = %s\" forwarding it", pr.HTTPGet.Path, pr.HTTPGet.Path)
			continue
		}
		host, agentPath, _ := strings.Cut(target, "/")
		if host != addr {
			t.Errorf("agent probe %s: nginx forwards it to %s, but the agent listens on %s", pr.HTTPGet.Path, host, addr)
		}
		waitFor(t, ap, ap.URL+"/"+agentPath, 30*time.Second)
	}

	if ngx, err := exec.LookPath("nginx"); err == nil {
		runNginx(t, ngx, m, addr, ap)
	} else {
		t.Log("nginx is not installed: the resource server's nginx configuration is not run")
	}

	// SIGTERM, as the kubelet sends it: each pod exits cleanly within its
	// grace period
	grace := 30 * time.Second
	if g := sts.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	errs := make([]error, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = p.Stop(grace) }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s: after SIGTERM: %v", stsInvs[i].host, err)
		}
	}
}

// runNginx runs the resource server's nginx configuration (ports → free
// ones, the agent's address → the running agent, /tmp → a temporary
// directory) in front of the agent: the kubelet's probes of both containers
// answer 200 through it, and a request without a token is refused by the
// agent (auth_request).
func runNginx(t *testing.T, ngx string, m *k8sManifests, agentAddr string, agent *testutil.Process) {
	t.Helper()
	var conf string
	for _, files := range m.configMaps {
		if f, ok := files["nginx.conf"]; ok {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			conf = string(b)
		}
	}
	dir := t.TempDir()
	front := testutil.FreeAddr(t)
	app := testutil.FreeAddr(t)
	conf = strings.ReplaceAll(conf, "listen 8080;", "listen "+front+";")
	conf = strings.ReplaceAll(conf, "127.0.0.1:8081", app)
	conf = strings.ReplaceAll(conf, "server "+agentAddr+";", "server "+agent.Addr+";")
	conf = strings.ReplaceAll(conf, "/tmp/", dir+"/")
	file := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ngx, "-p", dir+"/", "-c", file, "-g", "daemon off;")
	var logs bytes.Buffer
	var mu sync.Mutex
	cmd.Stdout = lockedWriter{&mu, &logs}
	cmd.Stderr = lockedWriter{&mu, &logs}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			mu.Lock()
			t.Logf("--- nginx log:\n%s", logs.String())
			mu.Unlock()
		}
	})
	for _, o := range m.all("Deployment") {
		for _, c := range decodeSpec[deploymentSpec](t, o).Template.Spec.Containers {
			for _, pr := range []*probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
				if pr == nil || pr.HTTPGet == nil {
					continue
				}
				waitFor(t, nil, "http://"+front+pr.HTTPGet.Path, 20*time.Second)
			}
		}
	}
	if status, _ := request(t, http.MethodGet, "http://"+front+"/orders", "", nil); status != http.StatusUnauthorized {
		t.Errorf("nginx GET /orders without a token: %d, want 401 from the agent", status)
	}
}

// probeAddr is the address standing in for a probe's port (a name or a
// number) of the pod.
func probeAddr(t *testing.T, inv *invocation, port string) string {
	t.Helper()
	n, err := strconv.Atoi(port)
	if err != nil {
		n = inv.namedPorts[port]
	}
	a, ok := inv.listen[n]
	if !ok {
		t.Fatalf("%s: probe port %s is no port the container listens on", inv.source, port)
	}
	return a
}

// ---------------------------------------------------------------------------
// systemd
// ---------------------------------------------------------------------------

type unitFile struct {
	file string
	// section → key → values (keys may repeat)
	sections map[string]map[string][]string
}

func parseUnit(t *testing.T, file string) unitFile {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	u := unitFile{file: file, sections: map[string]map[string][]string{}}
	section := ""
	var logical string
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if logical == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, ";")) {
			continue
		}
		if strings.HasSuffix(trimmed, `\`) {
			logical += strings.TrimSuffix(trimmed, `\`) + " "
			continue
		}
		logical += trimmed
		if strings.HasPrefix(logical, "[") && strings.HasSuffix(logical, "]") {
			section = logical[1 : len(logical)-1]
			u.sections[section] = map[string][]string{}
			logical = ""
			continue
		}
		k, v, ok := strings.Cut(logical, "=")
		logical = ""
		if !ok || section == "" {
			t.Fatalf("%s: cannot parse %q", file, line)
		}
		u.sections[section][strings.TrimSpace(k)] = append(u.sections[section][strings.TrimSpace(k)], strings.TrimSpace(v))
	}
	return u
}

func (u unitFile) get(key string) string {
	v := u.sections["Service"][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// envFile reads NAME=VALUE lines; commented-out "#REVOCAST_…=" examples are
// returned apart, so that their names are checked too.
func envFile(t *testing.T, file string) (set, commented map[string]string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	set, commented = map[string]string{}, map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		into := set
		if strings.HasPrefix(line, "#") {
			line = strings.TrimSpace(strings.TrimPrefix(line, "#"))
			if !regexp.MustCompile(`^REVOCAST_[A-Z0-9_]+=`).MatchString(line) {
				continue
			}
			into = commented
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("%s: cannot parse %q", file, line)
			continue
		}
		into[k] = strings.Trim(v, `"`)
	}
	return set, commented
}

// systemdInvocation: the unit's ExecStart with its EnvironmentFile (the one
// shipped beside it), and the credentials and state directory mapped to
// files of the test.
func systemdInvocation(t *testing.T, unitName string, creds map[string]string) (*invocation, unitFile) {
	t.Helper()
	u := parseUnit(t, filepath.Join("systemd", unitName))
	words := strings.Fields(strings.TrimLeft(u.get("ExecStart"), "-@+!:"))
	if len(words) == 0 {
		t.Fatalf("%s: no ExecStart", unitName)
	}
	progName := strings.TrimPrefix(path.Base(words[0]), "revocast-")
	prog := loadProgram(t, progName)
	unitBase := strings.TrimSuffix(unitName, ".service")
	credDir := "/run/credentials/" + unitName
	stateDir := "/var/lib/" + u.get("StateDirectory")
	args := make([]string, 0, len(words)-1)
	for _, a := range words[1:] {
		a = strings.ReplaceAll(a, "%d", credDir)
		a = strings.ReplaceAll(a, "%S", "/var/lib")
		a = strings.ReplaceAll(a, "%N", unitBase)
		if strings.Contains(a, "%") || strings.Contains(a, "$") {
			t.Errorf("%s: ExecStart argument %q: this test knows %%d and %%S only", unitName, a)
		}
		args = append(args, a)
	}
	inv := &invocation{source: "systemd/" + unitName, host: unitBase, hosts: []string{"localhost"}, prog: prog, args: args,
		env: map[string]string{}, files: map[string]string{}, volumes: map[string]bool{}}
	if u.get("StateDirectory") != "" {
		inv.volumes[stateDir] = true
	}
	for _, ef := range u.sections["Service"]["EnvironmentFile"] {
		shipped := filepath.Join("systemd", path.Base(strings.TrimPrefix(ef, "-")))
		set, commented := envFile(t, shipped)
		maps.Copy(inv.env, set)
		if _, err := prog.parseEnv(commented); err != nil {
			t.Errorf("%s (commented-out examples): %v", shipped, err)
		}
	}
	for _, lc := range u.sections["Service"]["LoadCredential"] {
		name, _, _ := strings.Cut(lc, ":")
		if f, ok := creds[name]; ok {
			inv.files[credDir+"/"+name] = f
		}
	}
	// the other files the env file names, as installed in /etc/revocast
	for name, f := range creds {
		inv.files["/etc/revocast/"+name] = f
	}
	inv.parse(t)
	return inv, u
}

// TestSystemdUnits checks the units' flags, variables and hardening, and
// starts a broadcaster and an agent with their command lines and env files.
func TestSystemdUnits(t *testing.T) {
	reader, readerLine := keygen(t, "deployments-agents", "reader")
	revoker, revokerLine := keygen(t, "deployments-test", "revoker")
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	issuer, err := os.ReadFile(filepath.Join("compose", "issuer.pem"))
	if err != nil {
		t.Fatal(err)
	}
	creds := map[string]string{
		"api-keys.txt": write("api-keys.txt", readerLine+"\n"+revokerLine+"\n"),
		"agent.token":  write("agent.token", reader+"\n"),
		"issuer.pem":   write("issuer.pem", string(issuer)),
	}
	br, bu := systemdInvocation(t, "revocast-broadcaster.service", creds)
	ag, au := systemdInvocation(t, "revocast-agent.service", creds)
	for _, u := range []unitFile{bu, au} {
		for k, want := range map[string]string{
			"NoNewPrivileges": "yes", "PrivateTmp": "yes", "ProtectSystem": "strict",
			"Restart": "on-failure", "LimitNOFILE": "65536",
		} {
			if got := u.get(k); got != want {
				t.Errorf("%s: %s=%q, want %q", u.file, k, got, want)
			}
		}
		if u.get("DynamicUser") != "yes" && u.get("User") == "" {
			t.Errorf("%s: want DynamicUser=yes or a dedicated User=", u.file)
		}
		if len(u.sections["Install"]["WantedBy"]) == 0 {
			t.Errorf("%s: no WantedBy=", u.file)
		}
	}
	if bu.get("StateDirectory") != "revocast" {
		t.Errorf("%s: StateDirectory=%q, want revocast", bu.file, bu.get("StateDirectory"))
	}
	if d, _ := br.value("data"); d != "/var/lib/revocast" {
		t.Errorf("%s: --data %q: want the StateDirectory, /var/lib/revocast", br.source, d)
	}
	if t.Failed() {
		t.FailNow()
	}
	if testing.Short() {
		t.Skip("the units' command lines are not started with -short")
	}
	// the env file's example broadcaster host stands for this broadcaster
	ag.hosts = nil
	if u, ok := ag.value("broadcaster"); ok {
		for _, item := range strings.Split(u, ",") {
			pu, err := url.Parse(item)
			if err != nil {
				t.Fatalf("%s: --broadcaster %s: %v", ag.source, item, err)
			}
			br.hosts = append(br.hosts, pu.Hostname())
		}
	}
	w := &world{t: t, invs: []*invocation{br, ag}}
	w.prepare()
	if t.Failed() {
		t.FailNow()
	}
	setEnv(t, br.prog, br.runEnv)
	bp := testutil.Start(t, "broadcaster", "/readyz", br.runArgs...)
	if status, body := request(t, http.MethodPost, bp.URL+"/v1/revocations", revoker, []byte(`{"sub":"deployments-test"}`)); status != http.StatusCreated {
		t.Fatalf("POST /v1/revocations: %d %s", status, body)
	}
	setEnv(t, ag.prog, ag.runEnv)
	testutil.Start(t, "agent", "/readyz", ag.runArgs...)
}

// TestSystemdAnalyzeVerify runs systemd-analyze verify on the units, when
// it is installed, with the binaries' paths pointing at real files.
func TestSystemdAnalyzeVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	dir := t.TempDir()
	var units []string
	for _, name := range []string{"revocast-broadcaster.service", "revocast-agent.service"} {
		b, err := os.ReadFile(filepath.Join("systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		s := regexp.MustCompile(`/usr/local/bin/revocast-[a-z]+`).ReplaceAllString(string(b), "/bin/true")
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, p)
	}
	out, err := exec.Command(sa, append([]string{"verify"}, units...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestKustomizeBuild renders the kustomization with kubectl, when it is
// installed (no cluster needed): the generated Secrets and ConfigMaps are
// referenced under their hashed names.
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed")
	}
	out, err := exec.Command(kubectl, "kustomize", k8sDir).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("kubectl kustomize: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	kinds := map[string]int{}
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("kubectl kustomize output: %v", err)
		}
		kinds[o.Kind]++
	}
	for kind, n := range map[string]int{"StatefulSet": 1, "Deployment": 1, "Service": 3, "Secret": 3, "ConfigMap": 2, "PodDisruptionBudget": 1} {
		if kinds[kind] != n {
			t.Errorf("kubectl kustomize: %d %s, want %d", kinds[kind], kind, n)
		}
	}
	for _, name := range []string{"revocast-api-keys", "revocast-cluster-secret", "revocast-agent-token", "revocast-issuer"} {
		if !regexp.MustCompile(`(?m)(secretName|name): ` + name + `-[a-z0-9]{10}$`).Match(out) {
			t.Errorf("kubectl kustomize: nothing refers to the generated %s", name)
		}
	}
}

// ---------------------------------------------------------------------------
// local-cluster.sh
// ---------------------------------------------------------------------------

var readmeFlag = regexp.MustCompile(`--(addr|cluster-addr|data) (\S+)`)

// TestLocalClusterScript runs deployments/local-cluster.sh, which
// docs/operations.md offers instead of its three terminals: its defaults are
// that document's ports and data directories; with other ports it starts three
// broadcasters that form one cluster, and SIGINT stops all three.
func TestLocalClusterScript(t *testing.T) {
	script, err := os.ReadFile("local-cluster.sh")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(doc, []byte("deployments/local-cluster.sh")) {
		t.Errorf("docs/operations.md no longer mentions deployments/local-cluster.sh")
	}
	text := string(doc)
	if i := strings.Index(text, "### Three nodes on one machine"); i >= 0 {
		text = text[i:]
		if j := strings.Index(text[4:], "\n### "); j >= 0 {
			text = text[:j+4]
		}
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
		deadline := time.Now().Add(90 * time.Second) // includes go build
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
				t.Fatalf("%s/readyz: not ready", urls[i])
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
	case <-exited: //nolint:errcheck // interrupted on purpose
	case <-time.After(30 * time.Second):
		t.Fatal("local-cluster.sh still runs 30s after SIGINT")
	}
	for _, u := range urls {
		if resp, err := httpClient.Get(u + "/healthz"); err == nil {
			resp.Body.Close()
			t.Errorf("%s still answers after local-cluster.sh stopped", u)
		}
	}
}
