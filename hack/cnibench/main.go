// Command cnibench measures CNI ADD and DEL latency of flock against the
// reference ptp + host-local plugins (containernetworking/plugins, built from
// the pinned module), in the same run on the same machine: 100 pods one at a
// time and 10 at a time, dual-stack for both. Its last line is
//
//	add_p50_ratio=<flock/ref> parallel_wall_ratio=<flock/ref>
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

	flock, err := newImpl("flock", bin, filepath.Join(dir, "flock"), count, func(n *cnitest.Node) (*libcni.NetworkConfigList, error) {
		if err := n.StartAgent(); err != nil {
			return nil, err
		}
		return n.FlockConflist("1.1.0")
	})
	if err != nil {
		return err
	}
	defer flock.close()
	ref, err := newImpl("ptp+host-local", bin, filepath.Join(dir, "ref"), count, func(n *cnitest.Node) (*libcni.NetworkConfigList, error) {
		return cnitest.Conflist("1.1.0", "ref", map[string]any{
			"type": "ptp", "ipMasq": false, "mtu": 1500,
			"ipam": map[string]any{
				"type":    "host-local",
				"dataDir": filepath.Join(n.Dir, "host-local"),
				"ranges": []any{
					[]any{map[string]any{"subnet": "2001:db8:42:2::/64"}},
					[]any{map[string]any{"subnet": "198.51.104.0/22"}},
				},
				"routes": []any{map[string]any{"dst": "0.0.0.0/0"}, map[string]any{"dst": "::/0"}},
			},
		})
	})
	if err != nil {
		return err
	}
	defer ref.close()

	fmt.Printf("%d pods per phase, dual-stack, %d concurrent in the parallel phase\n", count, par)
	fmt.Printf("%-16s %-10s %10s %10s %10s %10s %10s\n", "plugin", "phase", "add_p50", "add_p99", "del_p50", "del_p99", "wall")
	results := map[string]stats{}
	for _, phase := range []struct {
		name string
		par  int
	}{{"serial", 1}, {fmt.Sprintf("parallel%d", par), par}} {
		for _, im := range []*impl{flock, ref} {
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
	fmt.Printf("add_p50_ratio=%.3f parallel_wall_ratio=%.3f\n",
		float64(fs.addP50)/float64(rs.addP50), float64(fp.wall)/float64(rp.wall))
	return nil
}

func newImpl(name, bin, dir string, count int, setup func(*cnitest.Node) (*libcni.NetworkConfigList, error)) (*impl, error) {
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
