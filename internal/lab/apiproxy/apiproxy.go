// Package apiproxy lets processes in the lab's node namespaces reach the API
// server, which listens on 127.0.0.1 in the root namespace: it listens on
// each node namespace's own loopback and forwards every connection, as
// bytes (TLS passes through), to the API server.
package apiproxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/fritzlab/flock/internal/lab/nsnet"
)

// Addr is where the forwarder listens inside every node namespace; node
// kubeconfigs point at https://Addr (the serving certificate covers
// 127.0.0.1).
const Addr = "127.0.0.1:6443"

// Run listens on Addr in each namespace and forwards to target (host:port,
// dialled from the caller's namespace) until ctx ends. It fails at once if
// any listener cannot be opened.
func Run(ctx context.Context, target string, namespaces []string, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	var lns []net.Listener
	for _, ns := range namespaces {
		l, err := nsnet.Listen(ctx, ns, "tcp", Addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return err
		}
		lns = append(lns, l)
	}
	var wg sync.WaitGroup
	for i, l := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			serve(ctx, l, target, log.With("netns", namespaces[i]))
		}()
	}
	log.Info("forwarding the API server", "target", target, "listen", Addr, "namespaces", len(namespaces))
	<-ctx.Done()
	for _, l := range lns {
		l.Close()
	}
	wg.Wait()
	return nil
}

func serve(ctx context.Context, l net.Listener, target string, log *slog.Logger) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				log.Error("accept", "err", err)
			}
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			forward(ctx, conn, target, log)
		}()
	}
}

// forward copies both ways until either side closes, passing a half-close
// on so that neither end waits forever.
func forward(ctx context.Context, client net.Conn, target string, log *slog.Logger) {
	defer client.Close()
	d := net.Dialer{Timeout: 10 * time.Second}
	upstream, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		log.Warn("dial API server", "target", target, "err", err)
		return
	}
	defer upstream.Close()
	stop := context.AfterFunc(ctx, func() {
		client.Close()
		upstream.Close()
	})
	defer stop()
	done := make(chan struct{})
	go func() {
		copyHalf(upstream, client)
		close(done)
	}()
	copyHalf(client, upstream)
	<-done
}

func copyHalf(dst, src net.Conn) {
	io.Copy(dst, src)
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	} else {
		dst.Close()
	}
}
