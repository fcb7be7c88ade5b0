package deploy

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/fritzlab/flock/internal/lab"
	"github.com/fritzlab/flock/pkg/admin"
	"github.com/fritzlab/flock/pkg/rpc"
)

// agentRules is what the agent calls, as group/resource:verb; rbac.yaml must
// grant exactly these.
var agentRules = []string{
	"flock.fritzlab.net/nodeconfigs:get", "flock.fritzlab.net/nodeconfigs:list", "flock.fritzlab.net/nodeconfigs:watch",
	"flock.fritzlab.net/nodepools:list",
	"flock.fritzlab.net/nodeconfigs/status:get", "flock.fritzlab.net/nodeconfigs/status:update", "flock.fritzlab.net/nodeconfigs/status:patch",
	"/pods:get", "/pods:list", "/pods:watch",
	"networking.k8s.io/networkpolicies:list", "networking.k8s.io/networkpolicies:watch",
	"/namespaces:list", "/namespaces:watch",
	"/services:list", "/services:watch", "discovery.k8s.io/endpointslices:list", "discovery.k8s.io/endpointslices:watch",
	"flock.fritzlab.net/serviceaddresspools:list", "flock.fritzlab.net/serviceaddresspools:watch",
	"/events:create", "/events:patch", "events.k8s.io/events:create", "events.k8s.io/events:patch",
	"/nodes:get", "/nodes:list", "/nodes:watch",
	"/nodes/status:patch",
}

// agentNamespaceRules is what the agent calls in its own namespace only
// (flock-system): the BGP passwords' Secrets. rbac.yaml must grant exactly
// these, through a Role.
var agentNamespaceRules = []string{"/secrets:get"}

// controllerRules is what flock-controller calls cluster-wide, and
// controllerLeaseRules in kube-system (name: the one Lease, or - for any);
// controller-rbac.yaml must grant exactly these.
var (
	controllerRules = []string{
		"/nodes:list", "/nodes:watch",
		"flock.fritzlab.net/nodeconfigs:list", "flock.fritzlab.net/nodeconfigs:watch", "flock.fritzlab.net/nodeconfigs:create",
		"flock.fritzlab.net/nodeconfigs:update", "flock.fritzlab.net/nodeconfigs:delete",
		"flock.fritzlab.net/nodepools:list", "flock.fritzlab.net/nodepools:watch", "flock.fritzlab.net/nodepools/status:update",
		"/services:list", "/services:watch", "/services/status:update", "/namespaces:list", "/namespaces:watch",
		"flock.fritzlab.net/serviceaddresspools:list", "flock.fritzlab.net/serviceaddresspools:watch",
		"flock.fritzlab.net/serviceaddresspools/status:update",
		"networking.k8s.io/servicecidrs:list", "networking.k8s.io/servicecidrs:watch",
		"/events:create", "/events:patch",
	}
	controllerLeaseRules = []string{
		"coordination.k8s.io/leases:create:-",
		"coordination.k8s.io/leases:get:flock-controller", "coordination.k8s.io/leases:update:flock-controller",
	}
)

