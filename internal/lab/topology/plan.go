// Package topology builds the lab's network: an upstream router namespace
// and one namespace per node, each node wired to the router by a veth, the
// nodes' default routes via the router, and (until BGP) static routes on the
// router to every node's pod pools.
//
// Addressing, for node i (1-based):
//
//	link   2001:db8:1ab:<i>::/64 (router ::1, node ::2), 198.19.<i>.0/24 (router .1, node .2)
//	pools  2001:db8:42:<i>::/64, 198.18.<i>.0/24
//
// <i> is written in decimal in both families (node-10: 2001:db8:42:10::/64).
//
// 198.18.0.0/15 is the benchmarking range and 2001:db8::/32 the
// documentation range: never a real network.
package topology

import (
	"fmt"
	"net/netip"
)

// MaxNodes is the most nodes the addressing plan has room for (the node
// index is an octet of the IPv4 link and pool; 255 is left for services).
const MaxNodes = 254

// UplinkName is the node end of a node's veth, in the node's namespace.
const UplinkName = "uplink"

// Config names a topology. Prefix is the start of every namespace name:
// "flk-lab" for the lab, something unique per run for tests.
type Config struct {
	Prefix string
	Nodes  int
}

// Node is one node's place in the topology.
type Node struct {
	Index    int    // 1-based
	Name     string // node-<i>, the Kubernetes Node name
	Netns    string // <prefix>-node-<i>
	RouterIf string // n<i>, the router end of the node's veth

	Addr6, Addr4             netip.Prefix // the node's uplink addresses (::2, .2)
	RouterAddr6, RouterAddr4 netip.Prefix // the router's addresses on the link (::1, .1)
	Pool6, Pool4             netip.Prefix // the node's pod pools
}

// RouterNetns is the router namespace's name.
func (c Config) RouterNetns() string { return c.Prefix + "-router" }

// NodeName is the Kubernetes name of node i.
func NodeName(i int) string { return fmt.Sprintf("node-%d", i) }

// Plan lays out the nodes of c. It is pure: Create applies it.
func (c Config) Plan() ([]Node, error) {
	if c.Prefix == "" {
		return nil, fmt.Errorf("topology: empty namespace prefix")
	}
	if c.Nodes < 1 || c.Nodes > MaxNodes {
		return nil, fmt.Errorf("topology: %d nodes, want 1..%d", c.Nodes, MaxNodes)
	}
	nodes := make([]Node, c.Nodes)
	for i := 1; i <= c.Nodes; i++ {
		link6 := fmt.Sprintf("2001:db8:1ab:%d::", i)
		link4 := fmt.Sprintf("198.19.%d.", i)
		nodes[i-1] = Node{
			Index:       i,
			Name:        NodeName(i),
			Netns:       c.Prefix + "-" + NodeName(i),
			RouterIf:    fmt.Sprintf("n%d", i),
			Addr6:       netip.MustParsePrefix(link6 + "2/64"),
			Addr4:       netip.MustParsePrefix(link4 + "2/24"),
			RouterAddr6: netip.MustParsePrefix(link6 + "1/64"),
			RouterAddr4: netip.MustParsePrefix(link4 + "1/24"),
			Pool6:       netip.MustParsePrefix(fmt.Sprintf("2001:db8:42:%d::/64", i)),
			Pool4:       netip.MustParsePrefix(fmt.Sprintf("198.18.%d.0/24", i)),
		}
	}
	return nodes, nil
}
