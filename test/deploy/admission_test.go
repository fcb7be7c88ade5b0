package deploy

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/internal/lab/controlplane"
)

// deploy/admission.yaml scopes the agent's writes to its own node, checked
// by the real kube-apiserver with real service account tokens: one bound to
// a pod on node A may patch node A's NodeConfig status and Node status, and
// neither of node B's; a token bound to no pod (no node in it) may patch
// neither. RBAC alone allows all four.
func TestAdmissionScopesWritesToOwnNode(t *testing.T) {
	cp := controlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := controlplane.ApplyFiles(ctx, cp.RESTConfig(), deployDir(t)+"/rbac.yaml", deployDir(t)+"/admission.yaml"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		kubectl(context.Background(), t, "delete", "--ignore-not-found", "-f", deployDir(t)+"/admission.yaml")
	})
	admin, err := kubernetes.NewForConfig(cp.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	adminDyn, err := dynamic.NewForConfig(cp.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	const ns = v1alpha1.DefaultNamespace
	nodeA, nodeB := "vap-node-a", "vap-node-b"
	for _, n := range []string{nodeA, nodeB} {
		if _, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		nc := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": v1alpha1.SchemeGroupVersion.String(), "kind": v1alpha1.NodeConfigKind,
			"metadata": map[string]any{"name": n}, "spec": map[string]any{"cidr6": "2001:db8:77:" + map[string]string{nodeA: "a", nodeB: "b"}[n] + "::/64"},
		}}
		if _, err := adminDyn.Resource(v1alpha1.NodeConfigGVR).Create(ctx, nc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The agent's pod on node A; it never runs (there is no kubelet), but
	// its token carries its node as a real agent's does.
	pod, err := admin.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "flock-agent-vap"},
		Spec: corev1.PodSpec{NodeName: nodeA, ServiceAccountName: "flock-agent",
			Containers: []corev1.Container{{Name: "agent", Image: "flock:latest"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	token := func(bound *authenticationv1.BoundObjectReference) *kubernetes.Clientset {
		t.Helper()
		tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "flock-agent", &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{BoundObjectRef: bound},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("token request: %v", err)
		}
		cfg := rest.AnonymousClientConfig(cp.RESTConfig())
		cfg.BearerToken = tr.Status.Token
		c, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	agentA := token(&authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID})
	unbound := token(nil)

	// The agent's own two writes, as pkg/kube makes them.
	patchNodeConfig := func(c *kubernetes.Clientset, name string) error {
		patch, _ := json.Marshal(map[string]any{"status": map[string]any{"observedGeneration": 1}})
		return c.RESTClient().Patch(types.MergePatchType).AbsPath("/apis", v1alpha1.Group, v1alpha1.Version, "nodeconfigs", name, "status").
			Body(patch).Do(ctx).Error()
	}
	patchNode := func(c *kubernetes.Clientset, name string) error {
		patch, _ := json.Marshal(map[string]any{"status": map[string]any{"conditions": []any{map[string]any{
			"type": "NetworkUnavailable", "status": "False", "reason": "FlockReady", "message": "test",
			"lastTransitionTime": metav1.Now().UTC().Format(time.RFC3339)}}}})
		_, err := c.CoreV1().Nodes().Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
		return err
	}
	writes := map[string]func(*kubernetes.Clientset, string) error{"nodeconfigs/status": patchNodeConfig, "nodes/status": patchNode}

	// The API server loads the policy through an informer: wait until the
	// first write it must deny is denied.
	deadline := time.Now().Add(time.Minute)
	for err := patchNodeConfig(agentA, nodeB); !apierrors.IsForbidden(err); err = patchNodeConfig(agentA, nodeB) {
		if time.Now().After(deadline) {
			t.Fatalf("agent on %s patching %s's NodeConfig status: %v, want forbidden by the policy", nodeA, nodeB, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for what, write := range writes {
		if err := write(agentA, nodeA); err != nil {
			t.Errorf("agent on %s, its own %s: %v", nodeA, what, err)
		}
		err := write(agentA, nodeB)
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "flock-agent on node "+nodeA+" may write the status of its own node only, not of "+strings.TrimSuffix(what, "/status")+" "+nodeB) {
			t.Errorf("agent on %s, %s of %s: %v, want forbidden naming both nodes", nodeA, what, nodeB, err)
		}
		for _, n := range []string{nodeA, nodeB} {
			if err := write(unbound, n); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "no node-name in its token") {
				t.Errorf("token bound to no pod, %s of %s: %v, want forbidden", what, n, err)
			}
		}
	}
	// Everyone else is left alone: the admin writes node B's status.
	if err := patchNodeConfig(admin, nodeB); err != nil {
		t.Errorf("admin patching %s's NodeConfig status: %v", nodeB, err)
	}
}
