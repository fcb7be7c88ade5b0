package kubelet

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/fritzlab/flock/internal/testns"
)

// TestServe runs the server on loopback listeners of both families (the
// real Serve listens on [::], which a test must not do on the machine's
// own network) and checks TCP and UDP answers, then a clean stop.
func TestServe(t *testing.T) {
	var lns []net.Listener
	var pcs []net.PacketConn
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, l)
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		pcs = append(pcs, pc)
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- serve(ctx, lns, pcs, "ns1/pod-a") }()

	for _, l := range lns {
		for range 3 {
			c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte("hello\n")) // a client that talks first still reads the answer
			line, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err != nil || line != "ns1/pod-a\n" {
				t.Errorf("tcp %s: %q, %v", l.Addr(), line, err)
			}
		}
	}
	for _, pc := range pcs {
		c, err := net.Dial("udp", pc.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("x"))
		buf := make([]byte, 100)
		n, err := c.Read(buf)
		c.Close()
		if err != nil || string(buf[:n]) != "ns1/pod-a\n" {
			t.Errorf("udp %s: %q, %v", pc.LocalAddr(), buf[:n], err)
		}
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("serve returned %v after ctx ended", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not return after ctx ended")
	}
	if _, err := net.DialTimeout("tcp", lns[0].Addr().String(), time.Second); err == nil {
		t.Error("listener still open after serve returned")
	}
}

// TestServeUDPSource checks that a UDP answer comes from the address the
// datagram was sent to, on the dual-stack [::] socket the real Serve opens,
// in a namespace of its own with two addresses of each family on lo (as a
// pod has its anycast addresses there). The client is bound to one and
// sends to the other: the route back to the client picks the client's own
// address as the source, and the client, connected, takes only an answer
// from the address it sent to.
func TestServeUDPSource(t *testing.T) {
	n := testns.New(t, "klserve")
	testns.Run(t, "ip", "-n", n, "link", "set", "lo", "up")
	for _, a := range []string{"2001:db8:1::1/128", "2001:db8:ffff::1/128"} {
		// nodad: even on lo an address is tentative, and cannot be bound,
		// until the kernel's DAD work has run.
		testns.Run(t, "ip", "-n", n, "addr", "add", a, "dev", "lo", "nodad")
	}
	for _, a := range []string{"198.51.100.1/32", "192.0.2.1/32"} {
		testns.Run(t, "ip", "-n", n, "addr", "add", a, "dev", "lo")
	}
	h, err := ns.GetNS(testns.Path(n))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	// in runs f in the namespace: sockets made there stay there.
	in := func(f func() error) {
		t.Helper()
		if err := h.Do(func(ns.NetNS) error { return f() }); err != nil {
			t.Fatal(err)
		}
	}
	var pc net.PacketConn
	in(func() (err error) {
		pc, err = net.ListenPacket("udp", "[::]:0")
		return err
	})
	port := strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- serve(ctx, nil, []net.PacketConn{pc}, "ns1/pod-a") }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("serve: %v", err)
		}
	})

	for _, c := range []struct{ from, to string }{
		{"2001:db8:1::1", "2001:db8:ffff::1"},
		{"2001:db8:ffff::1", "2001:db8:1::1"},
		{"198.51.100.1", "192.0.2.1"}, // IPv4-mapped on the server's socket
		{"192.0.2.1", "198.51.100.1"},
	} {
		t.Run(c.from+" to "+c.to, func(t *testing.T) {
			var conn net.Conn
			in(func() (err error) {
				d := net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(c.from)}}
				conn, err = d.Dial("udp", net.JoinHostPort(c.to, port))
				return err
			})
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(3 * time.Second))
			if _, err := conn.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 100)
			n, err := conn.Read(buf)
			if err != nil || string(buf[:n]) != "ns1/pod-a\n" {
				t.Errorf("answer: %q, %v; want ns1/pod-a from %s", buf[:n], err, c.to)
			}
		})
	}
}

func TestServeNoPorts(t *testing.T) {
	if err := Serve(t.Context(), nil, nil, "x"); err == nil {
		t.Error("Serve without ports did not fail")
	}
}
