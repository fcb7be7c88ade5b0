package kube

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fritzlab/flock/pkg/model"
)

// fakeEvents records the NodeConfig Events the agent would write.
type fakeEvents struct {
	mu  sync.Mutex
	got []string // uid type reason: message
}

func (f *fakeEvents) NodeConfigEvent(uid, eventType, reason, message string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, uid+" "+eventType+" "+reason+": "+message)
}

func (f *fakeEvents) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

func createdAt(u *unstructured.Unstructured, t time.Time) *unstructured.Unstructured {
	u.SetCreationTimestamp(metav1.NewTime(t))
	return u
}

// A NodeConfig whose pool overlaps an older NodeConfig's is rejected,
// naming the other, with an Event; it is accepted again as soon as the
// other one moves away, and an unrelated change wakes nobody.
func TestNodeConfigPoolOverlap(t *testing.T) {
	ctx := t.Context()
	dyn := newFakeDynamic()
	ncs := dyn.Resource(NodeConfigResource)
	t0 := time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)
	if _, err := ncs.Create(ctx, createdAt(nodeConfig("node-1", 1, map[string]any{"cidr6": "2001:db8:42::/48", "cidr4": "10.42.1.0/24"}), t0), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ncs.Create(ctx, createdAt(nodeConfig("node-3", 1, map[string]any{"cidr6": "2001:db8:43:3::/64"}), t0), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	setSpec := func(name string, spec map[string]any) {
		t.Helper()
		u, err := ncs.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		u.Object["spec"] = spec
		if _, err := ncs.Update(ctx, u, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ev := &fakeEvents{}
	c := NewNodeConfigs(dyn, "node-2", discard)
	c.SetEvents(ev)
	go c.Run(ctx)
	eventually(t, "sync", c.HasSynced)
	nc2 := createdAt(nodeConfig("node-2", 1, map[string]any{"cidr6": "2001:db8:42:2::/64", "cidr4": "10.42.2.0/24"}), t0.Add(time.Hour))
	nc2.SetUID("uid-2")
	if _, err := ncs.Create(ctx, nc2, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const msg = "nodeconfig node-2: spec.cidr6 2001:db8:42:2::/64 overlaps spec.cidr6 2001:db8:42::/48 of NodeConfig node-1, which is older: pools of different nodes must not overlap"
	eventually(t, "the overlap rejected", func() bool {
		_, err := c.Node(ctx)
		o, ok := errors.AsType[*model.OverlapError](err)
		return ok && o.Other == "node-1" && err.Error() == msg
	})
	eventually(t, "Accepted=False", func() bool {
		cond, _ := accepted(t, dyn, "node-2")
		return cond != nil && cond.Status == metav1.ConditionFalse && cond.Reason == ReasonPoolOverlap && cond.Message == msg
	})
	if got, want := ev.list(), []string{"uid-2 Warning PoolOverlap: " + msg}; !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}

	// Another node's unrelated change: still rejected, no new Event, no poke.
	drain(c.Changes())
	setSpec("node-3", map[string]any{"cidr6": "2001:db8:43:33::/64"})
	eventually(t, "the pools informer to see node-3's change", func() bool {
		return slices.ContainsFunc(c.otherPools(), func(p model.Pools) bool { return p.Pool6.String() == "2001:db8:43:33::/64" })
	})
	select {
	case <-c.Changes():
		t.Error("an unrelated NodeConfig change poked the agent")
	default:
	}
	if len(ev.list()) != 1 {
		t.Errorf("events after an unrelated change: %q", ev.list())
	}

	// node-1 moves away: node-2 is accepted without any change of its own.
	setSpec("node-1", map[string]any{"cidr6": "2001:db8:42:1::/64", "cidr4": "10.42.1.0/24"})
	eventually(t, "node-2 accepted", func() bool { n, err := c.Node(ctx); return err == nil && n.Pool6.String() == "2001:db8:42:2::/64" })
	eventually(t, "Accepted=True", func() bool {
		cond, _ := accepted(t, dyn, "node-2")
		return cond != nil && cond.Status == metav1.ConditionTrue
	})

	// An IPv4 overlap with node-1 again: rejected, a second Event.
	setSpec("node-1", map[string]any{"cidr6": "2001:db8:42:1::/64", "cidr4": "10.42.0.0/16"})
	eventually(t, "the IPv4 overlap rejected", func() bool {
		_, err := c.Node(ctx)
		o, ok := errors.AsType[*model.OverlapError](err)
		return ok && o.Field == "spec.cidr4"
	})
	if n := len(ev.list()); n != 2 {
		t.Errorf("%d events, want 2: %q", n, ev.list())
	}
}

// The pools informer keeps only what the overlap check reads.
func TestSlimPools(t *testing.T) {
	u := createdAt(nodeConfig("node-1", 3, map[string]any{"cidr6": "2001:db8:42::/48", "cidr4": "10.42.1.0/24",
		"bgp": map[string]any{"asn": int64(65101)}}), time.Unix(1e9, 0))
	u.SetAnnotations(map[string]string{"big": "value"})
	u.Object["status"] = map[string]any{"observedGeneration": int64(3)}
	obj, err := slimPools(u)
	if err != nil {
		t.Fatal(err)
	}
	s := obj.(*unstructured.Unstructured)
	if _, ok := s.Object["status"]; ok || s.GetAnnotations() != nil || len(s.Object["spec"].(map[string]any)) != 2 {
		t.Errorf("slim object keeps too much: %v", s.Object)
	}
	if got, want := poolsOf(s), poolsOf(u); got != want || !got.Pool4.IsValid() || !got.Created.Equal(time.Unix(1e9, 0)) {
		t.Errorf("pools of the slim object %+v, of the object %+v", got, want)
	}
}
