package model

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/fritzlab/flock/api/v1alpha1"
)

// BGP is the node's BGP speaker (NodeConfig spec.bgp), validated.
type BGP struct {
	// ASN is the node's autonomous system number.
	ASN uint32
	// RouterID is the BGP identifier; the zero Addr means "derive it from
	// the node's addresses" (the renderer does).
	RouterID netip.Addr
	// Peers are the neighbours, in the NodeConfig's order, so that an error
	// the renderer reports as peers[i] is spec.bgp.peers[i].
	Peers []Peer
}

// Peer is one BGP neighbour with every optional value resolved.
type Peer struct {
	// Address is the neighbour; the zero Addr when DefaultGateway is set.
	Address netip.Addr
	// DefaultGateway is 6 or 4 for a peer written as default-gateway-ipv6
	// or default-gateway-ipv4: the neighbour is the node's default gateway
	// of that family, which the BIRD renderer's caller resolves (see
	// routing.ResolvePeers). 0 for a peer with a fixed Address.
	DefaultGateway int
	ASN            uint32
	// SourceAddress is the node address of the session; the zero Addr: the
	// node address on the neighbour's subnet.
	SourceAddress netip.Addr
	BFD           bool
	// HoldTime, RestartTime and Multihop are in seconds (a TTL for
	// Multihop); 0 is BIRD's default (directly connected for Multihop).
	HoldTime        int
	GracefulRestart bool
	RestartTime     int
	Multihop        int
	// Password names the Secret key of the TCP MD5 password; nil: none.
	Password         *SecretRef
	Communities      []Community
	LargeCommunities []LargeCommunity
}

// Is4 says whether the peer is an IPv4 neighbour.
func (p Peer) Is4() bool {
	if p.DefaultGateway != 0 {
		return p.DefaultGateway == 4
	}
	return p.Address.Is4()
}

// SecretRef is one key of a Secret in the agent's namespace.
type SecretRef struct {
	// Namespace is the one the NodeConfig names; empty: the agent's. The
	// agent rejects a NodeConfig naming any other (CheckSecretsNamespace).
	Namespace string
	Name      string
	Key       string
}

func (r SecretRef) String() string { return r.Name + "/" + r.Key }

// Community is a standard BGP community (RFC 1997), ASN:value.
type Community struct{ ASN, Value uint16 }

// LargeCommunity is a large BGP community (RFC 8092), global:data1:data2.
type LargeCommunity struct{ Global, Data1, Data2 uint32 }

// The patterns the CRD schema gives a Secret's name (a DNS subdomain) and
// key; repeated here because the agent validates again before using them.
var (
	secretName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	secretKey  = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)
	namespace  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
)

// parseBGP validates spec.bgp with the limits of the CRD schema. Errors
// name the field and the value.
func parseBGP(s *v1alpha1.BGPSpec) (*BGP, error) {
	b := &BGP{ASN: s.ASN}
	if err := checkASN("spec.bgp.asn", s.ASN); err != nil {
		return nil, err
	}
	if s.RouterID != "" {
		a, err := netip.ParseAddr(s.RouterID)
		switch {
		case err != nil:
			return nil, fmt.Errorf("spec.bgp.routerID %q: %w", s.RouterID, err)
		case !a.Is4():
			return nil, fmt.Errorf("spec.bgp.routerID %q: not an IPv4 address", s.RouterID)
		case a.IsUnspecified():
			return nil, fmt.Errorf("spec.bgp.routerID %q: must not be 0.0.0.0", s.RouterID)
		}
		b.RouterID = a
	}
	if len(s.Peers) > v1alpha1.MaxBGPPeers {
		return nil, fmt.Errorf("spec.bgp.peers: %d peers, at most %d allowed", len(s.Peers), v1alpha1.MaxBGPPeers)
	}
	// Addresses are canonical (parseUnicast), so the text is the key; a
	// gateway that equals a fixed peer is caught once it is resolved.
	seen := map[string]int{}
	for i := range s.Peers {
		p, err := parsePeer(fmt.Sprintf("spec.bgp.peers[%d]", i), &s.Peers[i])
		if err != nil {
			return nil, err
		}
		if j, dup := seen[s.Peers[i].Address]; dup {
			return nil, fmt.Errorf("spec.bgp.peers[%d].address %q: listed twice (also spec.bgp.peers[%d])", i, s.Peers[i].Address, j)
		}
		seen[s.Peers[i].Address] = i
		b.Peers = append(b.Peers, p)
	}
	return b, nil
}

