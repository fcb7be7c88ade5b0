package bird

import (
	"bytes"
	_ "embed"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"text/template"
)

//go:embed bird.conf.tmpl
var confTemplate string

var tmpl = template.Must(template.New("bird.conf").Funcs(template.FuncMap{
	"join": func(s []string) string { return strings.Join(s, ", ") },
}).Parse(confTemplate))

// bootstrapRouterID is the router id of a config without BGP on a node that
// has no IPv4 address: BIRD refuses to start without one ("Cannot determine
// router ID"), and without BGP it never reaches the wire.
var bootstrapRouterID = netip.AddrFrom4([4]byte{0, 0, 0, 1})

// Martians are never imported from BGP: they cannot be forwarded, and a
// link-local or multicast route in the kernel would break the node itself.
var martians = map[int][]string{
	6: {"::/128", "::1/128", "::ffff:0:0/96+", "fe80::/10+", "ff00::/8+"},
	4: {"0.0.0.0/8+", "127.0.0.0/8+", "169.254.0.0/16+", "224.0.0.0/4+", "240.0.0.0/4+"},
}

// view is what the template sees: every value already validated and
// formatted, so the template only lays it out.
type view struct {
	Bootstrap bool
	RouterID  netip.Addr
	Direct    bool
	BFD       bool
	Families  []family
	Peers     []peer
}

type family struct {
	V         int      // 6 or 4
	Static    []static // the routes of protocol static, one per Announce
	Announce  []string // the node's pools, anycast and Service prefixes, exactly
	Own       []string // the same, pools with everything inside them
	Connected []string // the node's connected subnets, exactly
	Martians  []string
}

// static is one route of protocol static: a prefix and the attributes it
// carries (statements such as `bgp_community.add((65000, 5))`).
type static struct {
	Prefix string
	Attrs  []string
}

type peer struct {
	Name             string
	V                int
	Local, Neighbor  netip.Addr
	LocalASN, ASN    uint32
	Multihop         int
	HoldTime         int
	GracefulRestart  bool
	RestartTime      int
	BFD              bool
	Password         string
	Communities      []string
	LargeCommunities []string
}

// Render validates cfg and renders the whole bird.conf for it.
func Render(cfg *Config) ([]byte, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bird config: %w", err)
	}
	v := view{Families: []family{cfg.family(6), cfg.family(4)}}
	var ok bool
	if v.RouterID, ok = cfg.routerID(); !ok {
		v.RouterID = bootstrapRouterID // no peers, or Validate would have failed
	}
	for _, p := range cfg.Peers {
		pv := peer{
			Name:            PeerName(p.Address),
			V:               family6or4(p.Address),
			Local:           p.SourceAddress,
			Neighbor:        p.Address,
			LocalASN:        cfg.ASN,
			ASN:             p.ASN,
			Multihop:        p.Multihop,
			HoldTime:        p.HoldTime,
			GracefulRestart: !p.DisableGracefulRestart,
			RestartTime:     p.RestartTime,
			BFD:             p.BFD,
			Password:        p.Password,
		}
		if !pv.Local.IsValid() {
			pv.Local, _ = LocalAddress(p.Address, cfg.Addresses) // checked by Validate
		}
		for _, c := range p.Communities {
			pv.Communities = append(pv.Communities, fmt.Sprintf("(%d, %d)", c.ASN, c.Value))
		}
		for _, c := range p.LargeCommunities {
			pv.LargeCommunities = append(pv.LargeCommunities, fmt.Sprintf("(%d, %d, %d)", c.Global, c.Data1, c.Data2))
		}
		v.Direct = v.Direct || p.Multihop > 0
		v.BFD = v.BFD || p.BFD
		v.Peers = append(v.Peers, pv)
	}
	// Sorted by address, so that reordering the NodeConfig's peers renders
	// the same file and does not reload BIRD.
	slices.SortFunc(v.Peers, func(a, b peer) int { return a.Neighbor.Compare(b.Neighbor) })
	return execute(v)
}

