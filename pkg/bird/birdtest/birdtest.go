// Package birdtest runs a real BIRD in a network namespace for kernel
// tests, the way the agent's DaemonSet runs its sidecar.
package birdtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fritzlab/flock/internal/testns"
	"github.com/fritzlab/flock/pkg/bird"
)

// The router at the other end of Uplink; nobody answers there, so BGP
// sessions to it are configured but stay down.
const (
	Router6 = "2001:db8:f10c:ff::1"
	Router4 = "192.0.2.1"
)

// Start runs bird in the foreground in the network namespace netns, on the
// config at conf with its control socket at sock, flags (-R, say) added,
// and returns a client once the socket answers; its pid file is beside the
// socket (SOCK.pid), so BIRDs with sockets in one folder keep apart. BIRD
// is killed when the test ends, and its log shown if the test failed.
func Start(t testing.TB, netns, conf, sock string, flags ...string) *bird.Client {
	t.Helper()
	return start(t, []string{"netns", "exec", netns, "bird", "-f"}, conf, sock, flags)
}

// SidecarCaps are the only capabilities the DaemonSet gives its bird
// container (deploy/daemonset.yaml); in particular not DAC_OVERRIDE, so a
// root BIRD reads only the files its user owns or may read.
const SidecarCaps = "-all,+net_admin,+net_bind_service"

// StartConfined is Start with BIRD limited to SidecarCaps (setpriv drops
// the rest from its bounding set), as the DaemonSet runs it.
func StartConfined(t testing.TB, netns, conf, sock string, flags ...string) *bird.Client {
	t.Helper()
	return start(t, []string{"netns", "exec", netns, "setpriv", "--bounding-set=" + SidecarCaps, "bird", "-f"}, conf, sock, flags)
}

func start(t testing.TB, args []string, conf, sock string, flags []string) *bird.Client {
	t.Helper()
	args = append(args, flags...)
	args = append(args, "-c", conf, "-s", sock, "-P", sock+".pid")
	var out bytes.Buffer // read only once bird has exited
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("bird's log:\n%s", out.String())
		}
	})
	c := bird.NewClient(sock)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := c.Command(t.Context(), "show status")
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("bird did not answer on %s: %v", sock, err)
		}
		select {
		case <-exited:
			t.Fatalf("bird exited: %s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Sessions returns the names of BIRD's BGP protocols, sorted; the test
// fails if BIRD does not answer.
func Sessions(t testing.TB, c *bird.Client) []string {
	t.Helper()
	ps, err := c.Protocols(t.Context())
	if err != nil {
		t.Fatalf("show protocols: %v", err)
	}
	var names []string
	for _, p := range ps {
		if p.Proto == "BGP" {
			names = append(names, p.Name)
		}
	}
	slices.Sort(names)
	return names
}

// Uplink gives the node namespace netns an uplink, a veth named uplink
// with 2001:db8:f10c:ff::2/64 and 192.0.2.2/24 whose other end, router, is
// up: the subnets of Router6 and Router4.
func Uplink(t testing.TB, netns string) {
	t.Helper()
	for _, args := range [][]string{
		{"link", "add", "uplink", "type", "veth", "peer", "name", "router"},
		{"link", "set", "uplink", "up"},
		{"link", "set", "router", "up"},
		{"addr", "add", "2001:db8:f10c:ff::2/64", "dev", "uplink", "nodad"},
		{"addr", "add", "192.0.2.2/24", "dev", "uplink"},
	} {
		testns.Run(t, append([]string{"ip", "-n", netns}, args...)...)
	}
}

// Sidecar is a BIRD started as the DaemonSet's sidecar starts it.
type Sidecar struct {
	Config, Socket string
	Client         *bird.Client
}

// StartSidecar writes the bootstrap config to dir and runs BIRD on it in
// the node namespace netns, with -R so that a restart keeps its kernel
// routes.
func StartSidecar(t testing.TB, netns, dir string) *Sidecar {
	t.Helper()
	s := &Sidecar{Config: filepath.Join(dir, "bird.conf"), Socket: filepath.Join(dir, "bird.ctl")}
	if err := os.WriteFile(s.Config, bird.RenderBootstrap(), bird.ConfigMode); err != nil {
		t.Fatal(err)
	}
	s.Client = Start(t, netns, s.Config, s.Socket, "-R")
	return s
}

// AgentArgs are the agent's flags for driving this BIRD.
func (s *Sidecar) AgentArgs() []string {
	return []string{"--bird-config", s.Config, "--bird-socket", s.Socket}
}
