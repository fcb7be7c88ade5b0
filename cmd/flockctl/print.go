package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fritzlab/flock/pkg/admin"
)

// table writes aligned columns, as kubectl and cilium do.
func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func row(tw io.Writer, cols ...string) {
	for i, c := range cols {
		if c == "" {
			cols[i] = "-"
		}
	}
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
}

func addr(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func addrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

// shortID is a container id as crictl and docker print it.
func shortID(id string) string { return id[:min(len(id), 13)] }

// ago is a time for a human: "14:03:07 (12s ago)".
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return fmt.Sprintf("%s (%s ago)", t.Local().Format(time.DateTime), time.Since(t).Round(time.Second))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func printStatus(w io.Writer, s *admin.Status) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	node := s.Node
	if node == "" {
		node = "(unknown)"
	}
	fmt.Fprintf(tw, "Node:\t%s (%s mode)\n", node, s.Mode)
	if s.Configured {
		fmt.Fprintf(tw, "NodeConfig:\tapplied\n")
	} else {
		fmt.Fprintf(tw, "NodeConfig:\tnot applied: %s\n", s.ConfigError)
	}
	for i, p := range s.Pools {
		label := ""
		if i == 0 {
			label = "Pools:"
		}
		fmt.Fprintf(tw, "%s\t%s %s, %d allocated\n", label, p.Family, p.CIDR, p.Allocated)
	}
	fmt.Fprintf(tw, "Allocations:\t%d\n", s.Allocations)
	switch b := s.BGP; {
	case !b.Enabled:
		fmt.Fprintf(tw, "BGP:\toff (no --bird-config)\n")
	case b.Error != "":
		fmt.Fprintf(tw, "BGP:\t%s\n", b.Error)
	default:
		fmt.Fprintf(tw, "BGP:\t%d/%d sessions established\n", b.Established, b.Sessions)
	}
	if a := s.Anycast; a.Enabled {
		fmt.Fprintf(tw, "Anycast:\t%s, %d routed, %d announced\n", plural(a.Addresses, "address", "addresses"), a.Routed, a.Announced)
	} else {
		fmt.Fprintf(tw, "Anycast:\toff\n")
	}
	switch p := s.Policy; {
	case !p.Enabled:
		fmt.Fprintf(tw, "NetworkPolicy:\toff (file mode, or --netpol=false)\n")
	case !p.Synced:
		fmt.Fprintf(tw, "NetworkPolicy:\tcaches not synced yet (ADD fails closed)\n")
	case p.LastError != "":
		fmt.Fprintf(tw, "NetworkPolicy:\tlast apply failed: %s\n", p.LastError)
	default:
		fmt.Fprintf(tw, "NetworkPolicy:\t%d pods restricted, applied %s\n", p.Restricted, ago(p.LastApply))
	}
	switch g := s.AntiSpoofing; {
	case !g.Enabled:
		fmt.Fprintf(tw, "Anti-spoofing:\toff (--anti-spoofing=false)\n")
	case g.Error != "":
		fmt.Fprintf(tw, "Anti-spoofing:\ton, counter unreadable: %s\n", g.Error)
	default:
		fmt.Fprintf(tw, "Anti-spoofing:\ton, %d spoofed packets dropped\n", g.DroppedPackets)
	}
	return tw.Flush()
}

func printPods(w io.Writer, a *admin.Allocations) error {
	tw := table(w)
	row(tw, "NAMESPACE", "NAME", "IPV6", "IPV4", "INTERFACE", "CONTAINER", "ANYCAST")
	for _, p := range a.Items {
		row(tw, p.Namespace, p.Name, addr(p.IPv6), addr(p.IPv4), p.HostIface, shortID(p.ContainerID), addrs(p.Anycast))
	}
	return tw.Flush()
}

