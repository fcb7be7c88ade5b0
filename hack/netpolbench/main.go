// Command netpolbench measures flock's NetworkPolicy enforcement on a
// synthetic cluster of 1000 pods (200 on the measured node) and 1000
// policies of mixed shapes (policytest.Cluster):
//
//   - a full sync: translate, render and load the whole table into a fresh
//     network namespace with nft, from nothing;
//   - a pod ADD: the time netpol.Controller.PodAdded takes to put one new
//     pod's rules into the loaded table (the agent calls it before the
//     pod's veth exists);
//   - the data path: TCP connections per second between two pods of a real
//     node (a namespace running flock-agent, pods attached by the real CNI
//     plugin), with the cluster's policies loaded (both pods isolated, the
//     pair allowed), against the same node without any NetworkPolicy
//     (flock's table with empty maps), in many short rounds alternating
//     between the two;
//   - the same two for the same model loaded two other ways (alt.go):
//     with sigs.k8s.io/knftables as kube-proxy's nftables mode does, and as
//     iptables-style linear chains with iptables-nft (one rule per peer and
//     port, one jump per pod).
//
// Its last line is
//
//	netpol_full_apply_ms=<n> netpol_pod_add_ms=<n> datapath_ratio=<with/without>
//	knft_full_apply_ms=<n> knft_datapath_ratio=<n> iptables_full_apply_ms=<n> iptables_datapath_ratio=<n>
//
// (one line), every datapath ratio against the same node without policy.
// Run it as root: `make bench-netpol`.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/fritzlab/flock/internal/cnitest"
	"github.com/fritzlab/flock/internal/testns"
	"github.com/fritzlab/flock/pkg/model"
	"github.com/fritzlab/flock/pkg/netpol"
	"github.com/fritzlab/flock/pkg/policy"
	"github.com/fritzlab/flock/pkg/policy/policytest"
	"github.com/fritzlab/flock/pkg/store"
)

var size = policytest.Size{Pods: 1000, Local: 200, Policies: 1000, Seed: 1}

func main() {
	runs := flag.Int("runs", 5, "full syncs to time")
	adds := flag.Int("adds", 20, "pod ADDs to time")
	rounds := flag.Int("rounds", 40, "data path rounds, each measuring with and without the policies")
	dur := flag.Duration("round", 300*time.Millisecond, "length of one data path measurement")
	flag.Parse()
	if err := run(*runs, *adds, *rounds, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "netpolbench:", err)
		os.Exit(1)
	}
}

func run(runs, adds, rounds int, dur time.Duration) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: the benchmark creates network namespaces")
	}
	testns.RemoveLeftovers()
	ctx := context.Background()
	in := policytest.Cluster(size)
	fmt.Printf("cluster: %d pods (%d on the measured node), %d policies\n", size.Pods, size.Local, size.Policies)

	scratch, err := cnitest.NewNetns("npb")
	if err != nil {
		return err
	}
	defer scratch.Close()
	nft := policy.NFT{Netns: scratch.Path}

	full, err := fullSync(ctx, nft, in, runs)
	if err != nil {
		return err
	}
	knft, err := altSync(runs, "knftables (kube-proxy's library, one command per element)", func() (int, error) {
		return knftApply(ctx, scratch.Path, "flock_knft", policy.Translate(in))
	})
	if err != nil {
		return fmt.Errorf("knftables: %w", err)
	}
	ipt, err := altSync(runs, "iptables-nft-restore (linear chains, one rule per peer and port)", func() (int, error) {
		return iptablesApply(ctx, scratch.Name, policy.Translate(in))
	})
	if err != nil {
		return fmt.Errorf("iptables: %w", err)
	}
	add, err := podAdds(ctx, nft, in, adds)
	if err != nil {
		return err
	}
	ratios, err := dataPath(ctx, in, rounds, dur)
	if err != nil {
		return err
	}
	fmt.Printf("netpol_full_apply_ms=%.1f netpol_pod_add_ms=%.1f datapath_ratio=%.3f knft_full_apply_ms=%.1f knft_datapath_ratio=%.3f iptables_full_apply_ms=%.1f iptables_datapath_ratio=%.3f\n",
		ms(full), ms(add), ratios[rsFlock], ms(knft), ratios[rsKnft], ms(ipt), ratios[rsIptables])
	return nil
}

// altSync times another way of loading the cluster (translate included,
// from nothing each time) and returns the median.
func altSync(runs int, what string, apply func() (int, error)) (time.Duration, error) {
	var total []time.Duration
	var n int
	for range runs {
		start := time.Now()
		var err error
		if n, err = apply(); err != nil {
			return 0, err
		}
		total = append(total, time.Since(start))
	}
	fmt.Printf("full sync with %s, median of %d: %s ms  [%d operations/rules]\n", what, runs, fmtMs(median(total)), n)
	return median(total), nil
}

