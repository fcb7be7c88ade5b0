// Package nodepool turns NodePools, Nodes and NodeConfigs into the
// NodeConfigs flock-controller must create, update and delete, and each
// pool's status. Plan is the pure decision; Controller (controller.go)
// feeds it from informers while this process leads and applies it.
//
// The NodeConfigs are the only state: every block any NodeConfig holds is
// taken, whoever wrote it, and a Node gets the lowest free block of its
// pool. Nodes are served in name order, so a given cluster state gives the
// same assignment whichever replica computes it.
package nodepool

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/carve"
	"github.com/fritzlab/flock/pkg/leaderterm"
)

// Node is what the plan needs of a Node.
type Node struct {
	Name     string
	UID      types.UID
	Labels   map[string]string
	PodCIDRs []string
}

// Event is a Warning Event to record on a NodePool.
type Event struct {
	Pool, Reason, Message string
}

// Plan is what the controller must do.
type Plan struct {
	Create []*v1alpha1.NodeConfig
	// Update holds changed copies of existing NodeConfigs (resourceVersion
	// kept, so a concurrent change is a conflict, not lost).
	Update []*v1alpha1.NodeConfig
	// Delete names managed NodeConfigs whose Node is gone (or was replaced
	// by a new Node of the same name). The lab and some clusters run no
	// garbage collector, so the owner reference alone would not free them.
	Delete []*v1alpha1.NodeConfig
	// Status is every pool's new status, by pool name.
	Status map[string]v1alpha1.NodePoolStatus
	Events []Event
}

// pool is a NodePool with its parsed ranges.
type pool struct {
	np       *v1alpha1.NodePool
	sel      labels.Selector
	r6, r4   carve.Range // zero Prefix: family not carved
	a6, a4   *carve.Allocator
	problem  *metav1.Condition // not usable: Invalid or Overlap
	nodes    int32
	waiting  []string // nodes that got no block
	exhaust6 bool
	exhaust4 bool
}

// Managed says whether the controller owns nc: it made it (the pool label)
// and no operator has taken it over.
func Managed(nc *v1alpha1.NodeConfig) bool {
	_, made := nc.Labels[v1alpha1.LabelNodePool]
	return made && nc.Annotations[v1alpha1.AnnotationManaged] != "false"
}

