package main

import (
	"bytes"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"

	"github.com/fritzlab/flock/pkg/policy"
)

// altModel: two replicas sharing an ingress allow-list (a pod peer on a
// port range, an ipBlock with an except on every port), and a pod denied
// all egress.
func altModel() *policy.Model {
	allow := &policy.Allow{Rules: []policy.Rule{
		{Peers: []policy.Peer{{Prefix: netip.MustParsePrefix("2001:db8::5/128")}, {Prefix: netip.MustParsePrefix("10.0.0.5/32")}},
			Ports: []policy.PortRange{{Protocol: policy.TCP, First: 80, Last: 81}}},
		{Peers: []policy.Peer{{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Except: []netip.Prefix{netip.MustParsePrefix("10.128.0.0/9")}}}},
		// Covered by the rule above on the same port: must not overlap in a set.
		{Peers: []policy.Peer{{Prefix: netip.MustParsePrefix("10.0.0.0/9")}, {Prefix: netip.MustParsePrefix("10.1.0.0/16")}},
			Ports: []policy.PortRange{{Protocol: policy.TCP, First: 80, Last: 81}}},
	}}
	return &policy.Model{Pods: []policy.PodPolicy{
		{Namespace: "x", Name: "a", Iface: "flock00000001", Ingress: allow},
		{Namespace: "x", Name: "b", Iface: "flock00000002", Ingress: allow},
		{Namespace: "x", Name: "c", Iface: "flock00000003", Egress: &policy.Allow{}},
	}}
}

func TestKnftTx(t *testing.T) {
	fake := knftables.NewFake(knftables.InetFamily, "flock_knft")
	tx := knftTx(fake, altModel())
	script := tx.String()
	for _, want := range []string{
		"add element inet flock_knft ingress_by_iface { flock00000001 : jump ingress_",
		"add element inet flock_knft egress_by_iface { flock00000003 : drop }",
		"10.0.0.0/9 . tcp . 80-81",
		"2001:db8::5/128 . tcp . 80-81",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("transaction lacks %q:\n%s", want, script)
		}
	}
	if n := strings.Count(script, "add chain inet flock_knft ingress_"); n != 1 {
		t.Errorf("%d ingress chains, want one shared by the replicas:\n%s", n, script)
	}
	if strings.Contains(script, "10.1.0.0/16 . tcp") || strings.Contains(script, "10.0.0.5/32 . tcp") {
		t.Errorf("a prefix covered by another on the same port is in the set:\n%s", script)
	}
	if err := fake.Run(t.Context(), tx); err != nil {
		t.Fatal(err)
	}
	// The real nft accepts it (knftables' Fake does not parse rules).
	cmd := exec.Command("unshare", "-rn", "nft", "--check", "-f", "-")
	cmd.Stdin = strings.NewReader(strings.Replace(script, "delete table inet flock_knft\n", "", 1))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft --check: %v: %s\n%s", err, out, script)
	}
}

func TestIptablesRules(t *testing.T) {
	m := altModel()
	v4, v6 := iptablesRules(m, false), iptablesRules(m, true)
	for _, tc := range []struct {
		rules []byte
		want  []string
		not   []string
	}{
		{v4, []string{"-A FORWARD -o flock00000001 -j NP-I-", "-A FORWARD -i flock00000003 -j DROP", "-A INPUT -i flock00000003 -j DROP",
			"-s 10.0.0.0/9 -j ACCEPT", "-s 10.0.0.5/32 -p tcp -m tcp --dport 80:81 -j ACCEPT"}, []string{"10.128.0.0", "2001:db8"}},
		{v6, []string{"-s 2001:db8::5/128 -p tcp -m tcp --dport 80:81 -j ACCEPT"}, []string{"10.0.0"}},
	} {
		for _, w := range tc.want {
			if !bytes.Contains(tc.rules, []byte(w)) {
				t.Errorf("rules lack %q:\n%s", w, tc.rules)
			}
		}
		for _, w := range tc.not {
			if bytes.Contains(tc.rules, []byte(w)) {
				t.Errorf("rules have %q:\n%s", w, tc.rules)
			}
		}
		if n := bytes.Count(tc.rules, []byte(":NP-I-")); n != 1 {
			t.Errorf("%d ingress chains, want one shared by the replicas", n)
		}
	}
	for _, f := range []struct {
		bin   string
		rules []byte
	}{{"iptables-nft-restore", v4}, {"ip6tables-nft-restore", v6}} {
		cmd := exec.Command("unshare", "-n", f.bin, "--test")
		cmd.Stdin = bytes.NewReader(f.rules)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s --test: %v: %s\n%s", f.bin, err, out, f.rules)
		}
	}
}

func TestPairLast(t *testing.T) {
	m := pairLast(altModel(), "flock00000001")
	var got []string
	for _, p := range m.Pods {
		got = append(got, p.Name)
	}
	if strings.Join(got, ",") != "b,c,a" {
		t.Errorf("pairLast order %v, want b,c,a", got)
	}
}
