package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/fritzlab/flock/pkg/admin"
	"github.com/fritzlab/flock/pkg/agent"
	"github.com/fritzlab/flock/pkg/bird"
	"github.com/fritzlab/flock/pkg/datapath"
	"github.com/fritzlab/flock/pkg/netpol"
	"github.com/fritzlab/flock/pkg/policy"
	"github.com/fritzlab/flock/pkg/store"
)

// The node's sysctls the data path needs, with their values.
var doctorSysctls = []struct{ key, want string }{
	{"net/ipv6/conf/all/forwarding", "1"},
	{"net/ipv4/ip_forward", "1"},
}

// sysctlReader is the data path's view of the node's sysctls.
type sysctlReader interface {
	Sysctl(key string) (string, error)
}

// doctor checks the node's kernel state against what the agent owns:
// sysctls, each allocation's veth, addresses and routes (CNI CHECK's
// test), BIRD running the config the agent rendered, and flock's nftables
// table as the agent loaded it. Each check that finds something says what.
type doctor struct {
	dp       agent.Datapath
	st       *store.Store
	reloader *bird.Reloader  // nil: BGP off
	applier  *policy.Applier // nil: NetworkPolicy off
}

func (d doctor) Doctor(ctx context.Context) admin.Doctor {
	out := admin.Doctor{Checks: []string{}, Problems: []admin.Problem{}}
	fail := func(check, format string, args ...any) {
		out.Problems = append(out.Problems, admin.Problem{Check: check, Detail: fmt.Sprintf(format, args...)})
	}
	if sr, ok := d.dp.(sysctlReader); ok {
		out.Checks = append(out.Checks, "sysctl")
		for _, s := range doctorSysctls {
			v, err := sr.Sysctl(s.key)
			switch {
			case err != nil:
				fail("sysctl", "%v", err)
			case v != s.want:
				fail("sysctl", "%s is %s, want %s", s.key, v, s.want)
			}
		}
	}
	out.Checks = append(out.Checks, "routes")
	for _, r := range d.st.List() {
		att := datapath.Attachment{ContainerID: r.ContainerID, IfName: r.IfName, Netns: r.Netns, HostIface: r.HostIface,
			IPv6: r.IPv6, IPv4: r.IPv4, Gateway4: r.Gateway4, MTU: r.MTU}
		if err := d.dp.Check(att); err != nil {
			fail("routes", "pod %s/%s: %v", r.Namespace, r.Name, err)
		}
	}
	if d.reloader != nil {
		out.Checks = append(out.Checks, "bird")
		if st := d.reloader.Status(); !st.InSync {
			if st.Err != nil {
				fail("bird", "bird does not run the config the agent rendered (%s): %v", d.reloader.Path, st.Err)
			} else {
				fail("bird", "bird has not reloaded the config the agent rendered (%s) yet", d.reloader.Path)
			}
		}
	}
	if d.applier != nil {
		out.Checks = append(out.Checks, "nftables")
		if err := d.applier.Verify(ctx); err != nil {
			fail("nftables", "%v", err)
		}
	}
	return out
}

// adminDrops names each drop counter's pod.
type adminDrops struct {
	ap *policy.Applier
	st *store.Store
}

func (d adminDrops) Drops(ctx context.Context) ([]admin.PodDrop, error) {
	counts, err := d.ap.Drops(ctx)
	if err != nil {
		return nil, err
	}
	byIface := map[string]*admin.PodDrop{}
	for _, r := range d.st.List() {
		byIface[r.HostIface] = &admin.PodDrop{Namespace: r.Namespace, Name: r.Name, Iface: r.HostIface}
	}
	// Only pods some policy restricts have counters; a counter whose pod
	// is gone (a DEL since the last load) is left out.
	counted := map[string]bool{}
	for _, c := range counts {
		p, ok := byIface[c.Iface]
		if !ok {
			continue
		}
		counted[c.Iface] = true
		if c.Ingress {
			p.Ingress += c.Packets
		} else {
			p.Egress += c.Packets
		}
	}
	out := []admin.PodDrop{}
	for iface := range counted {
		out = append(out, *byIface[iface])
	}
	return out, nil
}

// adminTrace traces a packet through the NetworkPolicy last applied.
type adminTrace struct {
	np *netpol.Controller
	st *store.Store
}

func (t adminTrace) Trace(_ context.Context, src, dst netip.Addr, proto string, port uint16) (admin.Trace, error) {
	applied, synced := t.np.Applied()
	if !synced || applied.Model == nil {
		return admin.Trace{}, errors.New("no NetworkPolicy applied yet")
	}
	p, _ := policy.ParseProtocol(proto)
	out := admin.Trace{Src: src, Dst: dst, Proto: proto, Port: port}
	byAddr := map[netip.Addr]string{} // address -> host veth
	pods := map[string]string{}       // host veth -> namespace/name
	for _, r := range t.st.List() {
		for _, a := range []netip.Addr{r.IPv6, r.IPv4} {
			if a.IsValid() {
				byAddr[a] = r.HostIface
			}
		}
		pods[r.HostIface] = r.Namespace + "/" + r.Name
	}
	policies := map[string]policy.PodPolicy{}
	for _, pp := range applied.Model.Pods {
		policies[pp.Iface] = pp
	}
	verdicts := map[string]policy.PodVerdict{}
	for _, v := range policy.Verdicts(applied.Model) {
		verdicts[v.Iface] = v
	}
	step := func(local netip.Addr, remote netip.Addr, ingress bool) admin.TraceStep {
		iface, ok := byAddr[local]
		if !ok {
			// Not a pod of this node: its own node's policy decides.
			return admin.TraceStep{Allowed: true, Rule: -1}
		}
		s := admin.TraceStep{Pod: pods[iface], Rule: -1, Allowed: true}
		pp, ok := policies[iface]
		if !ok {
			return s // attached since the last apply: pending, unrestricted here
		}
		a, chain := pp.Egress, verdicts[iface].Egress.Chain
		if ingress {
			a, chain = pp.Ingress, verdicts[iface].Ingress.Chain
		}
		d := policy.Decide(a, remote, p, port)
		s.Isolated, s.Allowed, s.Rule, s.RuleText, s.Chain = d.Isolated, d.Allowed, d.Rule, d.RuleText, chain
		return s
	}
	out.Egress = step(src, dst, false)
	out.Ingress = step(dst, src, true)
	out.Allowed = out.Egress.Allowed && out.Ingress.Allowed
	return out, nil
}
