package nodepool

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/fritzlab/flock/api/v1alpha1"
)

var t0 = time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)

func np(name string, age int, f func(*v1alpha1.NodePoolSpec)) *v1alpha1.NodePool {
	p := &v1alpha1.NodePool{
		ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1, CreationTimestamp: metav1.NewTime(t0.Add(time.Duration(age) * time.Minute))},
		Spec: v1alpha1.NodePoolSpec{CIDR6: "2001:db8:42::/48", BlockSize6: 64, CIDR4: "10.42.0.0/16", BlockSize4: 24,
			BGP: &v1alpha1.BGPSpec{ASN: 65100, Peers: []v1alpha1.BGPPeer{{Address: v1alpha1.PeerDefaultGateway6, ASN: 65000}}}},
	}
	if f != nil {
		f(&p.Spec)
	}
	return p
}

func node(name string, lbl ...string) Node {
	n := Node{Name: name, UID: types.UID("uid-" + name), Labels: map[string]string{}}
	for i := 0; i+1 < len(lbl); i += 2 {
		n.Labels[lbl[i]] = lbl[i+1]
	}
	return n
}

// nodes node-01 … node-<n>, so name order is number order.
func nodes(n int) []Node {
	var out []Node
	for i := 1; i <= n; i++ {
		out = append(out, node(fmt.Sprintf("node-%02d", i)))
	}
	return out
}

// blocks is "node cidr6 cidr4" of every NodeConfig a plan creates.
func blocks(ncs []*v1alpha1.NodeConfig) []string {
	var out []string
	for _, nc := range ncs {
		out = append(out, nc.Name+" "+nc.Spec.CIDR6+" "+nc.Spec.CIDR4)
	}
	return out
}

func TestComputeCreates(t *testing.T) {
	p := Compute([]*v1alpha1.NodePool{np("default", 0, nil)}, nodes(3), nil, t0)
	want := []string{
		"node-01 2001:db8:42::/64 10.42.0.0/24",
		"node-02 2001:db8:42:1::/64 10.42.1.0/24",
		"node-03 2001:db8:42:2::/64 10.42.2.0/24",
	}
	if diff := cmp.Diff(want, blocks(p.Create)); diff != "" {
		t.Errorf("created (-want +got):\n%s", diff)
	}
	nc := p.Create[0]
	if nc.Labels[v1alpha1.LabelNodePool] != "default" || len(nc.OwnerReferences) != 1 ||
		nc.OwnerReferences[0].Kind != "Node" || nc.OwnerReferences[0].UID != "uid-node-01" {
		t.Errorf("metadata %+v: want the pool label and an owner reference to the Node", nc.ObjectMeta)
	}
	if nc.Spec.BGP == nil || nc.Spec.BGP.Peers[0].Address != v1alpha1.PeerDefaultGateway6 {
		t.Errorf("spec.bgp %+v: want the pool's", nc.Spec.BGP)
	}
	st := p.Status["default"]
	if st.Nodes != 3 || *st.IPv6 != (v1alpha1.BlockUsage{Total: 65536, Used: 3, Free: 65533}) || *st.IPv4 != (v1alpha1.BlockUsage{Total: 256, Used: 3, Free: 253}) {
		t.Errorf("status %+v %+v %+v", st, st.IPv6, st.IPv4)
	}
	if c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Ready %+v, want True", c)
	}
}

// The plan is a function of the state alone: the same input, in any
// order, gives the same blocks (a new leader computes what the old one
// would have).
func TestComputeDeterministic(t *testing.T) {
	pools := []*v1alpha1.NodePool{np("default", 0, nil)}
	a := Compute(pools, nodes(20), nil, t0)
	rev := nodes(20)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	b := Compute(pools, rev, nil, t0)
	if diff := cmp.Diff(blocks(a.Create), blocks(b.Create)); diff != "" {
		t.Errorf("order changed the plan (-a +b):\n%s", diff)
	}
	// Half applied: the rest plans exactly as before.
	c := Compute(pools, nodes(20), a.Create[:10], t0)
	if diff := cmp.Diff(blocks(a.Create[10:]), blocks(c.Create)); diff != "" {
		t.Errorf("after 10 created (-want +got):\n%s", diff)
	}
}