func printBGP(w io.Writer, b *admin.BGP) error {
	if !b.Enabled {
		fmt.Fprintln(w, "BGP is off on this node: the agent runs without --bird-config.")
		return nil
	}
	if b.ASN != 0 {
		fmt.Fprintf(w, "Local AS %d\n", b.ASN)
	} else {
		fmt.Fprintln(w, "No spec.bgp in the NodeConfig.")
	}
	if len(b.Sessions) > 0 {
		tw := table(w)
		row(tw, "PEER", "ASN", "PROTOCOL", "STATE", "SINCE", "INFO")
		for _, s := range b.Sessions {
			asn := ""
			if s.PeerASN != 0 {
				asn = fmt.Sprint(s.PeerASN)
			}
			row(tw, addr(s.Peer), asn, s.Protocol, s.State, s.Since, s.Info)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if b.Error != "" {
		return errors.New(b.Error)
	}
	return nil
}

func printAnycast(w io.Writer, a *admin.Anycast) error {
	if !a.Enabled {
		fmt.Fprintln(w, "Anycast is off on this node: the agent's data path does not route it.")
		return nil
	}
	if !a.BGP {
		fmt.Fprintln(w, "BGP is off: routed addresses are not announced.")
	}
	tw := table(w)
	row(tw, "ADDRESS", "ROUTED", "ANNOUNCED", "PODS", "NEXT HOPS")
	for _, r := range a.Routes {
		hops := make([]string, len(r.NextHops))
		for i, h := range r.NextHops {
			hops[i] = "via " + h.Via.String() + " dev " + h.Dev
		}
		pods := make([]string, len(r.Pods))
		for i, p := range r.Pods {
			pods[i] = p.Namespace + "/" + p.Name
			if !p.Ready {
				pods[i] += " (not ready)"
			}
		}
		row(tw, r.Address.String(), yes(r.Routed), yes(r.Announced), strings.Join(pods, ","), strings.Join(hops, ", "))
	}
	return tw.Flush()
}

func printServices(w io.Writer, s *admin.Services) error {
	if !s.Enabled {
		fmt.Fprintln(w, "Service addresses are not announced on this node: BGP is off, or the agent runs in file mode.")
		return nil
	}
	if !s.Synced {
		fmt.Fprintln(w, "The Service, EndpointSlice and ServiceAddressPool caches have not synced yet: BIRD keeps what it announces.")
	}
	tw := table(w)
	row(tw, "SERVICE", "ADDRESS", "POLICY", "POOL", "LOCAL", "READY", "ANNOUNCED", "REASON")
	for _, a := range s.Items {
		pool := a.Pool
		if pool == "" {
			pool = "-"
		}
		row(tw, a.Service, a.Address.String(), a.Policy, pool, strconv.Itoa(a.LocalEndpoints), strconv.Itoa(a.ReadyEndpoints), yes(a.Announced), a.Reason)
	}
	return tw.Flush()
}

func verdict(v admin.Verdict) string {
	switch v.Mode {
	case admin.DenyAll:
		return "deny all"
	case admin.AllowList:
		return "allow-list " + v.Chain
	}
	return v.Mode
}

func printPolicy(w io.Writer, p *admin.Policy) error {
	if !p.Enabled {
		fmt.Fprintln(w, "NetworkPolicy is off on this node (file mode, or --netpol=false): every pod is unrestricted.")
		return nil
	}
	switch {
	case !p.Synced:
		fmt.Fprintln(w, "Caches not synced yet: nothing applied, ADD fails closed.")
	default:
		fmt.Fprintf(w, "Last applied %s, table last written %s.\n", ago(p.LastApply), ago(p.LastChange))
	}
	if p.LastError != "" {
		fmt.Fprintf(w, "Last apply failed %s: %s\n", ago(p.LastErrorTime), p.LastError)
	}
	tw := table(w)
	row(tw, "NAMESPACE", "NAME", "INTERFACE", "INGRESS", "EGRESS")
	for _, pp := range p.Pods {
		row(tw, pp.Namespace, pp.Name, pp.Iface, verdict(pp.Ingress), verdict(pp.Egress))
	}
	return tw.Flush()
}
