package kube

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestClusterAgainstAPIServer runs the NetworkPolicy informers as the
// agent's ServiceAccount against a real API server with deploy/rbac.yaml:
// they sync (RBAC grants what they call), see what the admin creates, and
// the GET fallback works.
func TestClusterAgainstAPIServer(t *testing.T) {
	c := startCluster(t)
	c.createNodes(t, "node-1")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	admin := c.admin
	if _, err := admin.CoreV1().Namespaces().Update(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: "demo", Labels: map[string]string{"team": "a"}}}, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.NetworkingV1().NetworkPolicies("demo").Create(ctx, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "deny"},
		Spec:       networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := c.createPod(t, "web", "node-1", nil)
	p.Labels = map[string]string{"app": "web"}
	if _, err := admin.CoreV1().Pods("demo").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	cl := NewCluster(c.agent)
	go cl.Run(ctx)
	eventually(t, "NetworkPolicy informers synced as the agent", cl.HasSynced)
	eventually(t, "the pod's labels", func() bool {
		for _, p := range cl.Input(nil).Pods {
			if p.Key() == "demo/web" && p.Labels["app"] == "web" {
				return true
			}
		}
		return false
	})
	in := cl.Input(nil)
	var ns *string
	for _, n := range in.Namespaces {
		if n.Name == "demo" && n.Labels["team"] == "a" {
			ns = &n.Name
		}
	}
	if ns == nil {
		t.Errorf("namespace demo with its labels not in %+v", in.Namespaces)
	}
	// The API server stores an empty ingress list as none, and defaults
	// policyTypes.
	if len(in.Policies) != 1 || in.Policies[0].Spec.Ingress != nil || len(in.Policies[0].Spec.PolicyTypes) != 1 {
		t.Errorf("policies %+v", in.Policies)
	}
	// A pod the cache has not seen yet is fetched with the agent's GET.
	other := c.createPod(t, "late", "node-1", nil)
	got, err := cl.Pod(context.Background(), "demo", "late", string(other.UID))
	if err != nil || got.UID != string(other.UID) || got.Node != "node-1" {
		t.Errorf("Pod(demo/late) = %+v, %v", got, err)
	}
}
