// Command demo shows flock working on this machine: it starts a simulated
// node (a network namespace running the real flock-agent), adds two pods
// through the real flock CNI plugin via libcni, as a container runtime would,
// shows their addresses and routes, pings between them over IPv6 and IPv4,
// and removes everything again. Run it as root: `make demo`.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/fritzlab/flock/internal/cnitest"
	"github.com/fritzlab/flock/internal/testns"
)

const nodeConfig = `apiVersion: flock.fritzlab.net/v1alpha1
kind: NodeConfig
metadata:
  name: demo-node
spec:
  cidr6: 2001:db8:42:1::/64
  cidr4: 198.51.100.0/24
`

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func step(format string, a ...any) { fmt.Printf("\n==> "+format+"\n", a...) }

func run() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: the demo creates network namespaces")
	}
	testns.RemoveLeftovers()
	dir, err := os.MkdirTemp("", "flock-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	step("building flock, flock-agent and the reference plugins")
	if err := cnitest.BuildBinaries(dir + "/bin"); err != nil {
		return err
	}
	node, err := cnitest.NewNode(dir+"/bin", dir, nodeConfig)
	if err != nil {
		return err
	}
	defer node.Close()
	step("starting flock-agent in node namespace %s with this NodeConfig:\n%s", node.NS.Name, nodeConfig)
	if err := node.StartAgent(); err != nil {
		return err
	}
	if err := node.WritePod("default", "web", "", map[string]string{"flock.fritzlab.net/ip-algo": "ipv4"}); err != nil {
		return err
	}
	list, err := node.FlockConflist("1.1.0")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	type pod struct {
		name string
		ns   *cnitest.Netns
		res  *current.Result
	}
	var pods []*pod
	for _, name := range []string{"web", "client"} {
		ns, err := cnitest.NewNetns("pod")
		if err != nil {
			return err
		}
		defer ns.Close()
		rt := cnitest.Runtime(strings.ReplaceAll(ns.Name, "-", ""), ns.Path, "default", name)
		start := time.Now()
		r, err := node.Add(ctx, list, rt)
		if err != nil {
			return fmt.Errorf("CNI ADD %s: %w", name, err)
		}
		res, err := current.NewResultFromResult(r)
		if err != nil {
			return err
		}
		step("CNI ADD default/%s took %v; addresses %v", name, time.Since(start).Round(time.Microsecond), res.IPs)
		out, _ := ns.Run("ip", "-br", "addr", "show", "eth0")
		fmt.Print("   pod eth0: ", out)
		out, _ = ns.Run("sh", "-c", "ip -6 route; ip -4 route")
		fmt.Print(indent(out))
		pods = append(pods, &pod{name, ns, res})
		defer func() {
			if err := node.Del(context.Background(), list, rt); err != nil {
				fmt.Fprintln(os.Stderr, "CNI DEL:", err)
			}
		}()
	}
	step("the node's routes (flock's protocol 83): pod host routes and pool blackholes")
	out, _ := node.NS.Run("sh", "-c", "ip -6 route show proto 83; ip -4 route show proto 83")
	fmt.Print(indent(out))
	for _, ip := range pods[0].res.IPs {
		step("ping from default/client to default/web at %s", ip.Address.IP)
		out, err := pods[1].ns.Run("ping", "-c2", "-W2", ip.Address.IP.String())
		fmt.Print(indent(out))
		if err != nil {
			return err
		}
	}
	step("done: the pods are deleted through CNI DEL and the namespaces removed")
	return nil
}

func indent(s string) string {
	return "   " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n   ") + "\n"
}