func parsePeer(field string, s *v1alpha1.BGPPeer) (Peer, error) {
	p := Peer{
		ASN: s.ASN, BFD: s.BFD, GracefulRestart: s.GracefulRestart == nil || *s.GracefulRestart,
		HoldTime: int(s.HoldTime), RestartTime: int(s.RestartTime), Multihop: int(s.Multihop),
	}
	var err error
	switch s.Address {
	case v1alpha1.PeerDefaultGateway6:
		p.DefaultGateway = 6
	case v1alpha1.PeerDefaultGateway4:
		p.DefaultGateway = 4
	default:
		if p.Address, err = parseUnicast(field+".address", s.Address); err != nil {
			return Peer{}, fmt.Errorf("%w (or %s, %s)", err, v1alpha1.PeerDefaultGateway6, v1alpha1.PeerDefaultGateway4)
		}
	}
	if err := checkASN(field+".asn", s.ASN); err != nil {
		return Peer{}, err
	}
	if s.SourceAddress != "" {
		if p.SourceAddress, err = parseUnicast(field+".sourceAddress", s.SourceAddress); err != nil {
			return Peer{}, err
		}
		if p.SourceAddress.Is4() != p.Is4() {
			return Peer{}, fmt.Errorf("%s.sourceAddress %q: not of the family of address %q", field, s.SourceAddress, s.Address)
		}
	}
	switch {
	case p.HoldTime != 0 && (p.HoldTime < v1alpha1.MinHoldTime || p.HoldTime > v1alpha1.MaxHoldTime):
		return Peer{}, fmt.Errorf("%s.holdTime %d: must be 0 (the default) or %d to %d seconds", field, p.HoldTime, v1alpha1.MinHoldTime, v1alpha1.MaxHoldTime)
	case p.RestartTime < 0 || p.RestartTime > v1alpha1.MaxRestartTime:
		return Peer{}, fmt.Errorf("%s.restartTime %d: must be 0 (the default) to %d seconds", field, p.RestartTime, v1alpha1.MaxRestartTime)
	case p.Multihop < 0 || p.Multihop > v1alpha1.MaxMultihop:
		return Peer{}, fmt.Errorf("%s.multihop %d: must be 0 (directly connected) to %d", field, p.Multihop, v1alpha1.MaxMultihop)
	}
	if r := s.PasswordSecretRef; r != nil {
		switch {
		case len(r.Name) > v1alpha1.MaxSecretNameLength || !secretName.MatchString(r.Name):
			return Peer{}, fmt.Errorf("%s.passwordSecretRef.name %q: not a Secret name (a DNS subdomain of at most %d characters)", field, r.Name, v1alpha1.MaxSecretNameLength)
		case len(r.Key) > v1alpha1.MaxSecretKeyLength || !secretKey.MatchString(r.Key):
			return Peer{}, fmt.Errorf("%s.passwordSecretRef.key %q: not a Secret key (letters, digits, '-', '_', '.', at most %d)", field, r.Key, v1alpha1.MaxSecretKeyLength)
		case r.Namespace != "" && (len(r.Namespace) > v1alpha1.MaxNamespaceLength || !namespace.MatchString(r.Namespace)):
			return Peer{}, fmt.Errorf("%s.passwordSecretRef.namespace %q: not a namespace name (a DNS label of at most %d characters)", field, r.Namespace, v1alpha1.MaxNamespaceLength)
		}
		p.Password = &SecretRef{Namespace: r.Namespace, Name: r.Name, Key: r.Key}
	}
	if p.Communities, err = parseList(field+".communities", s.Communities, v1alpha1.MaxCommunities, parseCommunity); err != nil {
		return Peer{}, err
	}
	if p.LargeCommunities, err = parseList(field+".largeCommunities", s.LargeCommunities, v1alpha1.MaxCommunities, parseLargeCommunity); err != nil {
		return Peer{}, err
	}
	return p, nil
}

