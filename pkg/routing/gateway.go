package routing

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/model"
)

// Gateways reads the node's default gateways, for peers written as
// default-gateway-ipv6/-ipv4 (Interfaces reads them with netlink).
type Gateways interface {
	// DefaultGateways returns the gateway of the node's preferred default
	// route of each family it has one of.
	DefaultGateways() ([]netip.Addr, error)
}

// needsGateways says whether some peer of n stands for a default gateway.
func needsGateways(n *model.Node) bool {
	return n.BGP != nil && slices.ContainsFunc(n.BGP.Peers, func(p model.Peer) bool { return p.DefaultGateway != 0 })
}

// ResolvePeers returns n with every default-gateway peer's Address set to
// the node's gateway of its family (n itself when there is none to
// resolve). A family without a usable gateway is an error naming the peer:
// BIRD cannot peer with a link-local gateway (it would need the interface)
// and the announced next hop must be global.
func ResolvePeers(n *model.Node, gateways []netip.Addr) (*model.Node, error) {
	if !needsGateways(n) {
		return n, nil
	}
	gw := map[int]netip.Addr{}
	for _, a := range gateways {
		fam := 6
		if a.Is4() {
			fam = 4
		}
		if _, ok := gw[fam]; !ok {
			gw[fam] = a
		}
	}
	out := *n
	bgp := *n.BGP
	bgp.Peers = slices.Clone(n.BGP.Peers)
	out.BGP = &bgp
	for i := range bgp.Peers {
		p := &bgp.Peers[i]
		if p.DefaultGateway == 0 {
			continue
		}
		name := v1alpha1.PeerDefaultGateway6
		if p.DefaultGateway == 4 {
			name = v1alpha1.PeerDefaultGateway4
		}
		a, ok := gw[p.DefaultGateway]
		switch {
		case !ok:
			return nil, fmt.Errorf("spec.bgp.peers[%d].address %s: the node has no IPv%d default route", i, name, p.DefaultGateway)
		case !a.IsGlobalUnicast() || a.Zone() != "":
			return nil, fmt.Errorf("spec.bgp.peers[%d].address %s: the default gateway %s is not a global unicast address; give the peer's address", i, name, a)
		}
		p.Address = a
	}
	return &out, nil
}
