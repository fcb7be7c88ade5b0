package lab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/fritzlab/flock/internal/lab/controlplane"
	"github.com/fritzlab/flock/internal/lab/topology"
	"github.com/fritzlab/flock/pkg/bird"
)

// RouterASN is the upstream router's AS; node i is in AS NodeASN(i).
const RouterASN = 65000

// NodeASN is node i's private AS number.
func NodeASN(i int) int { return 65100 + i }

// The router is the network's edge, as on the real network flock came
// from: one eBGP session per node and family, graceful restart so a node's
// BIRD restarting does not withdraw its pods' routes, every learned route
// into the kernel (ECMP when several nodes announce one anycast address),
// nothing announced back: nodes reach everything through their default
// route to the router.
var routerConf = template.Must(template.New("router").Parse(`# Written by flock-lab: the lab's upstream router.
log stderr all;
router id 198.19.0.1;

protocol device {
}

protocol kernel kernel6 {
	ipv6 { import none; export all; };
	merge paths on;
}

protocol kernel kernel4 {
	ipv4 { import none; export all; };
	merge paths on;
}

# BFD towards every node: a node whose NodeConfig turns BFD on gets a dead
# link noticed within 300 ms x 3; one without BFD keeps a plain session.
protocol bfd {
	interface "*" {
		interval 300 ms;
		multiplier 3;
	};
}
{{range .Peers}}
protocol bgp {{.Name}}_v6 {
	local {{.RouterAddr6.Addr}} as {{$.ASN}};
	neighbor {{.Addr6.Addr}} as {{.ASN}};
	direct;
	graceful restart on;
	bfd on;
	connect retry time 2;
	error wait time 1, 10;
	ipv6 { import all; export none; };
}

protocol bgp {{.Name}}_v4 {
	local {{.RouterAddr4.Addr}} as {{$.ASN}};
	neighbor {{.Addr4.Addr}} as {{.ASN}};
	direct;
	graceful restart on;
	bfd on;
	connect retry time 2;
	error wait time 1, 10;
	ipv4 { import all; export none; };
}
{{end}}`))

type routerPeer struct {
	topology.Node
	Name string
	ASN  int
}

// renderRouterConf is the router's BIRD config for the lab's nodes: each
// in an AS of its own with explicit NodeConfigs, all in PoolASN with the
// NodePool.
func renderRouterConf(nodes []Node, explicit bool) ([]byte, error) {
	tn := make([]topology.Node, len(nodes))
	for i, n := range nodes {
		tn[i] = n.Node
	}
	asn := func(int) int { return PoolASN }
	if explicit {
		asn = NodeASN
	}
	return routerConfFor(tn, asn)
}

// RouterConf is the lab router's BIRD config for nodes of a topology, each
// in an AS of its own (hack/scalebench's many BIRD-only nodes).
func RouterConf(nodes []topology.Node) ([]byte, error) { return routerConfFor(nodes, NodeASN) }

// routerConfFor renders the router's config with node i in AS asn(i).
func routerConfFor(nodes []topology.Node, asn func(int) int) ([]byte, error) {
	peers := make([]routerPeer, len(nodes))
	for i, n := range nodes {
		peers[i] = routerPeer{Node: n, Name: fmt.Sprintf("node%d", n.Index), ASN: asn(n.Index)}
	}
	var b bytes.Buffer
	err := routerConf.Execute(&b, struct {
		ASN   int
		Peers []routerPeer
	}{RouterASN, peers})
	return b.Bytes(), err
}

// birdPaths are where a BIRD instance keeps its config and control socket.
func birdPaths(dir string) (conf, sock string) {
	return filepath.Join(dir, "bird", "bird.conf"), filepath.Join(dir, "bird", "bird.ctl")
}

