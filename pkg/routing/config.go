// Package routing keeps the node's BIRD in step with its NodeConfig: a
// controller renders the whole bird.conf from the node's model, its
// interface addresses, the BGP passwords and the active anycast set, hands
// it to a bird.Reloader, and reports the outcome as the NodeConfig's
// BGPConfigured condition.
//
// The decision (which bird.Config) is a pure function in this file; the
// controller gets everything it reads through small interfaces, so it is
// tested with fakes, and netlink is confined to a *_linux.go file.
package routing

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/fritzlab/flock/pkg/bird"
	"github.com/fritzlab/flock/pkg/lbannounce"
	"github.com/fritzlab/flock/pkg/model"
)

// BirdConfig builds the BIRD model of a node with BGP (n.BGP not nil).
// draining are old pools that still hold pods, announced like the pools
// until they are empty; services the LoadBalancer Service addresses the
// node serves (lbannounce.Decide). passwords holds the value of every Secret key the peers name. Peers keep
// the NodeConfig's order, so that an error bird reports for peers[i] is
// about spec.bgp.peers[i].
func BirdConfig(n *model.Node, addrs []netip.Prefix, anycast []netip.Addr, draining []netip.Prefix, services []lbannounce.Route, passwords map[model.SecretRef]string) *bird.Config {
	cfg := &bird.Config{
		RouterID:  n.BGP.RouterID,
		ASN:       n.BGP.ASN,
		Addresses: slices.Clone(addrs),
		Pool6:     n.Pool6,
		Pool4:     n.Pool4,
		Anycast:   slices.Clone(anycast),
		Draining:  slices.Clone(draining),
	}
	for _, r := range services {
		sr := bird.ServiceRoute{Addr: r.Addr}
		for _, c := range r.Communities {
			sr.Communities = append(sr.Communities, bird.Community{ASN: c.ASN, Value: c.Value})
		}
		for _, c := range r.LargeCommunities {
			sr.LargeCommunities = append(sr.LargeCommunities, bird.LargeCommunity{Global: c.Global, Data1: c.Data1, Data2: c.Data2})
		}
		cfg.Services = append(cfg.Services, sr)
	}
	for _, p := range n.BGP.Peers {
		bp := bird.Peer{
			Address:                p.Address,
			ASN:                    p.ASN,
			SourceAddress:          p.SourceAddress,
			BFD:                    p.BFD,
			HoldTime:               p.HoldTime,
			DisableGracefulRestart: !p.GracefulRestart,
			RestartTime:            p.RestartTime,
			Multihop:               p.Multihop,
		}
		if p.Password != nil {
			bp.Password = passwords[*p.Password]
		}
		for _, c := range p.Communities {
			bp.Communities = append(bp.Communities, bird.Community{ASN: c.ASN, Value: c.Value})
		}
		for _, c := range p.LargeCommunities {
			bp.LargeCommunities = append(bp.LargeCommunities, bird.LargeCommunity{Global: c.Global, Data1: c.Data1, Data2: c.Data2})
		}
		cfg.Peers = append(cfg.Peers, bp)
	}
	return cfg
}

// Render renders the bird.conf of a node: the bootstrap config (no BGP)
// when n is nil or has no spec.bgp, the full one otherwise. A render error
// names the NodeConfig field it is about (see specError).
func Render(n *model.Node, addrs []netip.Prefix, anycast []netip.Addr, draining []netip.Prefix, services []lbannounce.Route, passwords map[model.SecretRef]string) ([]byte, error) {
	if n == nil || n.BGP == nil {
		return bird.RenderBootstrap(), nil
	}
	conf, err := bird.Render(BirdConfig(n, addrs, anycast, draining, services, passwords))
	if err != nil {
		return nil, fmt.Errorf("nodeconfig %s: %w", n.Name, specError(err))
	}
	return conf, nil
}

// specError rewrites the errors of bird.Config.Validate, one per line,
// so that those about an operator's value name its NodeConfig field:
// bird.Config calls spec.bgp's asn, routerID and peers[i] (in the same
// order) by the same names, and a peer's password comes from its
// passwordSecretRef. What is not the operator's (the node's addresses, the
// pools checked already) keeps bird's name.
func specError(err error) error {
	lines := strings.Split(strings.TrimPrefix(err.Error(), "bird config: "), "\n")
	for i, l := range lines {
		for _, f := range []string{"asn ", "routerID", "peers["} {
			if strings.HasPrefix(l, f) {
				l = "spec.bgp." + l
				break
			}
		}
		if j := strings.Index(l, "].password: "); j >= 0 && strings.HasPrefix(l, "spec.bgp.peers[") {
			l = l[:j] + "].passwordSecretRef (the Secret's value): " + l[j+len("].password: "):]
		}
		lines[i] = l
	}
	return errors.New(strings.Join(lines, "\n"))
}

// passwordRefs lists the Secret keys n's peers name, each once, in order.
func passwordRefs(n *model.Node) []model.SecretRef {
	if n == nil || n.BGP == nil {
		return nil
	}
	var refs []model.SecretRef
	for _, p := range n.BGP.Peers {
		if p.Password != nil && !slices.Contains(refs, *p.Password) {
			refs = append(refs, *p.Password)
		}
	}
	return refs
}

// sortedAddrs returns addrs sorted and without duplicates, so that the
// anycast set compares (and renders) the same in any order.
func sortedAddrs(addrs []netip.Addr) []netip.Addr {
	out := slices.Clone(addrs)
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}
