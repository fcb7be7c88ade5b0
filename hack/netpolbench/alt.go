package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"sigs.k8s.io/knftables"

	"github.com/fritzlab/flock/pkg/policy"
)

// Two other ways to load the same Model, for comparison with flock's own
// renderer: sigs.k8s.io/knftables as kube-proxy's nftables mode uses it (one
// object or element per command in one transaction), and iptables-style
// linear chains (iptables-nft, one rule per peer and port, a jump per pod in
// FORWARD), the shape of the older iptables-based policy engines. Both keep
// flock's semantics: replies pass, egress is checked before ingress, a pod
// under a policy is dropped unless a rule allows it.

// chainName names an allow-list by its content, so replicas share a chain.
func chainName(prefix string, a *policy.Allow) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%v", a.Rules))
	return prefix + hex.EncodeToString(sum[:6])
}

// knftTx builds the knftables transaction of table inet name for m,
// replacing any previous table of that name.
func knftTx(nft knftables.Interface, m *policy.Model) *knftables.Transaction {
	tx := nft.NewTransaction()
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	tx.Add(&knftables.Table{})
	for _, mp := range []string{"ingress_by_iface", "egress_by_iface"} {
		tx.Add(&knftables.Map{Name: mp, Type: "ifname : verdict"})
	}
	for _, base := range []struct {
		name knftables.BaseChainHook
		maps []string
	}{{knftables.ForwardHook, []string{"iifname vmap @egress_by_iface", "oifname vmap @ingress_by_iface"}},
		{knftables.InputHook, []string{"iifname vmap @egress_by_iface"}}} {
		name := string(base.name)
		tx.Add(&knftables.Chain{Name: name, Type: knftables.PtrTo(knftables.FilterType), Hook: knftables.PtrTo(base.name),
			Priority: knftables.PtrTo(knftables.FilterPriority)})
		for _, r := range append([]string{"ct state established,related accept",
			"icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem, nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept",
			"icmp type { destination-unreachable, time-exceeded, parameter-problem } accept"}, base.maps...) {
			tx.Add(&knftables.Rule{Chain: name, Rule: r})
		}
	}
	done := map[string]bool{}
	for _, p := range m.Pods {
		for _, d := range []struct {
			allow   *policy.Allow
			ingress bool
		}{{p.Ingress, true}, {p.Egress, false}} {
			if d.allow == nil {
				continue
			}
			mp, verdict := "egress_by_iface", "drop"
			if d.ingress {
				mp = "ingress_by_iface"
			}
			if len(d.allow.Rules) > 0 {
				c := knftChain(tx, d.allow, d.ingress, done)
				verdict = "jump " + c
			}
			tx.Add(&knftables.Element{Map: mp, Key: []string{p.Iface}, Value: []string{verdict}})
		}
	}
	return tx
}

// knftChain adds an allow-list's chain and sets once and returns its name.
func knftChain(tx *knftables.Transaction, a *policy.Allow, ingress bool, done map[string]bool) string {
	prefix, dir, allowed := "egress_", "daddr", "return"
	if ingress {
		prefix, dir, allowed = "ingress_", "saddr", "accept"
	}
	c := chainName(prefix, a)
	if done[c] {
		return c
	}
	done[c] = true
	tx.Add(&knftables.Chain{Name: c})
	tx.Add(&knftables.Rule{Chain: c, Rule: "ct state invalid drop"})
	for _, fam := range []struct {
		v6       bool
		ip, addr string
	}{{true, "ip6", "ipv6_addr"}, {false, "ip", "ipv4_addr"}} {
		anySet, portSet := c+"_any"+fam.ip, c+"_ports"+fam.ip
		var any [][]string
		byPort := map[policy.PortRange][]netip.Prefix{}
		var order []policy.PortRange
		for _, r := range a.Rules {
			for _, pfx := range peerPrefixes(r.Peers, fam.v6) {
				if r.Ports == nil {
					any = append(any, []string{pfx.String()})
					continue
				}
				for _, pr := range r.Ports {
					if _, ok := byPort[pr]; !ok {
						order = append(order, pr)
					}
					byPort[pr] = append(byPort[pr], pfx)
				}
			}
		}
		// An interval set of concatenations refuses overlapping elements
		// (auto-merge works on single intervals only): keep the outermost
		// prefixes per port range, as flock's renderer merges spans.
		var ports [][]string
		for _, pr := range order {
			for _, pfx := range outermost(byPort[pr]) {
				ports = append(ports, []string{pfx.String(), pr.Protocol.String(), portRange(pr, "-")})
			}
		}
		if len(any) > 0 {
			tx.Add(&knftables.Set{Name: anySet, Type: fam.addr, Flags: []knftables.SetFlag{knftables.IntervalFlag}, AutoMerge: knftables.PtrTo(true)})
			for _, k := range any {
				tx.Add(&knftables.Element{Set: anySet, Key: k})
			}
			tx.Add(&knftables.Rule{Chain: c, Rule: fmt.Sprintf("%s %s @%s %s", fam.ip, dir, anySet, allowed)})
		}
		if len(ports) > 0 {
			tx.Add(&knftables.Set{Name: portSet, Type: fam.addr + " . inet_proto . inet_service", Flags: []knftables.SetFlag{knftables.IntervalFlag}})
			for _, k := range ports {
				tx.Add(&knftables.Element{Set: portSet, Key: k})
			}
			tx.Add(&knftables.Rule{Chain: c, Rule: fmt.Sprintf("%s %s . meta l4proto . th dport @%s %s", fam.ip, dir, portSet, allowed)})
		}
	}
	tx.Add(&knftables.Rule{Chain: c, Rule: "drop"})
	return c
}

