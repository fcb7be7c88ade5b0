package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/internal/lab/apiproxy"
	"github.com/fritzlab/flock/internal/lab/controlplane"
	"github.com/fritzlab/flock/internal/lab/topology"
)

// Up cleans up whatever an earlier lab left, then starts a lab: packages,
// binaries, control plane, Nodes and NodeConfigs, the network, the API
// forwarder, and on every node the agent and kubelet-lite. It returns when
// every node is Ready and every agent answers STATUS. On error it removes
// everything again.
func Up(ctx context.Context, opts Options) (l *Lab, err error) {
	opts = opts.withDefaults()
	if err := opts.checkRuntime(); err != nil {
		return nil, err
	}
	if opts.Nodes < 1 || opts.Nodes > topology.MaxNodes {
		return nil, fmt.Errorf("lab: %d nodes, want 1..%d", opts.Nodes, topology.MaxNodes)
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("lab: must run as root (it creates network namespaces)")
	}
	nodes, err := opts.nodes()
	if err != nil {
		return nil, err
	}
	l = &Lab{Options: opts, Kubeconfig: opts.kubeconfig(), BinDir: opts.binDir(), Router: topology.Config{Prefix: opts.Prefix}.RouterNetns(), Nodes: nodes}
	start := time.Now()
	if err := Down(ctx, opts); err != nil {
		return nil, fmt.Errorf("clean up an earlier lab: %w", err)
	}
	log := l.Log
	defer func() {
		if err != nil {
			fmt.Fprintf(log, "lab failed, removing it: %v\n", err)
			Down(context.WithoutCancel(ctx), opts)
		}
	}()
	if !opts.SkipPackages {
		pkgs := Packages
		if opts.real() {
			pkgs = append(slices.Clone(pkgs), RealPackages...)
		}
		if err := ensurePackages(ctx, opts.Log, pkgs); err != nil {
			return nil, err
		}
	}
	source, err := controlplane.SourceRoot()
	if err != nil {
		return nil, err
	}
	for _, dir := range []string{opts.RunDir, opts.StateDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
	}
	l.logf("building flock, flock-agent, flockctl, flock-controller, flock-lab and portmap into %s", l.BinDir)
	if err := buildBinaries(ctx, source, l.BinDir); err != nil {
		return nil, err
	}
	if opts.real() {
		if err := l.buildReal(ctx, source); err != nil {
			return nil, err
		}
	}

	ids, err := newIdentities(source)
	if err != nil {
		return nil, err
	}
	l.logf("starting etcd and kube-apiserver")
	var egress string
	if opts.real() {
		egress = apiproxy.EgressConfig(opts.egressSocket())
	}
	cp, err := controlplane.Start(ctx, controlplane.Options{
		EgressConfig: egress,
		Dir:          opts.controlPlaneDir(),
		CacheDir:     opts.CacheDir,
		Log:          opts.Log,
		Tokens:       []controlplane.Token{ids.agent, ids.kubelet, ids.controller},
		Detach:       true,
	})
	if err != nil {
		return nil, err
	}
	l.cp, l.Server = cp, cp.Server
	if err := controlplane.WriteKubeconfig(l.Kubeconfig, cp.Server, cp.CAFile, cp.Token); err != nil {
		return nil, err
	}
	if err := l.save(); err != nil {
		return nil, err
	}
	if err := controlplane.ApplyFiles(ctx, cp.RESTConfig(), filepath.Join(source, "deploy", "rbac.yaml"),
		filepath.Join(source, "deploy", "controller-rbac.yaml")); err != nil {
		return nil, err
	}
	if opts.real() {
		l.logf("starting kube-controller-manager and kube-scheduler")
		if err := l.startKubeControllers(ctx); err != nil {
			return nil, err
		}
	}
	cs, err := kubernetes.NewForConfig(cp.RESTConfig())
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	dc, err := dynamic.NewForConfig(cp.RESTConfig())
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	// flock-controller runs in every lab: it makes the NodeConfigs of the
	// NodePool (none with explicit NodeConfigs) and gives LoadBalancer
	// Services their addresses from the ServiceAddressPool.
	if !opts.ExplicitNodeConfigs {
		l.logf("applying the NodePool %s", PoolName)
		if err := apply(ctx, dc, v1alpha1.NodePoolGVR, NodePool()); err != nil {
			return nil, err
		}
	}
	l.logf("starting %d flock-controller replicas and the ServiceAddressPool %s", controllerReplicas, ServicePoolName)
	if err := apply(ctx, dc, v1alpha1.ServiceAddressPoolGVR, ServiceAddressPool()); err != nil {
		return nil, err
	}
	if err := l.startControllers(cp, ids); err != nil {
		return nil, err
	}
	for _, n := range nodes {
		node, err := createNode(ctx, cs, n)
		if err != nil {
			return nil, err
		}
		if opts.ExplicitNodeConfigs {
			if err := apply(ctx, dc, v1alpha1.NodeConfigGVR, ownedNodeConfig(n.Node, node)); err != nil {
				return nil, err
			}
		}
	}
	if !opts.ExplicitNodeConfigs {
		if err := l.adoptPools(ctx, dc); err != nil {
			return nil, err
		}
		nodes = l.Nodes
		if err := l.save(); err != nil {
			return nil, err
		}
	}

	l.logf("creating the network: router %s and %d nodes", l.Router, len(nodes))
	if _, err := topology.Create(topology.Config{Prefix: opts.Prefix, Nodes: opts.Nodes}); err != nil {
		return nil, err
	}
	// Routes to the pods come only from the nodes' BGP announcements.
	routerConf, err := renderRouterConf(nodes, opts.ExplicitNodeConfigs)
	if err != nil {
		return nil, err
	}
	router, err := birdDaemon("router-bird", l.Router, filepath.Join(opts.RunDir, "router"), routerConf)
	if err != nil {
		return nil, err
	}
	if _, err := l.startDaemon(router); err != nil {
		return nil, err
	}

	if err := l.startAPIProxy(ctx); err != nil {
		return nil, err
	}
	for _, n := range nodes {
		if err := l.startNode(ctx, cp, ids, n); err != nil {
			return nil, err
		}
	}
	l.logf("waiting for %d nodes to be Ready and their agents to answer", len(nodes))
	if err := l.waitReady(ctx, cs, 2*time.Minute); err != nil {
		return nil, err
	}
	l.logf("waiting for the router to learn every node's pools over BGP")
	if err := poll(ctx, 2*time.Minute, l.routerHasPools, "BGP routes at the router"); err != nil {
		return nil, err
	}
	l.logf("lab up in %s", time.Since(start).Round(time.Second))
	return l, nil
}