// fullSync times translate, render and load from nothing (a fresh Applier
// never skips) and returns the median.
func fullSync(ctx context.Context, nft policy.NFT, in *policy.Input, runs int) (time.Duration, error) {
	var total, tr, rd []time.Duration
	var script []byte
	for range runs {
		a := policy.NewApplier(nft)
		start := time.Now()
		m := policy.Translate(in)
		t1 := time.Now()
		if _, err := a.Apply(ctx, m); err != nil {
			return 0, err
		}
		total = append(total, time.Since(start))
		tr = append(tr, t1.Sub(start))
		// Render alone, for the breakdown (Apply renders too).
		t2 := time.Now()
		s, err := policy.Render(m)
		if err != nil {
			return 0, err
		}
		rd = append(rd, time.Since(t2))
		script = s
	}
	fmt.Printf("full sync (translate+render+load, median of %d): %s ms  [translate %s ms, render %s ms, script %d KiB, %d chains]\n",
		runs, fmtMs(median(total)), fmtMs(median(tr)), fmtMs(median(rd)), len(script)/1024, strings.Count(string(script), "\tchain "))
	return median(total), nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64   { return float64(d.Microseconds()) / 1000 }
func fmtMs(d time.Duration) string { return fmt.Sprintf("%.1f", ms(d)) }

// cluster is the synthetic cluster as the controller's informer caches.
type cluster struct {
	in      *policy.Input
	extra   map[string]policy.Pod // pods the API has that Input does not list yet
	changes chan struct{}
}

func (c *cluster) HasSynced() bool              { return true }
func (c *cluster) Changes() <-chan struct{}     { return c.changes }
func (c *cluster) PeerChanges() <-chan struct{} { return c.changes }
func (c *cluster) Input([]policy.Pod) *policy.Input {
	return &policy.Input{Policies: c.in.Policies, Namespaces: c.in.Namespaces, Pods: slices.Clone(c.in.Pods)}
}

func (c *cluster) Pod(_ context.Context, namespace, name, _ string) (*policy.Pod, error) {
	if p, ok := c.extra[namespace+"/"+name]; ok {
		return &p, nil
	}
	return nil, fmt.Errorf("pod %s/%s not found", namespace, name)
}

// locals are the node's attachments, as the agent's store lists them.
type locals struct{ records []store.Record }

func (l *locals) List() []store.Record { return slices.Clone(l.records) }

func record(p policy.Pod) store.Record {
	r := store.Record{ContainerID: p.Iface, IfName: "eth0", Namespace: p.Namespace, Name: p.Name, UID: p.UID, HostIface: p.Iface}
	for _, a := range p.IPs {
		if a.Is4() {
			r.IPv4 = a
		} else {
			r.IPv6 = a
		}
	}
	return r
}

// podAdds loads the cluster through a controller, then times PodAdded for
// new pods, each a replica of a local pod (so under the same policies) with
// new addresses; a full sync after each folds it in, as the worker does.
// It returns the median.
func podAdds(ctx context.Context, nft policy.NFT, in *policy.Input, n int) (time.Duration, error) {
	cl := &cluster{in: in, extra: map[string]policy.Pod{}, changes: make(chan struct{})}
	lo := &locals{}
	var templates []policy.Pod
	for _, p := range in.Pods {
		if p.Iface != "" {
			lo.records = append(lo.records, record(p))
			templates = append(templates, p)
		}
	}
	c := netpol.New(policytest.Node, cl, lo, policy.NewApplier(nft), slog.New(slog.DiscardHandler))
	if err := c.Sync(ctx); err != nil {
		return 0, err
	}
	maps := func() (string, error) {
		var b strings.Builder
		for _, m := range []string{"ingress_by_iface", "egress_by_iface"} {
			out, err := nft.Run(ctx, nil, "list", "map", policy.TableFamily, policy.TableName, m)
			if err != nil {
				return "", err
			}
			b.Write(out)
		}
		return b.String(), nil
	}
	// Replicas of pods under a policy: a new pod that would be unrestricted
	// needs nothing in the kernel.
	loaded, err := maps()
	if err != nil {
		return 0, err
	}
	templates = slices.DeleteFunc(templates, func(p policy.Pod) bool { return !strings.Contains(loaded, p.Iface) })
	var times []time.Duration
	for i := range n {
		t := templates[(i*37)%len(templates)]
		p := policy.Pod{
			Namespace: t.Namespace, Name: fmt.Sprintf("added-%d", i), UID: fmt.Sprintf("uid-added-%d", i),
			Labels: t.Labels, Ports: t.Ports, Node: policytest.Node, Iface: fmt.Sprintf("flockadd%05x", i),
			IPs: []netip.Addr{
				netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x42, 0xff, 0xff, 15: byte(i + 1)}),
				netip.AddrFrom4([4]byte{10, 42, 255, byte(i + 1)}),
			},
		}
		cl.extra[p.Key()] = p
		lo.records = append(lo.records, record(p)) // the agent saves before PodAdded
		start := time.Now()
		if err := c.PodAdded(ctx, &model.Pod{Namespace: p.Namespace, Name: p.Name, UID: p.UID}, p.Iface, p.IPs); err != nil {
			return 0, err
		}
		times = append(times, time.Since(start))
		got, err := maps()
		if err != nil {
			return 0, err
		}
		if strings.Count(got, p.Iface) != strings.Count(got, t.Iface) {
			return 0, fmt.Errorf("pod %s is not in the maps its replica %s is in after PodAdded:\n%s", p.Key(), t.Key(), got)
		}
		if err := c.Sync(ctx); err != nil {
			return 0, err
		}
	}
	fmt.Printf("pod ADD covered (PodAdded, median of %d): %s ms  [max %s ms; each new pod is in the dispatch maps when it returns]\n",
		n, fmtMs(median(times)), fmtMs(slices.Max(times)))
	return median(times), nil
}
