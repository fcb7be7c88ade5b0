package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/fritzlab/flock/internal/cnitest"
	"github.com/fritzlab/flock/pkg/datapath"
	"github.com/fritzlab/flock/pkg/policy"
	"github.com/fritzlab/flock/pkg/policy/policytest"
)

// The data path node's pools are outside the synthetic cluster's addresses.
const nodeConfig = `apiVersion: flock.fritzlab.net/v1alpha1
kind: NodeConfig
metadata:
  name: bench-node
spec:
  cidr6: 2001:db8:99:1::/64
  cidr4: 198.51.100.0/24
`

const serverPort = 5201

// benchPod is a pod attached to the data path node by the real plugin.
type benchPod struct {
	netns *cnitest.Netns
	pod   policy.Pod
}

// The rulesets the data path alternates between.
type ruleset int

const (
	rsNone     ruleset = iota // flock's table with empty maps: no NetworkPolicy
	rsFlock                   // flock's table with every policy
	rsKnft                    // the same model loaded with knftables
	rsIptables                // the same model as iptables-nft linear chains
	numRulesets
)

var rulesetNames = [numRulesets]string{"none", "flock", "knftables", "iptables"}

// dataPath measures TCP connections per second from one pod to another on
// a real node, alternately with no policy and with the cluster's policies
// loaded (both pods under them, the pair allowed) by each of flock,
// knftables and iptables, and returns each one's ratio to none.
func dataPath(ctx context.Context, in *policy.Input, rounds int, d time.Duration) ([numRulesets]float64, error) {
	var res [numRulesets]float64
	dir, err := os.MkdirTemp("", "flock-netpolbench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "bin")
	if err := cnitest.BuildBinaries(bin); err != nil {
		return res, err
	}
	node, err := cnitest.NewNode(bin, filepath.Join(dir, "node"), nodeConfig)
	if err != nil {
		return res, err
	}
	defer node.Close()
	if err := node.StartAgent(); err != nil {
		return res, err
	}
	list, err := node.FlockConflist("1.1.0")
	if err != nil {
		return res, err
	}
	attach := func(name string, labels map[string]string) (*benchPod, error) {
		nsn, err := cnitest.NewNetns("npbpod")
		if err != nil {
			return nil, err
		}
		id := "netpolbench" + name
		if err := node.WritePod("ns-00", name, "uid-"+name, nil); err != nil {
			return nil, err
		}
		res, err := node.Add(ctx, list, cnitest.Runtime(id, nsn.Path, "ns-00", name))
		if err != nil {
			nsn.Close()
			return nil, fmt.Errorf("attach %s: %w", name, err)
		}
		r, err := types100.NewResultFromResult(res)
		if err != nil {
			return nil, err
		}
		p := policy.Pod{Namespace: "ns-00", Name: name, Labels: labels, Node: policytest.Node, Iface: datapath.HostIfaceName(id)}
		for _, ip := range r.IPs {
			if a, ok := netip.AddrFromSlice(ip.Address.IP); ok {
				p.IPs = append(p.IPs, a.Unmap())
			}
		}
		return &benchPod{netns: nsn, pod: p}, nil
	}
	// Labels of synthetic apps, so the cluster's own policies select the
	// pair too.
	server, err := attach("bench-server", map[string]string{"app": "app-1", "tier": "api", "bench": "server"})
	if err != nil {
		return res, err
	}
	defer server.netns.Close()
	client, err := attach("bench-client", map[string]string{"app": "app-2", "tier": "web", "bench": "client"})
	if err != nil {
		return res, err
	}
	defer client.netns.Close()

	var dst netip.Addr
	for _, a := range server.pod.IPs {
		if a.Is6() {
			dst = a
		}
	}
	withPair := &policy.Input{Node: policytest.Node, Namespaces: in.Namespaces,
		Pods:     append(append([]policy.Pod{}, in.Pods...), server.pod, client.pod),
		Policies: append(append([]networkingv1.NetworkPolicy{}, in.Policies...), pairPolicies(serverPort)...)}
	m := policy.Translate(withPair)
	var sp, cp *policy.PodPolicy
	for i := range m.Pods {
		switch m.Pods[i].Iface {
		case server.pod.Iface:
			sp = &m.Pods[i]
		case client.pod.Iface:
			cp = &m.Pods[i]
		}
	}
	if sp == nil || cp == nil || sp.Ingress == nil || cp.Egress == nil ||
		!sp.Ingress.Permits(client.pod.IPs[0], policy.TCP, serverPort) || !cp.Egress.Permits(dst, policy.TCP, serverPort) {
		return res, fmt.Errorf("the pair is not isolated and allowed as the benchmark needs: server %+v client %+v", sp, cp)
	}
	fmt.Printf("data path: %s -> [%s]:%d on node %s, server ingress-isolated (%d rules), client egress-isolated (%d rules)\n",
		client.pod.Key(), dst, serverPort, node.NS.Name, len(sp.Ingress.Rules), len(cp.Egress.Rules))

	lctx, stop := context.WithCancel(ctx)
	defer stop()
	for _, port := range []int{serverPort, serverPort + 1} {
		if err := listen(lctx, server.netns.Path, port); err != nil {
			return res, err
		}
	}
	target := netip.AddrPortFrom(dst, serverPort)
	nft := policy.NFT{Netns: node.NS.Path}

	// Both rulesets stay loaded side by side, flock's own table with every
	// policy and a copy of the table for a cluster without any policy, and
	// a measurement switches between them by making one of them dormant
	// (its hooks unregistered): a switch is a small transaction, so the
	// measurements can alternate quickly, and neither pays for a reload
	// (or for the kernel freeing the previous table) while it runs.
	if _, err := policy.NewApplier(nft).Apply(ctx, m); err != nil {
		return res, err
	}
	empty, err := policy.Render(policy.Translate(&policy.Input{Node: policytest.Node, Pods: withPair.Pods, Namespaces: in.Namespaces}))
	if err != nil {
		return res, err
	}
	const emptyTable, knftTable = policy.TableName + "_nopolicy", policy.TableName + "_knft"
	empty = []byte(strings.ReplaceAll(string(empty), "inet "+policy.TableName+"\n", "inet "+emptyTable+"\n"))
	empty = []byte(strings.Replace(string(empty), "table inet "+policy.TableName+" {", "table inet "+emptyTable+" {", 1))
	if _, err := nft.Run(ctx, empty, "-f", "-"); err != nil {
		return res, err
	}
	if _, err := knftApply(ctx, node.NS.Path, knftTable, m); err != nil {
		return res, err
	}
	// An iptables engine appends a new pod's jumps to FORWARD: the pair,
	// attached last, is matched after every other pod's jump.
	if _, err := iptablesApply(ctx, node.NS.Name, pairLast(m, server.pod.Iface, client.pod.Iface)); err != nil {
		return res, err
	}
	// Every ruleset but the one measured is dormant: its hooks are
	// unregistered, so it costs the packets nothing.
	tables := [numRulesets][]string{{"inet " + emptyTable}, {"inet " + policy.TableName}, {"inet " + knftTable}, {"ip filter", "ip6 filter"}}
	use := func(on ruleset) error {
		var b strings.Builder
		for rs, ts := range tables {
			for _, t := range ts {
				if ruleset(rs) == on {
					fmt.Fprintf(&b, "add table %s\n", t)
				} else {
					fmt.Fprintf(&b, "add table %s { flags dormant; }\n", t)
				}
			}
		}
		_, err := nft.Run(ctx, []byte(b.String()), "-f", "-")
		return err
	}
	// The switch works: a port the pair's policies do not allow is closed
	// with each policy ruleset and open without.
	closed := netip.AddrPortFrom(dst, serverPort+1)
	for rs := range numRulesets {
		if err := use(rs); err != nil {
			return res, err
		}
		_, err := connectLoop(client.netns.Path, closed, 0)
		if (err != nil) != (rs != rsNone) {
			return res, fmt.Errorf("with ruleset %s, a connection to %s: %v", rulesetNames[rs], closed, err)
		}
		if _, err := connectLoop(client.netns.Path, target, 0); err != nil {
			return res, fmt.Errorf("with ruleset %s, the allowed connection: %w", rulesetNames[rs], err)
		}
	}
	if _, err := connectLoop(client.netns.Path, target, d); err != nil { // warm-up
		return res, err
	}
	var rates [numRulesets][]float64
	for r := range rounds {
		// Rotate which goes first, so a trend in the machine's load
		// cancels.
		for i := range numRulesets {
			rs := (ruleset(r) + i) % numRulesets
			if err := use(rs); err != nil {
				return res, err
			}
			n, err := connectLoop(client.netns.Path, target, d)
			if err != nil {
				return res, err
			}
			rates[rs] = append(rates[rs], float64(n)/d.Seconds())
		}
	}
	// The machine's load changes from second to second; the measurements
	// of a round are next to each other in time, so the ratio is taken per
	// round and the median of those reported.
	fmt.Printf("TCP connections/s between two local pods, %d rounds of %s each, %d policies:\n", rounds, d, len(withPair.Policies))
	for rs := range numRulesets {
		var ratios []float64
		for r := range rounds {
			ratios = append(ratios, rates[rs][r]/rates[rsNone][r])
		}
		res[rs] = medianF(ratios)
		fmt.Printf("  %-10s %6.0f conn/s, per-round ratio to none: median %.3f (min %.3f, max %.3f)\n",
			rulesetNames[rs], meanF(rates[rs]), res[rs], slices.Min(ratios), slices.Max(ratios))
	}
	return res, nil
}

func medianF(x []float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	return s[len(s)/2]
}

func meanF(x []float64) float64 {
	t := 0.0
	for _, v := range x {
		t += v
	}
	return t / float64(len(x))
}

// pairLast is m with the pods of the given interfaces moved to the end.
func pairLast(m *policy.Model, ifaces ...string) *policy.Model {
	out := &policy.Model{Warnings: m.Warnings}
	var last []policy.PodPolicy
	for _, p := range m.Pods {
		if slices.Contains(ifaces, p.Iface) {
			last = append(last, p)
		} else {
			out.Pods = append(out.Pods, p)
		}
	}
	out.Pods = append(out.Pods, last...)
	return out
}

// pairPolicies let the client reach the server on port: the server (also
// under the synthetic app-1 policies) accepts the client's pod, and the
// client (isolated for egress by a policy of its own) may send to it.
func pairPolicies(port int) []networkingv1.NetworkPolicy {
	tcp := corev1.ProtocolTCP
	p := intstr.FromInt(port)
	ports := []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &p}}
	sel := func(role string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"bench": role}}
	}
	return []networkingv1.NetworkPolicy{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns-00", Name: "bench-server"}, Spec: networkingv1.NetworkPolicySpec{
			PodSelector: *sel("server"),
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: sel("client")}}, Ports: ports}},
		}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns-00", Name: "bench-client"}, Spec: networkingv1.NetworkPolicySpec{
			PodSelector: *sel("client"),
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress:      []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{PodSelector: sel("server")}}, Ports: ports}},
		}},
	}
}

// listen accepts and closes connections in a pod's namespace until ctx ends.
func listen(ctx context.Context, netnsPath string, port int) error {
	var ln net.Listener
	err := ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
		var err error
		ln, err = net.Listen("tcp", fmt.Sprintf("[::]:%d", port))
		return err
	})
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); ln.Close() }()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return nil
}

// connectLoop opens and closes TCP connections from a pod's namespace to
// dst for d (at least one), one at a time, and returns how many it made. The client
// closes with a reset, so no TIME_WAIT sockets pile up and use up ports.
func connectLoop(netnsPath string, dst netip.AddrPort, d time.Duration) (int, error) {
	n := 0
	err := ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
		end := time.Now().Add(d)
		for first := true; first || time.Now().Before(end); first = false {
			c, err := net.DialTimeout("tcp", dst.String(), 300*time.Millisecond)
			if err != nil {
				return fmt.Errorf("connect to %s: %w", dst, err)
			}
			_ = c.(*net.TCPConn).SetLinger(0)
			c.Close()
			n++
		}
		return nil
	})
	return n, err
}
