package policy

import "net/netip"

// SetsPermit returns a function that evaluates the nftables sets Render
// writes for an allow-list as the kernel does with the chain around them,
// for the oracle tests (package policy_test).
func SetsPermit(a *Allow) func(remote netip.Addr, proto Protocol, port uint16) bool {
	s := buildSets(a)
	return s.permits
}

// permits evaluates the sets as the kernel does with the chain Render writes.
func (s *sets) permits(remote netip.Addr, proto Protocol, port uint16) bool {
	any, ports := s.any4, s.ports4
	if remote.Is6() {
		any, ports = s.any6, s.ports6
	}
	in := func(sp span) bool { return sp.contains(remote) }
	for _, sp := range any {
		if in(sp) {
			return true
		}
	}
	for _, e := range ports {
		if e.proto == proto && e.first <= int(port) && int(port) <= e.last && in(e.peers) {
			return true
		}
	}
	return false
}
