// Package rtnl is how flock talks rtnetlink (links, addresses, routes) in
// a network namespace other than its own: through a handle bound to the
// namespace, never by switching a thread into it, and with dumps retried
// when the kernel interrupts them.
package rtnl

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// OpenAt opens the network namespace at path (/run/netns/x) and an
// rtnetlink handle bound to it, which the caller's threads need not be in.
// The caller closes both; the handle keeps working once the namespace
// handle is closed.
func OpenAt(path string) (netns.NsHandle, *netlink.Handle, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return ns, nil, fmt.Errorf("open netns %s: %w", path, err)
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		ns.Close()
		return ns, nil, fmt.Errorf("open netlink socket in %s: %w", path, err)
	}
	return ns, h, nil
}

// dumpAttempts bounds the retries of a dump that the kernel interrupted
// (NLM_F_DUMP_INTR) because what it lists changed under it; netlink
// returns ErrDumpInterrupted with partial results then.
const dumpAttempts = 5

// Dump runs a netlink dump (h.LinkList, say) until it is not interrupted.
func Dump[T any](list func() ([]T, error)) ([]T, error) {
	var (
		v   []T
		err error
	)
	for range dumpAttempts {
		if v, err = list(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return v, err
}
