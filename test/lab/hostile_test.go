package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/internal/lab/controlplane"
	"github.com/fritzlab/flock/internal/spoof"
	"github.com/fritzlab/flock/pkg/admin"
)

// TestHostilePods: a pod that forges its source address reaches nobody,
// and a pod that claims other people's addresses as anycast announces
// none of them, in one lab of two nodes.
func TestHostilePods(t *testing.T) {
	e := up(t, 2)
	const port = 8080
	attacker := servePod("default", "attacker", nil, port)
	attacker.Spec.NodeName = "node-1"
	neighbour := servePod("default", "neighbour", nil, port)
	neighbour.Spec.NodeName = "node-1"
	victim := servePod("default", "victim", nil, port)
	victim.Spec.NodeName = "node-2"
	for _, p := range []*corev1.Pod{attacker, neighbour, victim} {
		e.create(p)
	}
	at, nb, vi := e.waitReady("default", "attacker"), e.waitReady("default", "neighbour"), e.waitReady("default", "victim")
	t.Run("spoofing", func(t *testing.T) { e.spoofing(t, at, nb, vi, port) })
	t.Run("anycast hijack", func(t *testing.T) { e.anycastHijack(t, port) })
}

// spoofing: the attacker on node-1 sends TCP SYNs and UDP to the victim on
// node-2 from the neighbour's addresses, node-1's and addresses outside
// every pool, both families; a capture in the victim's namespace sees
// none, node-1's agent counts them, and the attacker's own traffic flows.
func (e *env) spoofing(t *testing.T, at, nb, vi *corev1.Pod, port int) {
	ctx := context.Background()
	n1, _ := e.lab.Node("node-1")
	nb6, nb4 := podAddrs(nb)
	vi6, vi4 := podAddrs(vi)
	at6, at4 := podAddrs(at)
	forged := []netip.Addr{nb6, nb4, n1.Addr6.Addr(), n1.Addr4.Addr(), mustAddr("2001:db8:dead::1"), mustAddr("203.0.113.9")}
	atNS, err := e.lab.PodNetns(ctx, "default", "attacker")
	if err != nil {
		t.Fatal(err)
	}
	viNS, err := e.lab.PodNetns(ctx, "default", "victim")
	if err != nil {
		t.Fatal(err)
	}
	drops := func() uint64 {
		t.Helper()
		out, err := exec.Command(filepath.Join(e.lab.BinDir, "flockctl"), "--socket", filepath.Join(n1.Dir, "admin.sock"), "-o", "json", "status").Output()
		if err != nil {
			t.Fatalf("flockctl status on node-1: %v", err)
		}
		var st admin.Status
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatal(err)
		}
		if !st.AntiSpoofing.Enabled || st.AntiSpoofing.Error != "" {
			t.Fatalf("node-1 anti-spoofing: %+v", st.AntiSpoofing)
		}
		return st.AntiSpoofing.DroppedPackets
	}
	// send runs flock-lab spoof in the attacker's namespace: a SYN to the
	// victim's port and a datagram to it, from each source.
	send := func(srcs []netip.Addr) []string {
		t.Helper()
		var filter []string
		for _, s := range srcs {
			filter = append(filter, "src host "+s.String())
		}
		stop, err := spoof.Capture(viNS, strings.Join(filter, " or "))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range srcs {
			dst := vi6
			if s.Is4() {
				dst = vi4
			}
			for _, proto := range []string{"tcp", "udp"} {
				out, err := inNetns(atNS, filepath.Join(e.lab.BinDir, "flock-lab"), "spoof", "--proto", proto, "--from", s.String(), netip.AddrPortFrom(dst, uint16(port)).String())
				if err != nil {
					stop()
					t.Fatalf("flock-lab spoof from %s: %v: %s", s, err, out)
				}
			}
		}
		got, _ := stop()
		return got
	}
	before := drops()
	if got := send(forged); len(got) != 0 {
		t.Errorf("the victim captured %d packets with forged sources:\n%s", len(got), strings.Join(got, "\n"))
	}
	if d := drops() - before; d < uint64(2*len(forged)) {
		t.Errorf("node-1 counted %d spoofed packets, want at least %d", d, 2*len(forged))
	}
	// The attacker's own addresses, through the same tool: the capture sees
	// them (so it would have seen forged ones), and real connections work.
	if got := send([]netip.Addr{at6, at4}); len(got) < 4 {
		t.Errorf("the victim captured %d packets from the attacker's own addresses, want at least 4:\n%s", len(got), strings.Join(got, "\n"))
	}
	for _, a := range []netip.Addr{vi6, vi4} {
		if got, err := e.tcpAsk(at, a, port); err != nil || got != "default/victim" {
			t.Errorf("attacker to victim %s: %q %v", a, got, err)
		}
	}
}

