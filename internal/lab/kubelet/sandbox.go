package kubelet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	v1 "k8s.io/api/core/v1"
)

// podIfName is the pod's interface, as kubelet asks for it.
const podIfName = "eth0"

// network attaches pods to the node's network through libcni, the way
// containerd's CRI plugin does for kubelet: the node's conflist, the CNI
// arguments kubelet passes, hostPorts as the portMappings capability.
type network struct {
	host     *host
	cni      *libcni.CNIConfig
	confList string
	primary6 bool // the cluster's primary family, which orders pod IPs
}

func newNetwork(h *host, binDir, cacheDir, confList string, primary6 bool) *network {
	// An explicit exec: libcni creates its default lazily, which races when
	// several pods are attached at once.
	ex := &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: os.Stderr}}
	return &network{
		host:     h,
		cni:      libcni.NewCNIConfigWithCacheDir([]string{binDir}, cacheDir, ex),
		confList: confList,
		primary6: primary6,
	}
}

// load reads the conflist on every use, so a conflist installed or changed
// after kubelet-lite started is picked up.
func (n *network) load() (*libcni.NetworkConfigList, error) {
	l, err := libcni.NetworkConfFromFile(n.confList)
	if err != nil {
		return nil, fmt.Errorf("load CNI conflist %s: %w", n.confList, err)
	}
	return l, nil
}

// runtimeConf is the pod's attachment as kubelet describes it.
func runtimeConf(rec *podRecord) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: rec.SandboxID,
		NetNS:       netnsPath(rec.Netns),
		IfName:      podIfName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", rec.Namespace},
			{"K8S_POD_NAME", rec.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", rec.SandboxID},
			{"K8S_POD_UID", string(rec.UID)},
		},
	}
	if len(rec.PortMappings) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": rec.PortMappings}
	}
	return rt
}

// portMappings are the pod's hostPorts, lower-case protocols as the CRI
// passes them.
func portMappings(pod *v1.Pod) []portMapping {
	var out []portMapping
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort == 0 {
				continue
			}
			proto := strings.ToLower(string(p.Protocol))
			if proto == "" {
				proto = "tcp"
			}
			out = append(out, portMapping{HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: proto, HostIP: p.HostIP})
		}
	}
	return out
}

// add runs CNI ADD into the pod's (existing) namespace; on failure it runs
// CNI DEL, as kubelet tears a failed sandbox down, and returns the ADD's
// error. The namespace stays for the retry.
func (n *network) add(ctx context.Context, rec *podRecord) ([]string, error) {
	list, err := n.load()
	if err != nil {
		return nil, err
	}
	rt := runtimeConf(rec)
	var res cnitypes.Result
	err = n.host.inNode(func() error {
		res, err = n.cni.AddNetworkList(ctx, list, rt)
		return err
	})
	if err == nil {
		var ips []string
		if ips, err = n.podIPs(res); err == nil {
			return ips, nil
		}
	}
	err = fmt.Errorf("CNI ADD of pod %s/%s (sandbox %s) to network %s: %w", rec.Namespace, rec.Name, rec.SandboxID[:12], list.Name, err)
	if derr := n.del(ctx, rec); derr != nil {
		err = errors.Join(err, derr)
	}
	return nil, err
}

// adopt takes over an attachment made before a restart: the namespace
// must be there and CNI CHECK must pass against the cached ADD result.
func (n *network) adopt(ctx context.Context, rec *podRecord) ([]string, error) {
	if !netnsLive(rec.Netns) {
		return nil, fmt.Errorf("netns %s is gone", rec.Netns)
	}
	list, err := n.load()
	if err != nil {
		return nil, err
	}
	rt := runtimeConf(rec)
	res, err := n.cni.GetNetworkListCachedResult(list, rt)
	if err != nil || res == nil {
		return nil, fmt.Errorf("no cached CNI result for sandbox %s: %v", rec.SandboxID[:12], err)
	}
	if err := n.host.inNode(func() error { return n.cni.CheckNetworkList(ctx, list, rt) }); err != nil {
		return nil, fmt.Errorf("CNI CHECK of sandbox %s: %w", rec.SandboxID[:12], err)
	}
	return n.podIPs(res)
}

// del runs CNI DEL; without the namespace it passes none (allowed for DEL).
func (n *network) del(ctx context.Context, rec *podRecord) error {
	list, err := n.load()
	if err != nil {
		return err
	}
	rt := runtimeConf(rec)
	if !netnsLive(rec.Netns) {
		rt.NetNS = ""
	}
	if err := n.host.inNode(func() error { return n.cni.DelNetworkList(ctx, list, rt) }); err != nil {
		return fmt.Errorf("CNI DEL of pod %s/%s (sandbox %s): %w", rec.Namespace, rec.Name, rec.SandboxID[:12], err)
	}
	return nil
}

// teardown is CNI DEL, then the namespace's removal.
func (n *network) teardown(ctx context.Context, rec *podRecord) error {
	if rec.SandboxID != "" {
		if err := n.del(ctx, rec); err != nil {
			return err
		}
	}
	if rec.Netns != "" {
		return n.host.deleteNetns(rec.Netns)
	}
	return nil
}

// gc runs CNI GC keeping only the given sandboxes, which releases anything
// a crash left behind (kubelet-lite is the node's only CNI user).
func (n *network) gc(ctx context.Context, keep []string) error {
	list, err := n.load()
	if err != nil {
		return err
	}
	args := &libcni.GCArgs{}
	for _, id := range keep {
		args.ValidAttachments = append(args.ValidAttachments, cnitypes.GCAttachment{ContainerID: id, IfName: podIfName})
	}
	return n.host.inNode(func() error { return n.cni.GCNetworkList(ctx, list, args) })
}

// podIPs are the addresses on the pod's interface in the result, one per
// family, the primary family first.
func (n *network) podIPs(res cnitypes.Result) ([]string, error) {
	r, err := current.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("convert CNI result: %w", err)
	}
	var v6, v4 []string
	for _, ipc := range r.IPs {
		if ipc.Interface != nil && *ipc.Interface >= 0 && *ipc.Interface < len(r.Interfaces) {
			if r.Interfaces[*ipc.Interface].Sandbox == "" {
				continue // a host-side address
			}
		}
		a, ok := netip.AddrFromSlice(ipc.Address.IP)
		if !ok {
			continue
		}
		if a = a.Unmap(); a.Is4() {
			v4 = append(v4, a.String())
		} else {
			v6 = append(v6, a.String())
		}
	}
	ips := slices.Concat(first(v4), first(v6))
	if n.primary6 {
		ips = slices.Concat(first(v6), first(v4))
	}
	if len(ips) == 0 {
		return nil, errors.New("CNI result has no address on the pod's interface")
	}
	return ips, nil
}

func first(s []string) []string {
	if len(s) > 1 {
		return s[:1]
	}
	return s
}
