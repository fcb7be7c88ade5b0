package kubelet

import (
	"fmt"
	"net"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// answerDatagrams answers every datagram on pc with reply, sent from the
// address the datagram was sent to, until a read fails.
//
// Left to itself the kernel would pick the source from the route back to
// the sender: a pod with anycast addresses on its lo would answer a
// datagram sent to one of them from its unicast address, which a connected
// UDP client drops. So each datagram's destination is read from its packet
// info (IPV6_RECVPKTINFO, which on the dual-stack [::] socket also gives
// IPv4 datagrams', IPv4-mapped; IP_PKTINFO on an IPv4 socket) and set as
// the reply's source. Only the source: the reply is routed as before.
func answerDatagrams(pc net.PacketConn, reply []byte) error {
	c6, c4 := ipv6.NewPacketConn(pc), ipv4.NewPacketConn(pc)
	var read func(b []byte) (dst net.IP, from net.Addr, err error)
	// IPV6_RECVPKTINFO fails on an IPv4 socket: that is how one is told.
	if err6 := c6.SetControlMessage(ipv6.FlagDst, true); err6 == nil {
		read = func(b []byte) (net.IP, net.Addr, error) {
			_, cm, from, err := c6.ReadFrom(b)
			if cm == nil {
				return nil, from, err
			}
			return cm.Dst, from, err
		}
	} else if err4 := c4.SetControlMessage(ipv4.FlagDst, true); err4 == nil {
		read = func(b []byte) (net.IP, net.Addr, error) {
			_, cm, from, err := c4.ReadFrom(b)
			if cm == nil {
				return nil, from, err
			}
			return cm.Dst, from, err
		}
	} else {
		return fmt.Errorf("packet info: %w", err4)
	}
	buf := make([]byte, 64<<10)
	for {
		dst, from, err := read(buf)
		if err != nil {
			return err
		}
		switch {
		case dst == nil:
			_, err = pc.WriteTo(reply, from)
		case dst.To4() != nil:
			// IP_PKTINFO also on the IPv6 socket: x/net/ipv6 leaves an
			// IPv4-mapped source out, and the kernel takes IPv4 packet
			// info for an IPv4 datagram from either socket.
			_, err = c4.WriteTo(reply, &ipv4.ControlMessage{Src: dst}, from)
		default:
			_, err = c6.WriteTo(reply, &ipv6.ControlMessage{Src: dst}, from)
		}
		if err != nil && dst != nil {
			// A source the kernel refuses (a multicast or broadcast
			// destination): answer as before rather than not at all.
			_, _ = pc.WriteTo(reply, from)
		}
	}
}