// birdDaemon is a BIRD in a namespace, the sidecar's role on a node. It
// starts with -R (graceful restart: after a crash its peers keep its routes
// until it has re-announced them) on the config already at conf.
func birdDaemon(name, netns, dir string, conf []byte) (daemon, error) {
	confPath, sock := birdPaths(dir)
	if err := bird.PrepareDir(confPath); err != nil {
		return daemon{}, fmt.Errorf("%s: %w", name, err)
	}
	if _, err := os.Stat(confPath); err != nil || conf != nil {
		if conf == nil {
			conf = bird.RenderBootstrap()
		}
		if err := os.WriteFile(confPath, conf, bird.ConfigMode); err != nil {
			return daemon{}, fmt.Errorf("%s: %w", name, err)
		}
	}
	return daemon{Name: name, Netns: netns, Args: []string{"bird", "-f", "-R", "-c", confPath, "-s", sock}}, nil
}

// RouterBIRDSocket is the control socket of the router's BIRD.
func (l *Lab) RouterBIRDSocket() string {
	_, sock := birdPaths(filepath.Join(l.RunDir, "router"))
	return sock
}

// NodeBIRDSocket is the control socket of a node's BIRD.
func (l *Lab) NodeBIRDSocket(node string) (string, error) {
	n, ok := l.Node(node)
	if !ok {
		return "", fmt.Errorf("no node %s in the lab", node)
	}
	_, sock := birdPaths(n.Dir)
	return sock, nil
}

// KillBIRD kills a node's BIRD with SIGKILL, as a crash would.
func (l *Lab) KillBIRD(node string) error {
	pid, ok := l.daemonPid(node + "-bird")
	if !ok {
		return fmt.Errorf("bird of %s is not running", node)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill bird of %s: %w", node, err)
	}
	for controlplane.PidAlive(pid, "") {
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// StartBIRD starts a node's BIRD again on the config the agent last wrote,
// with -R so its peers keep its routes until it has re-announced them.
func (l *Lab) StartBIRD(node string) error {
	n, ok := l.Node(node)
	if !ok {
		return fmt.Errorf("no node %s in the lab", node)
	}
	d, err := nodeBIRD(n)
	if err != nil {
		return err
	}
	_, err = l.startDaemon(d)
	return err
}

// nodeBIRD is a node's BIRD, with the sidecar's capabilities only.
func nodeBIRD(n Node) (daemon, error) {
	d, err := birdDaemon(n.Name+"-bird", n.Netns, n.Dir, nil)
	d.Caps = BIRDCapabilities
	return d, err
}

// BIRDPid is the pid of a node's BIRD, 0 when it is not running.
func (l *Lab) BIRDPid(node string) int {
	pid, _ := l.daemonPid(node + "-bird")
	return pid
}

// RestartAgent stops a node's agent with SIGTERM, as a DaemonSet rollout
// does, waits until it is gone and starts it again; BIRD and the kernel
// state stay.
func (l *Lab) RestartAgent(node string) error {
	n, ok := l.Node(node)
	if !ok {
		return fmt.Errorf("no node %s in the lab", node)
	}
	if pid, ok := l.daemonPid(node + "-agent"); ok {
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			return fmt.Errorf("stop agent of %s: %w", node, err)
		}
		for controlplane.PidAlive(pid, "") {
			time.Sleep(10 * time.Millisecond)
		}
	}
	_, err := l.startDaemon(l.agentDaemon(n))
	return err
}

// AgentPid is the pid of a node's agent, 0 when it is not running.
func (l *Lab) AgentPid(node string) int {
	pid, _ := l.daemonPid(node + "-agent")
	return pid
}

// AgentLog is a node's agent log.
func (l *Lab) AgentLog(node string) string { return filepath.Join(l.logDir(), node+"-agent.log") }

// routerHasPools says whether the router's kernel has every node's pools,
// learned over BGP.
func (l *Lab) routerHasPools() error {
	var have strings.Builder
	for _, fam := range []string{"-6", "-4"} {
		out, err := NetnsCommand(context.Background(), l.Router, "ip", fam, "route", "show", "proto", "bird").Output()
		if err != nil {
			return fmt.Errorf("router routes: %w", err)
		}
		have.Write(out)
	}
	for _, n := range l.Nodes {
		for _, p := range []string{n.Pool6.String(), n.Pool4.String()} {
			if !strings.Contains(have.String(), p+" ") {
				return fmt.Errorf("router has no BGP route to %s (%s)", p, n.Name)
			}
		}
	}
	return nil
}