// Compute plans the NodeConfigs of nodes from pools and the existing
// NodeConfigs. now stamps changed conditions.
func Compute(pools []*v1alpha1.NodePool, nodes []Node, configs []*v1alpha1.NodeConfig, now time.Time) *Plan {
	ps := parsePools(pools)
	byName := map[string]*v1alpha1.NodeConfig{}
	var taken []netip.Prefix
	for _, nc := range configs {
		byName[nc.Name] = nc
		for _, s := range []string{nc.Spec.CIDR6, nc.Spec.CIDR4} {
			if p, err := netip.ParsePrefix(s); err == nil {
				taken = append(taken, p)
			}
		}
	}
	for _, p := range ps {
		if p.problem != nil {
			continue
		}
		if p.r6.Prefix.IsValid() {
			p.a6 = carve.NewAllocator(p.r6, taken)
		}
		if p.r4.Prefix.IsValid() {
			p.a4 = carve.NewAllocator(p.r4, taken)
		}
	}
	plan := &Plan{Status: map[string]v1alpha1.NodePoolStatus{}}
	nodes = slices.Clone(nodes)
	slices.SortFunc(nodes, func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
	live := map[string]types.UID{}
	for _, n := range nodes {
		live[n.Name] = n.UID
		p := choose(ps, n)
		nc := byName[n.Name]
		switch {
		case nc != nil && !Managed(nc):
			// An operator's NodeConfig (or one taken over): never touched.
		case nc != nil && ownerUID(nc) != n.UID:
			// A NodeConfig of an earlier Node of this name: deleted below,
			// its successor's made on the next pass.
		case p == nil:
			// No pool selects the node (any more): a NodeConfig of ours is
			// kept as it is; deleting it would cut the node's pods off.
		case nc == nil:
			if created := p.create(n); created != nil {
				plan.Create = append(plan.Create, created)
			}
		default:
			p.nodes++
			if up := p.refresh(n, nc); up != nil {
				plan.Update = append(plan.Update, up)
			}
		}
	}
	for _, nc := range configs {
		if uid, ok := live[nc.Name]; Managed(nc) && (!ok || ownerUID(nc) != uid) {
			plan.Delete = append(plan.Delete, nc)
		}
	}
	slices.SortFunc(plan.Delete, func(a, b *v1alpha1.NodeConfig) int { return cmp.Compare(a.Name, b.Name) })
	for _, p := range ps {
		plan.Status[p.np.Name] = p.status(now)
		if len(p.waiting) > 0 {
			plan.Events = append(plan.Events, Event{Pool: p.np.Name, Reason: v1alpha1.ReasonExhausted,
				Message: fmt.Sprintf("no free block for node(s) %v: %s", p.waiting, p.exhaustedText())})
		}
	}
	return plan
}

// parsePools orders the pools by age (then name), the precedence for Nodes
// two pools select and for overlapping ranges, and checks each.
func parsePools(pools []*v1alpha1.NodePool) []*pool {
	pools = slices.Clone(pools)
	slices.SortFunc(pools, func(a, b *v1alpha1.NodePool) int { return leaderterm.CompareAge(a, b) })
	var out []*pool
	var ranges []netip.Prefix // of the usable pools so far
	var owners []string
	for _, np := range pools {
		p := &pool{np: np}
		out = append(out, p)
		if err := p.parse(); err != nil {
			p.problem = &metav1.Condition{Reason: "Invalid", Message: err.Error()}
			continue
		}
		mine := []netip.Prefix{p.r6.Prefix, p.r4.Prefix}
		for _, r := range mine {
			if !r.IsValid() {
				continue
			}
			if c := carve.Conflicts(append(slices.Clone(ranges), r)); c[len(c)-1] >= 0 {
				p.problem = &metav1.Condition{Reason: v1alpha1.ReasonOverlap,
					Message: fmt.Sprintf("%s overlaps %s of NodePool %s, which is older: this pool hands out nothing", r, ranges[c[len(c)-1]], owners[c[len(c)-1]])}
				break
			}
		}
		if p.problem == nil {
			for _, r := range mine {
				if r.IsValid() {
					ranges, owners = append(ranges, r), append(owners, np.Name)
				}
			}
		}
	}
	return out
}

// parse validates what the schema cannot fully (the agent-side check):
// errors name the field and the value.
func (p *pool) parse() error {
	s := &p.np.Spec
	var err error
	if p.sel, err = metav1.LabelSelectorAsSelector(s.NodeSelector); err != nil {
		return fmt.Errorf("spec.nodeSelector: %w", err)
	}
	if s.NodeSelector == nil {
		p.sel = labels.Everything()
	}
	parse := func(field, cidr string, bits int32, def int, six bool) (carve.Range, error) {
		if cidr == "" {
			return carve.Range{}, nil
		}
		if bits == 0 {
			bits = int32(def)
		}
		pr, err := netip.ParsePrefix(cidr)
		if err != nil {
			return carve.Range{}, fmt.Errorf("spec.%s %q: %w", field, cidr, err)
		}
		if pr.Addr().Is6() != six || pr.Addr().Is4In6() {
			return carve.Range{}, fmt.Errorf("spec.%s %q: not an IPv%s prefix", field, cidr, map[bool]string{true: "6", false: "4"}[six])
		}
		r := carve.Range{Prefix: pr, Bits: int(bits)}
		if err := r.Validate(); err != nil {
			return carve.Range{}, fmt.Errorf("spec.%s with block size /%d: %w", field, bits, err)
		}
		max := v1alpha1.MaxPool6PrefixLength
		if !six {
			max = v1alpha1.MaxPool4PrefixLength
		}
		if r.Bits > max {
			return carve.Range{}, fmt.Errorf("spec.%s: blocks of /%d are smaller than a node pool may be (at most /%d)", field, r.Bits, max)
		}
		return r, nil
	}
	if p.r6, err = parse("cidr6", s.CIDR6, s.BlockSize6, v1alpha1.DefaultBlockSize6, true); err != nil {
		return err
	}
	if p.r4, err = parse("cidr4", s.CIDR4, s.BlockSize4, v1alpha1.DefaultBlockSize4, false); err != nil {
		return err
	}
	switch {
	case s.CIDR4 != "" && s.IPv4FromPodCIDRs:
		return fmt.Errorf("spec.cidr4 %q and spec.ipv4FromPodCIDRs exclude each other", s.CIDR4)
	case s.CIDR6 == "" && s.CIDR4 == "" && !s.IPv4FromPodCIDRs:
		return fmt.Errorf("spec: no cidr6, cidr4 or ipv4FromPodCIDRs: the pool has nothing to hand out")
	case s.BGP != nil && s.BGP.RouterID != "":
		return fmt.Errorf("spec.bgp.routerID %q: per node, leave it out of a NodePool", s.BGP.RouterID)
	}
	return nil
}

// choose is the oldest usable pool selecting n.
func choose(ps []*pool, n Node) *pool {
	for _, p := range ps {
		if p.problem == nil && p.sel.Matches(labels.Set(n.Labels)) {
			return p
		}
	}
	return nil
}

func ownerUID(nc *v1alpha1.NodeConfig) types.UID {
	for _, o := range nc.OwnerReferences {
		if o.APIVersion == "v1" && o.Kind == "Node" && o.Name == nc.Name {
			return o.UID
		}
	}
	return ""
}
