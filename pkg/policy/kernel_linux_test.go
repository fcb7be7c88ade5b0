package policy

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/fritzlab/flock/pkg/policy/nptest"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// TestKernelPolicy loads rendered rulesets into a node namespace and checks
// with real packets that the kernel does what the model says, for every
// pod-to-pod probe, and that the node always reaches its pods.
func TestKernelPolicy(t *testing.T) {
	requireRoot(t)
	l := newLab(t)
	a := l.addPod(t, "x", "a", map[string]string{"pod": "a"}, 10)
	l.addPod(t, "x", "b", map[string]string{"pod": "b"}, 11)
	l.addPod(t, "y", "c", map[string]string{"pod": "c"}, 12)

	check := func(t *testing.T, policies []networkingv1.NetworkPolicy, extra ...probeCase) {
		t.Helper()
		in := l.input()
		in.Policies = policies
		m := Translate(in)
		l.apply(t, m)
		cases := l.modelCases(m)
		if policies != nil && (count(cases, true) == 0 || count(cases, false) == 0) {
			t.Fatalf("the model allows %d and denies %d probes: want both", count(cases, true), count(cases, false))
		}
		cases = append(cases, l.nodeCases()...)
		runProbes(t, append(cases, extra...))
	}

	t.Run("no policy", func(t *testing.T) {
		check(t, nil)
	})

	t.Run("default deny ingress, one port allowed", func(t *testing.T) {
		check(t, []networkingv1.NetworkPolicy{
			nptest.Policy("x", "deny", nil),
			nptest.Policy("x", "allow", nptest.Labels("pod", "a"),
				nptest.Ingress(nptest.Peers(nptest.NSPeer(nptest.Labels(nsNameLabel, "y"))), nptest.Port("", "http"), nptest.Port(corev1.ProtocolUDP, 81))),
		})
	})

	t.Run("egress, replies, neighbour discovery, pod to node", func(t *testing.T) {
		// a may send only to b on http, to c on 81 (which c's ingress
		// denies: both ends must allow) and to the node on TCP 81, and may
		// receive nothing: its connections work only if replies pass as
		// established, and only if neighbour discovery to its gateway
		// (the input hook, egress-isolated) is never blocked.
		mustRun(t, "ip", "-n", a.netns, "neigh", "flush", "all")
		mustRun(t, "ip", "-n", l.node, "neigh", "flush", "all")
		policies := []networkingv1.NetworkPolicy{
			nptest.Policy("x", "a", nptest.Labels("pod", "a"), nptest.Types(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress),
				nptest.Egress(nptest.Peers(nptest.PodPeer(nptest.Labels("pod", "b"))), nptest.Port("", "http")),
				nptest.Egress(nptest.Peers(nptest.NSPeer(all)), nptest.Port("", 81), nptest.Port(corev1.ProtocolUDP, 81)),
				nptest.Egress(nptest.Peers(nptest.Block(l.node6.String()+"/128"), nptest.Block(l.node4.String()+"/32")), nptest.Port("", 81))),
			nptest.Policy("x", "b", nptest.Labels("pod", "b"), nptest.Ingress(nptest.Peers(nptest.PodPeer(nptest.Labels("pod", "a"))), nptest.Port("", 80))),
			nptest.Policy("y", "deny", nil),
		}
		var toNode []probeCase
		for _, p := range l.pods {
			for _, dst := range []struct {
				addr string
				port uint16
			}{{"2001:db8:ffff::1", 80}, {"2001:db8:ffff::1", 81}, {"10.42.1.1", 80}, {"10.42.1.1", 81}} {
				d := l.node6
				if !strings.Contains(dst.addr, ":") {
					d = l.node4
				}
				toNode = append(toNode, probeCase{p.Name, "node", p.path(), TCP, d, dst.port, p != a || dst.port == 81})
			}
		}
		check(t, policies, toNode...)
	})
}

