package lab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"

	"github.com/fritzlab/flock/internal/lab"
)

// capMask is the capability bit set of names (NET_ADMIN, …).
func capMask(t *testing.T, names []string) uint64 {
	t.Helper()
	bits := map[string]uint{"NET_ADMIN": unix.CAP_NET_ADMIN, "NET_RAW": unix.CAP_NET_RAW, "SYS_ADMIN": unix.CAP_SYS_ADMIN, "NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE}
	var m uint64
	for _, n := range names {
		b, ok := bits[n]
		if !ok {
			t.Fatalf("unknown capability %s", n)
		}
		m |= 1 << b
	}
	return m
}

// procCaps reads a process's effective and bounding capability sets.
func procCaps(t *testing.T, pid int) (eff, bnd uint64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ":")
		n, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		switch k {
		case "CapEff":
			eff = n
		case "CapBnd":
			bnd = n
		}
	}
	return eff, bnd
}

// An agent restart (a DaemonSet rollout) with traffic flowing between pods
// on two nodes: not one of 10 pings a second is lost, a TCP stream goes on
// without a reset, and neither the nft table nor the router's routes change
// while the agent is away. The agents and BIRDs run with exactly the
// DaemonSet's capabilities throughout, and the restarted agent networks a
// new pod.
func TestAgentRestart(t *testing.T) {
	e := up(t, 2)
	nodes := []string{e.lab.Nodes[0].Name, e.lab.Nodes[1].Name}
	for _, n := range nodes {
		for _, d := range []struct {
			what string
			pid  int
			caps []string
		}{{"agent", e.lab.AgentPid(n), lab.AgentCapabilities}, {"bird", e.lab.BIRDPid(n), lab.BIRDCapabilities}} {
			if d.pid == 0 {
				t.Fatalf("%s of %s not running", d.what, n)
			}
			eff, bnd := procCaps(t, d.pid)
			if want := capMask(t, d.caps); eff != want || bnd != want {
				t.Errorf("%s of %s: effective caps %#x, bounding %#x; want exactly %v (%#x)", d.what, n, eff, bnd, d.caps, want)
			}
		}
	}

	const port = 8080
	var pods []*corev1.Pod
	for i := range 4 {
		e.create(servePod("default", fmt.Sprintf("r%d", i), nil, port))
	}
	for i := range 4 {
		pods = append(pods, e.waitReady("default", fmt.Sprintf("r%d", i)))
	}
	var a, b *corev1.Pod
	for _, p := range pods[1:] {
		if p.Spec.NodeName != pods[0].Spec.NodeName {
			a, b = pods[0], p
		}
	}
	if b == nil {
		t.Fatal("the four pods all landed on one node")
	}
	ctx := context.Background()
	aNS, err := e.lab.PodNetns(ctx, a.Namespace, a.Name)
	if err != nil {
		t.Fatal(err)
	}
	bNS, err := e.lab.PodNetns(ctx, b.Namespace, b.Name)
	if err != nil {
		t.Fatal(err)
	}
	b6, _ := podAddrs(b)
	node := a.Spec.NodeName
	nodeNS, err := e.lab.NodeNetns(node)
	if err != nil {
		t.Fatal(err)
	}
	table := func() string {
		out, err := inNetns(nodeNS, "nft", "-s", "list", "table", "inet", "flock")
		if err != nil {
			t.Fatalf("nft list table: %v %s", err, out)
		}
		return out
	}
	routes := func() string {
		var all []string
		for _, fam := range []string{"-6", "-4"} {
			out, err := lab.NetnsCommand(ctx, e.lab.Router, "ip", fam, "route", "show", "proto", "bird").Output()
			if err != nil {
				t.Fatalf("router routes: %v", err)
			}
			all = append(all, string(out))
		}
		return strings.Join(all, "")
	}
	tableBefore, routesBefore := table(), routes()

	// The TCP stream: a listener in b's namespace, a sender in a's.
	stream := startStream(t, "/run/netns/"+aNS, "/run/netns/"+bNS, net.JoinHostPort(b6.String(), "7777"))
	// 10 pings a second from a to b.
	var pingOut bytes.Buffer
	ping := exec.Command("ip", "netns", "exec", aNS, "ping", "-n", "-i", "0.1", b6.String())
	ping.Stdout, ping.Stderr = &pingOut, &pingOut
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)

	// While the agent is away and comes back, the router keeps every route.
	var churn []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if r := routes(); r != routesBefore {
				churn = append(churn, r)
			}
		}
	}()
	if err := e.lab.RestartAgent(node); err != nil {
		t.Fatal(err)
	}
	// Back: it networks a new pod (on whichever node), and its own pods
	// stay reachable.
	e.create(servePod("default", "after", nil, port))
	e.waitReady("default", "after")
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()

	_ = ping.Process.Signal(syscall.SIGINT)
	_ = ping.Wait()
	m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`).FindStringSubmatch(pingOut.String())
	if m == nil {
		t.Fatalf("ping output without a summary:\n%s", pingOut.String())
	}
	sent, _ := strconv.Atoi(m[1])
	got, _ := strconv.Atoi(m[2])
	if sent < 20 || got != sent {
		t.Errorf("ping across the restart: %d sent, %d received; want none lost (and at least 20)", sent, got)
	}
	if n, err := stream.stop(); err != nil || n == 0 {
		t.Errorf("TCP stream across the restart: %d bytes, %v; want no reset", n, err)
	}
	if len(churn) > 0 {
		t.Errorf("the router's routes changed during the restart (%d samples), first:\n%s\nbefore:\n%s", len(churn), churn[0], routesBefore)
	}
	if after := table(); after != tableBefore {
		t.Errorf("the nft table changed across the restart:\nbefore:\n%s\nafter:\n%s", tableBefore, after)
	}
	if eff, _ := procCaps(t, e.lab.AgentPid(node)); eff != capMask(t, lab.AgentCapabilities) {
		t.Errorf("restarted agent's caps %#x, want %v", eff, lab.AgentCapabilities)
	}
}

// stream is a TCP connection that carries data until stop.
type stream struct {
	conn  net.Conn
	done  chan struct{}
	mu    sync.Mutex
	n     int
	err   error
	ln    net.Listener
	recvd chan error
}

// startStream listens at addr in the namespace at to and sends 1 KiB every
// 10 ms to it from the namespace at from.
func startStream(t *testing.T, from, to, addr string) *stream {
	t.Helper()
	s := &stream{done: make(chan struct{}), recvd: make(chan error, 1)}
	if err := ns.WithNetNSPath(to, func(ns.NetNS) (err error) {
		s.ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := s.ln.Accept()
		if err != nil {
			s.recvd <- err
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		for {
			if _, err := c.Read(buf); err != nil {
				s.recvd <- err
				return
			}
		}
	}()
	if err := ns.WithNetNSPath(from, func(ns.NetNS) (err error) {
		s.conn, err = net.DialTimeout("tcp", addr, 5*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	go func() {
		chunk := bytes.Repeat([]byte("x"), 1024)
		for {
			select {
			case <-s.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			_ = s.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			n, err := s.conn.Write(chunk)
			s.mu.Lock()
			s.n += n
			if err != nil && s.err == nil {
				s.err = err
			}
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return s
}

// stop ends the stream and returns what was sent and the first error of
// either end before the stop.
func (s *stream) stop() (int, error) {
	close(s.done)
	time.Sleep(50 * time.Millisecond)
	s.mu.Lock()
	n, err := s.n, s.err
	s.mu.Unlock()
	select {
	case rerr := <-s.recvd:
		if err == nil {
			err = fmt.Errorf("receiver: %w", rerr)
		}
	default:
	}
	s.conn.Close()
	s.ln.Close()
	return n, err
}