func (l *Lab) startAPIProxy(ctx context.Context) error {
	target := strings.TrimPrefix(l.Server, "https://")
	args := []string{l.flockLab(), "apiproxy", "--target", target}
	for _, n := range l.Nodes {
		args = append(args, "--netns", n.Netns)
	}
	if l.real() {
		args = append(args, "--egress-socket", l.egressSocket())
		for _, n := range l.Nodes {
			for _, host := range []string{n.Name, n.Addr6.Addr().String(), n.Addr4.Addr().String()} {
				args = append(args, "--egress-host", host+"="+n.Netns)
			}
		}
	}
	if _, err := l.startDaemon(daemon{Name: "apiproxy", Args: args}); err != nil {
		return err
	}
	return l.waitAPIProxy(ctx, 30*time.Second)
}

// startNode writes a node's kubeconfigs and CNI config and starts its agent
// and kubelet-lite inside its namespace.
func (l *Lab) startNode(ctx context.Context, cp *controlplane.ControlPlane, ids identities, n Node) error {
	for _, dir := range []string{n.Dir, filepath.Dir(n.CNIConfList)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	server := "https://" + apiproxy.Addr
	if err := controlplane.WriteKubeconfig(n.AgentKubeconfig, server, cp.CAFile, ids.agent.Token); err != nil {
		return err
	}
	if err := controlplane.WriteKubeconfig(n.KubeletKubeconfig, server, cp.CAFile, ids.kubelet.Token); err != nil {
		return err
	}
	if err := writeConfList(n.CNIConfList, n.AgentSocket, l.confListVersion()); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	agent := l.agentDaemon(n)
	bird, err := nodeBIRD(n)
	if err != nil {
		return err
	}
	if l.real() {
		for _, d := range []daemon{bird, agent} {
			if _, err := l.startDaemon(d); err != nil {
				return err
			}
		}
		return l.startRealNode(ctx, n)
	}
	kubelet := daemon{Name: n.Name + "-kubelet", Netns: n.Netns, Args: []string{
		l.flockLab(), "kubelet",
		"--node", n.Name,
		"--kubeconfig", n.KubeletKubeconfig,
		"--cni-bin-dir", l.BinDir,
		"--cni-conflist", n.CNIConfList,
		"--state-dir", filepath.Join(n.Dir, "kubelet"),
		"--netns-prefix", l.podNetnsPrefix(),
		"--bin-dir", l.BinDir,
		"--host-ip", n.Addr6.Addr().String(),
		"--host-ip", n.Addr4.Addr().String(),
	}}
	// Services: kube-proxy's part, with kubelet-lite's (admin) identity.
	proxy := daemon{Name: n.Name + "-proxy", Netns: n.Netns, Args: []string{
		l.flockLab(), "proxy", "--kubeconfig", n.KubeletKubeconfig,
	}}
	for _, d := range []daemon{bird, agent, kubelet, proxy} {
		if _, err := l.startDaemon(d); err != nil {
			return err
		}
	}
	return nil
}

// agentDaemon is a node's flock-agent, with the DaemonSet's capabilities
// only.
func (l *Lab) agentDaemon(n Node) daemon {
	birdConf, birdSock := birdPaths(n.Dir)
	return daemon{Name: n.Name + "-agent", Netns: n.Netns, Args: []string{
		filepath.Join(l.BinDir, "flock-agent"),
		"--kubeconfig", n.AgentKubeconfig,
		"--node-name", n.Name,
		"--socket", n.AgentSocket,
		"--state-dir", filepath.Join(n.Dir, "allocations"),
		"--bird-config", birdConf,
		"--bird-socket", birdSock,
		"--service-cidrs", controlplane.ServiceCIDR6 + "," + controlplane.ServiceCIDR4,
	}, Caps: AgentCapabilities}
}

// writeConfList writes the node's CNI network config: flock, then portmap
// (nftables) for hostPort.
func writeConfList(path, socket, version string) error {
	conf := map[string]any{
		"cniVersion": version,
		"name":       "flock",
		"plugins": []any{
			map[string]any{"type": "flock", "socket": socket},
			map[string]any{"type": "portmap", "backend": "nftables", "capabilities": map[string]any{"portMappings": true}},
		},
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// confListVersion is the CNI version of the node's conflist: containerd
// 1.6's libcni knows results up to 1.0.0, kubelet-lite's (the project's) 1.1.0.
func (l *Lab) confListVersion() string {
	if l.real() {
		return "1.0.0"
	}
	return "1.1.0"
}

func (l *Lab) flockLab() string { return filepath.Join(l.BinDir, "flock-lab") }
