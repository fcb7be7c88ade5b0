package apiproxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/fritzlab/flock/internal/lab/nsnet"
)

func TestForwardFromNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	// An echo server in the caller's namespace stands in for the API server.
	upstream, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer upstream.Close()
	go func() {
		for {
			c, err := upstream.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()

	var namespaces []string
	for i := range 2 {
		name := fmt.Sprintf("flk-labt-%d-proxy%d", os.Getpid(), i)
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add: %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "delete", name).Run() })
		if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
			t.Fatalf("lo up: %v: %s", err, out)
		}
		namespaces = append(namespaces, name)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Run(runCtx, upstream.Addr().String(), namespaces, nil) }()

	for _, ns := range namespaces {
		var conn net.Conn
		for {
			conn, err = nsnet.Dial(ctx, ns, "tcp", Addr)
			if err == nil || ctx.Err() != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("dial %s in %s: %v", Addr, ns, err)
		}
		fmt.Fprintf(conn, "hello from %s\n", ns)
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil || line != "hello from "+ns+"\n" {
			t.Errorf("echo through %s = %q, %v", ns, line, err)
		}
		conn.Close()
	}
	// When Run returns, its listeners are closed.
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c, err := nsnet.Dial(ctx, namespaces[0], "tcp", Addr); err == nil {
		c.Close()
		t.Error("still listening after Run returned")
	}
}
