package deployments_test

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	kustypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// ---------------------------------------------------------------------------
// Kubernetes: kustomize renders, k8s.io/api validates
// ---------------------------------------------------------------------------

const k8sDir = "kubernetes"

// k8sScheme knows the typed structs of the API groups the manifests may use
// (k8s.io/api); a kind outside them is refused. Add a group here when a
// manifest needs one.
var k8sScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	b := runtime.NewSchemeBuilder(corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme, networkingv1.AddToScheme)
	if err := b.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}()

// k8sObject is one rendered object, decoded into its k8s.io/api type.
type k8sObject struct {
	id  string         // "apps/v1 StatefulSet revocast", for messages
	obj runtime.Object // *appsv1.StatefulSet, *corev1.Service…
}

// renderKustomization builds a kustomization as "kubectl kustomize" does,
// with the kustomize library (krusty) and its default options.
func renderKustomization(fsys filesys.FileSystem, dir string) (resmap.ResMap, error) {
	return krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fsys, dir)
}

// decodeK8s decodes one object strictly into the k8s.io/api type its
// apiVersion and kind name: an unknown kind, an unknown field or a value of
// the wrong type is an error.
func decodeK8s(doc []byte) (runtime.Object, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	obj, err := k8sScheme.New(schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind))
	if err != nil {
		return nil, fmt.Errorf("unknown kind %s %q: not in the k8s.io/api groups of k8sScheme", tm.APIVersion, tm.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// decodeRendered decodes every rendered object (decodeK8s); the error names
// each object that does not decode.
func decodeRendered(rm resmap.ResMap) ([]k8sObject, error) {
	var objs []k8sObject
	var errs []error
	for _, r := range rm.Resources() {
		id := r.GetApiVersion() + " " + r.GetKind() + " " + r.GetName()
		doc, err := r.AsYAML()
		if err == nil {
			var obj runtime.Object
			if obj, err = decodeK8s(doc); err == nil {
				objs = append(objs, k8sObject{id: id, obj: obj})
				continue
			}
		}
		errs = append(errs, fmt.Errorf("%s: %w", id, err))
	}
	return objs, errors.Join(errs...)
}

// k8sManifests is what "kustomize build kubernetes" renders.
type k8sManifests struct {
	objects []k8sObject
	// the data of the rendered Secrets and ConfigMaps, written to files
	// (kustomize's generators read them from demo/): name → key → file
	secrets    map[string]map[string]string
	configMaps map[string]map[string]string
}

func loadKubernetes(t *testing.T) *k8sManifests {
	t.Helper()
	rm, err := renderKustomization(filesys.MakeFsOnDisk(), k8sDir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", k8sDir, err)
	}
	objs, err := decodeRendered(rm)
	if err != nil {
		t.Fatalf("kustomize build %s: the k8s.io/api types refuse:\n%v", k8sDir, err)
	}
	m := &k8sManifests{objects: objs, secrets: map[string]map[string]string{}, configMaps: map[string]map[string]string{}}
	// write puts an object's data (binary and string) in files of a
	// directory of its own
	write := func(into map[string]map[string]string, name string, binary map[string][]byte, text map[string]string) {
		dir := t.TempDir()
		files := map[string]string{}
		data := maps.Clone(binary)
		if data == nil {
			data = map[string][]byte{}
		}
		for k, v := range text {
			data[k] = []byte(v)
		}
		for k, v := range data {
			p := filepath.Join(dir, k)
			if err := os.WriteFile(p, v, 0o600); err != nil {
				t.Fatal(err)
			}
			files[k] = p
		}
		into[name] = files
	}
	for _, s := range kindOf[*corev1.Secret](m) {
		write(m.secrets, s.Name, s.Data, s.StringData)
	}
	for _, c := range kindOf[*corev1.ConfigMap](m) {
		write(m.configMaps, c.Name, c.BinaryData, c.Data)
	}
	return m
}

// kindOf returns the rendered objects of one type, in the build's order.
func kindOf[T runtime.Object](m *k8sManifests) []T {
	var out []T
	for _, o := range m.objects {
		if v, ok := o.obj.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// selectorMatches: a non-empty label selector selects the labels, by
// k8s.io/apimachinery's matching.
func selectorMatches(sel *metav1.LabelSelector, set map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && !s.Empty() && s.Matches(labels.Set(set))
}

var k8sVar = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// podInvocations: the revocast containers of a pod template, for one pod.
func (m *k8sManifests) podInvocations(t *testing.T, img dockerImage, where, podName string, spec *corev1.PodSpec, pvcs map[string]bool) []*invocation {
	t.Helper()
	var out []*invocation
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		if !ourImage(c.Image) {
			continue
		}
		src := fmt.Sprintf("%s pod %s container %s", where, podName, c.Name)
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
		for _, pr := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
			if pr != nil && pr.HTTPGet != nil && !slices.Contains(inv.probePaths, pr.HTTPGet.Path) {
				inv.probePaths = append(inv.probePaths, pr.HTTPGet.Path)
			}
		}
		m.mounts(t, inv, spec, c, pvcs)
		inv.parse(t)
		out = append(out, inv)
	}
	return out
}

// mounts maps the container's volume mounts: claims are persistent
// volumes, Secrets and ConfigMaps show the rendered objects' data (a
// volume of one the build does not have is an error), emptyDir is scratch
// space.
func (m *k8sManifests) mounts(t *testing.T, inv *invocation, spec *corev1.PodSpec, c corev1.Container, pvcs map[string]bool) {
	t.Helper()
	vols := map[string]corev1.Volume{}
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
			t.Errorf("%s: volumeMount %s: no such volume", inv.source, vm.Name)
			continue
		}
		var keys map[string]string
		var items []corev1.KeyToPath
		switch {
		case v.Secret != nil:
			keys, items = m.secrets[v.Secret.SecretName], v.Secret.Items
			if keys == nil {
				t.Errorf("%s: volume %s: the build has no Secret %s", inv.source, v.Name, v.Secret.SecretName)
			}
		case v.ConfigMap != nil:
			keys, items = m.configMaps[v.ConfigMap.Name], v.ConfigMap.Items
			if keys == nil {
				t.Errorf("%s: volume %s: the build has no ConfigMap %s", inv.source, v.Name, v.ConfigMap.Name)
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
			maps.Copy(shown, keys)
		}
		for _, it := range items {
			f, ok := keys[it.Key]
			if !ok {
				t.Errorf("%s: volume %s: no key %s", inv.source, v.Name, it.Key)
			}
			shown[it.Path] = f
		}
		if vm.SubPath != "" {
			f, ok := shown[vm.SubPath]
			if !ok {
				t.Errorf("%s: volumeMount %s: subPath %s is not in the volume", inv.source, vm.Name, vm.SubPath)
			}
			inv.files[vm.MountPath] = f
			continue
		}
		for rel, f := range shown {
			inv.files[path.Join(vm.MountPath, rel)] = f
		}
	}
}

func expand(env map[string]string, ref string) string {
	name := ref[2 : len(ref)-1]
	if v, ok := env[name]; ok {
		return v
	}
	return ref // Kubernetes leaves unknown references as they are
}

// k8sInvocations: the StatefulSet's pods (revocast-0…) and one pod of each
// Deployment.
func (m *k8sManifests) k8sInvocations(t *testing.T, img dockerImage) (sts, deploys []*invocation) {
	t.Helper()
	for _, s := range kindOf[*appsv1.StatefulSet](m) {
		pvcs := map[string]bool{}
		for _, v := range s.Spec.VolumeClaimTemplates {
			pvcs[v.Name] = true
		}
		for i := range replicas(s.Spec.Replicas) {
			pod := fmt.Sprintf("%s-%d", s.Name, i)
			sts = append(sts, m.podInvocations(t, img, "StatefulSet "+s.Name, pod, &s.Spec.Template.Spec, pvcs)...)
		}
	}
	for _, d := range kindOf[*appsv1.Deployment](m) {
		deploys = append(deploys, m.podInvocations(t, img, "Deployment "+d.Name, d.Name+"-0", &d.Spec.Template.Spec, nil)...)
	}
	return sts, deploys
}

// replicas: a workload's replicas, 1 when unset (the API's default).
func replicas(r *int32) int {
	if r == nil {
		return 1
	}
	return int(*r)
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

// TestKustomizeBuild renders deployments/kubernetes with the kustomize
// library, as "kubectl apply -k" would, and decodes every object into its
// k8s.io/api type (loadKubernetes): every manifest of the directory is a
// resource of the kustomization, and the build has the objects the
// deployment needs.
func TestKustomizeBuild(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(k8sDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustypes.Kustomization
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	entries, err := os.ReadDir(k8sDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		n := e.Name()
		if (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) && n != "kustomization.yaml" && !slices.Contains(k.Resources, n) {
			t.Errorf("kubernetes/%s is not listed in kustomization.yaml resources", n)
		}
	}
	m := loadKubernetes(t)
	kinds := map[string]int{}
	for _, o := range m.objects {
		kinds[o.obj.GetObjectKind().GroupVersionKind().Kind]++
	}
	for kind, n := range map[string]int{"StatefulSet": 1, "Deployment": 1, "Service": 3, "Secret": 3, "ConfigMap": 2, "PodDisruptionBudget": 1, "NetworkPolicy": 1} {
		if kinds[kind] != n {
			t.Errorf("kustomize build: %d %s, want %d", kinds[kind], kind, n)
		}
	}
}

// TestKubernetesSchemaValidation feeds manifests to the same rendering and
// validation as the repository's: kustomize passes a misspelled or mistyped
// field through, the k8s.io/api types refuse it and name the object.
func TestKubernetesSchemaValidation(t *testing.T) {
	const deployment = `apiVersion: apps/v1
kind: %s
metadata:
  name: demo
spec:
  replicas: %s
  selector:
    matchLabels: {app: demo}
  template:
    metadata:
      labels: {app: demo}
    spec:
      %s:
        - name: app
          image: revocast:dev
`
	for _, tc := range []struct {
		name, kind, replicas, containers string
		wantErr                          []string // substrings of the error; none: accepted
	}{
		{name: "valid", kind: "Deployment", replicas: "2", containers: "containers"},
		// the misspelling is the point of the case
		{name: "misspelled field", kind: "Deployment", replicas: "2", containers: "contianers", //nolint:misspell
			wantErr: []string{"apps/v1 Deployment demo", `unknown field "contianers"`}}, //nolint:misspell
		{name: "mistyped field", kind: "Deployment", replicas: "two", containers: "containers",
			wantErr: []string{"apps/v1 Deployment demo", "replicas"}},
		{name: "unknown kind", kind: "Deploymnet", replicas: "2", containers: "containers",
			wantErr: []string{"apps/v1 Deploymnet demo", "unknown kind"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := filesys.MakeFsInMemory()
			for name, content := range map[string]string{
				"/app/kustomization.yaml": "resources: [manifest.yaml]\n",
				"/app/manifest.yaml":      fmt.Sprintf(deployment, tc.kind, tc.replicas, tc.containers),
			} {
				if err := fsys.WriteFile(name, []byte(content)); err != nil {
					t.Fatal(err)
				}
			}
			rm, err := renderKustomization(fsys, "/app")
			if err != nil {
				t.Fatalf("kustomize build: %v", err)
			}
			objs, err := decodeRendered(rm)
			if len(tc.wantErr) == 0 {
				if err != nil || len(objs) != 1 {
					t.Fatalf("refused: %v (%d objects)", err, len(objs))
				}
				if d, ok := objs[0].obj.(*appsv1.Deployment); !ok || len(d.Spec.Template.Spec.Containers) != 1 {
					t.Errorf("decoded %#v, want a Deployment with one container", objs[0].obj)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

// TestKubernetesManifests checks the rendered manifests without a cluster:
// flags and variables exist, the StatefulSet forms its cluster from stable
// names, the Services, the PodDisruptionBudget and the probes fit it, the
// containers are locked down.
func TestKubernetesManifests(t *testing.T) {
	m := loadKubernetes(t)
	img := imageDefaults(t)
	stsInvs, depInvs := m.k8sInvocations(t, img)

	stss := kindOf[*appsv1.StatefulSet](m)
	if len(stss) != 1 {
		t.Fatalf("want one StatefulSet, got %d", len(stss))
	}
	st := stss[0]
	podLabels := st.Spec.Template.Labels
	n := replicas(st.Spec.Replicas)
	where := "StatefulSet " + st.Name
	if n != 3 {
		t.Errorf("%s: replicas %d, want 3", where, n)
	}
	if st.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("%s: podManagementPolicy %q: want Parallel (pod 0 is never ready before the others exist)", where, st.Spec.PodManagementPolicy)
	}
	if !selectorMatches(st.Spec.Selector, podLabels) {
		t.Errorf("%s: the selector does not select the template's labels", where)
	}
	if len(st.Spec.VolumeClaimTemplates) == 0 {
		t.Errorf("%s: no volumeClaimTemplates", where)
	}
	if g := st.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g < 10 {
		t.Errorf("%s: terminationGracePeriodSeconds must be set (at least 10)", where)
	}

	// the headless Service the pods' DNS names come from
	i := slices.IndexFunc(kindOf[*corev1.Service](m), func(s *corev1.Service) bool { return s.Name == st.Spec.ServiceName })
	if i < 0 {
		t.Fatalf("%s: serviceName %s: no such Service", where, st.Spec.ServiceName)
	}
	headless := kindOf[*corev1.Service](m)[i]
	if headless.Spec.ClusterIP != corev1.ClusterIPNone || !headless.Spec.PublishNotReadyAddresses {
		t.Errorf("Service %s: want clusterIP None and publishNotReadyAddresses (peers must resolve before they are ready)", headless.Name)
	}
	if !selectorMatches(&metav1.LabelSelector{MatchLabels: headless.Spec.Selector}, podLabels) {
		t.Errorf("Service %s does not select the StatefulSet's pods", headless.Name)
	}
	var portNames []string
	for _, p := range headless.Spec.Ports {
		portNames = append(portNames, p.Name)
	}
	if !slices.Contains(portNames, "http") || !slices.Contains(portNames, "cluster") {
		t.Errorf("Service %s: want ports http and cluster, got %v", headless.Name, portNames)
	}

	// the pods: names, routes, replicas, data on the claim, probes, lockdown
	if len(stsInvs) != n {
		t.Fatalf("%s: %d revocast containers for %d replicas", where, len(stsInvs), n)
	}
	for i, inv := range stsInvs {
		if inv.prog.name != "broadcaster" {
			t.Errorf("%s: runs %s, want the broadcaster", inv.source, inv.prog.name)
		}
		if v, _ := inv.value("server-name"); v != inv.host {
			t.Errorf("%s: --server-name %q, want the pod name %s", inv.source, v, inv.host)
		}
		if r, _ := inv.value("replicas"); r != strconv.Itoa(n) {
			t.Errorf("%s: --replicas %q, want %d", inv.source, r, n)
		}
		routes, _ := inv.value("routes")
		for j := range n {
			peer := fmt.Sprintf("//%s-%d.%s", st.Name, j, st.Spec.ServiceName)
			if !strings.Contains(routes, peer) {
				t.Errorf("%s: --routes %s misses %s", inv.source, routes, peer)
			}
		}
		if _, ok := inv.value("api-keys"); !ok && i == 0 {
			t.Errorf("%s: no --api-keys", inv.source)
		}
	}
	checkInvocations(t, append(slices.Clone(stsInvs), depInvs...)) // mounted paths, --check-config

	for _, s := range stss {
		checkPodSpec(t, "StatefulSet "+s.Name, &s.Spec.Template.Spec)
	}
	for _, d := range kindOf[*appsv1.Deployment](m) {
		checkPodSpec(t, "Deployment "+d.Name, &d.Spec.Template.Spec)
	}

	// one PodDisruptionBudget over the broadcasters: one pod at a time
	found := false
	for _, p := range kindOf[*policyv1.PodDisruptionBudget](m) {
		if selectorMatches(p.Spec.Selector, podLabels) {
			found = true
			if p.Spec.MaxUnavailable == nil || p.Spec.MaxUnavailable.String() != "1" {
				t.Errorf("PodDisruptionBudget %s: maxUnavailable %v, want 1", p.Name, p.Spec.MaxUnavailable)
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
	if len(nginxProbeRoutes(m)) == 0 {
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
	routes := nginxProbeRoutes(m)
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

func checkPodSpec(t *testing.T, where string, spec *corev1.PodSpec) {
	t.Helper()
	if spec.EnableServiceLinks == nil || *spec.EnableServiceLinks {
		t.Errorf("%s: enableServiceLinks must be false: Service links would set REVOCAST_* variables", where)
	}
	if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("%s: the pod's securityContext must set runAsNonRoot", where)
	}
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		cw := where + " container " + c.Name
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s: securityContext: want allowPrivilegeEscalation false, readOnlyRootFilesystem true, capabilities drop ALL", cw)
		}
		if sc != nil && sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			t.Errorf("%s: runs as root", cw)
		}
		if c.ReadinessProbe == nil || c.LivenessProbe == nil {
			t.Errorf("%s: want a readiness and a liveness probe", cw)
		}
		_, cpu := c.Resources.Requests[corev1.ResourceCPU]
		_, mem := c.Resources.Requests[corev1.ResourceMemory]
		_, memLimit := c.Resources.Limits[corev1.ResourceMemory]
		if !cpu || !mem || !memLimit {
			t.Errorf("%s: want cpu and memory requests and a memory limit", cw)
		}
	}
}

var (
	nginxLocation = regexp.MustCompile(`location\s*=\s*(\S+)\s*\{[^}]*proxy_pass\s+http://(\S+?)(/\S*);`)
	nginxUpstream = regexp.MustCompile(`upstream\s+(\S+)\s*\{[^}]*server\s+(\S+);`)
)

// nginxProbeRoutes reads the resource server's nginx configuration (the
// nginx.conf of a rendered ConfigMap): which agent path each
// "location = /path" forwards to.
func nginxProbeRoutes(m *k8sManifests) map[string]string {
	routes := map[string]string{}
	for _, c := range kindOf[*corev1.ConfigMap](m) {
		conf, ok := c.Data["nginx.conf"]
		if !ok {
			continue
		}
		upstreams := map[string]string{}
		for _, u := range nginxUpstream.FindAllStringSubmatch(conf, -1) {
			upstreams[u[1]] = u[2]
		}
		for _, l := range nginxLocation.FindAllStringSubmatch(conf, -1) {
			target := l[2]
			if a, ok := upstreams[target]; ok {
				target = a
			}
			routes[l[1]] = target + l[3]
		}
	}
	return routes
}
