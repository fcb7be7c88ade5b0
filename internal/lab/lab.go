// Package lab is flock-lab: a real control plane (etcd and kube-apiserver)
// and simulated nodes on one machine. Each node is a network namespace wired
// to an upstream router namespace, running the real flock-agent and a
// kubelet-lite that attaches pods through the real CNI plugin.
//
// Up and Down are what `flock-lab up` and `flock-lab down` run; tests call
// them directly. Everything the lab makes is found again from Options alone
// (namespace prefix and directories), so Down also cleans up after a crash.
package lab

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/fritzlab/flock/internal/lab/controlplane"
	"github.com/fritzlab/flock/internal/lab/topology"
)

// Options configure a lab; the zero value is the lab of `flock-lab up`.
// Tests that must not touch a running lab set Prefix, RunDir and StateDir.
type Options struct {
	Nodes    int       // default 2
	Prefix   string    // network namespace prefix; default "flk-lab"
	RunDir   string    // sockets, pids, logs, per-node state; default /run/flock-lab
	StateDir string    // kubeconfig, control plane, binaries; default /var/lib/flock-lab
	CacheDir string    // kube-apiserver build cache; default $HOME/.cache/flock-lab
	Log      io.Writer `json:"-"` // progress lines; default os.Stderr

	// SkipPackages leaves Debian packages alone instead of installing what
	// the lab needs.
	SkipPackages bool
	// ExplicitNodeConfigs writes every node's NodeConfig by hand (the
	// topology's pools, AS 65100+i) instead of the default: a NodePool and
	// flock-controller making them.
	ExplicitNodeConfigs bool

	// Runtime is what runs the nodes' pods: RuntimeReal (default:
	// containerd, kubelet, kube-proxy) or RuntimeLite (kubelet-lite and the
	// lab's Service proxy, host processes).
	Runtime string
}

// Packages are the Debian packages the lab uses: etcd for the control plane,
// ip and nft for the network, ping and nc for `flock-lab exec`.
var Packages = []string{"bird2", "etcd-server", "iproute2", "iputils-ping", "netcat-openbsd", "nftables"}

func (o Options) withDefaults() Options {
	if o.Nodes == 0 {
		o.Nodes = 2
	}
	if o.Prefix == "" {
		o.Prefix = "flk-lab"
	}
	if o.RunDir == "" {
		o.RunDir = "/run/flock-lab"
	}
	if o.StateDir == "" {
		o.StateDir = "/var/lib/flock-lab"
	}
	if o.CacheDir == "" {
		o.CacheDir = controlplane.DefaultCacheDir()
	}
	if o.Log == nil {
		o.Log = os.Stderr
	}
	if o.Runtime == "" {
		o.Runtime = RuntimeReal
	}
	return o
}

// Lab is a running lab.
type Lab struct {
	Options    `json:"options"`
	Kubeconfig string `json:"kubeconfig"` // admin kubeconfig
	Server     string `json:"server"`     // the API server, https://127.0.0.1:PORT
	BinDir     string `json:"binDir"`     // flock, flock-agent, flockctl, flock-lab, portmap
	Router     string `json:"router"`     // router namespace
	Nodes      []Node `json:"nodes"`
	// Kube are the upstream node components (RuntimeReal only).
	Kube KubeBinaries `json:"kube,omitzero"`

	cp *controlplane.ControlPlane
}

// Node is one simulated node.
type Node struct {
	topology.Node
	Dir               string `json:"dir"` // RunDir/nodes/<name>
	AgentSocket       string `json:"agentSocket"`
	AgentKubeconfig   string `json:"agentKubeconfig"`
	KubeletKubeconfig string `json:"kubeletKubeconfig"`
	CNIConfList       string `json:"cniConfList"`
}

// Paths derived from Options.
func (o Options) stateFile() string       { return filepath.Join(o.RunDir, "lab.json") }
func (o Options) controlPlaneDir() string { return filepath.Join(o.StateDir, "controlplane") }
func (o Options) binDir() string          { return filepath.Join(o.StateDir, "bin") }
func (o Options) kubeconfig() string      { return filepath.Join(o.StateDir, "kubeconfig") }
func (o Options) logDir() string          { return filepath.Join(o.RunDir, "logs") }
func (o Options) pidDir() string          { return filepath.Join(o.RunDir, "pids") }
func (o Options) podNetnsPrefix() string  { return o.Prefix + "-pod-" }

// nodes lays out the lab's nodes and their files.
func (o Options) nodes() ([]Node, error) {
	plan, err := topology.Config{Prefix: o.Prefix, Nodes: o.Nodes}.Plan()
	if err != nil {
		return nil, err
	}
	nodes := make([]Node, len(plan))
	for i, p := range plan {
		dir := filepath.Join(o.RunDir, "nodes", p.Name)
		nodes[i] = Node{
			Node:              p,
			Dir:               dir,
			AgentSocket:       filepath.Join(dir, "agent.sock"),
			AgentKubeconfig:   filepath.Join(dir, "agent.kubeconfig"),
			KubeletKubeconfig: filepath.Join(dir, "kubelet.kubeconfig"),
			CNIConfList:       filepath.Join(dir, "cni", "net.d", "10-flock.conflist"),
		}
	}
	return nodes, nil
}

// Load finds the lab that Up started with these options.
func Load(opts Options) (*Lab, error) {
	opts = opts.withDefaults()
	data, err := os.ReadFile(opts.stateFile())
	if err != nil {
		return nil, fmt.Errorf("no lab running (%w); start one with flock-lab up", err)
	}
	var l Lab
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("read lab state %s: %w", opts.stateFile(), err)
	}
	l.Log = opts.Log
	cp, err := controlplane.Load(l.controlPlaneDir())
	if err != nil {
		return nil, err
	}
	l.cp = cp
	return &l, nil
}

func (l *Lab) save() error {
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return fmt.Errorf("save lab state: %w", err)
	}
	if err := os.WriteFile(l.stateFile(), data, 0o600); err != nil {
		return fmt.Errorf("save lab state: %w", err)
	}
	return nil
}

// ControlPlane is the lab's etcd and kube-apiserver.
func (l *Lab) ControlPlane() *controlplane.ControlPlane { return l.cp }

// Node returns the node named name.
func (l *Lab) Node(name string) (Node, bool) {
	for _, n := range l.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

func (l *Lab) logf(format string, args ...any) {
	fmt.Fprintf(l.Log, format+"\n", args...)
}
