// Package bird turns flock's view of a node into a BIRD 2 configuration and
// keeps a running BIRD in step with it.
//
// The model (Config) and the renderer (Render, RenderBootstrap) are pure:
// they import neither netlink nor client-go, and every operator-supplied
// value is validated before it reaches the template, so no value can change
// the structure of the rendered file. The control-socket Client and the
// Reloader are the only parts that touch the outside world.
package bird

import (
	"errors"
	"fmt"
	"net/netip"
)

// Config is everything the rendered bird.conf depends on.
type Config struct {
	// RouterID is the BGP identifier, an IPv4 address. The zero Addr means
	// "derive it": the lowest IPv4 unicast address among Addresses that is
	// not inside Pool4 (see RouterID).
	RouterID netip.Addr
	// ASN is the node's own autonomous system number.
	ASN uint32
	// Addresses are the node's interface addresses with their prefix
	// lengths, as `ip addr` shows them (2001:db8:1ab:1::2/64). They decide
	// the `local` address of each session (LocalAddress), the derived router
	// id, and which connected subnets BGP may not override.
	Addresses []netip.Prefix
	// Peers are the BGP neighbours. Each session carries the family of its
	// neighbour's address only.
	Peers []Peer
	// Pool6 and Pool4 are the node's pod pools; the zero Prefix means no pool
	// of that family. They are announced to every peer of their family.
	Pool6 netip.Prefix
	Pool4 netip.Prefix
	// Anycast are the anycast addresses served by Ready pods on this node,
	// announced as /128 and /32. Order and duplicates do not matter.
	Anycast []netip.Addr
	// Draining are the node's former pools that still hold pods (the
	// NodeConfig changed the pool under them): announced and owned like
	// Pool6 and Pool4 until the last pod in them is gone, so that the
	// router keeps sending those pods their traffic. Order and duplicates
	// do not matter.
	Draining []netip.Prefix
	// Services are the addresses of LoadBalancer Services this node
	// serves (lbannounce.Decide), announced as /128 and /32 with their
	// pool's communities on top of each peer's own. Order does not matter;
	// an address listed twice, or also in Anycast, is announced once with
	// the communities of every listing.
	Services []ServiceRoute
}

// ServiceRoute is one Service address and the communities its route
// carries.
type ServiceRoute struct {
	Addr             netip.Addr
	Communities      []Community
	LargeCommunities []LargeCommunity
}

// Peer is one BGP neighbour.
type Peer struct {
	// Address is the neighbour's global unicast address.
	Address netip.Addr
	// ASN is the neighbour's autonomous system number; equal to Config.ASN
	// makes an iBGP session.
	ASN uint32
	// SourceAddress, when set, is the node address the session uses (`local`
	// and next hop). It must be one of Config.Addresses. When zero, the node
	// address on the neighbour's subnet is used; a multihop neighbour that is
	// on no subnet of the node needs it.
	SourceAddress netip.Addr
	// BFD turns on BFD for the session (and renders `protocol bfd`).
	BFD bool
	// HoldTime is the BGP hold time in seconds: 0 for BIRD's default (240),
	// else 3 to 65535.
	HoldTime int
	// DisableGracefulRestart turns graceful restart off. It is on by default
	// so that an agent or BIRD restart does not withdraw the node's routes.
	DisableGracefulRestart bool
	// RestartTime is the graceful restart time in seconds the node asks its
	// neighbour to keep its routes for: 0 for BIRD's default (120), else 1 to
	// 4095 (a 12-bit field on the wire).
	RestartTime int
	// Multihop is the TTL of a session to a neighbour that is not directly
	// connected: 0 for a directly connected neighbour, else 1 to 255.
	Multihop int
	// Password is the TCP MD5 password (RFC 2385), already read from its
	// Secret; empty for none. Printable ASCII without '"' and '\', at most
	// 80 bytes (the kernel's TCP_MD5SIG_MAXKEYLEN).
	Password string
	// Communities and LargeCommunities are added to every route announced to
	// this neighbour, for the router's policy to match on.
	Communities      []Community
	LargeCommunities []LargeCommunity
}

// Community is a standard BGP community (RFC 1997), written ASN:value.
type Community struct {
	ASN   uint16
	Value uint16
}

