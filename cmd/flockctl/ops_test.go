package main

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/fritzlab/flock/pkg/admin"
)

type drops struct{}

func (drops) Drops(context.Context) ([]admin.PodDrop, error) {
	return []admin.PodDrop{
		{Namespace: "default", Name: "quiet", Iface: "flock0000000b", Ingress: 1},
		{Namespace: "default", Name: "web-1", Iface: "flock01234567", Ingress: 7, Egress: 2},
	}, nil
}

type doctorFake struct{ problems []admin.Problem }

func (d doctorFake) Doctor(context.Context) admin.Doctor {
	return admin.Doctor{Checks: []string{"sysctl", "routes", "nftables"}, Problems: append([]admin.Problem{}, d.problems...)}
}

type tracer struct{}

func (tracer) Trace(_ context.Context, src, dst netip.Addr, proto string, port uint16) (admin.Trace, error) {
	return admin.Trace{Src: src, Dst: dst, Proto: proto, Port: port,
		Egress:  admin.TraceStep{Rule: -1, Allowed: true},
		Ingress: admin.TraceStep{Pod: "default/web-1", Isolated: true, Rule: -1, Chain: "ingress_5f0c1d2e3a4b5c6d"}}, nil
}

func TestOpsCommands(t *testing.T) {
	healthy := serveSources(t, admin.Sources{Mode: "kubernetes", Node: node{}, Allocations: allocs{}, Drops: drops{}, Doctor: doctorFake{}, Trace: tracer{}})
	sick := serveSources(t, admin.Sources{Mode: "kubernetes", Node: node{}, Allocations: allocs{}, Doctor: doctorFake{[]admin.Problem{
		{Check: "nftables", Detail: "table inet flock is missing"},
		{Check: "sysctl", Detail: "net/ipv4/ip_forward is 0, want 1"},
	}}})

	out, err := run("drops", "--socket", healthy)
	if err != nil || !strings.Contains(out, "NAMESPACE  NAME   INTERFACE      INGRESS  EGRESS") ||
		strings.Index(out, "web-1") > strings.Index(out, "quiet") {
		t.Errorf("drops = %v\n%s\nwant web-1 (9 drops) before quiet (1)", err, out)
	}
	if out, err := run("drops", "--socket", sick); err != nil || !strings.Contains(out, "NetworkPolicy is off") {
		t.Errorf("drops without NetworkPolicy = %v %q", err, out)
	}

	if out, err := run("doctor", "--socket", healthy); err != nil || !strings.Contains(out, "No problems found (checked: sysctl, routes, nftables)") {
		t.Errorf("doctor on a healthy node = %v %q", err, out)
	}
	out, err = run("doctor", "--socket", sick)
	if err == nil || !strings.Contains(err.Error(), "2 problem(s)") || !strings.Contains(err.Error(), "table inet flock is missing") ||
		!strings.Contains(out, "sysctl    net/ipv4/ip_forward is 0, want 1") {
		t.Errorf("doctor with problems = %v\n%s", err, out)
	}
	if _, err := run("doctor", "-o", "json", "--socket", sick); err == nil {
		t.Error("doctor -o json with problems exited zero")
	}

	out, err = run("trace", "2001:db8:42:1::9", "2001:db8:42:1::1", "80/tcp", "--socket", healthy)
	want := "2001:db8:42:1::9 -> 2001:db8:42:1::1 80/tcp: DROPPED\n" +
		"  egress   not a pod of this node: its own node decides\n" +
		"  ingress  default/web-1: no rule of chain ingress_5f0c1d2e3a4b5c6d matches, dropped (default deny)\n"
	if err != nil || out != want {
		t.Errorf("trace = %v\n%s\nwant:\n%s", err, out, want)
	}
	for _, bad := range [][]string{{"web", "2001:db8::1", "80/tcp"}, {"2001:db8::1", "2001:db8::2", "80/icmp"}, {"2001:db8::1", "2001:db8::2", "0"}} {
		if _, err := run(append([]string{"trace"}, append(bad, "--socket", healthy)...)...); err == nil {
			t.Errorf("trace %v succeeded", bad)
		}
	}
	if _, err := run("trace", "2001:db8::1", "2001:db8::2", "80", "--socket", sick); err == nil || !strings.Contains(err.Error(), "NetworkPolicy is off") {
		t.Errorf("trace without NetworkPolicy: %v", err)
	}
}