// documents splits a manifest into its YAML documents.
func documents(t *testing.T, name string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(deployDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	var docs [][]byte
	for _, d := range bytes.Split(data, []byte("\n---\n")) {
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

// strict decodes one document into v, failing on fields v does not have, so
// a misspelled field in a manifest is an error here and not silently dropped.
func strict(t *testing.T, doc []byte, v any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(doc, v); err != nil {
		t.Fatalf("decode %T: %v", v, err)
	}
}

func TestKustomizationListsEverything(t *testing.T) {
	var k struct {
		Resources          []string `json:"resources"`
		ConfigMapGenerator []struct {
			Name  string   `json:"name"`
			Files []string `json:"files"`
		} `json:"configMapGenerator"`
	}
	docs := documents(t, "kustomization.yaml")
	if err := yaml.Unmarshal(docs[0], &k); err != nil {
		t.Fatal(err)
	}
	crds, err := filepath.Glob(filepath.Join(deployDir(t), "crd", "*.yaml"))
	if err != nil || len(crds) == 0 {
		t.Fatalf("no CRDs in deploy/crd: %v", err)
	}
	for _, f := range crds {
		rel := "crd/" + filepath.Base(f)
		if !slices.Contains(k.Resources, rel) {
			t.Errorf("kustomization.yaml does not list %s", rel)
		}
	}
	for _, want := range []string{"rbac.yaml", "admission.yaml", "daemonset.yaml", "controller-rbac.yaml", "controller.yaml"} {
		if !slices.Contains(k.Resources, want) {
			t.Errorf("kustomization.yaml does not list %s", want)
		}
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(filepath.Join(deployDir(t), r)); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", r, err)
		}
	}
	if len(k.ConfigMapGenerator) != 1 || k.ConfigMapGenerator[0].Name != "flock-cni" ||
		!slices.Equal(k.ConfigMapGenerator[0].Files, []string{"10-flock.conflist"}) {
		t.Errorf("configMapGenerator = %+v, want flock-cni from 10-flock.conflist", k.ConfigMapGenerator)
	}
}

// The conflist the init container installs is one libcni loads: flock, then
// portmap, talking to the socket the agent listens on.
func TestConflist(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(deployDir(t), "10-flock.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	list, err := libcni.ConfListFromBytes(data)
	if err != nil {
		t.Fatalf("libcni: %v", err)
	}
	var types []string
	for _, p := range list.Plugins {
		types = append(types, p.Network.Type)
	}
	if list.Name != "flock" || !slices.Equal(types, []string{"flock", "portmap"}) {
		t.Errorf("conflist %s has plugins %v, want flock then portmap", list.Name, types)
	}
	var flock struct {
		Socket string `json:"socket"`
	}
	if err := json.Unmarshal(list.Plugins[0].Bytes, &flock); err != nil || flock.Socket != rpc.DefaultSocket {
		t.Errorf("flock's socket is not %s: %s", rpc.DefaultSocket, list.Plugins[0].Bytes)
	}
}

func TestDaemonSet(t *testing.T) {
	var ds appsv1.DaemonSet
	strict(t, documents(t, "daemonset.yaml")[0], &ds)
	pod := ds.Spec.Template.Spec
	if ds.Namespace != "flock-system" || pod.ServiceAccountName != "flock-agent" {
		t.Errorf("namespace %q, service account %q; want flock-system, flock-agent", ds.Namespace, pod.ServiceAccountName)
	}
	if !pod.HostNetwork || pod.PriorityClassName != "system-node-critical" {
		t.Errorf("hostNetwork %v, priorityClassName %q", pod.HostNetwork, pod.PriorityClassName)
	}
	if diff := cmp.Diff([]corev1.Toleration{{Operator: corev1.TolerationOpExists}}, pod.Tolerations); diff != "" {
		t.Errorf("tolerations (-want +got):\n%s", diff)
	}

	hostPaths := map[string]string{}
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	wantPaths := map[string]string{
		"run-flock": "/run/flock", "state": "/var/lib/flock", "netns": "/var/run/netns",
		"cni-bin": "/opt/cni/bin", "cni-net": "/etc/cni/net.d", "proc-sys-net": "/proc/sys/net",
	}
	if diff := cmp.Diff(wantPaths, hostPaths); diff != "" {
		t.Errorf("hostPath volumes (-want +got):\n%s", diff)
	}

	if len(pod.InitContainers) != 1 || len(pod.Containers) != 2 {
		t.Fatalf("%d init containers, %d containers; want 1 and 2", len(pod.InitContainers), len(pod.Containers))
	}
	install, agent, bird := pod.InitContainers[0], pod.Containers[0], pod.Containers[1]
	script := strings.Join(install.Command, " ")
	for _, want := range []string{"/opt/flock/bin/flock ", "/host/opt/cni/bin/flock", "/host/etc/cni/net.d/10-flock.conflist", "/opt/flock/bin/portmap"} {
		if !strings.Contains(script, want) {
			t.Errorf("install-cni does not mention %s:\n%s", want, script)
		}
	}
	if c := install.SecurityContext.Capabilities; c == nil || len(c.Add) != 0 || !slices.Equal(c.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("install-cni capabilities %+v, want all dropped", c)
	}

	env := map[string]string{}
	for _, e := range agent.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			env[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	if diff := cmp.Diff(map[string]string{"NODE_NAME": "spec.nodeName", "POD_NAMESPACE": "metadata.namespace"}, env); diff != "" || len(agent.Env) != 2 {
		t.Errorf("agent env from fields (-want +got):\n%s", diff)
	}
	for _, want := range []string{"--socket=" + rpc.DefaultSocket, "--admin-socket=" + admin.DefaultSocket, "--bird-config=/run/flock/bird/bird.conf", "--bird-socket=/run/flock/bird/bird.ctl"} {
		if !slices.Contains(agent.Args, want) {
			t.Errorf("agent args %v do not set %s", agent.Args, want)
		}
	}
	mounts := func(c corev1.Container) map[string]string {
		m := map[string]string{}
		for _, vm := range c.VolumeMounts {
			m[vm.Name] = vm.MountPath
			if vm.MountPropagation != nil {
				m[vm.Name] += " " + string(*vm.MountPropagation)
			}
		}
		return m
	}
	if diff := cmp.Diff(map[string]string{
		"run-flock": "/run/flock", "state": "/var/lib/flock", "netns": "/var/run/netns HostToContainer", "proc-sys-net": "/host/proc/sys/net",
	}, mounts(agent)); diff != "" {
		t.Errorf("agent mounts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"run-flock": "/run/flock"}, mounts(bird)); diff != "" {
		t.Errorf("bird mounts (-want +got):\n%s", diff)
	}
	if cmd := strings.Join(bird.Command, " "); !strings.Contains(cmd, "exec bird -f -R -c /run/flock/bird/bird.conf -s /run/flock/bird/bird.ctl") {
		t.Errorf("bird command %q", cmd)
	}
	// Least privilege: the agent and BIRD get exactly the capabilities the
	// lab runs them with (and every lab test passes with).
	asc := agent.SecurityContext
	if asc == nil || asc.Privileged == nil || *asc.Privileged || asc.Capabilities == nil ||
		!slices.Equal(asc.Capabilities.Drop, []corev1.Capability{"ALL"}) || !slices.Equal(caps(asc.Capabilities.Add), lab.AgentCapabilities) {
		t.Errorf("agent securityContext %+v, want privileged: false with exactly %v", asc, lab.AgentCapabilities)
	}
	// The Service ranges anycast may not claim: set, and one CIDR of each
	// family (the agent refuses a bad entry at start; an empty flag would
	// reserve nothing).
	var services []string
	for _, a := range agent.Args {
		if v, ok := strings.CutPrefix(a, "--service-cidrs="); ok {
			services = strings.Split(v, ",")
		}
	}
	fams := map[bool]int{}
	for _, c := range services {
		p, err := netip.ParsePrefix(c)
		if err != nil || p != p.Masked() {
			t.Errorf("agent --service-cidrs entry %q is not a CIDR (%v)", c, err)
			continue
		}
		fams[p.Addr().Is4()]++
	}
	if fams[true] != 1 || fams[false] != 1 {
		t.Errorf("agent --service-cidrs %v, want one IPv6 and one IPv4 Service range", services)
	}
	if !slices.Contains(agent.Args, "--proc-sys=/host/proc/sys") {
		t.Errorf("agent args %v do not write sysctls through the /host/proc/sys/net mount", agent.Args)
	}
	for _, p := range []struct {
		probe *corev1.Probe
		path  string
	}{{agent.LivenessProbe, "/healthz"}, {agent.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Host != "127.0.0.1" ||
			p.probe.HTTPGet.Port.IntValue() != 9983 || !slices.Contains(agent.Args, "--metrics-addr=127.0.0.1:9983") {
			t.Errorf("agent probe for %s: %+v; want an HTTP GET of 127.0.0.1:9983%s, where --metrics-addr serves", p.path, p.probe, p.path)
		}
	}
	sc := bird.SecurityContext
	if sc == nil || (sc.Privileged != nil && *sc.Privileged) || sc.Capabilities == nil ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		!slices.Equal(caps(sc.Capabilities.Add), lab.BIRDCapabilities) {
		t.Errorf("bird securityContext %+v, want unprivileged with NET_ADMIN and NET_BIND_SERVICE only", sc)
	}
}

func caps(cs []corev1.Capability) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c)
	}
	return out
}

// The Dockerfile puts the binaries where the DaemonSet runs them from.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(deployDir(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	for _, want := range []string{
		"FROM golang:1.26 AS build", "FROM debian:bookworm-slim", "bird2", "nftables", "iproute2",
		"./cmd/flock ./cmd/flock-agent", "plugins/meta/portmap",
		"COPY --from=build /out/flock /out/portmap /opt/flock/bin/",
		"COPY --from=build /out/flock-agent /usr/local/bin/flock-agent",
		"./cmd/flock-agent ./cmd/flockctl", "COPY --from=build /out/flockctl /usr/local/bin/flockctl",
		"./cmd/flock-controller", "COPY --from=build /out/flock-controller /usr/local/bin/flock-controller",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

func TestRBACRules(t *testing.T) {
	docs := documents(t, "rbac.yaml")
	if len(docs) != 6 {
		t.Fatalf("rbac.yaml has %d documents, want Namespace, ServiceAccount, ClusterRole, ClusterRoleBinding, Role, RoleBinding", len(docs))
	}
	var (
		ns             corev1.Namespace
		sa             corev1.ServiceAccount
		role           rbacv1.ClusterRole
		binding        rbacv1.ClusterRoleBinding
		nsRole         rbacv1.Role
		nsRoleBinding  rbacv1.RoleBinding
		wantSubject    = rbacv1.Subject{Kind: "ServiceAccount", Name: "flock-agent", Namespace: "flock-system"}
		sameSubjectsAs = func(s []rbacv1.Subject) bool { return len(s) == 1 && s[0] == wantSubject }
	)
	strict(t, docs[0], &ns)
	strict(t, docs[1], &sa)
	strict(t, docs[2], &role)
	strict(t, docs[3], &binding)
	strict(t, docs[4], &nsRole)
	strict(t, docs[5], &nsRoleBinding)
	if ns.Kind != "Namespace" || ns.Name != "flock-system" {
		t.Errorf("first document: %s %s, want the Namespace flock-system", ns.Kind, ns.Name)
	}
	if sa.Kind != "ServiceAccount" || sa.Name != "flock-agent" || sa.Namespace != "flock-system" {
		t.Errorf("ServiceAccount %s %s/%s", sa.Kind, sa.Namespace, sa.Name)
	}
	grants := func(rules []rbacv1.PolicyRule) []string {
		var got []string
		for _, r := range rules {
			if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
				t.Errorf("unexpected rule %+v", r)
			}
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						got = append(got, g+"/"+res+":"+v)
					}
				}
			}
		}
		sort.Strings(got)
		return got
	}
	want := slices.Clone(agentRules)
	sort.Strings(want)
	if diff := cmp.Diff(want, grants(role.Rules)); diff != "" {
		t.Errorf("ClusterRole grants (-want +got):\n%s", diff)
	}
	if binding.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name}) || !sameSubjectsAs(binding.Subjects) {
		t.Errorf("ClusterRoleBinding %+v %+v", binding.RoleRef, binding.Subjects)
	}
	if nsRole.Kind != "Role" || nsRole.Namespace != "flock-system" {
		t.Errorf("Role %s in namespace %q, want a Role in flock-system", nsRole.Kind, nsRole.Namespace)
	}
	if diff := cmp.Diff(agentNamespaceRules, grants(nsRole.Rules)); diff != "" {
		t.Errorf("Role grants (-want +got):\n%s", diff)
	}
	if nsRoleBinding.Kind != "RoleBinding" || nsRoleBinding.Namespace != "flock-system" ||
		nsRoleBinding.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: nsRole.Name}) || !sameSubjectsAs(nsRoleBinding.Subjects) {
		t.Errorf("RoleBinding %s/%s %+v %+v", nsRoleBinding.Namespace, nsRoleBinding.Name, nsRoleBinding.RoleRef, nsRoleBinding.Subjects)
	}
}

