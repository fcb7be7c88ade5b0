// Package e2e drives the real flock binaries the way a container runtime
// does: libcni executes /opt/cni/bin-style plugins inside a simulated node's
// network namespace, where a real flock-agent owns the kernel state. These
// tests need root; CI runs them as root.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/fritzlab/flock/internal/cnitest"
	"github.com/fritzlab/flock/internal/testns"
)

var binDir string

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		testns.RemoveLeftovers()
		dir, err := os.MkdirTemp("", "flock-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := cnitest.BuildBinaries(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		binDir = dir
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

const nodeConfig = `apiVersion: flock.fritzlab.net/v1alpha1
kind: NodeConfig
metadata:
  name: e2e-node
spec:
  cidr6: 2001:db8:f10c:1::/64
  cidr4: 198.51.100.0/24
  anycast:
    allowedCIDRs: [2001:db8:ffff::/48]
`

var (
	pool6 = netip.MustParsePrefix("2001:db8:f10c:1::/64")
	pool4 = netip.MustParsePrefix("198.51.100.0/24")
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces (CI runs as root)")
	}
}

// newNode makes a node whose agent is not started yet; its namespace,
// agent and files are removed when the test ends, and the agent's log shown
// if the test failed.
func newNode(t *testing.T) *cnitest.Node {
	t.Helper()
	requireRoot(t)
	n, err := cnitest.NewNode(binDir, t.TempDir(), nodeConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", n.AgentLog())
		}
		n.Close()
	})
	return n
}

// startNode starts a node with a running agent.
func startNode(t *testing.T) *cnitest.Node {
	t.Helper()
	n := newNode(t)
	if err := n.StartAgent(); err != nil {
		t.Fatal(err)
	}
	return n
}

type pod struct {
	ns  *cnitest.Netns
	rt  *libcni.RuntimeConf
	res *current.Result
}

func newPod(t *testing.T, namespace, name string) *pod {
	t.Helper()
	p, err := cnitest.NewNetns("pod")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	id := strings.ReplaceAll(p.Name, "-", "")
	return &pod{ns: p, rt: cnitest.Runtime(id, p.Path, namespace, name)}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func conflist(t *testing.T, n *cnitest.Node, chained ...map[string]any) *libcni.NetworkConfigList {
	t.Helper()
	l, err := n.FlockConflist("1.1.0", chained...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func add(t *testing.T, n *cnitest.Node, l *libcni.NetworkConfigList, p *pod) {
	t.Helper()
	r, err := n.Add(ctx(t), l, p.rt)
	if err != nil {
		t.Fatalf("ADD %s: %v", p.rt.ContainerID, err)
	}
	if p.res, err = current.NewResultFromResult(r); err != nil {
		t.Fatal(err)
	}
}

// addrs returns the pod's IPv6 and IPv4 address from its ADD result.
func (p *pod) addrs() (v6, v4 netip.Addr) {
	for _, ip := range p.res.IPs {
		a, _ := netip.AddrFromSlice(ip.Address.IP)
		if a = a.Unmap(); a.Is4() {
			v4 = a
		} else {
			v6 = a
		}
	}
	return v6, v4
}

func ping(t *testing.T, from *cnitest.Netns, to netip.Addr) {
	t.Helper()
	if _, err := from.Run("ping", "-c1", "-W3", to.String()); err != nil {
		t.Errorf("ping %s from %s: %v", to, from.Name, err)
	}
}

// cniCode returns the CNI error code of err, or -1.
func cniCode(err error) int {
	var e *types.Error
	if errors.As(err, &e) {
		return int(e.Code)
	}
	return -1
}

// assertClean checks the node holds no pod state: no veth, no flock route
// but the pools' blackholes, no allocation on disk.
func assertClean(t *testing.T, n *cnitest.Node) {
	t.Helper()
	if out, _ := n.NS.Run("ip", "-o", "link", "show", "type", "veth"); strings.TrimSpace(out) != "" {
		t.Errorf("veths left on the node:\n%s", out)
	}
	for _, fam := range []string{"-4", "-6"} {
		out, _ := n.NS.Run("ip", fam, "route", "show", "proto", "83")
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if l != "" && !strings.HasPrefix(l, "blackhole ") {
				t.Errorf("route left on the node: %s", l)
			}
		}
	}
	if m, _ := filepath.Glob(filepath.Join(n.Dir, "allocations", "*.json")); len(m) > 0 {
		t.Errorf("allocations left on disk: %v", m)
	}
}

func toCurrent(r types.Result) (*current.Result, error) { return current.NewResultFromResult(r) }
