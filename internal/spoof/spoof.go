// Package spoof sends packets with a forged source address and captures
// what reaches a target, for the anti-spoofing tests (pkg/policy's kernel
// test and the lab's `flock-lab spoof`). A forged source is bound with
// IP_TRANSPARENT / IPV6_TRANSPARENT (CAP_NET_ADMIN), so the kernel's own
// TCP and UDP stacks build real SYNs and datagrams, checksums included;
// the packet leaves by the sender's ordinary routes.
package spoof

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Send sends one TCP SYN (proto "tcp": a connect that is never answered,
// given up after a short wait) or one UDP datagram (proto "udp") from src
// to dst, in the caller's network namespace. src need not be an address of
// the namespace.
func Send(ctx context.Context, proto string, src netip.Addr, dst netip.AddrPort) error {
	if src.Is4() != dst.Addr().Is4() {
		return fmt.Errorf("spoof: source %s and destination %s are of different families", src, dst)
	}
	d := net.Dialer{Timeout: 300 * time.Millisecond, Control: transparent}
	switch proto {
	case "tcp":
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	case "udp":
		d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	default:
		return fmt.Errorf("spoof: protocol %q: want tcp or udp", proto)
	}
	c, err := d.DialContext(ctx, proto, dst.String())
	if proto == "tcp" {
		// The SYN is out when connect starts; an answer (a reset or a
		// SYN-ACK reaching the forged source) is not expected.
		if err == nil {
			c.Close()
		}
		var errno syscall.Errno
		if err != nil && errors.As(err, &errno) && errno == syscall.EPERM {
			return fmt.Errorf("spoof: tcp from %s to %s: %w", src, dst, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("spoof: udp from %s to %s: %w", src, dst, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("flock spoof probe\n")); err != nil {
		return fmt.Errorf("spoof: udp from %s to %s: %w", src, dst, err)
	}
	return nil
}

func transparent(network, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		if strings.HasSuffix(network, "6") {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1)
		}
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("set IP_TRANSPARENT (needs CAP_NET_ADMIN): %w", serr)
	}
	return nil
}

// Capture runs tcpdump in the named network namespace with a pcap filter
// (every interface, incoming packets only: the target's own replies never
// count) until stop is called, and returns one line per captured packet.
// It returns once tcpdump listens.
func Capture(netns, filter string) (stop func() ([]string, error), err error) {
	cmd := exec.Command("ip", "netns", "exec", netns, "tcpdump", "-i", "any", "-Q", "in", "-nn", "-l", "-p", filter)
	var out strings.Builder
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("tcpdump in %s: %w", netns, err)
	}
	listening := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		var seen strings.Builder
		for {
			n, rerr := stderr.Read(buf)
			seen.Write(buf[:n])
			if strings.Contains(seen.String(), "listening on") {
				listening <- nil
				// Keep draining so tcpdump never blocks on stderr.
				for {
					if _, err := stderr.Read(buf); err != nil {
						return
					}
				}
			}
			if rerr != nil {
				listening <- fmt.Errorf("tcpdump in %s exited: %s", netns, strings.TrimSpace(seen.String()))
				return
			}
		}
	}()
	select {
	case err := <-listening:
		if err != nil {
			cmd.Wait()
			return nil, err
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("tcpdump in %s did not start listening within 10s", netns)
	}
	return func() ([]string, error) {
		// Packets sent just before stop need a moment to be printed.
		time.Sleep(300 * time.Millisecond)
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
		var lines []string
		for l := range strings.Lines(out.String()) {
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, l)
			}
		}
		return lines, nil
	}, nil
}
