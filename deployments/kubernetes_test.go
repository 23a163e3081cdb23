package deployments_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

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
	Patches            []struct {
		Target struct {
			Kind string `yaml:"kind"`
			Name string `yaml:"name"`
		} `yaml:"target"`
		Patch string `yaml:"patch"`
	} `yaml:"patches"`
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
	m.applyPatches(t)
	return m
}

// applyPatches applies the kustomization's JSON patches that add to an
// object's spec (the demo's --insecure), the only kind it uses; any other
// patch is reported, since the checks would not see what it does.
// TestKustomizeBuild checks the result against kubectl's when installed.
func (m *k8sManifests) applyPatches(t *testing.T) {
	t.Helper()
	for _, p := range m.kust.Patches {
		var ops []struct {
			Op    string `yaml:"op"`
			Path  string `yaml:"path"`
			Value any    `yaml:"value"`
		}
		if err := yaml.Unmarshal([]byte(p.Patch), &ops); err != nil {
			t.Fatalf("kustomization.yaml patch of %s %s: %v", p.Target.Kind, p.Target.Name, err)
		}
		i := slices.IndexFunc(m.objects, func(o k8sObject) bool { return o.Kind == p.Target.Kind && o.Metadata.Name == p.Target.Name })
		if i < 0 {
			t.Errorf("kustomization.yaml: the patch's target %s %s does not exist", p.Target.Kind, p.Target.Name)
			continue
		}
		for _, op := range ops {
			rest, ok := strings.CutPrefix(op.Path, "/spec/")
			if op.Op != "add" || !ok {
				t.Errorf("kustomization.yaml: patch %s %s: this test applies only \"add\" under /spec/", op.Op, op.Path)
				continue
			}
			if err := addAt(&m.objects[i].Spec, strings.Split(rest, "/"), op.Value); err != nil {
				t.Errorf("kustomization.yaml: patch %s %s: %v", op.Op, op.Path, err)
			}
		}
	}
}

// addAt adds value at a JSON pointer's segments below n: a mapping key, a
// sequence index, or "-" (append).
func addAt(n *yaml.Node, path []string, value any) error {
	var v yaml.Node
	if err := v.Encode(value); err != nil {
		return err
	}
	for len(path) > 0 {
		seg := path[0]
		last := len(path) == 1
		switch n.Kind {
		case yaml.MappingNode:
			i := -1
			for k := 0; k+1 < len(n.Content); k += 2 {
				if n.Content[k].Value == seg {
					i = k
				}
			}
			if i < 0 {
				if !last {
					return fmt.Errorf("no key %q", seg)
				}
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: seg}, &v)
				return nil
			}
			n = n.Content[i+1]
		case yaml.SequenceNode:
			if seg == "-" && last {
				n.Content = append(n.Content, &v)
				return nil
			}
			k, err := strconv.Atoi(seg)
			if err != nil || k < 0 || k >= len(n.Content) {
				return fmt.Errorf("no index %q", seg)
			}
			if last {
				n.Content = slices.Insert(n.Content, k, &v)
				return nil
			}
			n = n.Content[k]
		default:
			return fmt.Errorf("%q: not a mapping or a sequence", seg)
		}
		path = path[1:]
	}
	return errors.New("empty path")
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

var k8sVar = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// podInvocations: the revocast containers of a pod template, for one pod.
func (m *k8sManifests) podInvocations(t *testing.T, img dockerImage, file, podName string, spec podSpec, pvcs map[string]bool) []*invocation {
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
		inv := &invocation{source: src, host: podName, prog: prog, args: args,
			env: map[string]string{}, files: map[string]string{}, volumes: map[string]bool{}}
		for k, v := range img.env {
			if _, ok := prog.envs[k]; ok {
				inv.env[k] = v
			}
		}
		maps.Copy(inv.env, env)
		for _, pr := range []*probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
			if pr != nil && pr.HTTPGet != nil && !slices.Contains(inv.probePaths, pr.HTTPGet.Path) {
				inv.probePaths = append(inv.probePaths, pr.HTTPGet.Path)
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
			sts = append(sts, m.podInvocations(t, img, o.file, pod, s.Template.Spec, pvcs)...)
		}
	}
	for _, o := range m.all("Deployment") {
		s := decodeSpec[deploymentSpec](t, o)
		deploys = append(deploys, m.podInvocations(t, img, o.file, o.Metadata.Name+"-0", s.Template.Spec, nil)...)
	}
	return sts, deploys
}

// ---------------------------------------------------------------------------
// Kubernetes
// ---------------------------------------------------------------------------

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
	checkInvocations(t, append(slices.Clone(stsInvs), depInvs...)) // mounted paths, --check-config

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
	checkProbes(t, m, append(slices.Clone(stsInvs), depInvs...))
}

// checkProbes: a revocast container has an HTTP probe, and each of its
// probes asks for /readyz or /healthz, which it serves, or for a path that
// nginx (another container of the pod) forwards to one of those on the
// container's --addr.
func checkProbes(t *testing.T, m *k8sManifests, invs []*invocation) {
	t.Helper()
	routes := nginxProbeRoutes(t, m)
	served := []string{"/readyz", "/healthz"}
	for _, inv := range invs {
		if len(inv.probePaths) == 0 {
			t.Errorf("%s: no HTTP probe", inv.source)
		}
		addr, _ := inv.value("addr")
		for _, path := range inv.probePaths {
			target, ok := routes[path]
			if !ok {
				if !slices.Contains(served, path) {
					t.Errorf("%s: probe %s: it serves %v, and nginx forwards no such path", inv.source, path, served)
				}
				continue
			}
			if a, p, _ := strings.Cut(target, "/"); a != addr || !slices.Contains(served, "/"+p) {
				t.Errorf("%s: probe %s reaches %q, not the container's %s/readyz or /healthz", inv.source, path, target, addr)
			}
		}
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
	// the containers' command lines, as kubectl renders them and as
	// loadKubernetes (which applies the patches itself) reads them
	rendered, loaded := map[string][]string{}, map[string][]string{}
	args := func(into map[string][]string, o k8sObject) {
		var spec struct {
			Template struct {
				Spec podSpec `yaml:"spec"`
			} `yaml:"template"`
		}
		if err := o.Spec.Decode(&spec); err != nil {
			t.Fatalf("%s %s: %v", o.Kind, o.Metadata.Name, err)
		}
		for _, c := range spec.Template.Spec.Containers {
			into[o.Kind+" "+o.Metadata.Name+" "+c.Name] = append(slices.Clone(c.Command), c.Args...)
		}
	}
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
		if o.Kind == "StatefulSet" || o.Kind == "Deployment" {
			args(rendered, o)
		}
	}
	m := loadKubernetes(t)
	for _, o := range append(m.all("StatefulSet"), m.all("Deployment")...) {
		args(loaded, o)
	}
	if len(rendered) == 0 {
		t.Error("kubectl kustomize: no StatefulSet or Deployment containers")
	}
	for k, want := range rendered {
		if !slices.Equal(loaded[k], want) {
			t.Errorf("%s: kubectl kustomize runs %q, the tests read %q", k, want, loaded[k])
		}
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

// selects reports whether a (non-empty) label selector selects labels.
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
