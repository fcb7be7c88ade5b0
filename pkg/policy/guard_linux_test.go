package policy

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/fritzlab/flock/internal/spoof"
)

// TestKernelGuard loads the anti-spoofing table into a node namespace and
// sends real TCP SYNs and UDP datagrams from pod a with the sources of pod
// b, of the node and of an address outside every pool, both families: the
// capture at b sees none of them, and the counter counts each; a's own
// addresses and its granted anycast addresses still reach b, with the
// neighbour caches flushed (so ARP, NDP and their link-local sources pass).
// Without the table the same forged packets do reach b, so the capture
// would see a leak.
func TestKernelGuard(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Fatal("kernel test needs tcpdump: apt-get install -y tcpdump")
	}
	l := newLab(t)
	a := l.addPod(t, "x", "a", nil, 10)
	b := l.addPod(t, "x", "b", nil, 11)
	any6, any4 := netip.MustParseAddr("2001:db8:a0::53"), netip.MustParseAddr("192.0.2.153")
	forged := []netip.Addr{b.IPs[0], b.IPs[1], l.node6, l.node4, netip.MustParseAddr("2001:db8:dead::1"), netip.MustParseAddr("203.0.113.9")}
	own := []netip.Addr{a.IPs[0], a.IPs[1], any6, any4}

	// send sends a SYN to b:80 and a datagram to b:81 from each source and
	// returns what b captured from those sources.
	send := func(t *testing.T, srcs []netip.Addr) []string {
		t.Helper()
		var filter []string
		for _, s := range srcs {
			filter = append(filter, "src host "+s.String())
		}
		stop, err := spoof.Capture(b.netns, strings.Join(filter, " or "))
		if err != nil {
			t.Fatal(err)
		}
		err = ns.WithNetNSPath(a.path(), func(ns.NetNS) error {
			for _, s := range srcs {
				dst := b.IPs[0]
				if s.Is4() {
					dst = b.IPs[1]
				}
				for _, p := range []struct {
					proto string
					port  uint16
				}{{"tcp", 80}, {"udp", 81}} {
					if err := spoof.Send(context.Background(), p.proto, s, netip.AddrPortFrom(dst, p.port)); err != nil {
						return err
					}
				}
			}
			return nil
		})
		got, _ := stop()
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	t.Run("without the guard forged packets arrive", func(t *testing.T) {
		if got := send(t, forged[:1]); len(got) == 0 {
			t.Fatal("b captured nothing from a forged source with no guard loaded: the capture cannot see a leak")
		}
	})

	g := NewGuard(l.nft)
	ctx := context.Background()
	if _, err := g.Apply(ctx, []Source{{Iface: a.Iface, Addrs: own}, {Iface: b.Iface, Addrs: b.IPs}}); err != nil {
		t.Fatal(err)
	}
	before, err := g.Drops(ctx)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("forged sources are dropped and counted", func(t *testing.T) {
		if got := send(t, forged); len(got) != 0 {
			t.Errorf("b captured %d forged packets:\n%s", len(got), strings.Join(got, "\n"))
		}
		after, err := g.Drops(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := uint64(2 * len(forged)); after.Packets-before.Packets < want {
			t.Errorf("spoofed counter rose by %d, want at least %d", after.Packets-before.Packets, want)
		}
	})

	t.Run("own and anycast sources pass", func(t *testing.T) {
		mustRun(t, "ip", "-n", a.netns, "neigh", "flush", "all")
		mustRun(t, "ip", "-n", l.node, "neigh", "flush", "all")
		got := send(t, own)
		for _, s := range own {
			n := 0
			for _, line := range got {
				if strings.Contains(line, " "+s.String()+".") {
					n++
				}
			}
			// The SYN (b answers, and the SYN-ACK to a forged anycast
			// source goes unanswered) and the datagram.
			if n < 2 {
				t.Errorf("b captured %d packets from %s, want at least 2:\n%s", n, s, strings.Join(got, "\n"))
			}
		}
	})

	t.Run("a reload keeps the counter", func(t *testing.T) {
		prev, _ := g.Drops(ctx)
		if _, err := g.Apply(ctx, []Source{{Iface: a.Iface, Addrs: own}}); err != nil {
			t.Fatal(err)
		}
		now, err := g.Drops(ctx)
		if err != nil || now.Packets < prev.Packets || now.Packets == 0 {
			t.Errorf("counter %d after a reload, %d before (%v)", now.Packets, prev.Packets, err)
		}
		if got := send(t, b.IPs[:1]); len(got) != 0 {
			t.Errorf("a pod's address allowed for another veth: %s", fmt.Sprint(got))
		}
	})
}
