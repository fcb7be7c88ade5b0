package bird

import (
	"errors"
	"net/netip"
)

// ErrNoLocalAddress is returned by LocalAddress when no node address is on
// the neighbour's subnet.
var ErrNoLocalAddress = errors.New("no node address on the peer's subnet")

// LocalAddress picks the node address a session to peer uses as its source
// and as the next hop it announces: a global unicast address of the peer's
// family whose subnet contains the peer. Of several, the most specific
// subnet wins, then the lowest address, so the choice does not depend on
// the order of addrs. A link-local address is never chosen: routers such as
// Cisco IOS reject IPv6 announcements whose only next hop is link-local.
func LocalAddress(peer netip.Addr, addrs []netip.Prefix) (netip.Addr, error) {
	var best netip.Prefix
	for _, p := range addrs {
		a := p.Addr()
		if !p.IsValid() || a.Is4In6() || a.Zone() != "" || !a.IsGlobalUnicast() ||
			a.Is6() != peer.Is6() || a == peer || !p.Contains(peer) {
			continue
		}
		if !best.IsValid() || p.Bits() > best.Bits() ||
			(p.Bits() == best.Bits() && a.Less(best.Addr())) {
			best = p
		}
	}
	if !best.IsValid() {
		return netip.Addr{}, ErrNoLocalAddress
	}
	return best.Addr(), nil
}

// routerID returns the router id the rendered config uses: c.RouterID when
// set, else the derived one (see Config.RouterID). ok is false when there is
// neither.
func (c *Config) routerID() (netip.Addr, bool) {
	if c.RouterID.IsValid() {
		return c.RouterID, true
	}
	return c.derivedRouterID()
}

// derivedRouterID is the lowest IPv4 global unicast node address outside
// the IPv4 pool (the pool's gateway on lo is the same on no two nodes, but
// an uplink address is what an operator recognises in `show protocols`).
func (c *Config) derivedRouterID() (netip.Addr, bool) {
	var best netip.Addr
	for _, p := range c.Addresses {
		a := p.Addr()
		if !p.IsValid() || !a.Is4() || !a.IsGlobalUnicast() || (c.Pool4.IsValid() && c.Pool4.Contains(a)) {
			continue
		}
		if !best.IsValid() || a.Less(best) {
			best = a
		}
	}
	return best, best.IsValid()
}
