// Package lbannounce decides which addresses of Services of type
// LoadBalancer a node announces over BGP, and with which communities. It is
// pure: the agent's informers keep Services, EndpointSlices and
// ServiceAddressPools as the small records below (built in pkg/kube), the
// Reconciler feeds them to Decide on every change, and the BIRD renderer
// announces the result as static /128 and /32 routes (bird.Config.Services).
//
// A node announces an address of a Service when all of these hold:
//
//   - the Service is of type LoadBalancer, with no spec.loadBalancerClass or
//     flock's (v1alpha1.LoadBalancerClass);
//   - the address is in the Service's status.loadBalancer.ingress, lies in a
//     ServiceAddressPool's spec.cidrs, and in no reserved range (a node's
//     pod pool, the cluster's Service range): a Service's status is
//     writable by whoever may update it, and must not be a way to attract
//     another range's traffic;
//   - with externalTrafficPolicy Local: this node has at least one Ready
//     endpoint of the address's family (an EndpointSlice endpoint with
//     conditions.ready not false and nodeName this node). kube-proxy also
//     forwards to serving, terminating endpoints when no Ready one is left;
//     flock withdraws then instead, so the router moves new flows away from
//     a node whose last endpoint is going while it drains;
//   - with Cluster: the node is ready (its agent is configured) and the
//     Service has a Ready endpoint of the family anywhere in the cluster,
//     as Cilium and MetalLB do: kube-proxy on any node forwards to it, and
//     with none anywhere announcing would only attract traffic to drop.
package lbannounce

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/annotations"
	"github.com/fritzlab/flock/pkg/model"
)

// Service is what the decision needs of a Service.
type Service struct {
	Namespace, Name string
	// LoadBalancer: spec.type is LoadBalancer.
	LoadBalancer bool
	// Class is spec.loadBalancerClass, "" when unset.
	Class string
	// Local: spec.externalTrafficPolicy is Local.
	Local bool
	// Ingress are the IPs of status.loadBalancer.ingress (hostnames are
	// dropped), sorted, without duplicates.
	Ingress []netip.Addr
}

// Key is namespace/name, the key of Input.Endpoints.
func (s Service) Key() string { return s.Namespace + "/" + s.Name }

// Ours tells whether flock serves the Service: type LoadBalancer with no
// class or flock's.
func (s Service) Ours() bool {
	return s.LoadBalancer && (s.Class == "" || s.Class == v1alpha1.LoadBalancerClass)
}

// Counts are one family's Ready endpoints of a Service.
type Counts struct {
	// Local are those on this node, Ready those in the whole cluster
	// (Local included).
	Local, Ready int
}

// Endpoints are a Service's Ready endpoints per family, summed over its
// EndpointSlices.
type Endpoints struct {
	IPv6, IPv4 Counts
}

// Of returns the counts of a's family.
func (e Endpoints) Of(a netip.Addr) Counts {
	if a.Is4() {
		return e.IPv4
	}
	return e.IPv6
}

// Pool is what the decision needs of a ServiceAddressPool (ParsePool).
type Pool struct {
	Name             string
	CIDRs            []netip.Prefix
	Communities      []model.Community
	LargeCommunities []model.LargeCommunity
}

// Input is everything Decide reads.
type Input struct {
	Services []Service
	// Endpoints maps Service.Key to its Ready endpoints; a Service missing
	// from it has none.
	Endpoints map[string]Endpoints
	// Pools are the valid ServiceAddressPools, oldest first: an address
	// in two pools (the controller refuses that overlap) takes the older
	// one's communities.
	Pools []Pool
	// Reserved are ranges no Service address may be in: every node's pod
	// pools, the cluster's Service ranges.
	Reserved []annotations.Reserved
	// NodeReady: the node's agent is ready (Cluster Services are announced
	// only then).
	NodeReady bool
}

// Policy names of Decision.Policy.
const (
	PolicyLocal   = "Local"
	PolicyCluster = "Cluster"
)

// Decision is the verdict on one address of one Service.
type Decision struct {
	// Service is namespace/name.
	Service string
	Addr    netip.Addr
	// Policy is PolicyLocal or PolicyCluster (externalTrafficPolicy).
	Policy string
	// Pool is the ServiceAddressPool the address lies in, "" for none.
	Pool string
	// Endpoints are the Service's Ready endpoints of the address's family.
	Endpoints Counts
	Announce  bool
	// Reason says why, e.g. "Local: 2 ready endpoints on this node".
	Reason string
	// Refused: the address may not be announced by any node (outside
	// every pool, reserved, not unicast); a Warning for the operator,
	// where the other reasons are the normal course of things.
	Refused bool
}

// Route is one announced address with the communities of its pool.
type Route struct {
	Addr             netip.Addr
	Communities      []model.Community
	LargeCommunities []model.LargeCommunity
}

// Equal tells whether two routes are the same address with the same
// communities, in the same order.
func (r Route) Equal(o Route) bool {
	return r.Addr == o.Addr && slices.Equal(r.Communities, o.Communities) && slices.Equal(r.LargeCommunities, o.LargeCommunities)
}

