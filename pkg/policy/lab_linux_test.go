package policy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// The kernel tests build a node and its pods as fresh network namespaces,
// named flk-pol-PID-N so that concurrent runs never meet, wired as flock
// wires them (veth flock<8 hex> to the pod's eth0, /128 and /32 routes,
// fe80::1 and a proxy-ARP'd IPv4 gateway), load the rendered ruleset into
// the node with the real Applier, and probe it with real TCP and UDP
// packets. Sockets are made inside the namespaces (ns.WithNetNSPath), so no
// tool but ip and nft is needed.

var nsSeq atomic.Int64

// probeTimeout is how long a probe waits for a connection or a UDP echo;
// a dropped packet is never answered, so every denied probe costs this much.
const probeTimeout = 1500 * time.Millisecond

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel test: needs root to create network namespaces (CI runs it as root)")
	}
	for _, tool := range []string{"ip", "nft", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("kernel test needs %s: apt-get install -y iproute2 nftables util-linux", tool)
		}
	}
}

func mustRun(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newNetns(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("flk-pol-%d-%d", os.Getpid(), nsSeq.Add(1))
	mustRun(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	// Addresses are usable at once: no duplicate address detection.
	mustRun(t, "ip", "netns", "exec", name, "sysctl", "-qw",
		"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	mustRun(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// lab is a node namespace with pods attached.
type lab struct {
	node         string
	node6, node4 netip.Addr // the node's own addresses (on lo)
	pods         []*labPod
	nft          NFT
}

type labPod struct {
	Pod
	netns string
}

func (p *labPod) path() string { return "/run/netns/" + p.netns }

var labPorts = []uint16{80, 81}

func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{node: newNetns(t), node6: netip.MustParseAddr("2001:db8:ffff::1"), node4: netip.MustParseAddr("10.42.1.1")}
	l.nft = NFT{Netns: "/run/netns/" + l.node}
	mustRun(t, "ip", "netns", "exec", l.node, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1", "net.ipv4.ip_forward=1")
	mustRun(t, "ip", "-n", l.node, "addr", "add", l.node6.String()+"/128", "dev", "lo")
	mustRun(t, "ip", "-n", l.node, "addr", "add", l.node4.String()+"/32", "dev", "lo")
	l.serve(t, "/run/netns/"+l.node)
	return l
}

// addPod attaches a pod the way flock's data path does.
func (l *lab) addPod(t *testing.T, namespace, name string, labels map[string]string, host byte) *labPod {
	t.Helper()
	p := &labPod{netns: newNetns(t), Pod: Pod{
		Namespace: namespace, Name: name, Labels: labels, Node: "n1",
		Iface: fmt.Sprintf("flock%08x", host),
		IPs: []netip.Addr{
			netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x42, 0, 1, 15: host}),
			netip.AddrFrom4([4]byte{10, 42, 1, host}),
		},
		Ports: []ContainerPort{{"http", TCP, 80}, {"alt", UDP, 81}},
	}}
	ip6, ip4 := p.IPs[0].String(), p.IPs[1].String()
	mustRun(t, "ip", "-n", l.node, "link", "add", p.Iface, "type", "veth", "peer", "name", "eth0", "netns", p.netns)
	mustRun(t, "ip", "netns", "exec", l.node, "sysctl", "-qw", "net.ipv4.conf."+p.Iface+".proxy_arp=1")
	mustRun(t, "ip", "-n", l.node, "addr", "add", "fe80::1/64", "dev", p.Iface, "nodad")
	mustRun(t, "ip", "-n", l.node, "link", "set", p.Iface, "up")
	mustRun(t, "ip", "-n", l.node, "route", "add", ip6+"/128", "dev", p.Iface)
	mustRun(t, "ip", "-n", l.node, "route", "add", ip4+"/32", "dev", p.Iface)
	mustRun(t, "ip", "-n", p.netns, "link", "set", "eth0", "up")
	mustRun(t, "ip", "-n", p.netns, "addr", "add", ip6+"/128", "dev", "eth0", "nodad")
	mustRun(t, "ip", "-n", p.netns, "addr", "add", ip4+"/32", "dev", "eth0")
	mustRun(t, "ip", "-n", p.netns, "route", "add", "default", "via", "fe80::1", "dev", "eth0")
	mustRun(t, "ip", "-n", p.netns, "route", "add", "default", "via", l.node4.String(), "dev", "eth0", "onlink")
	l.serve(t, p.path())
	l.pods = append(l.pods, p)
	return p
}

// serve listens on TCP and UDP ports 80 and 81 (both families) in a
// namespace: TCP accepts and closes, UDP echoes.
func (l *lab) serve(t *testing.T, netns string) {
	t.Helper()
	err := ns.WithNetNSPath(netns, func(ns.NetNS) error {
		for _, port := range labPorts {
			ln, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
			if err != nil {
				return err
			}
			t.Cleanup(func() { ln.Close() })
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			pc, err := net.ListenPacket("udp", fmt.Sprintf(":%d", port))
			if err != nil {
				return err
			}
			t.Cleanup(func() { pc.Close() })
			go func() {
				buf := make([]byte, 64)
				for {
					n, from, err := pc.ReadFrom(buf)
					if err != nil {
						return
					}
					_, _ = pc.WriteTo(buf[:n], from)
				}
			}()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("serve in %s: %v", netns, err)
	}
}

// probe says whether a TCP connection or a UDP echo from netns to dst:port
// gets through.
func probe(netns string, proto Protocol, dst netip.Addr, port uint16) (bool, error) {
	ok := false
	err := ns.WithNetNSPath(netns, func(ns.NetNS) error {
		addr := netip.AddrPortFrom(dst, port).String()
		if proto == TCP {
			c, err := net.DialTimeout("tcp", addr, probeTimeout)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					return nil
				}
				return err
			}
			ok = true
			return c.Close()
		}
		c, err := net.Dial("udp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(probeTimeout))
		buf := make([]byte, 8)
		if _, err := c.Read(buf); err == nil {
			ok = true
		}
		return nil
	})
	return ok, err
}

// input is the lab's pods and namespaces as Translate's input.
func (l *lab) input() *Input {
	in := &Input{Node: "n1"}
	seen := map[string]bool{}
	for _, p := range l.pods {
		in.Pods = append(in.Pods, p.Pod)
		if !seen[p.Namespace] {
			seen[p.Namespace] = true
			in.Namespaces = append(in.Namespaces, Namespace{Name: p.Namespace})
		}
	}
	return in
}

// apply loads a model into the node with a fresh Applier.
func (l *lab) apply(t *testing.T, m *Model) *Applier {
	t.Helper()
	a := NewApplier(l.nft)
	if _, err := a.Apply(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return a
}

func (l *lab) list(t *testing.T) string {
	t.Helper()
	// Stateless: the drop counters count the probes.
	out, err := l.nft.Run(context.Background(), nil, "-s", "list", "table", TableFamily, TableName)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// probeCase is one probe and the verdict the model gives it.
type probeCase struct {
	from, to string // pod names, or "node"
	netns    string
	proto    Protocol
	dst      netip.Addr
	port     uint16
	want     bool
}

func (c probeCase) String() string {
	return fmt.Sprintf("%s -> %s %s %s/%d", c.from, c.to, c.dst, c.proto, c.port)
}

// runProbes runs the cases concurrently and reports every verdict that
// differs.
func runProbes(t *testing.T, cases []probeCase) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	for _, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := probe(c.netns, c.proto, c.dst, c.port)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				bad = append(bad, fmt.Sprintf("%s: %v", c, err))
			case got != c.want:
				bad = append(bad, fmt.Sprintf("%s: got through %v, want %v", c, got, c.want))
			}
		}()
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("%d of %d probes disagree with the model:\n%s", len(bad), len(cases), strings.Join(bad, "\n"))
	}
}

// modelCases are all pod-to-pod probes (TCP and UDP, ports 80 and 81, both
// families) with the verdict of the model: the sender's egress and the
// receiver's ingress must both allow.
func (l *lab) modelCases(m *Model) []probeCase {
	pol := map[string]*PodPolicy{}
	for i := range m.Pods {
		pol[m.Pods[i].Iface] = &m.Pods[i]
	}
	var cases []probeCase
	for _, src := range l.pods {
		for _, dst := range l.pods {
			if src == dst {
				continue
			}
			for i, d := range dst.IPs {
				s := src.IPs[i]
				for _, proto := range []Protocol{TCP, UDP} {
					for _, port := range labPorts {
						want := pol[src.Iface].Egress.Permits(d, proto, port) && pol[dst.Iface].Ingress.Permits(s, proto, port)
						cases = append(cases, probeCase{src.Name, dst.Name, src.path(), proto, d, port, want})
					}
				}
			}
		}
	}
	return cases
}

// nodeCases probe every pod from the node itself, which must always work.
func (l *lab) nodeCases() []probeCase {
	var cases []probeCase
	for _, dst := range l.pods {
		for _, d := range dst.IPs {
			for _, proto := range []Protocol{TCP, UDP} {
				cases = append(cases, probeCase{"node", dst.Name, "/run/netns/" + l.node, proto, d, 80, true})
			}
		}
	}
	return cases
}
