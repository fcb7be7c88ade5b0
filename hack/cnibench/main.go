// Command cnibench measures CNI ADD and DEL latency of flock against the
// reference ptp + host-local plugins (containernetworking/plugins, built from
// the pinned module), in the same run on the same machine: 100 pods one at a
// time and 10 at a time, dual-stack and MTU 1500 for all. There are two
// references: ptp as it ships, which waits for IPv6 duplicate address
// detection on every ADD, and the fair one, ptp with DAD off
// (accept_dad=0 in the node's and every pod's namespace before ADD), since
// flock adds its addresses without DAD. Then flock's ADD is split into its
// phases: exec + libcni, the RPC to the agent, and the agent's own work
// (from its "add timings" debug log line). Its last line is
//
//	add_p50_ratio=<flock/fair> parallel_wall_ratio=<flock/fair> add_p50_ratio_dad=<flock/ptp> parallel_wall_ratio_dad=<flock/ptp>
//
// Run it as root: `make bench-cni`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/fritzlab/flock/internal/cnitest"
	"github.com/fritzlab/flock/internal/testns"
)

const nodeConfig = `apiVersion: flock.fritzlab.net/v1alpha1
kind: NodeConfig
metadata:
  name: bench-node
spec:
  cidr6: 2001:db8:42:1::/64
  cidr4: 198.51.100.0/22
`

type impl struct {
	name string
	node *cnitest.Node
	list *libcni.NetworkConfigList
	pods []*libcni.RuntimeConf
}

type stats struct{ addP50, addP99, delP50, delP99, wall time.Duration }

func main() {
	pods := flag.Int("pods", 100, "pods per phase")
	par := flag.Int("parallel", 10, "concurrent calls in the parallel phase")
	flag.Parse()
	if err := run(*pods, *par); err != nil {
		fmt.Fprintln(os.Stderr, "cnibench:", err)
		os.Exit(1)
	}
}