// RenderBootstrap renders the config of a node without NodeConfig: BIRD
// watches interfaces and learns the kernel's routes, and speaks no BGP.
func RenderBootstrap() []byte {
	out, err := execute(view{Bootstrap: true, RouterID: bootstrapRouterID,
		Families: []family{{V: 6}, {V: 4}}})
	if err != nil {
		panic(err) // a constant input: the tests render it
	}
	return out
}

func execute(v view) ([]byte, error) {
	var b bytes.Buffer
	if err := tmpl.Execute(&b, v); err != nil {
		return nil, fmt.Errorf("render bird config: %w", err)
	}
	return b.Bytes(), nil
}

// family gathers the prefix sets of one address family.
func (c *Config) family(v int) family {
	f := family{V: v, Martians: martians[v]}
	pool := c.Pool6
	if v == 4 {
		pool = c.Pool4
	}
	pools := []netip.Prefix{}
	if pool.IsValid() {
		pools = append(pools, pool)
	}
	var draining []netip.Prefix
	for _, p := range c.Draining {
		if family6or4(p.Addr()) == v && p != pool {
			draining = append(draining, p)
		}
	}
	slices.SortFunc(draining, netip.Prefix.Compare)
	pools = append(pools, slices.Compact(draining)...)
	var own []netip.Prefix
	for _, p := range pools {
		f.Announce = append(f.Announce, p.String())
		f.Own = append(f.Own, p.String()+"+")
		own = append(own, p)
	}
	for _, p := range pools {
		f.Static = append(f.Static, static{Prefix: p.String()})
	}
	// Anycast and Service addresses: host routes, each once, a Service's
	// with the communities of every Service route listing it.
	hosts := map[netip.Prefix][]string{}
	for _, a := range c.Anycast {
		if family6or4(a) == v {
			hosts[netip.PrefixFrom(a, a.BitLen())] = nil
		}
	}
	for _, r := range c.Services {
		if family6or4(r.Addr) != v {
			continue
		}
		p := netip.PrefixFrom(r.Addr, r.Addr.BitLen())
		attrs := hosts[p]
		for _, cm := range r.Communities {
			attrs = append(attrs, fmt.Sprintf("bgp_community.add((%d, %d))", cm.ASN, cm.Value))
		}
		for _, cm := range r.LargeCommunities {
			attrs = append(attrs, fmt.Sprintf("bgp_large_community.add((%d, %d, %d))", cm.Global, cm.Data1, cm.Data2))
		}
		slices.Sort(attrs)
		hosts[p] = slices.Compact(attrs)
	}
	for _, p := range slices.SortedFunc(maps.Keys(hosts), netip.Prefix.Compare) {
		f.Static = append(f.Static, static{Prefix: p.String(), Attrs: hosts[p]})
		f.Announce = append(f.Announce, p.String())
		f.Own = append(f.Own, p.String())
		own = append(own, p)
	}
	var connected []netip.Prefix
	for _, p := range c.Addresses {
		if family6or4(p.Addr()) != v || !p.Addr().IsGlobalUnicast() {
			continue
		}
		p = p.Masked()
		if !slices.ContainsFunc(own, func(o netip.Prefix) bool { return o.Bits() <= p.Bits() && o.Contains(p.Addr()) }) {
			connected = append(connected, p)
		}
	}
	slices.SortFunc(connected, netip.Prefix.Compare)
	for _, p := range slices.Compact(connected) {
		f.Connected = append(f.Connected, p.String())
	}
	return f
}

func family6or4(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

// PeerName is the name of the BIRD protocol of the session to a neighbour,
// as `show protocols` lists it: bgp6_2001_db8_1ab_1__1, bgp4_198_19_1_1.
// It derives from the address alone, so that adding or removing another
// peer never renames, and so restarts, this one's session.
func PeerName(neighbor netip.Addr) string {
	r := strings.NewReplacer(":", "_", ".", "_")
	return fmt.Sprintf("bgp%d_%s", family6or4(neighbor), r.Replace(neighbor.String()))
}