func (c Community) String() string { return fmt.Sprintf("%d:%d", c.ASN, c.Value) }

// LargeCommunity is a large BGP community (RFC 8092), written
// global:data1:data2.
type LargeCommunity struct {
	Global, Data1, Data2 uint32
}

func (c LargeCommunity) String() string {
	return fmt.Sprintf("%d:%d:%d", c.Global, c.Data1, c.Data2)
}

// Limits of the values Validate accepts.
const (
	MaxHoldTime    = 65535
	MinHoldTime    = 3
	MaxRestartTime = 4095
	MaxMultihop    = 255
	MaxPasswordLen = 80
	// ASTrans (AS 23456, RFC 6793) is what 2-byte speakers see in place of
	// a 4-byte ASN; configured as a real ASN it breaks sessions.
	ASTrans = 23456
)

// Validate checks every value of c. Each error names the field and the
// offending value (never the password's), e.g.
// `peers[1].address "fe80::1": not a global unicast address`.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if err := checkASN(c.ASN); err != nil {
		bad("asn %d: %w", c.ASN, err)
	}
	for i, p := range c.Addresses {
		if err := checkInterfacePrefix(p); err != nil {
			bad("addresses[%d] %q: %w", i, p, err)
		}
	}
	checkPool := func(field string, p netip.Prefix, v6 bool) {
		if p == (netip.Prefix{}) {
			return
		}
		if err := checkPoolPrefix(p, v6); err != nil {
			bad("%s %q: %w", field, p, err)
		}
	}
	checkPool("pool6", c.Pool6, true)
	checkPool("pool4", c.Pool4, false)
	for i, p := range c.Draining {
		if err := checkPoolPrefix(p, p.Addr().Is6()); err != nil {
			bad("draining[%d] %q: %w", i, p, err)
		}
	}
	for i, a := range c.Anycast {
		if err := checkUnicast(a); err != nil {
			bad("anycast[%d] %q: %w", i, a, err)
		}
	}
	for i, r := range c.Services {
		if err := checkUnicast(r.Addr); err != nil {
			bad("services[%d] %q: %w", i, r.Addr, err)
		}
	}
	if c.RouterID != (netip.Addr{}) {
		if err := checkRouterID(c.RouterID); err != nil {
			bad("routerID %q: %w", c.RouterID, err)
		}
	} else if _, ok := c.derivedRouterID(); !ok && len(c.Peers) > 0 {
		bad("routerID: not set, and the node has no IPv4 address outside pool4 to take it from")
	}
	seen := map[netip.Addr]int{}
	for i := range c.Peers {
		errs = append(errs, c.validatePeer(i, seen)...)
	}
	return errors.Join(errs...)
}

func (c *Config) validatePeer(i int, seen map[netip.Addr]int) []error {
	p := &c.Peers[i]
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("peers[%d]."+format, append([]any{i}, a...)...))
	}
	addrOK := true
	if err := checkUnicast(p.Address); err != nil {
		bad("address %q: %w", p.Address, err)
		addrOK = false
	} else if j, dup := seen[p.Address]; dup {
		bad("address %q: listed twice (also peers[%d])", p.Address, j)
	} else {
		seen[p.Address] = i
		if c.isNodeAddress(p.Address) {
			bad("address %q: is one of the node's own addresses", p.Address)
			addrOK = false
		}
		for _, pool := range []netip.Prefix{c.Pool6, c.Pool4} {
			if pool.IsValid() && pool.Contains(p.Address) {
				bad("address %q: inside the node's pod pool %s", p.Address, pool)
				addrOK = false
			}
		}
	}
	if err := checkASN(p.ASN); err != nil {
		bad("asn %d: %w", p.ASN, err)
	}
	if p.HoldTime != 0 && (p.HoldTime < MinHoldTime || p.HoldTime > MaxHoldTime) {
		bad("holdTime %d: must be 0 (BIRD's default) or %d to %d seconds", p.HoldTime, MinHoldTime, MaxHoldTime)
	}
	if p.RestartTime < 0 || p.RestartTime > MaxRestartTime {
		bad("restartTime %d: must be 0 (BIRD's default) or 1 to %d seconds", p.RestartTime, MaxRestartTime)
	}
	if p.Multihop < 0 || p.Multihop > MaxMultihop {
		bad("multihop %d: must be 0 (directly connected) or a TTL of 1 to %d", p.Multihop, MaxMultihop)
	}
	if err := checkPassword(p.Password); err != nil {
		bad("password: %w", err)
	}
	if p.SourceAddress != (netip.Addr{}) {
		switch {
		case checkUnicast(p.SourceAddress) != nil:
			bad("sourceAddress %q: %w", p.SourceAddress, checkUnicast(p.SourceAddress))
		case !c.isNodeAddress(p.SourceAddress):
			bad("sourceAddress %q: not one of the node's addresses", p.SourceAddress)
		case addrOK && p.SourceAddress.Is6() != p.Address.Is6():
			bad("sourceAddress %q: not of the same family as address %q", p.SourceAddress, p.Address)
		}
	} else if addrOK {
		if _, err := LocalAddress(p.Address, c.Addresses); err != nil {
			hint := ""
			if p.Multihop > 0 {
				hint = "; set sourceAddress for a multihop peer"
			}
			bad("address %q: %w%s", p.Address, err, hint)
		}
	}
	return errs
}