func run(count, par int) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: the benchmark creates network namespaces")
	}
	testns.RemoveLeftovers()
	dir, err := os.MkdirTemp("", "flock-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "bin")
	if err := cnitest.BuildBinaries(bin); err != nil {
		return err
	}

	flock, err := newImpl("flock", bin, filepath.Join(dir, "flock"), count, nil, func(n *cnitest.Node) (*libcni.NetworkConfigList, error) {
		if err := n.StartAgent(); err != nil {
			return nil, err
		}
		return n.FlockConflist("1.1.0")
	})
	if err != nil {
		return err
	}
	defer flock.close()
	ref, err := newImpl("ptp+host-local", bin, filepath.Join(dir, "ref"), count, nil, ptpConflist("2001:db8:42:2::/64", "198.51.104.0/22"))
	if err != nil {
		return err
	}
	defer ref.close()
	fair, err := newImpl("ptp nodad", bin, filepath.Join(dir, "fair"), count, noDAD, func(n *cnitest.Node) (*libcni.NetworkConfigList, error) {
		if err := noDAD(n.NS); err != nil {
			return nil, err
		}
		return ptpConflist("2001:db8:42:3::/64", "198.51.108.0/22")(n)
	})
	if err != nil {
		return err
	}
	defer fair.close()

	fmt.Printf("%d pods per phase, dual-stack, %d concurrent in the parallel phase\n", count, par)
	fmt.Printf("%-16s %-10s %10s %10s %10s %10s %10s\n", "plugin", "phase", "add_p50", "add_p99", "del_p50", "del_p99", "wall")
	results := map[string]stats{}
	for _, phase := range []struct {
		name string
		par  int
	}{{"serial", 1}, {fmt.Sprintf("parallel%d", par), par}} {
		for _, im := range []*impl{flock, ref, fair} {
			im.measure(5, phase.par) // warm-up: page cache, first exec of each binary
			s, err := im.measure(count, phase.par)
			if err != nil {
				return fmt.Errorf("%s %s: %w", im.name, phase.name, err)
			}
			results[im.name+"/"+phase.name] = s
			fmt.Printf("%-16s %-10s %10s %10s %10s %10s %10s\n", im.name, phase.name, ms(s.addP50), ms(s.addP99), ms(s.delP50), ms(s.delP99), ms(s.wall))
		}
	}
	fv, err := versionExec(filepath.Join(bin, "flock"))
	if err != nil {
		return err
	}
	pv, err := versionExec(filepath.Join(bin, "ptp"))
	if err != nil {
		return err
	}
	fmt.Printf("VERSION exec p50 (the floor of any exec-based plugin): flock %s, ptp %s\n", ms(fv), ms(pv))
	fs := results["flock/serial"]
	fp := results[fmt.Sprintf("flock/parallel%d", par)]
	rs, rp := results["ptp+host-local/serial"], results[fmt.Sprintf("ptp+host-local/parallel%d", par)]
	ns, np := results["ptp nodad/serial"], results[fmt.Sprintf("ptp nodad/parallel%d", par)]

	sp, err := flock.split(count, fs.addP50)
	if err != nil {
		return fmt.Errorf("flock ADD split: %w", err)
	}
	fmt.Printf("flock ADD split (serial p50 of each part): %s\n", sp)
	fmt.Printf("ratios: add_p50_ratio and parallel_wall_ratio against ptp nodad (fair); *_dad against ptp as shipped (waits for DAD)\n")
	fmt.Printf("add_p50_ratio=%.3f parallel_wall_ratio=%.3f add_p50_ratio_dad=%.3f parallel_wall_ratio_dad=%.3f\n",
		ratio(fs.addP50, ns.addP50), ratio(fp.wall, np.wall), ratio(fs.addP50, rs.addP50), ratio(fp.wall, rp.wall))
	return nil
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

// ptpConflist is the reference: ptp + host-local on its own ranges, both
// families, MTU 1500 like flock's default.
func ptpConflist(subnet6, subnet4 string) func(*cnitest.Node) (*libcni.NetworkConfigList, error) {
	return func(n *cnitest.Node) (*libcni.NetworkConfigList, error) {
		return cnitest.Conflist("1.1.0", "ref", map[string]any{
			"type": "ptp", "ipMasq": false, "mtu": 1500,
			"ipam": map[string]any{
				"type":    "host-local",
				"dataDir": filepath.Join(n.Dir, "host-local"),
				"ranges": []any{
					[]any{map[string]any{"subnet": subnet6}},
					[]any{map[string]any{"subnet": subnet4}},
				},
				"routes": []any{map[string]any{"dst": "0.0.0.0/0"}, map[string]any{"dst": "::/0"}},
			},
		})
	}
}

// noDAD turns duplicate address detection off for every interface created
// in ns from now on (ptp creates the veth in the pod's namespace and moves
// the host end to the node's).
func noDAD(ns *cnitest.Netns) error {
	_, err := ns.Run("sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	return err
}

func newImpl(name, bin, dir string, count int, podSetup func(*cnitest.Netns) error, setup func(*cnitest.Node) (*libcni.NetworkConfigList, error)) (*impl, error) {
	n, err := cnitest.NewNode(bin, dir, nodeConfig)
	if err != nil {
		return nil, err
	}
	im := &impl{name: name, node: n}
	if im.list, err = setup(n); err != nil {
		im.close()
		return nil, err
	}
	// Sysctls the node needs to route for ptp's pods too.
	if _, err := n.NS.Run("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"); err != nil {
		im.close()
		return nil, err
	}
	for i := range count {
		ns, err := cnitest.NewNetns("bpod")
		if err != nil {
			im.close()
			return nil, err
		}
		if podSetup != nil {
			if err := podSetup(ns); err != nil {
				ns.Close()
				im.close()
				return nil, err
			}
		}
		im.pods = append(im.pods, cnitest.Runtime(strings.ReplaceAll(ns.Name, "-", ""), ns.Path, "bench", fmt.Sprintf("pod-%d", i)))
	}
	return im, nil
}

func (im *impl) close() {
	for _, p := range im.pods {
		(&cnitest.Netns{Name: filepath.Base(p.NetNS)}).Close()
	}
	im.node.Close()
}

// measure adds count pods with par calls at a time, then deletes them the
// same way, and returns per-call latencies and the wall time of both.
func (im *impl) measure(count, par int) (stats, error) {
	ctx := context.Background()
	pods := im.pods[:count]
	adds := make([]time.Duration, count)
	dels := make([]time.Duration, count)
	var mu sync.Mutex
	var firstErr error
	do := func(lat []time.Duration, f func(int) error) {
		sem := make(chan struct{}, par)
		var wg sync.WaitGroup
		for i := range pods {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				t := time.Now()
				err := f(i)
				lat[i] = time.Since(t)
				if err != nil {
					mu.Lock()
					firstErr = cmpOr(firstErr, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	start := time.Now()
	do(adds, func(i int) error { _, err := im.node.Add(ctx, im.list, pods[i]); return err })
	do(dels, func(i int) error { return im.node.Del(ctx, im.list, pods[i]) })
	wall := time.Since(start)
	if firstErr != nil {
		return stats{}, firstErr
	}
	return stats{addP50: pct(adds, 50), addP99: pct(adds, 99), delP50: pct(dels, 50), delP99: pct(dels, 99), wall: wall}, nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// versionExec is the p50 time of the plugin answering VERSION.
func versionExec(bin string) (time.Duration, error) {
	var lat []time.Duration
	for range 50 {
		cmd := exec.Command(bin)
		cmd.Env = []string{"CNI_COMMAND=VERSION"}
		cmd.Stdin = strings.NewReader(`{"cniVersion":"1.1.0"}`)
		t := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("%s VERSION: %v: %s", bin, err, out)
		}
		lat = append(lat, time.Since(t))
	}
	return pct(lat, 50), nil
}
