package policy

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fritzlab/flock/internal/golden"
	"github.com/google/go-cmp/cmp"
)

func guardPods() []Source {
	a := netip.MustParseAddr
	return []Source{
		// Out of order, with a duplicate and an anycast address of each
		// family: the script is sorted and each element written once.
		{Iface: "flockbbbbbbbb", Addrs: []netip.Addr{a("2001:db8:42:1::b"), a("10.42.1.3")}},
		{Iface: "flockaaaaaaaa", Addrs: []netip.Addr{a("2001:db8:42:1::a"), a("10.42.1.2"), a("2001:db8:ffff::53"), a("192.0.2.153"), a("10.42.1.2")}},
		// An IPv6-only pod.
		{Iface: "flockcccccccc", Addrs: []netip.Addr{a("2001:db8:42:1::c")}},
	}
}

func TestGuardGolden(t *testing.T) {
	for name, pods := range map[string][]Source{"guard": guardPods(), "guard-empty": nil} {
		t.Run(name, func(t *testing.T) {
			got, err := RenderGuard(pods)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", name+".nft")
			golden.Check(t, path, "rendered anti-spoofing table", got)
			nftCheck(t, path)
		})
	}
}

// The chain: non-pod interfaces pass untouched, a pod's own sources pass,
// link-local and DAD pass, everything else from a pod veth is counted and
// dropped, in that order; the table is never deleted (the counter stays).
func TestGuardShape(t *testing.T) {
	b, err := RenderGuard(guardPods())
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if strings.Contains(s, "delete table") {
		t.Errorf("the script deletes the table, which resets the drop counter:\n%s", s)
	}
	var rules []string
	for line := range strings.Lines(s) {
		if r, ok := strings.CutPrefix(strings.TrimSpace(line), "add rule inet flock_guard prerouting "); ok {
			rules = append(rules, r)
		}
	}
	want := []string{
		`iifname != "flock*" accept`,
		"iifname . ip6 saddr @sources6 accept",
		"iifname . ip saddr @sources4 accept",
		"ip6 saddr fe80::/10 accept",
		"ip6 saddr :: ip6 daddr ff02::/16 accept",
		"counter name spoofed drop",
	}
	if d := cmp.Diff(want, rules); d != "" {
		t.Errorf("prerouting rules (-want +got):\n%s", d)
	}
	if !strings.Contains(s, "hook prerouting priority raw;") {
		t.Errorf("the chain is not at prerouting, priority raw (before conntrack):\n%s", s)
	}
	if !strings.Contains(s, `"flockaaaaaaaa" . 192.0.2.153`) || !strings.Contains(s, `"flockaaaaaaaa" . 2001:db8:ffff::53`) {
		t.Errorf("granted anycast addresses are not allowed sources:\n%s", s)
	}
	if n := strings.Count(s, `"flockaaaaaaaa" . 10.42.1.2`); n != 1 {
		t.Errorf("a duplicate address is written %d times", n)
	}
}

func TestRenderGuardErrors(t *testing.T) {
	a := netip.MustParseAddr("2001:db8::1")
	for name, pods := range map[string][]Source{
		"bad iface":    {{Iface: `flock"; drop`, Addrs: []netip.Addr{a}}},
		"long iface":   {{Iface: "flock0123456789ab", Addrs: []netip.Addr{a}}},
		"twice":        {{Iface: "flock1", Addrs: []netip.Addr{a}}, {Iface: "flock1"}},
		"zone":         {{Iface: "flock1", Addrs: []netip.Addr{netip.MustParseAddr("fe80::1%eth0")}}},
		"invalid addr": {{Iface: "flock1", Addrs: []netip.Addr{{}}}},
	} {
		if _, err := RenderGuard(pods); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestParseCounter(t *testing.T) {
	out := "table inet flock_guard {\n\tcounter spoofed {\n\t\tcomment \"x\"\n\t\tpackets 12 bytes 840\n\t}\n}\n"
	d, err := parseCounter([]byte(out))
	if err != nil || d != (Drops{Packets: 12, Bytes: 840}) {
		t.Errorf("parseCounter = %+v, %v", d, err)
	}
	if _, err := parseCounter([]byte("table inet flock_guard {\n}\n")); err == nil {
		t.Error("no error for a listing without the counter")
	}
}

// Apply skips an unchanged set and loads again after a failure; Resync
// reloads the last script.
func TestGuardApply(t *testing.T) {
	f := &fakeNFT{}
	g := NewGuard(f)
	ctx := context.Background()
	if changed, err := g.Apply(ctx, guardPods()); !changed || err != nil {
		t.Fatalf("first Apply: %v %v", changed, err)
	}
	if changed, err := g.Apply(ctx, guardPods()); changed || err != nil {
		t.Errorf("unchanged Apply: %v %v", changed, err)
	}
	f.fail = errors.New("nft refused")
	if _, err := g.Apply(ctx, guardPods()[:1]); err == nil || !strings.Contains(err.Error(), "nft refused") {
		t.Errorf("failing Apply: %v", err)
	}
	if changed, err := g.Apply(ctx, guardPods()[:1]); !changed || err != nil {
		t.Errorf("Apply after a failure: %v %v", changed, err)
	}
	n := len(f.stdin)
	if err := g.Resync(ctx); err != nil || len(f.stdin) != n+1 || f.stdin[n] != f.stdin[n-1] {
		t.Errorf("Resync did not reload the last script: %v", err)
	}
}