// isNodeAddress tells whether a is one of the node's interface addresses.
func (c *Config) isNodeAddress(a netip.Addr) bool {
	for _, p := range c.Addresses {
		if p.Addr() == a {
			return true
		}
	}
	return false
}

func checkASN(asn uint32) error {
	switch asn {
	case 0:
		return errors.New("must be 1 to 4294967295")
	case ASTrans:
		return errors.New("is AS_TRANS (23456), not a real ASN")
	}
	return nil
}

// checkUnicast accepts a global unicast address: not link-local, loopback,
// multicast, unspecified or broadcast, without zone, and not an IPv4-mapped
// IPv6 address (which would be rendered in the wrong family).
func checkUnicast(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return errors.New("not an IP address")
	case a.Zone() != "":
		return errors.New("has a zone")
	case a.Is4In6():
		return errors.New("an IPv4-mapped IPv6 address; give the IPv4 address")
	case !a.IsGlobalUnicast():
		return errors.New("not a global unicast address (link-local, loopback, multicast, unspecified and broadcast are not allowed)")
	}
	return nil
}

func checkRouterID(a netip.Addr) error {
	if !a.IsValid() || !a.Is4() {
		return errors.New("not an IPv4 address")
	}
	if a.IsUnspecified() {
		return errors.New("must not be 0.0.0.0")
	}
	return nil
}

func checkInterfacePrefix(p netip.Prefix) error {
	if !p.IsValid() {
		return errors.New("not an address with a prefix length")
	}
	if p.Addr().Is4In6() {
		return errors.New("an IPv4-mapped IPv6 address; give the IPv4 address")
	}
	return nil
}

func checkPoolPrefix(p netip.Prefix, v6 bool) error {
	switch {
	case !p.IsValid():
		return errors.New("not a prefix")
	case v6 && (!p.Addr().Is6() || p.Addr().Is4In6()):
		return errors.New("not an IPv6 prefix")
	case !v6 && !p.Addr().Is4():
		return errors.New("not an IPv4 prefix")
	case p != p.Masked():
		return fmt.Errorf("host bits set (the network is %s)", p.Masked())
	}
	return checkUnicast(p.Addr())
}

// checkPassword accepts what BIRD 2 reads back verbatim between double
// quotes. BIRD has no escapes in strings: a '"' would end the string and a
// newline is a syntax error, so such passwords are rejected rather than
// escaped; '\' is rejected too, because later BIRD versions read escapes.
// The error never repeats the password.
func checkPassword(pw string) error {
	if len(pw) > MaxPasswordLen {
		return fmt.Errorf("%d bytes long, at most %d allowed (TCP MD5 keys are at most 80 bytes)", len(pw), MaxPasswordLen)
	}
	for i := 0; i < len(pw); i++ {
		switch b := pw[i]; {
		case b == '"':
			return fmt.Errorf("byte %d is a double quote, which is not allowed", i)
		case b == '\\':
			return fmt.Errorf("byte %d is a backslash, which is not allowed", i)
		case b < 0x20 || b > 0x7e:
			return fmt.Errorf("byte %d is not printable ASCII (control characters and non-ASCII are not allowed)", i)
		}
	}
	return nil
}
