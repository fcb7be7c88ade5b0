package topology

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// netnsDir is where `ip netns` keeps its bind mounts.
const netnsDir = "/run/netns"

// addNetns creates a named namespace (ip netns add NAME) with lo up.
func addNetns(name string) error {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	// Without DAD, the link-local addresses of the links made next are usable
	// at once; with it, first packets across a fresh link are lost for about
	// a second while they are tentative.
	if err := setSysctl(name, "net/ipv6/conf/default/accept_dad", "0"); err != nil {
		return err
	}
	return withHandle(name, func(h *netlink.Handle) error {
		lo, err := h.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("find lo in %s: %w", name, err)
		}
		if err := h.LinkSetUp(lo); err != nil {
			return fmt.Errorf("set lo up in %s: %w", name, err)
		}
		return nil
	})
}

// DeleteNetns removes a named namespace (ip netns delete NAME); one already
// gone is fine. Its interfaces go with it once no process holds it.
func DeleteNetns(name string) error {
	if _, err := os.Stat(netnsDir + "/" + name); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "No such file") {
		return fmt.Errorf("ip netns delete %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ListNetns returns the named namespaces whose names start with prefix.
func ListNetns(prefix string) ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// withHandle runs f with a netlink handle bound to the named namespace; no
// thread changes namespace for it.
func withHandle(name string, f func(*netlink.Handle) error) error {
	ns, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", name, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", name, err)
	}
	defer h.Close()
	return f(h)
}

// setSysctl writes /proc/sys/KEY inside the named namespace. /proc/sys/net
// shows the namespace of the thread that reads it, so a fresh thread moves
// there and is never unlocked: the runtime ends it with the goroutine.
func setSysctl(name, key, value string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		ns, err := netns.GetFromName(name)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", name, err)
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", name, err)
			return
		}
		errc <- os.WriteFile("/proc/sys/"+key, []byte(value), 0o644)
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("set sysctl %s=%s in %s: %w", key, value, name, err)
	}
	return nil
}
