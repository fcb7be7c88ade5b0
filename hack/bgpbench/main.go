// Command bgpbench measures BGP convergence in flock-lab: the time from a
// NodeConfig pool change (the API write) to the new prefix in the upstream
// router's kernel table, 20 times, and how many BIRD reloads 100 NodeConfig
// updates within a second cause. Its last line is
//
//	bgp_converge_p99_ms=<n> reloads_per_100_updates=<n>
//
// Run it as root: `make bench-bgp`. It starts and removes a lab of its own.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/hack/internal/benchlab"
	"github.com/fritzlab/flock/internal/lab"
	"github.com/fritzlab/flock/pkg/bird"
)

func main() { benchlab.Main("bgpbench", "bb", run) }

func run(ctx context.Context, l *lab.Lab, _ string) error {
	dc, err := dynamic.NewForConfig(l.ControlPlane().RESTConfig())
	if err != nil {
		return err
	}
	node := l.Nodes[0]
	patch := func(spec map[string]any) error {
		data, _ := json.Marshal(map[string]any{"spec": spec})
		_, err := dc.Resource(v1alpha1.NodeConfigGVR).Patch(ctx, node.Name, types.MergePatchType, data, metav1.PatchOptions{})
		return err
	}
	// Wait until the lab's own pools are announced.
	for deadline := time.Now().Add(60 * time.Second); !benchlab.RouterHas(l, node.Pool4.String()); {
		if time.Now().After(deadline) {
			return fmt.Errorf("router never learned %s", node.Pool4)
		}
		time.Sleep(100 * time.Millisecond)
	}

	var lat []time.Duration
	for i := range 20 {
		// Changes closer than the reloader's 500 ms window are coalesced by
		// design (a trailing reload at the window's end); space them so each
		// measures one isolated change, as an operator's edit is.
		time.Sleep(bird.CoalesceWindow + 100*time.Millisecond)
		pool := fmt.Sprintf("198.18.%d.0/24", 100+i)
		start := time.Now()
		if err := patch(map[string]any{"cidr4": pool}); err != nil {
			return err
		}
		for !benchlab.RouterHas(l, pool) {
			if time.Since(start) > 30*time.Second {
				return fmt.Errorf("router did not learn %s within 30s", pool)
			}
			time.Sleep(2 * time.Millisecond)
		}
		lat = append(lat, time.Since(start))
	}
	p50, p99 := benchlab.Percentiles(lat)
	fmt.Printf("pool change -> router kernel, 20 runs: p50 %s p99 %s\n", benchlab.Ms(p50), benchlab.Ms(p99))

	before, err := reloads(l.AgentLog(node.Name))
	if err != nil {
		return err
	}
	start := time.Now()
	for i := range 100 {
		if err := patch(map[string]any{"cidr4": fmt.Sprintf("198.18.%d.0/24", 130+i)}); err != nil {
			return err
		}
	}
	fmt.Printf("100 NodeConfig updates written in %s\n", time.Since(start).Round(time.Millisecond))
	time.Sleep(3 * time.Second)
	after, err := reloads(l.AgentLog(node.Name))
	if err != nil {
		return err
	}
	fmt.Printf("bgp_converge_p99_ms=%d reloads_per_100_updates=%d\n", p99.Milliseconds(), after-before)
	return nil
}

func reloads(log string) (int, error) {
	b, err := os.ReadFile(log)
	return strings.Count(string(b), "bird reloaded"), err
}
