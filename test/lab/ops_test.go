package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fritzlab/flock/internal/lab"
	"github.com/fritzlab/flock/pkg/admin"
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
	n, _ := e.lab.Node(node)
	opsChecks(t, e, n, nodeNS, a, b)
}

// opsChecks runs flockctl doctor, drops and the metrics against a node's
// restarted agent: doctor is clean, a pod under default deny probed 5
// times counts at least 5 drops, and doctor names each problem made on
// purpose (a flushed table, a changed sysctl, a deleted flock route).
func opsChecks(t *testing.T, e *env, n lab.Node, nodeNS string, a, b *corev1.Pod) {
	sock := filepath.Join(filepath.Dir(n.AgentSocket), "admin.sock")
	flockctl := func(args ...string) (string, error) {
		out, err := exec.Command(filepath.Join(e.lab.BinDir, "flockctl"), append(args, "--socket", sock)...).CombinedOutput()
		return string(out), err
	}
	waitFor(t, time.Minute, "flockctl doctor clean on "+n.Name, func() (bool, string) {
		out, err := flockctl("doctor")
		return err == nil, out
	})

	// Default deny for the namespace; five probes of a from b.
	ctx := context.Background()
	deny := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "deny"},
		Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}}
	if _, err := e.cs.NetworkingV1().NetworkPolicies("default").Create(ctx, deny, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	a6, _ := podAddrs(a)
	waitFor(t, time.Minute, "default deny to hold for "+a.Name, func() (bool, string) {
		got, err := e.tcpAsk(b, a6, 8080)
		return err != nil, got
	})
	out, _ := flockctl("drops", "-o", "json")
	before := dropsOf(t, out, a.Name)
	for range 5 {
		if got, err := e.tcpAsk(b, a6, 8080); err == nil {
			t.Fatalf("probe of %s under default deny answered %q", a.Name, got)
		}
	}
	out, err := flockctl("drops")
	t.Logf("flockctl drops:\n%s", out)
	if err != nil {
		t.Fatal(err)
	}
	jout, _ := flockctl("drops", "-o", "json")
	if got := dropsOf(t, jout, a.Name) - before; got < 5 {
		t.Errorf("%s's ingress drops moved by %d after 5 probes, want at least 5", a.Name, got)
	}
	if v := scrapeDrops(t, nodeNS, "default/"+a.Name); v < 5 {
		t.Errorf("flock_policy_dropped_packets_total for default/%s = %v, want at least 5", a.Name, v)
	}

	for _, c := range []struct {
		what, check string
		break_      []string
	}{
		{"a flushed nft table", "nftables", []string{"nft", "flush", "table", "inet", "flock"}},
		{"a changed sysctl", "net/ipv6/conf/all/forwarding is 0", []string{"sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"}},
		{"a deleted flock route", "pod default/" + a.Name, []string{"ip", "-6", "route", "del", a6.String() + "/128"}},
	} {
		if out, err := inNetns(nodeNS, c.break_...); err != nil {
			t.Fatalf("%s: %v %s", c.what, err, out)
		}
		out, err := flockctl("doctor")
		if err == nil || !strings.Contains(out, c.check) {
			t.Errorf("flockctl doctor after %s: %v\n%s\nwant a non-zero exit naming %q", c.what, err, out, c.check)
		}
		if c.check == "net/ipv6/conf/all/forwarding is 0" {
			inNetns(nodeNS, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
		}
	}
}

func dropsOf(t *testing.T, jsonOut, name string) uint64 {
	t.Helper()
	var d admin.Drops
	if err := json.Unmarshal([]byte(jsonOut), &d); err != nil {
		t.Fatalf("flockctl drops -o json: %v\n%s", err, jsonOut)
	}
	for _, p := range d.Items {
		if p.Name == name {
			return p.Ingress
		}
	}
	return 0
}

// scrapeDrops reads a pod's ingress drop counter from the agent's /metrics
// in the node's namespace.
func scrapeDrops(t *testing.T, nodeNS, pod string) float64 {
	t.Helper()
	var body []byte
	err := ns.WithNetNSPath("/run/netns/"+nodeNS, func(ns.NetNS) error {
		c, err := net.DialTimeout("tcp", "127.0.0.1:9983", 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var buf bytes.Buffer
		_, err = buf.ReadFrom(c)
		body = buf.Bytes()
		return err
	})
	if err != nil {
		t.Fatalf("scrape /metrics in %s: %v", nodeNS, err)
	}
	re := regexp.MustCompile(`(?m)^flock_policy_dropped_packets_total\{direction="ingress",pod="` + regexp.QuoteMeta(pod) + `"\} (\S+)$`)
	m := re.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no ingress drop counter for %s in /metrics", pod)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
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