// TestKernelApply loads every golden ruleset twice and checks that the
// kernel's table is the same both times, and that Apply skips an unchanged
// model and Resync repairs drift.
func TestKernelApply(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	l := newLab(t)
	for name, in := range goldenInputs() {
		t.Run(name, func(t *testing.T) {
			m := Translate(in)
			l.apply(t, m)
			first := l.list(t)
			l.apply(t, m) // a fresh Applier: the script is loaded again
			if d := cmp.Diff(first, l.list(t)); d != "" {
				t.Errorf("loading the same ruleset twice changed the table (-first +second):\n%s", d)
			}
		})
	}

	m := Translate(goldenInputs()["features"])
	ap := NewApplier(l.nft)
	if changed, err := ap.Apply(ctx, m); err != nil || !changed {
		t.Fatalf("first Apply = %v, %v; want a load", changed, err)
	}
	want := l.list(t)
	if changed, err := ap.Apply(ctx, Translate(goldenInputs()["features"])); err != nil || changed {
		t.Errorf("Apply of an equal model = %v, %v; want it skipped", changed, err)
	}
	if repaired, err := ap.Resync(ctx); err != nil || repaired {
		t.Errorf("Resync without drift = %v, %v; want nothing done", repaired, err)
	}
	for _, drift := range []string{
		"flush table inet flock",
		"delete table inet flock",
		"insert rule inet flock forward accept",
		"flush ruleset",
		"delete element inet flock ingress_by_iface { \"flock0000000a\" }",
		// Set elements: seen once a Resync has recorded the full listing.
		"flush set inet flock " + regexp.MustCompile(`set (ingress_[0-9a-f]+_ports6) `).FindStringSubmatch(want)[1],
	} {
		mustRun(t, "nsenter", "--net=/run/netns/"+l.node, "nft", drift)
		if repaired, err := ap.Resync(ctx); err != nil || !repaired {
			t.Errorf("Resync after %q = %v, %v; want a repair", drift, repaired, err)
		}
		if d := cmp.Diff(want, l.list(t)); d != "" {
			t.Errorf("after %q and Resync the table differs (-want +got):\n%s", drift, d)
		}
	}

	if changed, err := ap.Apply(ctx, Translate(goldenInputs()["deny-all"])); err != nil || !changed {
		t.Errorf("Apply of a new model = %v, %v; want a load", changed, err)
	}
	if regexp.MustCompile(`chain ingress_[0-9a-f]{16} `).MatchString(l.list(t)) {
		t.Errorf("the previous model's chains survived a new Apply:\n%s", l.list(t))
	}
	if _, err := ap.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := l.nft.Run(ctx, nil, "list", "tables"); err != nil || strings.Contains(string(out), "flock") {
		t.Errorf("after Delete: %s %v", out, err)
	}
	if repaired, err := ap.Resync(ctx); err != nil || repaired {
		t.Errorf("Resync after Delete = %v, %v; want nothing done", repaired, err)
	}
}

// TestKernelDelete removes the table an earlier run loaded, as an agent
// without --netpol does at start, in a namespace of its own: the table goes,
// another table stays, and a second Delete finds nothing and is no error.
func TestKernelDelete(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	nft := NFT{Netns: "/run/netns/" + newNetns(t)}
	if _, err := NewApplier(nft).Apply(ctx, Translate(goldenInputs()["features"])); err != nil {
		t.Fatal(err)
	}
	if _, err := nft.Run(ctx, nil, "add", "table", "inet", "other"); err != nil {
		t.Fatal(err)
	}
	tables := func() string {
		t.Helper()
		out, err := nft.Run(ctx, nil, "list", "tables")
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	if got := tables(); got != "table inet flock\ntable inet other\n" {
		t.Fatalf("before Delete: tables %q", got)
	}

	ap := NewApplier(nft) // a new agent's: it never applied anything
	if existed, err := ap.Delete(ctx); !existed || err != nil {
		t.Errorf("Delete = %v, %v; want the table found and deleted", existed, err)
	}
	if got := tables(); got != "table inet other\n" {
		t.Errorf("after Delete: tables %q, want only inet other", got)
	}
	if existed, err := ap.Delete(ctx); existed || err != nil {
		t.Errorf("Delete again = %v, %v; want no table and no error", existed, err)
	}
	if got := tables(); got != "table inet other\n" {
		t.Errorf("after the second Delete: tables %q, want only inet other", got)
	}
}

// A script nft rejects leaves the kernel's table as it was, and the next
// Apply tries again.
func TestKernelApplyFailure(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	l := newLab(t)
	ap := NewApplier(l.nft)
	m := Translate(goldenInputs()["features"])
	if _, err := ap.Apply(ctx, m); err != nil {
		t.Fatal(err)
	}
	want := l.list(t)
	bad := &Applier{nft: failingRunner{l.nft}}
	if _, err := bad.Apply(ctx, Translate(goldenInputs()["deny-all"])); err == nil {
		t.Fatal("Apply through a broken script succeeded")
	}
	if d := cmp.Diff(want, l.list(t)); d != "" {
		t.Errorf("a failed load changed the table (-want +got):\n%s", d)
	}
}

// failingRunner appends a line nft rejects to every script it loads.
type failingRunner struct{ NFT }

func (f failingRunner) Run(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	if stdin != nil {
		stdin = append(append([]byte{}, stdin...), "add rule inet flock nosuchchain accept\n"...)
	}
	return f.NFT.Run(ctx, stdin, args...)
}

func count(cases []probeCase, want bool) int {
	n := 0
	for _, c := range cases {
		if c.want == want {
			n++
		}
	}
	return n
}
