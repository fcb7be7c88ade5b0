package kubelet

import (
	"bufio"
	"context"
	"net"
	"testing"
	"time"
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

func TestServeNoPorts(t *testing.T) {
	if err := Serve(t.Context(), nil, nil, "x"); err == nil {
		t.Error("Serve without ports did not fail")
	}
}