// anycastHijack: node-1 allows anycast from 2001:db8::/32 and 0.0.0.0/0,
// a namespace narrows that to the lab's anycast ranges, and a pod there
// claims node-2's pool, a Service IP, 8.8.8.8, node-2's InternalIP and one
// good address. Each
// bad claim gets a warning Event naming it, the router learns the good
// address and none of the others.
func (e *env) anycastHijack(t *testing.T, port int) {
	ctx := context.Background()
	e.patchNodeConfig("node-1", map[string]any{"spec": map[string]any{"anycast": map[string]any{"allowedCIDRs": []any{"2001:db8::/32", "0.0.0.0/0"}}}})
	waitFor(t, 30*time.Second, "node-1's agent to accept the new NodeConfig", func() (bool, string) { return e.accepted("node-1") })
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "hostile", Annotations: map[string]string{
		"flock.fritzlab.net/anycast-cidrs": "2001:db8:ffff::/48, 192.0.2.0/24"}}}
	if _, err := e.cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	n2, _ := e.lab.Node("node-2")
	pool := n2.Pool6.Addr().Next().Next().Next() // an address of node-2's pool, and a host route inside it
	svc := netip.MustParsePrefix(controlplane.ServiceCIDR6).Addr().Next()
	dns := mustAddr("8.8.8.8")
	good := mustAddr("2001:db8:ffff::99")
	// node-2's InternalIP: the agent on node-1 knows it only from its
	// informer on every Node.
	other := n2.Addr4.Addr()
	bad := []netip.Addr{pool, svc, dns, other}
	p := servePod("hostile", "hijack", map[string]string{"flock.fritzlab.net/anycast": fmt.Sprintf("%s,%s,%s,%s,%s", pool, svc, dns, other, good)}, port)
	p.Spec.NodeName = "node-1"
	e.create(p)
	e.waitReady("hostile", "hijack")
	waitFor(t, 30*time.Second, "the router to learn the granted anycast address "+good.String(), func() (bool, string) {
		return e.routerHas(good.String(), true)
	})
	for _, a := range bad {
		fam := "-6"
		if a.Is4() {
			fam = "-4"
		}
		if out, _ := inNetns(e.lab.Router, "ip", fam, "route", "show", a.String()+"/"+fmt.Sprint(a.BitLen())); strings.TrimSpace(out) != "" {
			t.Errorf("the router learned the hijacked %s: %s", a, out)
		}
	}
	waitFor(t, 20*time.Second, "a warning Event for each refused claim", func() (bool, string) {
		evs, err := e.cs.CoreV1().Events("hostile").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=hijack"})
		if err != nil {
			return false, err.Error()
		}
		var msgs []string
		for _, ev := range evs.Items {
			if ev.Type == corev1.EventTypeWarning && ev.Reason == "FlockAnycast" {
				msgs = append(msgs, ev.Message)
			}
		}
		all := strings.Join(msgs, "\n")
		for _, a := range bad {
			if !strings.Contains(all, `entry "`+a.String()+`"`) {
				return false, all
			}
		}
		return strings.Contains(all, "node node-2's pod pool") && strings.Contains(all, "Service range") && strings.Contains(all, "anycast-cidrs") &&
			strings.Contains(all, "node node-2's address "+netip.PrefixFrom(other, 32).String()), all
	})
}

// accepted reports whether a node's agent has accepted the NodeConfig's
// current generation.
func (e *env) accepted(node string) (bool, string) {
	u, err := e.dyn().Resource(v1alpha1.NodeConfigGVR).Get(context.Background(), node, metav1.GetOptions{})
	if err != nil {
		return false, err.Error()
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Accepted" && m["status"] == "True" && fmt.Sprint(m["observedGeneration"]) == fmt.Sprint(u.GetGeneration()) {
			return true, ""
		}
	}
	return false, fmt.Sprint(conds)
}
