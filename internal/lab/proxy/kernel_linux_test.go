package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"

	"github.com/fritzlab/flock/internal/testns"
	"github.com/fritzlab/flock/pkg/policy"
)

// TestKernelDNAT loads a rendered table into a namespace of its own and
// connects to ClusterIPs on both families: the output hook sends each
// connection to the endpoint, which answers.
func TestKernelDNAT(t *testing.T) {
	name := testns.New(t, "proxy")
	in := func(args ...string) { t.Helper(); testns.Run(t, append([]string{"ip", "-n", name}, args...)...) }
	// Endpoints on lo; ClusterIPs routed out of a dummy link, as a node
	// routes them to its uplink before DNAT changes the destination.
	in("link", "set", "lo", "up")
	in("addr", "add", "10.99.0.1/32", "dev", "lo")
	in("addr", "add", "2001:db8:99::1/128", "dev", "lo", "nodad")
	in("link", "add", "up0", "type", "veth", "peer", "name", "up1")
	in("link", "set", "up0", "up")
	in("link", "set", "up1", "up")
	in("route", "add", "default", "dev", "up0")
	in("-6", "route", "add", "default", "dev", "up0")

	netns, err := ns.GetNS(testns.Path(name))
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
	if _, err := (policy.NFT{Netns: testns.Path(name)}).Run(context.Background(), Render(fronts), "-f", "-"); err != nil {
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
