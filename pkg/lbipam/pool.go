package lbipam

import (
	"cmp"
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/leaderterm"
)

// MaxTotal is where AddressUsage.Total saturates (an IPv6 /64 holds 2^64).
const MaxTotal = int64(1) << 62

// PodPool is a range pods take addresses from (a NodeConfig's or a
// NodePool's): a ServiceAddressPool overlapping one hands out nothing.
type PodPool struct {
	// Owner names it in messages: "NodeConfig node-1".
	Owner  string
	Prefix netip.Prefix
}

// ServiceCIDR is one range of a networking.k8s.io ServiceCIDR: the
// cluster's ClusterIPs, which no agent announces (--service-cidrs), so a
// ServiceAddressPool overlapping one hands out nothing.
type ServiceCIDR struct {
	// Name is the ServiceCIDR's ("kubernetes" for the API server's own).
	Name   string
	Prefix netip.Prefix
}

// pool is a ServiceAddressPool with its parsed ranges and what the plan
// has taken from it.
type pool struct {
	sap           *v1alpha1.ServiceAddressPool
	ranges        []netip.Prefix // sorted, both families
	svcSel, nsSel labels.Selector
	auto          bool
	problem       *metav1.Condition // not usable: Invalid, Overlap, NodePoolOverlap
	used          map[netip.Addr]string
	exhausted     map[corev1.IPFamily]bool // a Service waited for an address of the family
}

func (p *pool) name() string { return p.sap.Name }

// has says whether the pool has a range of family f.
func (p *pool) has(f corev1.IPFamily) bool {
	return slices.ContainsFunc(p.ranges, func(r netip.Prefix) bool { return Family(r.Addr()) == f })
}

func (p *pool) contains(a netip.Addr) bool {
	return slices.ContainsFunc(p.ranges, func(r netip.Prefix) bool { return r.Contains(a) })
}

// next is the lowest free address of family f, in range order. Every
// address of a range is assignable, the first and last of an IPv4 range
// too: a Service address is announced and routed as a /32 (or /128), so
// no router or host treats it as a subnet's network or broadcast address;
// skipping them would only waste two addresses of every small range.
func (p *pool) next(f corev1.IPFamily) (netip.Addr, bool) {
	for _, r := range p.ranges {
		if Family(r.Addr()) != f {
			continue
		}
		// The walk is bounded by the addresses in use, one per Service.
		for a := r.Addr(); a.IsValid() && r.Contains(a); a = a.Next() {
			if _, taken := p.used[a]; !taken {
				return a, true
			}
		}
	}
	return netip.Addr{}, false
}

// total is how many addresses of family f the ranges hold, saturated.
func (p *pool) total(f corev1.IPFamily) int64 {
	sum := new(big.Int)
	for _, r := range p.ranges {
		if Family(r.Addr()) == f {
			sum.Add(sum, new(big.Int).Lsh(big.NewInt(1), uint(r.Addr().BitLen()-r.Bits())))
		}
	}
	if !sum.IsInt64() || sum.Int64() > MaxTotal {
		return MaxTotal
	}
	return sum.Int64()
}

func (p *pool) usedOf(f corev1.IPFamily) int64 {
	var n int64
	for a := range p.used {
		if Family(a) == f {
			n++
		}
	}
	return n
}

// allows says whether the pool's selectors select s (in a namespace with
// nsLabels).
func (p *pool) allows(s *Service, nsLabels map[string]string) bool {
	return p.problem == nil && p.svcSel.Matches(labels.Set(s.Labels)) && p.nsSel.Matches(labels.Set(nsLabels))
}