// parseUnicast accepts what the schema does for a peer's addresses: a
// global unicast address in canonical form. Canonical, so that two
// spellings of one neighbour cannot both be listed.
func parseUnicast(field, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return netip.Addr{}, fmt.Errorf("%s %q: %w", field, s, err)
	case a.Zone() != "":
		return netip.Addr{}, fmt.Errorf("%s %q: has a zone (link-local neighbours are not supported)", field, s)
	case a.Is4In6():
		return netip.Addr{}, fmt.Errorf("%s %q: an IPv4-mapped IPv6 address; give the IPv4 address", field, s)
	case !a.IsGlobalUnicast():
		return netip.Addr{}, fmt.Errorf("%s %q: not a unicast address (link-local, loopback, multicast and unspecified are not allowed)", field, s)
	case a.String() != s:
		return netip.Addr{}, fmt.Errorf("%s %q: not in canonical form (write %s)", field, s, a)
	}
	return a, nil
}

func checkASN(field string, asn uint32) error {
	switch asn {
	case 0:
		return fmt.Errorf("%s %d: must be 1 to 4294967295", field, asn)
	case v1alpha1.ASTrans:
		return fmt.Errorf("%s %d: is AS_TRANS, not a real ASN", field, asn)
	}
	return nil
}

// parseList parses a list the schema treats as a set: at most maxItems
// entries, none listed twice.
func parseList[T any](field string, in []string, maxItems int, parse func(string) (T, error)) ([]T, error) {
	if len(in) > maxItems {
		return nil, fmt.Errorf("%s: %d entries, at most %d allowed", field, len(in), maxItems)
	}
	var out []T
	seen := map[string]int{}
	for i, s := range in {
		if j, dup := seen[s]; dup {
			return nil, fmt.Errorf("%s[%d] %q: listed twice (also %s[%d])", field, i, s, field, j)
		}
		seen[s] = i
		v, err := parse(s)
		if err != nil {
			return nil, fmt.Errorf("%s[%d] %q: %w", field, i, s, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func parseCommunity(s string) (Community, error) {
	n, err := parseNumbers(s, 5, 16, "ASN:value with both 0 to 65535")
	if err != nil {
		return Community{}, err
	}
	return Community{ASN: uint16(n[0]), Value: uint16(n[1])}, nil
}

func parseLargeCommunity(s string) (LargeCommunity, error) {
	n, err := parseNumbers(s, 10, 32, "global:data1:data2 with each 0 to 4294967295")
	if err != nil {
		return LargeCommunity{}, err
	}
	return LargeCommunity{Global: uint32(n[0]), Data1: uint32(n[1]), Data2: uint32(n[2])}, nil
}

// parseNumbers reads colon-separated decimal numbers of at most digits
// digits (the schema's pattern) that fit in bits bits: two of them for 16
// bits, three for 32.
func parseNumbers(s string, digits, bits int, want string) ([]uint64, error) {
	parts := strings.Split(s, ":")
	if n := map[int]int{16: 2, 32: 3}[bits]; len(parts) != n {
		return nil, fmt.Errorf("must be %s", want)
	}
	var out []uint64
	for _, p := range parts {
		if len(p) == 0 || len(p) > digits || strings.Trim(p, "0123456789") != "" {
			return nil, fmt.Errorf("must be %s", want)
		}
		v, err := strconv.ParseUint(p, 10, bits)
		if err != nil {
			return nil, fmt.Errorf("must be %s", want)
		}
		out = append(out, v)
	}
	return out, nil
}

// CheckSecretsNamespace rejects a node whose BGP peers name a password
// Secret outside ns, the only namespace the agent reads Secrets in: a
// NodeConfig must not be a way to read Secrets of other namespaces.
func CheckSecretsNamespace(n *Node, ns string) error {
	if n == nil || n.BGP == nil {
		return nil
	}
	for i, p := range n.BGP.Peers {
		if p.Password != nil && p.Password.Namespace != "" && p.Password.Namespace != ns {
			return fmt.Errorf("nodeconfig %s: spec.bgp.peers[%d].passwordSecretRef.namespace %q: the agent reads Secrets only in its own namespace %q",
				n.Name, i, p.Password.Namespace, ns)
		}
	}
	return nil
}

// ParseCommunities parses a list of standard communities (ASN:value) that
// the schema treats as a set of at most v1alpha1.MaxCommunities entries,
// such as a ServiceAddressPool's spec.communities; errors name field[i].
func ParseCommunities(field string, in []string) ([]Community, error) {
	return parseList(field, in, v1alpha1.MaxCommunities, parseCommunity)
}

// ParseLargeCommunities is ParseCommunities for large communities
// (global:data1:data2).
func ParseLargeCommunities(field string, in []string) ([]LargeCommunity, error) {
	return parseList(field, in, v1alpha1.MaxCommunities, parseLargeCommunity)
}
