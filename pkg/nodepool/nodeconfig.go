package nodepool

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/carve"
)

// blocks picks n's pools: keep6/keep4 when they are still blocks of the
// pool, else the next free ones. ok is false when a family has none (the
// pool is exhausted, or the Node has no IPv4 podCIDR yet).
func (p *pool) blocks(n Node, keep6, keep4 string) (cidr6, cidr4 string, ok bool) {
	s := &p.np.Spec
	var need6, need4 bool
	if p.a6 != nil {
		if k, err := netip.ParsePrefix(keep6); err == nil && p.r6.IsBlock(k) {
			cidr6 = keep6
		} else {
			need6 = true
		}
	}
	switch {
	case s.IPv4FromPodCIDRs:
		if cidr4 = podCIDR4(n); cidr4 == "" {
			return "", "", false // waits for the controller-manager
		}
	case p.a4 != nil:
		if k, err := netip.ParsePrefix(keep4); err == nil && p.r4.IsBlock(k) {
			cidr4 = keep4
		} else {
			need4 = true
		}
	}
	// Check both families before taking either: a node is served whole.
	if need6 && p.a6.Free() == 0 {
		p.exhaust6 = true
	}
	if need4 && p.a4.Free() == 0 {
		p.exhaust4 = true
	}
	if (need6 && p.a6.Free() == 0) || (need4 && p.a4.Free() == 0) {
		p.waiting = append(p.waiting, n.Name)
		return "", "", false
	}
	if need6 {
		b, _ := p.a6.Next()
		cidr6 = b.String()
	}
	if need4 {
		b, _ := p.a4.Next()
		cidr4 = b.String()
	}
	return cidr6, cidr4, true
}

// podCIDR4 is the Node's IPv4 podCIDR when it is one a node pool may be.
func podCIDR4(n Node) string {
	for _, s := range n.PodCIDRs {
		if p, err := netip.ParsePrefix(s); err == nil && p.Addr().Is4() && p.Masked() == p && p.Bits() <= v1alpha1.MaxPool4PrefixLength {
			return p.String()
		}
	}
	return ""
}

// spec is the NodeConfig spec the pool gives a node with these blocks.
func (p *pool) spec(cidr6, cidr4 string) v1alpha1.NodeConfigSpec {
	s := p.np.Spec.DeepCopy()
	return v1alpha1.NodeConfigSpec{CIDR6: cidr6, CIDR4: cidr4, Defaults: s.Defaults, BGP: s.BGP, Anycast: s.Anycast}
}

// create is n's new NodeConfig, nil when the pool has no block for it.
func (p *pool) create(n Node) *v1alpha1.NodeConfig {
	c6, c4, ok := p.blocks(n, "", "")
	if !ok {
		return nil
	}
	p.nodes++
	return &v1alpha1.NodeConfig{
		TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: v1alpha1.NodeConfigKind},
		ObjectMeta: metav1.ObjectMeta{
			Name:   n.Name,
			Labels: map[string]string{v1alpha1.LabelNodePool: p.np.Name},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: n.Name, UID: n.UID,
			}},
		},
		Spec: p.spec(c6, c4),
	}
}

// refresh is nc brought in line with its pool (the pool's settings may
// have changed, or the node moved to another pool), nil when it is.
func (p *pool) refresh(n Node, nc *v1alpha1.NodeConfig) *v1alpha1.NodeConfig {
	keep6, keep4 := nc.Spec.CIDR6, nc.Spec.CIDR4
	if nc.Labels[v1alpha1.LabelNodePool] != p.np.Name {
		keep6, keep4 = "", "" // another pool's blocks
	}
	c6, c4, ok := p.blocks(n, keep6, keep4)
	if !ok {
		return nil // keeps what it has until a block is free
	}
	want := p.spec(c6, c4)
	if equality.Semantic.DeepEqual(want, nc.Spec) && nc.Labels[v1alpha1.LabelNodePool] == p.np.Name {
		return nil
	}
	up := nc.DeepCopy()
	up.Spec = want
	up.Labels[v1alpha1.LabelNodePool] = p.np.Name
	return up
}

// status is the pool's status after the plan; conditions keep their
// transition times while they hold.
func (p *pool) status(now time.Time) v1alpha1.NodePoolStatus {
	st := v1alpha1.NodePoolStatus{
		ObservedGeneration: p.np.Generation,
		Nodes:              p.nodes,
		Conditions:         slices.Clone(p.np.Status.Conditions),
	}
	usage := func(a *carve.Allocator) *v1alpha1.BlockUsage {
		if a == nil {
			return nil
		}
		total, used := int64(a.Free()+a.Used()), int64(a.Used())
		return &v1alpha1.BlockUsage{Total: total, Used: used, Free: total - used}
	}
	st.IPv6, st.IPv4 = usage(p.a6), usage(p.a4)
	c := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonAllocated,
		Message: fmt.Sprintf("%d nodes have their NodeConfig", p.nodes), ObservedGeneration: p.np.Generation,
		LastTransitionTime: metav1.NewTime(now)}
	switch {
	case p.problem != nil:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, p.problem.Reason, p.problem.Message
	case len(p.waiting) > 0:
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonExhausted
		c.Message = fmt.Sprintf("%d nodes wait for a block: %s", len(p.waiting), p.exhaustedText())
	}
	meta.SetStatusCondition(&st.Conditions, c)
	return st
}

func (p *pool) exhaustedText() string {
	var fams []string
	if p.exhaust6 {
		fams = append(fams, fmt.Sprintf("%s (/%d blocks) is exhausted", p.r6.Prefix, p.r6.Bits))
	}
	if p.exhaust4 {
		fams = append(fams, fmt.Sprintf("%s (/%d blocks) is exhausted", p.r4.Prefix, p.r4.Bits))
	}
	return strings.Join(fams, ", ")
}