// Decide returns a Decision for every ingress address of every Service
// flock serves, sorted by Service then address, and the routes to announce,
// sorted by address, each once even when Services share it. The result
// does not depend on the order of in.Services nor of their Ingress.
func Decide(in Input) ([]Decision, []Route) {
	svcs := slices.Clone(in.Services)
	slices.SortFunc(svcs, func(a, b Service) int { return cmp.Compare(a.Key(), b.Key()) })
	var ds []Decision
	routes := map[netip.Addr]Route{}
	for _, s := range svcs {
		if !s.Ours() {
			continue
		}
		ep := in.Endpoints[s.Key()]
		addrs := slices.Clone(s.Ingress)
		slices.SortFunc(addrs, netip.Addr.Compare)
		for _, a := range slices.Compact(addrs) {
			d := Decision{Service: s.Key(), Addr: a, Policy: PolicyCluster, Endpoints: ep.Of(a)}
			if s.Local {
				d.Policy = PolicyLocal
			}
			pool, reason := poolOf(a, in.Pools, in.Reserved)
			if reason != "" {
				d.Reason, d.Refused = reason, true
				ds = append(ds, d)
				continue
			}
			d.Pool = pool.Name
			d.Announce, d.Reason = gate(d, in.NodeReady)
			if d.Announce {
				routes[a] = Route{Addr: a, Communities: pool.Communities, LargeCommunities: pool.LargeCommunities}
			}
			ds = append(ds, d)
		}
	}
	out := make([]Route, 0, len(routes))
	for _, r := range routes {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Route) int { return a.Addr.Compare(b.Addr) })
	return ds, out
}

// poolOf is the pool a may be announced from, or why it may not.
func poolOf(a netip.Addr, pools []Pool, reserved []annotations.Reserved) (Pool, string) {
	if a.Zone() != "" || a.Is4In6() || !a.IsGlobalUnicast() {
		return Pool{}, "refused: not a global unicast address"
	}
	for _, r := range reserved {
		if r.Prefix.IsValid() && r.Prefix.Contains(a) {
			return Pool{}, fmt.Sprintf("refused: inside %s %s", r.What, r.Prefix.Masked())
		}
	}
	for _, p := range pools {
		if slices.ContainsFunc(p.CIDRs, func(c netip.Prefix) bool { return c.Contains(a) }) {
			return p, ""
		}
	}
	return Pool{}, "refused: outside every ServiceAddressPool"
}

// gate applies the externalTrafficPolicy to an address in a pool.
func gate(d Decision, nodeReady bool) (bool, string) {
	n := d.Endpoints
	if d.Policy == PolicyLocal {
		if n.Local == 0 {
			return false, "Local: no ready endpoint on this node"
		}
		return true, fmt.Sprintf("Local: %s on this node", plural(n.Local, "ready endpoint"))
	}
	switch {
	case !nodeReady:
		return false, "Cluster: this node is not ready"
	case n.Ready == 0:
		return false, "Cluster: no ready endpoint in the cluster"
	}
	return true, fmt.Sprintf("Cluster: %s in the cluster, %d on this node", plural(n.Ready, "ready endpoint"), n.Local)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// Addrs are the addresses of routes, by family: what the metrics count.
func Addrs(routes []Route) (v6, v4 int) {
	for _, r := range routes {
		if r.Addr.Is4() {
			v4++
		} else {
			v6++
		}
	}
	return v6, v4
}

// ParsePool validates a ServiceAddressPool's spec as the agent uses it: the
// schema checks the same, and the agent checks again before a value reaches
// BIRD. Errors name the pool and the field, e.g.
// `serviceaddresspool web: spec.cidrs[1] "192.0.2.1/24": host bits set`.
func ParsePool(name string, cidrs, communities, largeCommunities []string) (Pool, error) {
	p := Pool{Name: name}
	fail := func(err error) (Pool, error) { return Pool{}, fmt.Errorf("serviceaddresspool %s: %w", name, err) }
	if len(cidrs) == 0 {
		return fail(fmt.Errorf("spec.cidrs: empty"))
	}
	if len(cidrs) > v1alpha1.MaxServiceCIDRs {
		return fail(fmt.Errorf("spec.cidrs: %d entries, at most %d allowed", len(cidrs), v1alpha1.MaxServiceCIDRs))
	}
	for i, s := range cidrs {
		c, err := netip.ParsePrefix(strings.TrimSpace(s))
		switch {
		case err != nil:
			return fail(fmt.Errorf("spec.cidrs[%d] %q: not a CIDR", i, s))
		case c.Addr().Zone() != "" || c.Addr().Is4In6():
			return fail(fmt.Errorf("spec.cidrs[%d] %q: must be a plain IPv6 or IPv4 CIDR", i, s))
		case c != c.Masked():
			return fail(fmt.Errorf("spec.cidrs[%d] %q: host bits set (the network is %s)", i, s, c.Masked()))
		case !c.Addr().IsGlobalUnicast():
			return fail(fmt.Errorf("spec.cidrs[%d] %q: not a unicast range", i, s))
		}
		p.CIDRs = append(p.CIDRs, c)
	}
	var err error
	if p.Communities, err = model.ParseCommunities("spec.communities", communities); err != nil {
		return fail(err)
	}
	if p.LargeCommunities, err = model.ParseLargeCommunities("spec.largeCommunities", largeCommunities); err != nil {
		return fail(err)
	}
	return p, nil
}
