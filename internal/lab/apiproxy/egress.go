package apiproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/fritzlab/flock/internal/lab/nsnet"
)

// EgressConfig is the API server's --egress-selector-config-file for the
// real runtime: connections to the cluster (kubelets, for exec, logs and
// port-forward) go through an HTTP CONNECT proxy on socket, which Egress
// serves.
func EgressConfig(socket string) string {
	return fmt.Sprintf(`apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: %q
`, socket)
}

// Egress serves HTTP CONNECT on a unix socket until ctx ends. The API
// server, in the root namespace, cannot route into the node namespaces;
// each CONNECT names a node (its name or an address of it, a key of hosts)
// and is dialled from inside that node's namespace, to the port asked on
// its loopback (kubelet listens on every address). Unknown hosts are
// refused.
func Egress(ctx context.Context, socket string, hosts map[string]string, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	os.Remove(socket)
	l, err := net.Listen("unix", socket)
	if err != nil {
		return fmt.Errorf("egress proxy: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("egress proxy: %w", err)
		}
		wg.Go(func() { connect(ctx, conn, hosts, log) })
	}
}

func connect(ctx context.Context, conn net.Conn, hosts map[string]string, log *slog.Logger) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	host, port, err := net.SplitHostPort(req.Host)
	netns, ok := hosts[strings.Trim(host, "[]")]
	if req.Method != http.MethodConnect || err != nil || !ok {
		fmt.Fprintf(conn, "HTTP/1.1 403 Forbidden\r\n\r\nno lab node %q\n", req.Host)
		return
	}
	upstream, err := nsnet.Dial(ctx, netns, "tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		log.Warn("egress: dial", "host", req.Host, "netns", netns, "err", err)
		fmt.Fprintf(conn, "HTTP/1.1 502 Bad Gateway\r\n\r\n%v\n", err)
		return
	}
	defer upstream.Close()
	if _, err := conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		return
	}
	stop := context.AfterFunc(ctx, func() {
		conn.Close()
		upstream.Close()
	})
	defer stop()
	done := make(chan struct{})
	go func() {
		br.WriteTo(upstream) // what the client sent after CONNECT, then the rest
		if tc, ok := upstream.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		close(done)
	}()
	copyHalf(conn, upstream)
	<-done
}
