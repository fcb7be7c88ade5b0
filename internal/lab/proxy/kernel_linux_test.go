package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"

	"github.com/fritzlab/flock/pkg/policy"
)

// TestKernelDNAT loads a rendered table into a namespace of its own and
// connects to ClusterIPs on both families: the output hook sends each
// connection to the endpoint, which answers.
func TestKernelDNAT(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	name := fmt.Sprintf("flk-proxy%d", os.Getpid())
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	// Endpoints on lo; ClusterIPs routed out of a dummy link, as a node
	// routes them to its uplink before DNAT changes the destination.
	run("ip", "-n", name, "link", "set", "lo", "up")
	run("ip", "-n", name, "addr", "add", "10.99.0.1/32", "dev", "lo")
	run("ip", "-n", name, "addr", "add", "2001:db8:99::1/128", "dev", "lo", "nodad")
	run("ip", "-n", name, "link", "add", "up0", "type", "veth", "peer", "name", "up1")
	run("ip", "-n", name, "link", "set", "up0", "up")
	run("ip", "-n", name, "link", "set", "up1", "up")
	run("ip", "-n", name, "route", "add", "default", "dev", "up0")
	run("ip", "-n", name, "-6", "route", "add", "default", "dev", "up0")

	netns, err := ns.GetNS("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer netns.Close()
	var ln net.Listener
	if err := netns.Do(func(ns.NetNS) error {
		var err error
		ln, err = net.Listen("tcp", "[::]:8080")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "endpoint\n")
			c.Close()
		}
	}()

	ep := func(a string) []Endpoint { return []Endpoint{{"x/a", netip.MustParseAddr(a), 8080}} }
	fronts := []Frontend{
		{"x/web", netip.MustParseAddr("198.19.255.10"), corev1.ProtocolTCP, 80, ep("10.99.0.1")},
		{"x/web", netip.MustParseAddr("2001:db8:5e5::10"), corev1.ProtocolTCP, 80, ep("2001:db8:99::1")},
	}
	if _, err := (policy.NFT{Netns: "/run/netns/" + name}).Run(context.Background(), Render(fronts), "-f", "-"); err != nil {
		t.Fatal(err)
	}
	for _, vip := range []string{"198.19.255.10:80", "[2001:db8:5e5::10]:80"} {
		err := netns.Do(func(ns.NetNS) error {
			c, err := net.DialTimeout("tcp", vip, 2*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			b, err := io.ReadAll(c)
			if err != nil {
				return err
			}
			if string(b) != "endpoint\n" {
				return fmt.Errorf("answer %q", b)
			}
			return nil
		})
		if err != nil {
			t.Errorf("connect to %s: %v", vip, err)
		}
	}
}
