package deployments_test

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

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
		inv := &invocation{source: src, host: name, prog: prog, args: args,
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
	checkInvocations(t, invs) // mounted paths, --data, --check-config
	// the routes: every peer
	for _, inv := range brs {
		routes, _ := inv.value("routes")
		for _, peer := range brs {
			if peer != inv && !strings.Contains(routes, "//"+peer.host+":") {
				t.Errorf("%s: --routes %s misses %s", inv.source, routes, peer.host)
			}
		}
	}
}