func TestControllerRBACRules(t *testing.T) {
	docs := documents(t, "controller-rbac.yaml")
	if len(docs) != 5 {
		t.Fatalf("controller-rbac.yaml has %d documents, want ServiceAccount, ClusterRole, ClusterRoleBinding, Role, RoleBinding", len(docs))
	}
	var (
		sa            corev1.ServiceAccount
		role          rbacv1.ClusterRole
		binding       rbacv1.ClusterRoleBinding
		nsRole        rbacv1.Role
		nsRoleBinding rbacv1.RoleBinding
		subject       = rbacv1.Subject{Kind: "ServiceAccount", Name: "flock-controller", Namespace: "kube-system"}
	)
	strict(t, docs[0], &sa)
	strict(t, docs[1], &role)
	strict(t, docs[2], &binding)
	strict(t, docs[3], &nsRole)
	strict(t, docs[4], &nsRoleBinding)
	grants := func(rules []rbacv1.PolicyRule, named bool) []string {
		var got []string
		for _, r := range rules {
			names := r.ResourceNames
			if len(names) == 0 {
				names = []string{"-"}
			}
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						for _, n := range names {
							if named {
								got = append(got, g+"/"+res+":"+v+":"+n)
							} else if n == "-" {
								got = append(got, g+"/"+res+":"+v)
							} else {
								t.Errorf("ClusterRole rule names %s", n)
							}
						}
					}
				}
			}
		}
		sort.Strings(got)
		return got
	}
	want := slices.Clone(controllerRules)
	sort.Strings(want)
	if diff := cmp.Diff(want, grants(role.Rules, false)); diff != "" {
		t.Errorf("ClusterRole grants (-want +got):\n%s", diff)
	}
	want = slices.Clone(controllerLeaseRules)
	sort.Strings(want)
	if diff := cmp.Diff(want, grants(nsRole.Rules, true)); diff != "" {
		t.Errorf("Role grants (-want +got):\n%s", diff)
	}
	if sa.Name != subject.Name || sa.Namespace != subject.Namespace || nsRole.Namespace != "kube-system" ||
		binding.RoleRef.Name != role.Name || len(binding.Subjects) != 1 || binding.Subjects[0] != subject ||
		nsRoleBinding.RoleRef.Name != nsRole.Name || len(nsRoleBinding.Subjects) != 1 || nsRoleBinding.Subjects[0] != subject {
		t.Errorf("ServiceAccount %s/%s, bindings %+v %+v, %+v %+v", sa.Namespace, sa.Name, binding.RoleRef, binding.Subjects, nsRoleBinding.RoleRef, nsRoleBinding.Subjects)
	}
	var d appsv1.Deployment
	strict(t, documents(t, "controller.yaml")[0], &d)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 || d.Spec.Template.Spec.ServiceAccountName != sa.Name || !d.Spec.Template.Spec.HostNetwork {
		t.Errorf("Deployment: replicas %v, serviceAccount %q, hostNetwork %v; want 2, %s, true (no pod network before NodeConfigs exist)",
			d.Spec.Replicas, d.Spec.Template.Spec.ServiceAccountName, d.Spec.Template.Spec.HostNetwork, sa.Name)
	}
}
