package deployments_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

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
			srcs, from := copyArgs(in[1])
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
				srcs, from := copyArgs(in[1])
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

// copyArgs splits the arguments of a Dockerfile COPY into its paths
// (sources, then the destination) and whether it copies from another stage
// (--from=).
func copyArgs(args string) (paths []string, fromStage bool) {
	for _, a := range strings.Fields(args) {
		if strings.HasPrefix(a, "--from=") {
			fromStage = true
		}
		if !strings.HasPrefix(a, "--") {
			paths = append(paths, a)
		}
	}
	return paths, fromStage
}
