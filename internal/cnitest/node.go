package cnitest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
)

// Node is a simulated node: a network namespace with forwarding on and a
// real flock-agent in it.
type Node struct {
	NS     *Netns
	Dir    string // socket, allocations, pods, NodeConfig, CNI cache, agent log
	BinDir string
	Socket string
	// AgentArgs are more flock-agent flags for StartAgent (--bird-config …).
	AgentArgs []string

	agent     *exec.Cmd
	agentDone chan struct{} // closed when the agent process has exited
	cni       *libcni.CNIConfig
}

// NewNode creates the node's namespace and writes its NodeConfig; the
// agent is not started.
func NewNode(binDir, dir, nodeConfigYAML string) (*Node, error) {
	nsn, err := NewNetns("node")
	if err != nil {
		return nil, err
	}
	n := &Node{NS: nsn, Dir: dir, BinDir: binDir, Socket: filepath.Join(dir, "agent.sock")}
	// An explicit exec: libcni creates its default lazily, which races when
	// calls run in parallel.
	exec := &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: os.Stderr}}
	n.cni = libcni.NewCNIConfigWithCacheDir([]string{binDir}, filepath.Join(dir, "cni-cache"), exec)
	if err := os.MkdirAll(filepath.Join(dir, "pods"), 0o755); err != nil {
		n.Close()
		return nil, err
	}
	if err := n.WriteNodeConfig(nodeConfigYAML); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// WriteNodeConfig replaces the node's NodeConfig file.
func (n *Node) WriteNodeConfig(yaml string) error {
	return os.WriteFile(filepath.Join(n.Dir, "nodeconfig.yaml"), []byte(yaml), 0o644)
}

// WritePod writes a pod's metadata (its annotations) for the file source.
func (n *Node) WritePod(namespace, name, uid string, annotations map[string]string) error {
	meta := map[string]any{"name": name, "namespace": namespace, "uid": uid, "annotations": annotations}
	b, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	dir := filepath.Join(n.Dir, "pods", namespace)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+".yaml"), b, 0o644)
}

// StartAgent starts flock-agent inside the node's namespace and waits
// until it answers on its socket.
func (n *Node) StartAgent() error {
	logf, err := os.OpenFile(filepath.Join(n.Dir, "agent.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := append([]string{"netns", "exec", n.NS.Name, filepath.Join(n.BinDir, "flock-agent"),
		"--socket", n.Socket,
		"--state-dir", filepath.Join(n.Dir, "allocations"),
		"--node-config", filepath.Join(n.Dir, "nodeconfig.yaml"),
		"--pods-dir", filepath.Join(n.Dir, "pods"),
		"--log-level", "debug"}, n.AgentArgs...)
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start flock-agent in %s: %w", n.NS.Name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	n.agent, n.agentDone = cmd, done
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			n.agent = nil
			return fmt.Errorf("flock-agent exited at start (%v); log: %s", cmd.ProcessState, n.AgentLog())
		default:
		}
		if c, err := net.Dial("unix", n.Socket); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	n.StopAgent(true)
	return fmt.Errorf("flock-agent did not listen on %s within 15s; log: %s", n.Socket, n.AgentLog())
}

// StopAgent stops the agent, with SIGKILL when kill is set (a crash) or
// SIGTERM otherwise, and waits until it is gone.
func (n *Node) StopAgent(kill bool) {
	if n.agent == nil {
		return
	}
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = n.agent.Process.Signal(sig)
	select {
	case <-n.agentDone:
	case <-time.After(10 * time.Second):
		_ = n.agent.Process.Kill()
		<-n.agentDone
	}
	n.agent = nil
}

// AgentLog returns what the agent logged so far.
func (n *Node) AgentLog() string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "agent.log"))
	return string(b)
}

// Close stops the agent and deletes the node's namespace.
func (n *Node) Close() error {
	n.StopAgent(false)
	return n.NS.Close()
}

// FlockConflist is a network config list with flock first, followed by
// the given chained plugin configs.
func (n *Node) FlockConflist(cniVersion string, chained ...map[string]any) (*libcni.NetworkConfigList, error) {
	plugins := append([]map[string]any{{"type": "flock", "socket": n.Socket}}, chained...)
	return Conflist(cniVersion, "flock-test", plugins...)
}

// Conflist builds a network config list from plugin configs.
func Conflist(cniVersion, name string, plugins ...map[string]any) (*libcni.NetworkConfigList, error) {
	b, err := json.Marshal(map[string]any{"cniVersion": cniVersion, "name": name, "plugins": plugins})
	if err != nil {
		return nil, err
	}
	return libcni.NetworkConfFromBytes(b)
}

// Runtime describes one pod attachment as kubelet passes it.
func Runtime(containerID, podNetns, namespace, name string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: containerID,
		NetNS:       podNetns,
		IfName:      "eth0",
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", namespace},
			{"K8S_POD_NAME", name},
			{"K8S_POD_INFRA_CONTAINER_ID", containerID},
		},
	}
}

// inNode runs f with the calling thread in the node's namespace, so the
// plugins libcni executes (and anything they do to the "host" side, such as
// ptp's veths or portmap's rules) stay inside the node.
func (n *Node) inNode(f func() error) error {
	h, err := ns.GetNS(n.NS.Path)
	if err != nil {
		return err
	}
	defer h.Close()
	return h.Do(func(ns.NetNS) error { return f() })
}

// Add runs CNI ADD of a config list.
func (n *Node) Add(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) (res types.Result, err error) {
	err = n.inNode(func() error { res, err = n.cni.AddNetworkList(ctx, list, rt); return err })
	return res, err
}

// Del runs CNI DEL of a config list.
func (n *Node) Del(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	return n.inNode(func() error { return n.cni.DelNetworkList(ctx, list, rt) })
}

// Check runs CNI CHECK of a config list.
func (n *Node) Check(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	return n.inNode(func() error { return n.cni.CheckNetworkList(ctx, list, rt) })
}

// Status runs CNI STATUS of a config list.
func (n *Node) Status(ctx context.Context, list *libcni.NetworkConfigList) error {
	return n.inNode(func() error { return n.cni.GetStatusNetworkList(ctx, list) })
}

// GC runs CNI GC of a config list with the attachments to keep.
func (n *Node) GC(ctx context.Context, list *libcni.NetworkConfigList, keep []types.GCAttachment) error {
	return n.inNode(func() error { return n.cni.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: keep}) })
}
