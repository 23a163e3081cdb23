package deployments_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// ---------------------------------------------------------------------------
// docker-compose.yml, loaded by compose-go
// ---------------------------------------------------------------------------

// loadComposeProject loads compose files as "docker compose" does, with
// compose-go: validated against the compose-spec schema, checked for
// consistency (e.g. every named volume a service mounts is declared),
// merged (YAML anchors, "<<"), normalized, relative paths resolved against
// dir. Variables are interpolated from env alone, not from this process's
// environment.
func loadComposeProject(dir string, env map[string]string, files ...types.ConfigFile) (*types.Project, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  abs,
		ConfigFiles: files,
		Environment: env,
	})
}

func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	file, err := filepath.Abs("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	// the file uses no variable, and names its project
	p, err := loadComposeProject(".", map[string]string{}, types.ConfigFile{Filename: file})
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if len(p.Services) == 0 {
		t.Fatal("docker-compose.yml: no services")
	}
	return p
}

func composeInvocations(t *testing.T, p *types.Project, img dockerImage) []*invocation {
	t.Helper()
	var out []*invocation
	for _, name := range sortedKeys(p.Services) {
		svc := p.Services[name]
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
		for k, v := range svc.Environment {
			if v != nil { // a name alone passes the host's variable on
				inv.env[k] = *v
			}
		}
		for _, v := range svc.Volumes {
			switch v.Type {
			case types.VolumeTypeBind: // the source is resolved against deployments/
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s: bind mount of %s: %v", src, v.Target, err)
				}
				inv.files[v.Target] = v.Source
			case types.VolumeTypeVolume: // compose-go checks that it is declared
				inv.volumes[v.Target] = true
			}
		}
		inv.parse(t)
		out = append(out, inv)
	}
	return out
}

// TestComposeFile checks the compose file without running it: flags and
// variables exist, the cluster is consistent, ports are published on
// loopback only, the image is built from this repository.
func TestComposeFile(t *testing.T) {
	p := loadCompose(t)
	img := imageDefaults(t)
	invs := composeInvocations(t, p, img)
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
		for _, v := range p.Services[inv.host].Volumes {
			if v.Type == types.VolumeTypeVolume && strings.HasPrefix(v.Target, "/data") {
				if dataVolumes[v.Source] {
					t.Errorf("%s: volume %s is shared with another node", inv.source, v.Source)
				}
				dataVolumes[v.Source] = true
			}
		}
	}
	for _, name := range sortedKeys(p.Services) {
		svc := p.Services[name]
		for _, port := range svc.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("docker-compose.yml service %s: port %d is published beyond the host's loopback (host_ip %q)", name, port.Target, port.HostIP)
			}
			if port.Target == 6222 {
				t.Errorf("docker-compose.yml service %s: the route port is published: keep it on the compose network", name)
			}
		}
		if ourImage(svc.Image) {
			if svc.Build != nil {
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

// TestComposeLoaderRefuses feeds compose files to the same loader as
// docker-compose.yml's: compose-go refuses what the compose-spec schema or
// its consistency checks refuse.
func TestComposeLoaderRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, service string
		wantErr       []string // substrings of the error; none: accepted
	}{
		{name: "valid", service: "    command: [--addr=0.0.0.0:8080]\n    volumes: [data:/data]\n"},
		{name: "unknown service key", service: "    comand: [--addr=0.0.0.0:8080]\n",
			wantErr: []string{"services.app", "comand"}},
		{name: "mistyped value", service: "    read_only: maybe\n",
			wantErr: []string{"services.app.read_only", "boolean"}},
		{name: "undeclared volume", service: "    volumes: [undeclared:/data]\n",
			wantErr: []string{"app", "undefined volume", "undeclared"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			content := "name: invalid\nservices:\n  app:\n    image: revocast:dev\n" + tc.service + "volumes:\n  data:\n"
			p, err := loadComposeProject(t.TempDir(), map[string]string{}, types.ConfigFile{Filename: "compose.yml", Content: []byte(content)})
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if svc, ok := p.Services["app"]; !ok || !slices.Equal(svc.Command, types.ShellCommand{"--addr=0.0.0.0:8080"}) {
					t.Errorf("loaded %+v, want the service app and its command", p.Services)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted:\n%s", content)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}
