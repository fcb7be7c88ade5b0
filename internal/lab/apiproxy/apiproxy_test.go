package apiproxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/fritzlab/flock/internal/lab/nsnet"
	"github.com/fritzlab/flock/internal/testns"
)

func TestForwardFromNamespaces(t *testing.T) {
	var namespaces []string
	for range 2 {
		name := testns.New(t, "labt-proxy")
		testns.Run(t, "ip", "-n", name, "link", "set", "lo", "up")
		namespaces = append(namespaces, name)
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