func TestComputeHoleReusedAndDelete(t *testing.T) {
	pools := []*v1alpha1.NodePool{np("default", 0, nil)}
	all := nodes(3)
	created := Compute(pools, all, nil, t0).Create
	// node-02 is gone: its NodeConfig is deleted ...
	p := Compute(pools, []Node{all[0], all[2]}, created, t0)
	if len(p.Delete) != 1 || p.Delete[0].Name != "node-02" || len(p.Create) != 0 {
		t.Fatalf("delete %v create %v, want node-02 deleted only", p.Delete, blocks(p.Create))
	}
	// ... and a new node gets its blocks.
	p = Compute(pools, []Node{all[0], all[2], node("node-04")}, []*v1alpha1.NodeConfig{created[0], created[2]}, t0)
	if diff := cmp.Diff([]string{"node-04 2001:db8:42:1::/64 10.42.1.0/24"}, blocks(p.Create)); diff != "" {
		t.Errorf("created (-want +got):\n%s", diff)
	}
	// A Node recreated under the same name (new UID): the old NodeConfig is
	// deleted, the new Node's made on the next pass.
	again := node("node-01")
	again.UID = "uid-new"
	p = Compute(pools, []Node{again, all[1], all[2]}, created, t0)
	if len(p.Delete) != 1 || p.Delete[0].Name != "node-01" || len(p.Create) != 0 {
		t.Errorf("recreated node: delete %v create %v", p.Delete, blocks(p.Create))
	}
}

func TestComputeUnmanaged(t *testing.T) {
	pools := []*v1alpha1.NodePool{np("default", 0, nil)}
	// An operator's own NodeConfig, and one of ours taken over: their
	// blocks are taken, they are never changed or deleted.
	own := &v1alpha1.NodeConfig{ObjectMeta: metav1.ObjectMeta{Name: "node-01"}, Spec: v1alpha1.NodeConfigSpec{CIDR6: "2001:db8:42::/64"}}
	taken := &v1alpha1.NodeConfig{ObjectMeta: metav1.ObjectMeta{Name: "gone",
		Labels: map[string]string{v1alpha1.LabelNodePool: "default"}, Annotations: map[string]string{v1alpha1.AnnotationManaged: "false"}},
		Spec: v1alpha1.NodeConfigSpec{CIDR6: "2001:db8:42:1::/64", CIDR4: "10.42.0.0/24", Defaults: &v1alpha1.FamilyDefaults{}}}
	p := Compute(pools, nodes(2), []*v1alpha1.NodeConfig{own, taken}, t0)
	if diff := cmp.Diff([]string{"node-02 2001:db8:42:2::/64 10.42.1.0/24"}, blocks(p.Create)); diff != "" {
		t.Errorf("created (-want +got):\n%s", diff)
	}
	if len(p.Update)+len(p.Delete) != 0 {
		t.Errorf("update %v delete %v: want the operator's NodeConfigs untouched", p.Update, p.Delete)
	}
}

func TestComputeExhausted(t *testing.T) {
	pools := []*v1alpha1.NodePool{np("small", 0, func(s *v1alpha1.NodePoolSpec) { s.CIDR4 = "10.42.0.0/23" })}
	p := Compute(pools, nodes(3), nil, t0)
	if diff := cmp.Diff([]string{"node-01 2001:db8:42::/64 10.42.0.0/24", "node-02 2001:db8:42:1::/64 10.42.1.0/24"}, blocks(p.Create)); diff != "" {
		t.Errorf("created (-want +got):\n%s", diff)
	}
	st := p.Status["small"]
	c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonExhausted || !strings.Contains(c.Message, "10.42.0.0/23 (/24 blocks) is exhausted") {
		t.Errorf("Ready %+v, want False Exhausted naming the IPv4 range", c)
	}
	if st.IPv4.Free != 0 || st.IPv6.Used != 2 {
		t.Errorf("usage %+v %+v: an exhausted IPv4 range must not use an IPv6 block", st.IPv4, st.IPv6)
	}
	if len(p.Events) != 1 || !strings.Contains(p.Events[0].Message, "node-03") {
		t.Errorf("events %+v, want one naming node-03", p.Events)
	}
}

func TestComputeOverlapAndSelectors(t *testing.T) {
	rack := func(r string) func(*v1alpha1.NodePoolSpec) {
		return func(s *v1alpha1.NodePoolSpec) {
			s.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"rack": r}}
			s.CIDR6, s.CIDR4 = "2001:db8:"+r+"::/48", "10."+r+".0.0/16"
		}
	}
	pools := []*v1alpha1.NodePool{
		np("rack-2", 1, rack("2")),
		np("rack-1", 0, rack("1")),
		// Younger and overlapping rack-1's IPv4 range: hands out nothing.
		np("clash", 2, func(s *v1alpha1.NodePoolSpec) { s.CIDR6, s.CIDR4 = "2001:db8:99::/48", "10.1.128.0/17" }),
	}
	p := Compute(pools, []Node{node("a", "rack", "1"), node("b", "rack", "2"), node("c")}, nil, t0)
	if diff := cmp.Diff([]string{"a 2001:db8:1::/64 10.1.0.0/24", "b 2001:db8:2::/64 10.2.0.0/24"}, blocks(p.Create)); diff != "" {
		t.Errorf("created (-want +got):\n%s", diff)
	}
	c := meta.FindStatusCondition(p.Status["clash"].Conditions, v1alpha1.ConditionReady)
	if c == nil || c.Reason != v1alpha1.ReasonOverlap || !strings.Contains(c.Message, "10.1.128.0/17 overlaps 10.1.0.0/16 of NodePool rack-1") {
		t.Errorf("clash Ready %+v, want Overlap naming rack-1", c)
	}
}

