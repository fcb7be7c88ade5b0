package apiproxy

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fritzlab/flock/internal/lab/nsnet"
	"github.com/fritzlab/flock/internal/testns"
)

// TestEgress: a CONNECT to a node's name or address reaches a server on that
// node namespace's loopback, one to another namespace's node reaches that
// one's, and an unknown host is refused.
func TestEgress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hosts := map[string]string{}
	for i := range 2 {
		ns := testns.New(t, "labt-egress")
		testns.Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
		l, err := nsnet.Listen(ctx, ns, "tcp", "127.0.0.1:10250")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "kubelet of %s\n", ns)
				c.Close()
			}
		}()
		hosts[fmt.Sprintf("node-%d", i+1)] = ns
		hosts[fmt.Sprintf("2001:db8:1ab:%d::2", i+1)] = ns
	}
	sock := filepath.Join(t.TempDir(), "egress.sock")
	go Egress(ctx, sock, hosts, nil)

	ask := func(host string) (string, string) {
		t.Helper()
		var c net.Conn
		var err error
		for c == nil && ctx.Err() == nil {
			if c, err = net.Dial("unix", sock); err != nil {
				time.Sleep(20 * time.Millisecond)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", host, host)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("CONNECT %s: %v", host, err)
		}
		if resp.StatusCode != http.StatusOK {
			return resp.Status, ""
		}
		line, _ := br.ReadString('\n')
		return resp.Status, strings.TrimSpace(line)
	}
	for host, ns := range map[string]string{"node-1:10250": hosts["node-1"], "[2001:db8:1ab:2::2]:10250": hosts["node-2"]} {
		if status, got := ask(host); got != "kubelet of "+ns {
			t.Errorf("CONNECT %s: %s %q, want the kubelet of %s", host, status, got, ns)
		}
	}
	if status, _ := ask("192.0.2.1:10250"); !strings.HasPrefix(status, "403") {
		t.Errorf("CONNECT to an unknown host: %s, want 403", status)
	}
}
