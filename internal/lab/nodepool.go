package lab

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/internal/lab/controlplane"
)

// The lab's NodePool: every Node, IPv6 /64s of the documentation range and
// IPv4 /24s of the benchmarking range (the ranges the explicit NodeConfigs
// use too), one AS for every node, and each node peering with its default
// gateway, the router's end of its own link.
const (
	// PoolName is the lab's NodePool.
	PoolName = "lab"
	// PoolASN is every node's AS when the NodePool makes the NodeConfigs.
	PoolASN              = 65100
	poolCIDR6, poolCIDR4 = "2001:db8:42::/48", "198.18.0.0/16"
	// Replicas of flock-controller the lab runs: two, so that killing the
	// leader shows a real failover.
	controllerReplicas = 2
)

// NodePool returns the lab's NodePool.
func NodePool() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.SchemeGroupVersion.String(),
		"kind":       v1alpha1.NodePoolKind,
		"metadata":   map[string]any{"name": PoolName},
		"spec": map[string]any{
			"cidr6":      poolCIDR6,
			"blockSize6": int64(64),
			"cidr4":      poolCIDR4,
			"blockSize4": int64(24),
			"defaults":   map[string]any{"ipv6": true, "ipv4": true},
			// Without an allowlist no pod may claim anycast.
			"anycast": map[string]any{"allowedCIDRs": []any{LabAnycast6.String(), LabAnycast4.String()}},
			"bgp": map[string]any{
				"asn": int64(PoolASN),
				"peers": []any{
					map[string]any{"address": v1alpha1.PeerDefaultGateway6, "asn": int64(RouterASN)},
					map[string]any{"address": v1alpha1.PeerDefaultGateway4, "asn": int64(RouterASN)},
				},
			},
		},
	}}
}

// startControllers runs the flock-controller replicas in the root
// namespace (where the API server listens), as the controller's
// ServiceAccount.
func (l *Lab) startControllers(cp *controlplane.ControlPlane, ids identities) error {
	kubeconfig := filepath.Join(l.StateDir, "controller.kubeconfig")
	if err := controlplane.WriteKubeconfig(kubeconfig, cp.Server, cp.CAFile, ids.controller.Token); err != nil {
		return err
	}
	for i := range controllerReplicas {
		id := fmt.Sprintf("flock-controller-%d", i)
		if _, err := l.startDaemon(daemon{Name: id, Args: []string{
			filepath.Join(l.BinDir, "flock-controller"), "--kubeconfig", kubeconfig, "--identity", id,
		}}); err != nil {
			return err
		}
	}
	return nil
}

// adoptPools waits for the controller to make every node's NodeConfig and
// takes the nodes' pools from them: the router and the tests then expect
// what the controller chose.
func (l *Lab) adoptPools(ctx context.Context, dc dynamic.Interface) error {
	return poll(ctx, 2*time.Minute, func() error {
		for i := range l.Nodes {
			n := &l.Nodes[i]
			for r := range controllerReplicas {
				id := fmt.Sprintf("flock-controller-%d", r)
				if _, ok := l.daemonPid(id); !ok {
					return l.exited(id)
				}
			}
			u, err := dc.Resource(v1alpha1.NodeConfigGVR).Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("nodeconfig %s: %w", n.Name, err)
			}
			c6, _, _ := unstructured.NestedString(u.Object, "spec", "cidr6")
			c4, _, _ := unstructured.NestedString(u.Object, "spec", "cidr4")
			p6, err6 := netip.ParsePrefix(c6)
			p4, err4 := netip.ParsePrefix(c4)
			if err6 != nil || err4 != nil {
				return fmt.Errorf("nodeconfig %s: pools %q %q", n.Name, c6, c4)
			}
			n.Pool6, n.Pool4 = p6, p4
		}
		return nil
	}, "the NodeConfigs flock-controller makes")
}

// ControllerPids are the pids of the running flock-controller replicas, by
// identity (flock-controller-<i>).
func (l *Lab) ControllerPids() map[string]int {
	out := map[string]int{}
	for i := range controllerReplicas {
		id := fmt.Sprintf("flock-controller-%d", i)
		if pid, ok := l.daemonPid(id); ok {
			out[id] = pid
		}
	}
	return out
}
