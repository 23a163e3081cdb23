package deployments_test

import (
	"bytes"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

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
	inv := &invocation{source: "systemd/" + unitName, host: unitBase, prog: prog, args: args,
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
	_, revokerLine := keygen(t, "deployments-test", "revoker")
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
	checkInvocations(t, []*invocation{br, ag})
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
