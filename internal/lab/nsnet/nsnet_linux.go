// Package nsnet does single things inside a named network namespace without
// moving the calling process there: open a listening socket, dial, or start
// a process. A socket keeps the namespace it was made in, and a child process
// inherits the namespace of the thread that forks it; so each of these runs
// on a fresh OS thread that enters the namespace and is never unlocked (the
// Go runtime then ends the thread instead of reusing it elsewhere).
//
// Unlike `ip netns exec`, a process started here stays in the caller's mount
// namespace, so namespaces it adds under /run/netns are visible to everyone.
package nsnet

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netns"
)

// Path returns the bind-mount path of a named namespace (/run/netns/NAME);
// a name that is already a path is returned unchanged.
func Path(name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join("/run/netns", name)
}

// in runs f on a fresh thread inside the namespace.
func in(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
		h, err := netns.GetFromPath(Path(ns))
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", ns, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// Listen opens a listening socket inside namespace ns.
func Listen(ctx context.Context, ns, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := in(ns, func() (err error) {
		var lc net.ListenConfig
		l, err = lc.Listen(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s %s in %s: %w", network, addr, ns, err)
	}
	return l, nil
}

// Dial connects from inside namespace ns.
func Dial(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := in(ns, func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s %s in %s: %w", network, addr, ns, err)
	}
	return c, nil
}

// Start starts cmd inside namespace ns ("" = the caller's). Wait for it (or
// Release its Process) as usual.
func Start(ns string, cmd *exec.Cmd) error {
	if ns == "" {
		return cmd.Start()
	}
	return in(ns, cmd.Start)
}
