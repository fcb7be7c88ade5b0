package model

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/fritzlab/flock/api/v1alpha1"
)

// NodeFromConfig validates a NodeConfig and turns it into a Node. Every
// error names the field and the value, so the agent can report it on the
// NodeConfig's status and in its log.
func NodeFromConfig(nc *v1alpha1.NodeConfig) (*Node, error) {
	if nc == nil {
		return nil, fmt.Errorf("nodeconfig is nil")
	}
	n := &Node{Name: nc.Name, Generation: nc.Generation, Annotations: nc.Annotations}
	if nc.Name == "" {
		return nil, fmt.Errorf("nodeconfig metadata.name is empty")
	}
	var err error
	if n.Pool6, err = parsePool("spec.cidr6", nc.Spec.CIDR6, true); err != nil {
		return nil, fmt.Errorf("nodeconfig %s: %w", nc.Name, err)
	}
	if n.Pool4, err = parsePool("spec.cidr4", nc.Spec.CIDR4, false); err != nil {
		return nil, fmt.Errorf("nodeconfig %s: %w", nc.Name, err)
	}
	if !n.Pool6.IsValid() && !n.Pool4.IsValid() {
		return nil, fmt.Errorf("nodeconfig %s: neither spec.cidr6 nor spec.cidr4 is set", nc.Name)
	}
	if a := nc.Spec.Anycast; a != nil {
		if n.AnycastAllowed, err = parseAllowed(a.AllowedCIDRs); err != nil {
			return nil, fmt.Errorf("nodeconfig %s: %w", nc.Name, err)
		}
	}
	if b := nc.Spec.BGP; b != nil {
		if n.BGP, err = parseBGP(b); err != nil {
			return nil, fmt.Errorf("nodeconfig %s: %w", nc.Name, err)
		}
	}
	if d := nc.Spec.Defaults; d != nil {
		n.Defaults = FamilyDefaults{IPv6: d.IPv6, IPv4: d.IPv4}
	}
	return n, nil
}

// parsePool parses a pod pool of one family. The empty string is no pool.
// The IPv4 pool needs a network, a gateway, a pod and a broadcast address,
// so at most /30; the IPv6 pool needs room for the IID algorithms' collision
// nibble and a host part, so at most /120.
func parsePool(field, s string, v6 bool) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%s %q: %w", field, s, err)
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("%s %q: host bits set (the network is %s)", field, s, p.Masked())
	}
	switch {
	case v6 && (!p.Addr().Is6() || p.Addr().Is4In6()):
		return netip.Prefix{}, fmt.Errorf("%s %q: not an IPv6 prefix", field, s)
	case !v6 && !p.Addr().Is4():
		return netip.Prefix{}, fmt.Errorf("%s %q: not an IPv4 prefix", field, s)
	case v6 && p.Bits() > 120:
		return netip.Prefix{}, fmt.Errorf("%s %q: prefix longer than /120", field, s)
	case !v6 && p.Bits() > 30:
		return netip.Prefix{}, fmt.Errorf("%s %q: prefix longer than /30", field, s)
	case p.Addr().IsLinkLocalUnicast() || p.Addr().IsMulticast() || p.Addr().IsLoopback() || p.Addr().IsUnspecified():
		return netip.Prefix{}, fmt.Errorf("%s %q: not a unicast pod range", field, s)
	}
	return p, nil
}

// parseAllowed parses spec.anycast.allowedCIDRs. Like the schema (a set),
// it rejects a string listed twice; two spellings of one prefix (upper and
// lower case) pass the schema, so they are merged here rather than refused.
func parseAllowed(cidrs []string) ([]netip.Prefix, error) {
	all, err := parseList("spec.anycast.allowedCIDRs", cidrs, v1alpha1.MaxAllowedCIDRs, parseNetwork)
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, p := range all {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// parseNetwork parses a prefix without host bits.
func parseNetwork(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("host bits set (the network is %s)", p.Masked())
	}
	return p, nil
}