func TestComputeRefresh(t *testing.T) {
	pools := []*v1alpha1.NodePool{np("default", 0, nil)}
	created := Compute(pools, nodes(2), nil, t0).Create
	if p := Compute(pools, nodes(2), created, t0); len(p.Create)+len(p.Update)+len(p.Delete) != 0 {
		t.Fatalf("steady state plans writes: %+v", p)
	}
	// The pool's BGP changes: both NodeConfigs follow, blocks kept.
	changed := np("default", 0, func(s *v1alpha1.NodePoolSpec) { s.BGP.ASN = 65200 })
	p := Compute([]*v1alpha1.NodePool{changed}, nodes(2), created, t0)
	if len(p.Update) != 2 || p.Update[1].Spec.BGP.ASN != 65200 || p.Update[1].Spec.CIDR6 != created[1].Spec.CIDR6 {
		t.Errorf("updates %+v, want both with ASN 65200 and their blocks", blocks(p.Update))
	}
	// The pool's range moves: new blocks.
	moved := np("default", 0, func(s *v1alpha1.NodePoolSpec) { s.CIDR4 = "10.43.0.0/16" })
	p = Compute([]*v1alpha1.NodePool{moved}, nodes(2), created, t0)
	if diff := cmp.Diff([]string{"node-01 2001:db8:42::/64 10.43.0.0/24", "node-02 2001:db8:42:1::/64 10.43.1.0/24"}, blocks(p.Update)); diff != "" {
		t.Errorf("updates (-want +got):\n%s", diff)
	}
}

func TestComputePodCIDRs(t *testing.T) {
	pools := []*v1alpha1.NodePool{np("cm", 0, func(s *v1alpha1.NodePoolSpec) { s.CIDR4, s.IPv4FromPodCIDRs = "", true })}
	with := node("node-01")
	with.PodCIDRs = []string{"2001:db8:7::/64", "10.244.3.0/24"}
	p := Compute(pools, []Node{with, node("node-02")}, nil, t0)
	if diff := cmp.Diff([]string{"node-01 2001:db8:42::/64 10.244.3.0/24"}, blocks(p.Create)); diff != "" {
		t.Errorf("created (-want +got):\n%s (node-02 has no podCIDR yet: it waits)", diff)
	}
	if len(p.Events) != 0 {
		t.Errorf("events %+v: waiting for a podCIDR is not exhaustion", p.Events)
	}
}

func TestComputeInvalidPool(t *testing.T) {
	for _, tc := range []struct {
		f    func(*v1alpha1.NodePoolSpec)
		want string
	}{
		{func(s *v1alpha1.NodePoolSpec) { s.CIDR6 = "2001:db8:42::1/48" }, "spec.cidr6 with block size /64: range 2001:db8:42::1/48: has host bits set"},
		{func(s *v1alpha1.NodePoolSpec) { s.CIDR6 = "10.0.0.0/8" }, `spec.cidr6 "10.0.0.0/8": not an IPv6 prefix`},
		{func(s *v1alpha1.NodePoolSpec) { s.BlockSize4 = 31 }, "spec.cidr4: blocks of /31 are smaller than a node pool may be"},
		{func(s *v1alpha1.NodePoolSpec) { s.CIDR6 = "2001:db8::/32" }, "makes 2^32 blocks"},
		{func(s *v1alpha1.NodePoolSpec) { s.IPv4FromPodCIDRs = true }, "exclude each other"},
		{func(s *v1alpha1.NodePoolSpec) { s.BGP.RouterID = "192.0.2.1" }, `spec.bgp.routerID "192.0.2.1"`},
		{func(s *v1alpha1.NodePoolSpec) {
			s.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "rack", Operator: "Near"}}}
		}, "spec.nodeSelector"},
	} {
		p := Compute([]*v1alpha1.NodePool{np("bad", 0, tc.f)}, nodes(1), nil, t0)
		c := meta.FindStatusCondition(p.Status["bad"].Conditions, v1alpha1.ConditionReady)
		if len(p.Create) != 0 || c == nil || c.Reason != "Invalid" || !strings.Contains(c.Message, tc.want) {
			t.Errorf("created %v, Ready %+v; want nothing and Invalid with %q", blocks(p.Create), c, tc.want)
		}
	}
}
