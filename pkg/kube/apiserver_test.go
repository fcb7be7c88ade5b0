package kube

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/internal/lab/controlplane"
	"github.com/fritzlab/flock/internal/lab/controlplane/controlplanetest"
	"github.com/fritzlab/flock/pkg/kube/apiclient"
	"github.com/fritzlab/flock/pkg/model"
)

// cluster is a real etcd and kube-apiserver with the CRD and the agent's
// RBAC installed, and clients as the admin and as the agent.
type cluster struct {
	cp                 *controlplane.ControlPlane
	admin              kubernetes.Interface
	agent              apiclient.Interface
	adminDyn, agentDyn dynamic.Interface
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	cp, token := controlplanetest.StartWithAgent(t)
	c := &cluster{cp: cp}
	agentCfg := cp.RESTConfig()
	agentCfg.BearerToken = token
	c.admin = kubernetes.NewForConfigOrDie(cp.RESTConfig())
	c.adminDyn = dynamic.NewForConfigOrDie(cp.RESTConfig())
	var err error
	if c.agent, c.agentDyn, err = apiclient.New(agentCfg); err != nil {
		t.Fatal(err)
	}
	return c
}

// createNodes creates Nodes whose network is not ready yet, as a kubelet
// would, and the namespace demo with its default ServiceAccount (no
// controller manager runs to make it).
func (c *cluster) createNodes(t *testing.T, names ...string) {
	t.Helper()
	ctx := t.Context()
	for _, name := range names {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
		n, err := c.admin.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.Status.Conditions = []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()},
			{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionTrue, Reason: "NoRouteCreated", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()},
		}
		if _, err := c.admin.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "demo"}}
	if _, err := c.admin.CoreV1().ServiceAccounts("demo").Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func (c *cluster) createPod(t *testing.T, name, node string, ann map[string]string) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: name, Annotations: ann},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "ignored"}}},
	}
	p, err := c.admin.CoreV1().Pods("demo").Create(t.Context(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// acceptedOn reads the Accepted condition and status.observedGeneration
// the API server holds.
func (c *cluster) acceptedOn(t *testing.T, name string) (*metav1.Condition, int64, int64) {
	t.Helper()
	u, err := c.adminDyn.Resource(NodeConfigResource).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	observed, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	return meta.FindStatusCondition(conditions(u), ConditionAccepted), observed, u.GetGeneration()
}

func TestAgainstAPIServer(t *testing.T) {
	c := startCluster(t)
	c.createNodes(t, "node-1", "node-2")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	src := NewSource(c.agent, c.agentDyn, "node-1", log)
	go src.Run(ctx)
	if err := src.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	ncs := c.adminDyn.Resource(NodeConfigResource)

	t.Run("nodeconfig", func(t *testing.T) {
		if _, err := src.Node(ctx); err == nil || err.Error() != "no NodeConfig for node node-1" || !errors.Is(err, model.ErrNoNodeConfig) {
			t.Fatalf("before create: %v", err)
		}
		if _, err := ncs.Create(ctx, nodeConfig("node-2", 0, map[string]any{"cidr6": "2001:db8:42:2::/64"}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := ncs.Create(ctx, nodeConfig("node-1", 0, map[string]any{"cidr6": "2001:db8:42:1::/64", "cidr4": "198.18.1.0/24"}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "create", func() bool {
			n, err := src.Node(ctx)
			return err == nil && n.Pool4 == netip.MustParsePrefix("198.18.1.0/24")
		})
		eventually(t, "Accepted=True", func() bool {
			cond, observed, gen := c.acceptedOn(t, "node-1")
			return cond != nil && cond.Status == metav1.ConditionTrue && cond.Reason == ReasonValid && cond.ObservedGeneration == gen && observed == gen
		})
		if cond, _, _ := c.acceptedOn(t, "node-2"); cond != nil {
			t.Errorf("node-1's agent wrote node-2's status: %+v", cond)
		}

		// An update takes effect without a restart, and the status follows
		// the new generation.
		update := func(spec map[string]any) error {
			u, err := ncs.Get(ctx, "node-1", metav1.GetOptions{})
			if err != nil {
				return err
			}
			u.Object["spec"] = spec
			_, err = ncs.Update(ctx, u, metav1.UpdateOptions{})
			return err
		}
		if err := update(map[string]any{"cidr6": "2001:db8:42:11::/64", "defaults": map[string]any{"ipv4": false}}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "update", func() bool {
			n, err := src.Node(ctx)
			return err == nil && n.Pool6 == netip.MustParsePrefix("2001:db8:42:11::/64") && !n.Pool4.IsValid() &&
				n.Defaults.IPv4 != nil && !*n.Defaults.IPv4
		})
		eventually(t, "Accepted=True for generation 2", func() bool {
			cond, observed, gen := c.acceptedOn(t, "node-1")
			return gen == 2 && cond != nil && cond.Status == metav1.ConditionTrue && cond.ObservedGeneration == 2 && observed == 2
		})

		// The schema rejects what the agent would reject, so a bad pool
		// never reaches the agent (the agent's own rejection and its
		// condition are tested with the fake client).
		for _, bad := range []map[string]any{
			{"cidr4": "198.18.1.0/31"},
			{"cidr6": "2001:db8:42:1::1/64"},
			{"cidr6": "fe80::/64"},
			{"cidr6": "::ffff:198.18.1.0/120"},
			{},
		} {
			if err := update(bad); err == nil || !apierrors.IsInvalid(err) {
				t.Errorf("spec %v: %v, want the schema to reject it", bad, err)
			}
		}

		if err := ncs.Delete(ctx, "node-1", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "delete", func() bool { _, err := src.Node(ctx); return errors.Is(err, model.ErrNoNodeConfig) })
		if _, err := src.Node(ctx); err.Error() != "no NodeConfig for node node-1" {
			t.Errorf("after delete: %v", err)
		}
	})

	t.Run("pods", func(t *testing.T) {
		other := c.createPod(t, "elsewhere", "node-2", nil)
		web := c.createPod(t, "web", "node-1", map[string]string{
			"flock.fritzlab.net/ip-algo": "hash",
			"flock.fritzlab.net/ipv4":    "false",
			"example.com/unrelated":      "dropped",
		})
		eventually(t, "web in the cache", func() bool { pod, err := src.pods.cached("demo", "web"); return err == nil && pod != nil })
		got, err := src.Pod(ctx, "demo", "web")
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"flock.fritzlab.net/ip-algo": "hash", "flock.fritzlab.net/ipv4": "false"}
		if got.UID != string(web.UID) || len(got.Annotations) != 2 || got.Annotations["flock.fritzlab.net/ip-algo"] != "hash" || got.Annotations["flock.fritzlab.net/ipv4"] != "false" {
			t.Errorf("Pod(demo/web) = %+v, want uid %s and annotations %v", got, web.UID, want)
		}
		obj, _, _ := src.pods.inf.GetIndexer().GetByKey("demo/web")
		if p := obj.(*corev1.Pod); len(p.Spec.Containers) != 0 || p.ManagedFields != nil || p.Spec.NodeName != "node-1" {
			t.Errorf("cached pod not stripped: %+v", p)
		}
		// Another node's pods never reach this node's cache, but a GET
		// still finds one.
		if pod, err := src.pods.cached("demo", "elsewhere"); err != nil || pod != nil {
			t.Errorf("node-2's pod in node-1's cache: %v", err)
		}
		if p, err := src.Pod(ctx, "demo", "elsewhere"); err != nil || p.UID != string(other.UID) {
			t.Errorf("Pod(demo/elsewhere) = %+v, %v", p, err)
		}
		if _, err := src.Pod(ctx, "demo", "missing"); !errors.Is(err, model.ErrPodNotFound) {
			t.Errorf("Pod(demo/missing): %v, want ErrPodNotFound", err)
		}
	})

	t.Run("event", func(t *testing.T) {
		web, err := src.Pod(ctx, "demo", "web")
		if err != nil {
			t.Fatal(err)
		}
		rec := NewRecorder(ctx, c.agent, "node-1", log)
		defer rec.Shutdown()
		msg := `annotation flock.fritzlab.net/ipv6 "maybe" is not "true" or "false"; ignored`
		rec.PodWarning(web, "FlockAnnotation", msg)
		eventually(t, "event", func() bool {
			l, err := c.admin.CoreV1().Events("demo").List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range l.Items {
				if string(e.InvolvedObject.UID) == web.UID && e.Reason == "FlockAnnotation" && e.Type == corev1.EventTypeWarning && e.Message == msg {
					return true
				}
			}
			return false
		})
		kubectl, err := exec.LookPath("kubectl")
		if err != nil {
			return
		}
		out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", c.cp.Kubeconfig, "describe", "pod", "-n", "demo", "web").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "FlockAnnotation") || !strings.Contains(string(out), `flock.fritzlab.net/ipv6 "maybe"`) {
			t.Errorf("kubectl describe pod shows no FlockAnnotation event: %v\n%s", err, out)
		}
	})

	t.Run("node condition", func(t *testing.T) {
		before := time.Now().Add(-time.Second)
		if err := SetNodeNetwork(ctx, c.agent, "node-1", nil, time.Now()); err != nil {
			t.Fatal(err)
		}
		n, err := c.admin.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cond := nodeCondition(n, corev1.NodeNetworkUnavailable)
		if cond == nil || cond.Status != corev1.ConditionFalse || cond.Reason != ReasonFlockReady || cond.Message != MessageFlockReady || cond.LastTransitionTime.Time.Before(before) {
			t.Errorf("NetworkUnavailable = %+v", cond)
		}
		if r := nodeCondition(n, corev1.NodeReady); r == nil || r.Reason != "KubeletReady" {
			t.Errorf("the patch touched the Ready condition: %+v", r)
		}
		n2, _ := c.admin.CoreV1().Nodes().Get(ctx, "node-2", metav1.GetOptions{})
		if cond := nodeCondition(n2, corev1.NodeNetworkUnavailable); cond == nil || cond.Status != corev1.ConditionTrue {
			t.Errorf("node-2 changed: %+v", cond)
		}
	})

	// The BGP passwords: a GET in the agent's namespace (flock-system, as
	// deploy/rbac.yaml has it), and nowhere else, kube-system included.
	t.Run("secrets", func(t *testing.T) {
		for _, ns := range []string{"flock-system", "kube-system", "demo"} {
			sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bgp", Labels: map[string]string{v1alpha1.LabelBGPPassword: "true"}},
				Data: map[string][]byte{"router": []byte("s3cret")}}
			if _, err := c.admin.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		own := NewSecrets(c.agent, v1alpha1.DefaultNamespace)
		if v, err := own.Value(ctx, "bgp", "router"); err != nil || v != "s3cret" {
			t.Errorf("flock-system/bgp router = %q, %v", v, err)
		}
		if _, err := own.Value(ctx, "bgp", "other"); err == nil || err.Error() != `secret flock-system/bgp has no key "other"` {
			t.Errorf("missing key: %v", err)
		}
		if _, err := own.Value(ctx, "nope", "router"); !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), "read secret flock-system/nope") {
			t.Errorf("missing secret: %v", err)
		}
		for _, ns := range []string{"kube-system", "demo"} {
			if _, err := NewSecrets(c.agent, ns).Value(ctx, "bgp", "router"); !apierrors.IsForbidden(err) {
				t.Errorf("a Secret in %s, outside the agent's namespace: %v, want forbidden", ns, err)
			}
		}
	})

	// Both conditions land on the object, each with its generation.
	t.Run("bgp condition", func(t *testing.T) {
		if _, err := ncs.Create(ctx, nodeConfig("node-1", 0, map[string]any{"cidr6": "2001:db8:42:1::/64"}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "Accepted=True", func() bool {
			cond, _, gen := c.acceptedOn(t, "node-1")
			return cond != nil && cond.Status == metav1.ConditionTrue && cond.ObservedGeneration == gen
		})
		src.SetBGPCondition(false, v1alpha1.ReasonNoBGP, "spec.bgp is not set", 0)
		eventually(t, "BGPConfigured=False", func() bool {
			u, err := c.adminDyn.Resource(NodeConfigResource).Get(ctx, "node-1", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			b := meta.FindStatusCondition(conditions(u), v1alpha1.ConditionBGPConfigured)
			a := meta.FindStatusCondition(conditions(u), ConditionAccepted)
			return b != nil && b.Status == metav1.ConditionFalse && b.Reason == v1alpha1.ReasonNoBGP &&
				b.ObservedGeneration == u.GetGeneration() && a != nil && a.Status == metav1.ConditionTrue
		})
	})
}
