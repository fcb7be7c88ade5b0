// Package nodepool tests flock-controller against a real kube-apiserver:
// the binary itself, as replicas of the Deployment run it, with the RBAC
// of deploy/controller-rbac.yaml, several at once competing for the Lease.
package nodepool

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/internal/lab/controlplane/controlplanetest"
)

var shared = controlplanetest.Controller{Name: "nodepool"}

func TestMain(m *testing.M) { shared.Main(m) }

// harness is the shared control plane with the controller's RBAC and a
// built flock-controller (controlplanetest.Controller), used by the
// package's tests one after the other.
type harness struct {
	*controlplanetest.ControllerEnv
	cs kubernetes.Interface
	dc dynamic.Interface
}

func setup(t *testing.T) *harness {
	t.Helper()
	e := shared.Get(t)
	return &harness{ControllerEnv: e, cs: e.Kube, dc: e.Dynamic}
}

var waitFor = controlplanetest.WaitFor

// createPool creates a NodePool selecting the Nodes labelled pool=name.
func (h *harness) createPool(t *testing.T, name string, spec v1alpha1.NodePoolSpec) {
	t.Helper()
	spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"pool": name}}
	np := &v1alpha1.NodePool{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: v1alpha1.NodePoolKind},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       spec,
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(np)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.dc.Resource(v1alpha1.NodePoolGVR).Create(context.Background(), &unstructured.Unstructured{Object: m}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) createNode(t *testing.T, pool, name string) {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"pool": pool}}}
	if _, err := h.cs.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
		t.Error(err)
	}
}

// createNodes creates the Nodes all at once, each from its own goroutine.
func (h *harness) createNodes(t *testing.T, pool string, names []string) {
	t.Helper()
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Go(func() { h.createNode(t, pool, n) })
	}
	wg.Wait()
}

func (h *harness) deleteNode(t *testing.T, name string) {
	t.Helper()
	if err := h.cs.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// configs returns the NodeConfigs of pool's label, by name.
func (h *harness) configs(t *testing.T, pool string) map[string]*v1alpha1.NodeConfig {
	t.Helper()
	list, err := h.dc.Resource(v1alpha1.NodeConfigGVR).List(context.Background(),
		metav1.ListOptions{LabelSelector: v1alpha1.LabelNodePool + "=" + pool})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*v1alpha1.NodeConfig{}
	for _, u := range list.Items {
		nc := &v1alpha1.NodeConfig{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, nc); err != nil {
			t.Fatal(err)
		}
		out[nc.Name] = nc
	}
	return out
}

// checkDistinct fails the test when two NodeConfigs' pools overlap or one
// lies outside the pool's ranges.
func checkDistinct(t *testing.T, ncs map[string]*v1alpha1.NodeConfig, range6, range4 string) {
	t.Helper()
	r6, r4 := netip.MustParsePrefix(range6), netip.MustParsePrefix(range4)
	owner := map[netip.Prefix]string{}
	for name, nc := range ncs {
		for _, s := range []string{nc.Spec.CIDR6, nc.Spec.CIDR4} {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				t.Errorf("%s: pool %q: %v", name, s, err)
				continue
			}
			if !r6.Contains(p.Addr()) && !r4.Contains(p.Addr()) {
				t.Errorf("%s: pool %s outside %s and %s", name, p, r6, r4)
			}
			for q, other := range owner {
				if q.Overlaps(p) {
					t.Errorf("%s and %s both hold %s / %s", name, other, p, q)
				}
			}
			owner[p] = name
		}
	}
}

func names(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s-%03d", prefix, i))
	}
	return out
}

func keys[V any](m map[string]V) string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return strings.Join(k, ",")
}
