package deploy

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// kubectl runs the machine's kubectl against the test's API server.
func kubectl(ctx context.Context, t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", controlPlane(t).Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Everything in deploy/ passes the API server's validation and admission.
func TestApplyDryRun(t *testing.T) {
	controlPlane(t) // installs the CRD, as an operator applies it first
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A server dry run creates nothing, so the objects in flock-system
	// would find no namespace; a real apply creates it first (kustomize
	// puts Namespaces first).
	if out, err := kubectl(ctx, t, "create", "namespace", "flock-system"); err != nil && !strings.Contains(out, "AlreadyExists") {
		t.Fatalf("kubectl create namespace flock-system: %v\n%s", err, out)
	}
	out, err := kubectl(ctx, t, "apply", "--dry-run=server", "-k", deployDir(t))
	if err != nil {
		t.Fatalf("kubectl apply --dry-run=server -k deploy/: %v\n%s", err, out)
	}
	for _, want := range []string{
		"customresourcedefinition.apiextensions.k8s.io/nodeconfigs.flock.fritzlab.net",
		"namespace/flock-system",
		"serviceaccount/flock-agent",
		"clusterrole.rbac.authorization.k8s.io/flock-agent",
		"clusterrolebinding.rbac.authorization.k8s.io/flock-agent",
		"role.rbac.authorization.k8s.io/flock-agent",
		"rolebinding.rbac.authorization.k8s.io/flock-agent",
		"validatingadmissionpolicy.admissionregistration.k8s.io/flock-agent-own-node",
		"validatingadmissionpolicybinding.admissionregistration.k8s.io/flock-agent-own-node",
		"configmap/flock-cni-",
		"daemonset.apps/flock-agent",
		"customresourcedefinition.apiextensions.k8s.io/nodepools.flock.fritzlab.net",
		"customresourcedefinition.apiextensions.k8s.io/serviceaddresspools.flock.fritzlab.net",
		"serviceaccount/flock-controller",
		"clusterrole.rbac.authorization.k8s.io/flock-controller",
		"role.rbac.authorization.k8s.io/flock-controller",
		"deployment.apps/flock-controller",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply did not report %s:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "(server dry run)"); n != 19 {
		t.Errorf("%d objects dry-run applied, want 19:\n%s", n, out)
	}
}

// The ServiceAccount may do exactly what agentRules lists: every other verb
// on those resources, and the neighbours an agent might be tempted to use,
// are denied. Asked of the real RBAC authorizer.
func TestRBACAuthorizesExactlyTheAgentsCalls(t *testing.T) {
	cp := controlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := kubectl(ctx, t, "apply", "-f", deployDir(t)+"/rbac.yaml"); err != nil {
		t.Fatalf("kubectl apply -f deploy/rbac.yaml: %v\n%s", err, out)
	}
	// Everything but the Namespace goes again: the test's control plane has
	// no namespace controller to finish deleting it.
	t.Cleanup(func() {
		kubectl(context.Background(), t, "delete", "--ignore-not-found", "clusterrole/flock-agent", "clusterrolebinding/flock-agent")
		kubectl(context.Background(), t, "delete", "--ignore-not-found", "-n", "flock-system", "serviceaccount/flock-agent", "role/flock-agent", "rolebinding/flock-agent")
	})
	client, err := kubernetes.NewForConfig(cp.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	allowedIn := func(namespace, group, resource, subresource, verb string) bool {
		t.Helper()
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   "system:serviceaccount:flock-system:flock-agent",
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:flock-system", "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: namespace, Group: group, Resource: resource, Subresource: subresource, Verb: verb,
			},
		}}
		got, err := client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("subject access review: %v", err)
		}
		return got.Status.Allowed
	}
	allowed := func(group, resource, subresource, verb string) bool {
		t.Helper()
		return allowedIn("default", group, resource, subresource, verb)
	}
	// The authorizer learns of the new bindings through its informers.
	for !allowed("flock.fritzlab.net", "nodeconfigs", "", "watch") || !allowedIn("flock-system", "", "secrets", "", "get") {
		select {
		case <-ctx.Done():
			t.Fatal("the ClusterRoleBinding or the RoleBinding never took effect")
		case <-time.After(100 * time.Millisecond):
		}
	}

	want := map[string]bool{}
	for _, r := range agentRules {
		want[r] = true
	}
	verbs := []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
	for _, res := range []struct{ group, resource, sub string }{
		{"flock.fritzlab.net", "nodeconfigs", ""},
		{"flock.fritzlab.net", "nodeconfigs", "status"},
		{"", "pods", ""},
		{"", "pods", "status"},
		{"", "pods", "exec"},
		{"", "events", ""},
		{"events.k8s.io", "events", ""},
		{"", "nodes", ""},
		{"", "nodes", "status"},
		{"", "secrets", ""},
		{"", "configmaps", ""},
		{"", "services", ""},
		{"", "services", "status"},
		{"", "endpoints", ""},
		{"discovery.k8s.io", "endpointslices", ""},
		{"flock.fritzlab.net", "serviceaddresspools", ""},
		{"flock.fritzlab.net", "serviceaddresspools", "status"},
		{"networking.k8s.io", "networkpolicies", ""},
		{"networking.k8s.io", "networkpolicies", "status"},
		{"", "namespaces", ""},
		{"", "namespaces", "status"},
		{"", "serviceaccounts", "token"},
	} {
		name := res.resource
		if res.sub != "" {
			name += "/" + res.sub
		}
		for _, v := range verbs {
			key := res.group + "/" + name + ":" + v
			if got := allowed(res.group, res.resource, res.sub, v); got != want[key] {
				t.Errorf("%s allowed = %v, want %v", key, got, want[key])
			}
		}
	}

	// In its own namespace the agent may also GET a Secret (a BGP
	// password), and nothing more of Secrets; the rest as everywhere.
	for r := range want {
		delete(want, r)
	}
	for _, r := range append(slices.Clone(agentRules), agentNamespaceRules...) {
		want[r] = true
	}
	for _, res := range []struct{ group, resource string }{{"", "secrets"}, {"", "configmaps"}, {"", "pods"}, {"", "serviceaccounts"}} {
		for _, v := range verbs {
			key := res.group + "/" + res.resource + ":" + v
			if got := allowedIn("flock-system", res.group, res.resource, "", v); got != want[key] {
				t.Errorf("in flock-system: %s allowed = %v, want %v", key, got, want[key])
			}
		}
	}
	// kube-system (the cluster's own Secrets: tokens, certificates) is just
	// another namespace: no Secret there, with any verb.
	for _, v := range verbs {
		if allowedIn("kube-system", "", "secrets", "", v) {
			t.Errorf("in kube-system: /secrets:%s allowed, want denied", v)
		}
	}
}
