package policy

import (
	"context"
	"slices"
	"testing"

	"github.com/fritzlab/flock/pkg/policy/nptest"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// TestKernelAdd: a pod added with Add gets its own rules at once, in the
// kernel, while the rules of the pods already there still leave it out
// (failing closed) until the next Apply, which then loads exactly what a
// fresh load of the whole model would.
func TestKernelAdd(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	l := newLab(t)
	l.addPod(t, "x", "a", map[string]string{"pod": "a"}, 10)
	l.addPod(t, "x", "b", map[string]string{"pod": "b"}, 11)
	c := l.addPod(t, "y", "c", map[string]string{"pod": "c"}, 12)
	policies := []networkingv1.NetworkPolicy{
		// c receives only from a, on TCP 80, and sends only to x on 81.
		nptest.Policy("y", "c", nptest.Labels("pod", "c"), nptest.Types(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress),
			nptest.Ingress(nptest.Peers(nptest.PodPeer(nptest.Labels("pod", "a")), nptest.NSPeer(nptest.Labels(nsNameLabel, "x"))), nptest.Port("", 80)),
			nptest.Egress(nptest.Peers(nptest.NSPeer(nptest.Labels(nsNameLabel, "x"))), nptest.Port("", 81), nptest.Port(corev1.ProtocolUDP, 81))),
		// a receives only from c; b is unrestricted.
		nptest.Policy("x", "a", nptest.Labels("pod", "a"), nptest.Ingress(nptest.Peers(nptest.NSPeer(nptest.Labels(nsNameLabel, "y"))))),
	}
	all := l.input()
	all.Policies = policies
	// Before c's ADD the cluster does not know c at all.
	before := l.input()
	before.Policies = policies
	before.Pods = slices.DeleteFunc(before.Pods, func(p Pod) bool { return p.Name == "c" })
	// c's ADD translates the whole cluster with c the only local pod.
	onlyC := l.input()
	onlyC.Policies = policies
	for i := range onlyC.Pods {
		if onlyC.Pods[i].Name != "c" {
			onlyC.Pods[i].Iface = ""
		}
	}

	ap := NewApplier(l.nft)
	mBefore := Translate(before)
	if _, err := ap.Apply(ctx, mBefore); err != nil {
		t.Fatal(err)
	}
	mc := Translate(onlyC)
	if len(mc.Pods) != 1 || mc.Pods[0].Iface != c.Iface {
		t.Fatalf("translation for c's ADD: %+v", mc.Pods)
	}
	if ok, err := ap.Add(ctx, mc); !ok || err != nil {
		t.Fatalf("Add = %v, %v", ok, err)
	}
	added := &Model{Pods: append(slices.Clone(mBefore.Pods), mc.Pods...)}
	cases := l.modelCases(added)
	full := Translate(all)
	fullCases := l.modelCases(full)
	differ := 0
	for i := range cases {
		if cases[i].want != fullCases[i].want {
			differ++
		}
	}
	if differ == 0 || count(cases, true) == 0 || count(cases, false) == 0 {
		t.Fatalf("the case is too weak: %d probes differ from the full model, %d allowed, %d denied", differ, count(cases, true), count(cases, false))
	}
	runProbes(t, append(cases, l.nodeCases()...))

	if changed, err := ap.Apply(ctx, full); !changed || err != nil {
		t.Fatalf("Apply after Add = %v, %v; want a load", changed, err)
	}
	runProbes(t, fullCases)
	got := l.list(t)
	l.apply(t, full)
	if d := cmp.Diff(l.list(t), got); d != "" {
		t.Errorf("the table after Add and Apply differs from a fresh load (-fresh +got):\n%s", d)
	}
	if r, err := ap.Resync(ctx); r || err != nil {
		t.Errorf("Resync after the Apply = %v, %v; want nothing to do", r, err)
	}
}
