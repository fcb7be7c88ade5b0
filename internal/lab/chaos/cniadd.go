package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	cnins "github.com/containernetworking/plugins/pkg/ns"

	"github.com/fritzlab/flock/internal/lab"
)

// directAttach is one attachment made by calling the real flock plugin
// through libcni on a node, the way the runtime does, outside kubelet: a
// pod namespace of its own and CNI_ARGS naming a pod object.
type directAttach struct {
	node      lab.Node
	cni       *libcni.CNIConfig
	list      *libcni.NetworkConfigList
	rt        *libcni.RuntimeConf
	netns     string
	cacheDir  string
	namespace string
	name      string
}

func (s *suite) newDirectAttach(node, podName string) (*directAttach, error) {
	n, ok := s.l.Node(node)
	if !ok {
		return nil, fmt.Errorf("no node %s in the lab", node)
	}
	list, err := libcni.ConfListFromFile(n.CNIConfList)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", n.CNIConfList, err)
	}
	id := fmt.Sprintf("chaosadd%d%d", os.Getpid(), s.seq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", id).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", id, err, out)
	}
	exec.Command("ip", "-n", id, "link", "set", "lo", "up").Run()
	cacheDir, err := os.MkdirTemp("", "chaos-cni-cache-")
	if err != nil {
		exec.Command("ip", "netns", "delete", id).Run()
		return nil, err
	}
	d := &directAttach{
		node: n, list: list, netns: id, cacheDir: cacheDir, namespace: ns, name: podName,
		cni: libcni.NewCNIConfigWithCacheDir([]string{s.l.BinDir}, cacheDir, &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: os.Stderr}}),
	}
	d.rt = &libcni.RuntimeConf{
		ContainerID: id,
		NetNS:       filepath.Join("/run/netns", id),
		IfName:      "eth0",
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", ns},
			{"K8S_POD_NAME", podName},
			{"K8S_POD_INFRA_CONTAINER_ID", id},
		},
	}
	return d, nil
}

// inNode runs f with the thread in the node's namespace, so the plugin's
// host side (and its calls to the agent's socket) stay in the node.
func (d *directAttach) inNode(f func() error) error {
	h, err := cnins.GetNS(filepath.Join("/run/netns", d.node.Netns))
	if err != nil {
		return err
	}
	defer h.Close()
	return h.Do(func(cnins.NetNS) error { return f() })
}

// add runs CNI ADD; the error, when there is one, is the plugin's.
func (d *directAttach) add(ctx context.Context) error {
	return d.inNode(func() error { _, err := d.cni.AddNetworkList(ctx, d.list, d.rt); return err })
}

func (d *directAttach) del(ctx context.Context) error {
	return d.inNode(func() error { return d.cni.DelNetworkList(ctx, d.list, d.rt) })
}

// close deletes the namespace and the cache.
func (d *directAttach) close() {
	exec.Command("ip", "netns", "delete", d.netns).Run()
	os.RemoveAll(d.cacheDir)
}

// cniCode is the CNI error code of a plugin's error, 0 for none of its own.
func cniCode(err error) uint {
	var e *types.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}