// parsePools orders the pools by age (then name), the precedence for
// overlapping ranges and for auto-assignment, and checks each: a pool
// overlapping an older one, a pod pool or a Service range hands out nothing.
func parsePools(saps []*v1alpha1.ServiceAddressPool, pods []PodPool, svcCIDRs []ServiceCIDR) []*pool {
	saps = slices.Clone(saps)
	slices.SortFunc(saps, func(a, b *v1alpha1.ServiceAddressPool) int { return leaderterm.CompareAge(a, b) })
	var out []*pool
	var ranges []netip.Prefix // of the usable pools so far
	var owners []string
	for _, sap := range saps {
		p := &pool{sap: sap, used: map[netip.Addr]string{}, exhausted: map[corev1.IPFamily]bool{}}
		out = append(out, p)
		if err := p.parse(); err != nil {
			p.problem = &metav1.Condition{Reason: "Invalid", Message: err.Error()}
			continue
		}
	check:
		for _, r := range p.ranges {
			for _, pp := range pods {
				if pp.Prefix.Overlaps(r) {
					p.problem = &metav1.Condition{Reason: v1alpha1.ReasonNodePoolOverlap,
						Message: fmt.Sprintf("%s overlaps the pod pool %s of %s: this pool hands out nothing", r, pp.Prefix, pp.Owner)}
					break check
				}
			}
			for _, sc := range svcCIDRs {
				if sc.Prefix.Overlaps(r) {
					p.problem = &metav1.Condition{Reason: v1alpha1.ReasonServiceCIDROverlap,
						Message: fmt.Sprintf("%s overlaps the cluster's Service range, ServiceCIDR %s (%s): this pool hands out nothing", r, sc.Name, sc.Prefix)}
					break check
				}
			}
			for i, q := range ranges {
				if q.Overlaps(r) {
					p.problem = &metav1.Condition{Reason: v1alpha1.ReasonOverlap,
						Message: fmt.Sprintf("%s overlaps %s of ServiceAddressPool %s, which is older: this pool hands out nothing", r, q, owners[i])}
					break check
				}
			}
		}
		if p.problem == nil {
			for _, r := range p.ranges {
				ranges, owners = append(ranges, r), append(owners, sap.Name)
			}
		}
	}
	return out
}

// parse validates what the schema cannot fully: errors name the field and
// the value.
func (p *pool) parse() error {
	s := &p.sap.Spec
	var err error
	if p.svcSel, err = selector(s.ServiceSelector); err != nil {
		return fmt.Errorf("spec.serviceSelector: %w", err)
	}
	if p.nsSel, err = selector(s.NamespaceSelector); err != nil {
		return fmt.Errorf("spec.namespaceSelector: %w", err)
	}
	p.auto = s.AutoAssign == nil || *s.AutoAssign
	if len(s.CIDRs) == 0 {
		return fmt.Errorf("spec.cidrs: no range")
	}
	for i, c := range s.CIDRs {
		r, err := netip.ParsePrefix(c)
		switch {
		case err != nil:
			return fmt.Errorf("spec.cidrs[%d] %q: %w", i, c, err)
		case r.Masked() != r:
			return fmt.Errorf("spec.cidrs[%d] %q: host bits set (the network is %s)", i, c, r.Masked())
		case r.Addr().Is4In6() || r.Addr().Zone() != "":
			return fmt.Errorf("spec.cidrs[%d] %q: not a plain IPv4 or IPv6 range", i, c)
		case !r.Addr().IsGlobalUnicast():
			return fmt.Errorf("spec.cidrs[%d] %q: not a unicast range", i, c)
		}
		p.ranges = append(p.ranges, r)
	}
	slices.SortFunc(p.ranges, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Bits(), b.Bits())
	})
	for i, r := range p.ranges {
		for _, q := range p.ranges[:i] {
			if q.Overlaps(r) {
				return fmt.Errorf("spec.cidrs: %s overlaps %s of the same pool", r, q)
			}
		}
	}
	return nil
}

func selector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(s)
}

// names lists pools' names for a message.
func names(ps []*pool) string {
	var n []string
	for _, p := range ps {
		n = append(n, p.name())
	}
	return strings.Join(n, ", ")
}

// status is the pool's status after the decision; the Ready condition
// keeps its transition time while it holds.
func (p *pool) status(now time.Time) v1alpha1.ServiceAddressPoolStatus {
	st := v1alpha1.ServiceAddressPoolStatus{
		ObservedGeneration: p.sap.Generation,
		Conditions:         slices.Clone(p.sap.Status.Conditions),
	}
	usage := func(f corev1.IPFamily) *v1alpha1.AddressUsage {
		if !p.has(f) {
			return nil
		}
		total, used := p.total(f), p.usedOf(f)
		return &v1alpha1.AddressUsage{Total: total, Used: used, Free: max(total-used, 0)}
	}
	if p.problem == nil || p.problem.Reason != "Invalid" {
		st.IPv6, st.IPv4 = usage(corev1.IPv6Protocol), usage(corev1.IPv4Protocol)
	}
	c := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonAssignable,
		Message: fmt.Sprintf("%d addresses assigned", len(p.used)), ObservedGeneration: p.sap.Generation,
		LastTransitionTime: metav1.NewTime(now)}
	var fams []corev1.IPFamily
	for _, f := range []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol} {
		if p.exhausted[f] {
			fams = append(fams, f)
		}
	}
	switch {
	case p.problem != nil:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, p.problem.Reason, p.problem.Message
	case len(fams) > 0:
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonExhausted
		c.Message = fmt.Sprintf("Services wait for a free %v address; %d addresses assigned", fams, len(p.used))
	}
	meta.SetStatusCondition(&st.Conditions, c)
	return st
}
