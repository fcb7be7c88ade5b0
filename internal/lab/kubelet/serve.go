package kubelet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// Serve answers every TCP connection and every UDP datagram on the given
// ports with identity and a newline, until ctx ends; a UDP answer comes
// from the address the datagram was sent to (an anycast address too). It
// listens on [::], dual-stack, so the pod is reachable on IPv6 and IPv4
// alike. The lab's pods run it as `flock-lab serve`, with identity their
// namespace/name (kubelet-lite sets POD_NAMESPACE and POD_NAME for every
// container).
func Serve(ctx context.Context, tcpPorts, udpPorts []int, identity string) error {
	if len(tcpPorts)+len(udpPorts) == 0 {
		return errors.New("serve: no port to listen on")
	}
	var lc net.ListenConfig
	var lns []net.Listener
	var pcs []net.PacketConn
	closeAll := func() {
		for _, l := range lns {
			l.Close()
		}
		for _, p := range pcs {
			p.Close()
		}
	}
	for _, p := range tcpPorts {
		l, err := lc.Listen(ctx, "tcp", net.JoinHostPort("::", strconv.Itoa(p)))
		if err != nil {
			closeAll()
			return fmt.Errorf("serve: listen on tcp port %d: %w", p, err)
		}
		lns = append(lns, l)
	}
	for _, p := range udpPorts {
		pc, err := lc.ListenPacket(ctx, "udp", net.JoinHostPort("::", strconv.Itoa(p)))
		if err != nil {
			closeAll()
			return fmt.Errorf("serve: listen on udp port %d: %w", p, err)
		}
		pcs = append(pcs, pc)
	}
	return serve(ctx, lns, pcs, identity)
}

// serve answers on listeners already open; it closes them when ctx ends
// or one fails, and returns the first failure.
func serve(ctx context.Context, lns []net.Listener, pcs []net.PacketConn, identity string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	reply := []byte(identity + "\n")
	var wg sync.WaitGroup
	for _, l := range lns {
		wg.Go(func() {
			for {
				c, err := l.Accept()
				if err != nil {
					cancel(fmt.Errorf("serve: accept on %s: %w", l.Addr(), err))
					return
				}
				go answer(c, reply)
			}
		})
	}
	for _, pc := range pcs {
		wg.Go(func() {
			err := answerDatagrams(pc, reply)
			cancel(fmt.Errorf("serve: udp on %s: %w", pc.LocalAddr(), err))
		})
	}
	<-ctx.Done()
	for _, l := range lns {
		l.Close()
	}
	for _, pc := range pcs {
		pc.Close()
	}
	wg.Wait()
	// The cause is ctx's own when it ended first, or the first listener's
	// failure.
	if err := context.Cause(ctx); !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// answer writes the reply, half-closes, and reads until the client closes
// (briefly), so a client that also sent something is not reset before it
// read the reply.
func answer(c net.Conn, reply []byte) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(reply); err != nil {
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.Copy(io.Discard, c)
}