// outermost drops every prefix that another one in ps contains (prefixes
// nest or are disjoint), and duplicates; the rest keep their order.
func outermost(ps []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for i, p := range ps {
		covered := false
		for j, q := range ps {
			if i != j && q.Bits() <= p.Bits() && q.Contains(p.Addr()) && (q.Bits() < p.Bits() || j < i) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, p)
		}
	}
	return out
}

func portRange(pr policy.PortRange, sep string) string {
	if pr.First == pr.Last {
		return fmt.Sprint(pr.First)
	}
	return fmt.Sprintf("%d%s%d", pr.First, sep, pr.Last)
}

// knftApply loads m with knftables as table inet name in the namespace at
// netnsPath. knftables runs the nft binary; exec forks on the calling
// thread, which WithNetNSPath has moved into the namespace.
func knftApply(ctx context.Context, netnsPath, name string, m *policy.Model) (ops int, err error) {
	err = ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
		nft, err := knftables.New(knftables.InetFamily, name)
		if err != nil {
			return err
		}
		tx := knftTx(nft, m)
		ops = tx.NumOperations()
		return nft.Run(ctx, tx)
	})
	return ops, err
}

// iptablesRules writes m as iptables-restore input for one family: a jump
// per restricted pod in FORWARD (and INPUT for egress), and per allow-list a
// chain with one rule per peer prefix and port.
func iptablesRules(m *policy.Model, v6 bool) []byte {
	var chains, rules bytes.Buffer
	chains.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
	icmp := "-p icmp -m icmp --icmp-type 3"
	if v6 {
		icmp = "-p ipv6-icmp"
	}
	for _, base := range []string{"FORWARD", "INPUT"} {
		fmt.Fprintf(&rules, "-A %s -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A %s %s -j ACCEPT\n", base, base, icmp)
	}
	done := map[string]bool{}
	for _, p := range m.Pods {
		if p.Egress != nil {
			target := "DROP"
			if len(p.Egress.Rules) > 0 {
				target = iptablesChain(&chains, &rules, p.Egress, false, v6, done)
			}
			fmt.Fprintf(&rules, "-A FORWARD -i %s -j %s\n-A INPUT -i %s -j %s\n", p.Iface, target, p.Iface, target)
		}
		if p.Ingress != nil {
			target := "DROP"
			if len(p.Ingress.Rules) > 0 {
				target = iptablesChain(&chains, &rules, p.Ingress, true, v6, done)
			}
			fmt.Fprintf(&rules, "-A FORWARD -o %s -j %s\n", p.Iface, target)
		}
	}
	chains.Write(rules.Bytes())
	chains.WriteString("COMMIT\n")
	return chains.Bytes()
}

func iptablesChain(chains, rules *bytes.Buffer, a *policy.Allow, ingress, v6 bool, done map[string]bool) string {
	prefix, dir, allowed := "NP-E-", "-d", "RETURN"
	if ingress {
		prefix, dir, allowed = "NP-I-", "-s", "ACCEPT"
	}
	c := chainName(prefix, a) // 17 characters, within iptables' 28
	if done[c] {
		return c
	}
	done[c] = true
	fmt.Fprintf(chains, ":%s - [0:0]\n", c)
	fmt.Fprintf(rules, "-A %s -m conntrack --ctstate INVALID -j DROP\n", c)
	for _, r := range a.Rules {
		for _, pfx := range peerPrefixes(r.Peers, v6) {
			if r.Ports == nil {
				fmt.Fprintf(rules, "-A %s %s %s -j %s\n", c, dir, pfx, allowed)
				continue
			}
			for _, pr := range r.Ports {
				fmt.Fprintf(rules, "-A %s %s %s -p %s -m %s --dport %s -j %s\n", c, dir, pfx, pr.Protocol, pr.Protocol, portRange(pr, ":"), allowed)
			}
		}
	}
	fmt.Fprintf(rules, "-A %s -j DROP\n", c)
	return c
}

// iptablesApply loads m with iptables-nft-restore and ip6tables-nft-restore
// in the namespace and returns how many rules it wrote.
func iptablesApply(ctx context.Context, netnsName string, m *policy.Model) (rules int, err error) {
	for _, f := range []struct {
		bin string
		v6  bool
	}{{"iptables-nft-restore", false}, {"ip6tables-nft-restore", true}} {
		in := iptablesRules(m, f.v6)
		rules += bytes.Count(in, []byte("\n-A "))
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", netnsName, f.bin)
		cmd.Stdin = bytes.NewReader(in)
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("%s: %v: %s", f.bin, err, firstLine(out))
		}
	}
	return rules, nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}
