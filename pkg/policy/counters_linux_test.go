package policy

import (
	"context"
	"testing"

	"github.com/fritzlab/flock/pkg/policy/nptest"
	networkingv1 "k8s.io/api/networking/v1"
)

// A pod under default deny, probed five times by a pod of another
// namespace: its ingress drop counter reads at least 5, the sender (not
// restricted) has none, and the count survives a reload of the table.
func TestKernelDropCounters(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	l := newLab(t)
	a := l.addPod(t, "x", "a", map[string]string{"pod": "a"}, 10)
	b := l.addPod(t, "y", "b", map[string]string{"pod": "b"}, 11)
	in := l.input()
	in.Policies = []networkingv1.NetworkPolicy{nptest.Policy("x", "deny", nil)}
	ap := NewApplier(l.nft)
	if _, err := ap.Apply(ctx, Translate(in)); err != nil {
		t.Fatal(err)
	}
	ingressOf := func(iface string) (uint64, bool) {
		t.Helper()
		drops, err := ap.Drops(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range drops {
			if d.Iface == b.Iface {
				t.Errorf("unrestricted pod b has a drop counter: %+v", d)
			}
			if d.Iface == iface && d.Ingress {
				return d.Packets, true
			}
		}
		return 0, false
	}
	if n, ok := ingressOf(a.Iface); !ok || n != 0 {
		t.Fatalf("before any probe: a's ingress counter %d, %v; want 0, present", n, ok)
	}
	for range 5 {
		got, err := probe(b.path(), UDP, a.IPs[1], 80)
		if err != nil || got {
			t.Fatalf("probe b -> a under default deny = %v, %v; want dropped", got, err)
		}
	}
	n, _ := ingressOf(a.Iface)
	if n < 5 {
		t.Errorf("a's ingress drop counter = %d after 5 dropped probes, want at least 5", n)
	}

	// A new model replaces the table; the count carries over.
	in.Policies = append(in.Policies, nptest.Policy("y", "deny-b", nptest.Labels("pod", "b")))
	if changed, err := ap.Apply(ctx, Translate(in)); err != nil || !changed {
		t.Fatalf("Apply of a new model = %v, %v", changed, err)
	}
	if after, _ := ingressOf(a.Iface); after < n {
		t.Errorf("after a reload a's counter = %d, was %d: the count must not go back", after, n)
	}
}
