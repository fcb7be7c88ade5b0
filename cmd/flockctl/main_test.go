package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fritzlab/flock/pkg/admin"
)

type node struct{}

func (node) Node(context.Context) (admin.Node, error) {
	return admin.Node{Name: "host001", Pool6: netip.MustParsePrefix("2001:db8:42:1::/64"), Pool4: netip.MustParsePrefix("10.42.1.0/24"),
		ASN: 65101, Peers: []admin.Peer{{Address: netip.MustParseAddr("192.0.2.1"), ASN: 65000, Protocol: "bgp4_192_0_2_1"}}}, nil
}

type allocs struct{}

func (allocs) Allocations() []admin.Allocation {
	return []admin.Allocation{{Namespace: "default", Name: "web-1", ContainerID: "0123456789abcdef0123", IfName: "eth0",
		HostIface: "flock01234567", IPv6: netip.MustParseAddr("2001:db8:42:1::1"), IPv4: netip.MustParseAddr("10.42.1.2")}}
}

type deadBIRD struct{}

func (deadBIRD) Protocols(context.Context) ([]admin.Protocol, error) {
	return nil, errors.New("dial unix /run/flock/bird/bird.ctl: connect: connection refused")
}

type anycast struct{}

func (anycast) Anycast() admin.AnycastState {
	return admin.AnycastState{Routes: map[netip.Addr][]admin.NextHop{
		netip.MustParseAddr("2001:db8:ffff::53"): {{Via: netip.MustParseAddr("2001:db8:42:1::1"), Dev: "flock01234567"}},
	}}
}
func (anycast) PodReady(string, string) bool { return true }

type services struct{}

func (services) Services() admin.Services {
	return admin.Services{Synced: true, Items: []admin.ServiceAddress{
		{Service: "demo/web", Address: netip.MustParseAddr("2001:db8:5::10"), Policy: "Local", Pool: "web", LocalEndpoints: 2, ReadyEndpoints: 3,
			Announced: true, Reason: "Local: 2 ready endpoints on this node"},
		{Service: "demo/evil", Address: netip.MustParseAddr("203.0.113.7"), Policy: "Cluster", ReadyEndpoints: 1,
			Reason: "refused: outside every ServiceAddressPool"},
	}}
}

type netpol struct{}

func (netpol) Policy() admin.Policy {
	return admin.Policy{Synced: true, Pods: []admin.PodPolicy{
		{Namespace: "default", Name: "web-1", Iface: "flock01234567", Ingress: admin.Verdict{Mode: admin.AllowList, Chain: "ingress_5f0c1d2e3a4b5c6d"}, Egress: admin.Verdict{Mode: admin.DenyAll}},
	}}
}

// serve runs the admin API with fakes on a socket until the test ends.
func serve(t *testing.T) string {
	return serveSources(t, admin.Sources{Mode: "file", Node: node{}, Allocations: allocs{}, BIRD: deadBIRD{}})
}

func serveSources(t *testing.T, src admin.Sources) string {
	sock := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		admin.Serve(ctx, ln, admin.Handler(src), slog.New(slog.NewTextHandler(io.Discard, nil)))
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return sock
}

func run(args ...string) (string, error) {
	var out bytes.Buffer
	root := newRoot(&out)
	root.SetArgs(args)
	root.SetErr(io.Discard)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestCommands(t *testing.T) {
	sock := serve(t)
	full := serveSources(t, admin.Sources{Mode: "kubernetes", Node: node{}, Allocations: allocs{}, Anycast: anycast{}, Services: services{}, Policy: netpol{}, Guard: guard{}})
	for _, tc := range []struct {
		name string
		full bool // against the agent with anycast and NetworkPolicy
		args []string
		want []string // lines, compared without trailing blanks
		err  string
	}{
		{args: []string{"pods"}, want: []string{
			"NAMESPACE  NAME   IPV6              IPV4       INTERFACE      CONTAINER      ANYCAST",
			"default    web-1  2001:db8:42:1::1  10.42.1.2  flock01234567  0123456789abc  -",
		}},
		{args: []string{"status"}, want: []string{
			"Node:          host001 (file mode)",
			"NodeConfig:    applied",
			"Pools:         ipv6 2001:db8:42:1::/64, 1 allocated",
			"               ipv4 10.42.1.0/24, 1 allocated",
			"Allocations:   1",
			"BGP:           BIRD unreachable: dial unix /run/flock/bird/bird.ctl: connect: connection refused",
			"Anycast:       off",
			"NetworkPolicy: off (file mode, or --netpol=false)",
			"Anti-spoofing: off (--anti-spoofing=false)",
		}},
		{args: []string{"bgp"}, want: []string{
			"Local AS 65101",
			"PEER       ASN    PROTOCOL        STATE    SINCE  INFO",
			"192.0.2.1  65000  bgp4_192_0_2_1  unknown  -      -",
		}, err: "BIRD unreachable: dial unix /run/flock/bird/bird.ctl: connect: connection refused"},
		{args: []string{"anycast"}, want: []string{"Anycast is off on this node: the agent's data path does not route it."}},
		{args: []string{"policy"}, want: []string{"NetworkPolicy is off on this node (file mode, or --netpol=false): every pod is unrestricted."}},
		{args: []string{"services"}, want: []string{"Service addresses are not announced on this node: BGP is off, or the agent runs in file mode."}},
		{name: "services on", full: true, args: []string{"services"}, want: []string{
			"SERVICE    ADDRESS         POLICY   POOL  LOCAL  READY  ANNOUNCED  REASON",
			"demo/web   2001:db8:5::10  Local    web   2      3      yes        Local: 2 ready endpoints on this node",
			"demo/evil  203.0.113.7     Cluster  -     0      1      no         refused: outside every ServiceAddressPool",
		}},
		{name: "status on", full: true, args: []string{"status"}, want: []string{
			"Node:          host001 (kubernetes mode)",
			"NodeConfig:    applied",
			"Pools:         ipv6 2001:db8:42:1::/64, 1 allocated",
			"               ipv4 10.42.1.0/24, 1 allocated",
			"Allocations:   1",
			"BGP:           off (no --bird-config)",
			"Anycast:       1 address, 1 routed, 0 announced",
			"NetworkPolicy: 1 pods restricted, applied never",
			"Anti-spoofing: on, 7 spoofed packets dropped",
		}},
		{name: "anycast on", full: true, args: []string{"anycast"}, want: []string{
			"BGP is off: routed addresses are not announced.",
			"ADDRESS            ROUTED  ANNOUNCED  PODS  NEXT HOPS",
			"2001:db8:ffff::53  yes     no         -     via 2001:db8:42:1::1 dev flock01234567",
		}},
		{name: "policy on", full: true, args: []string{"policy"}, want: []string{
			"Last applied never, table last written never.",
			"NAMESPACE  NAME   INTERFACE      INGRESS                              EGRESS",
			"default    web-1  flock01234567  allow-list ingress_5f0c1d2e3a4b5c6d  deny all",
		}},
	} {
		name := tc.name
		if name == "" {
			name = tc.args[0]
		}
		t.Run(name, func(t *testing.T) {
			s := sock
			if tc.full {
				s = full
			}
			out, err := run(append(tc.args, "--socket", s)...)
			if (err == nil) != (tc.err == "") || (err != nil && err.Error() != tc.err) {
				t.Errorf("error %v, want %q", err, tc.err)
			}
			var lines []string
			for l := range strings.Lines(out) {
				lines = append(lines, strings.TrimRight(l, " \n"))
			}
			if strings.Join(lines, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("output:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestJSON(t *testing.T) {
	sock := serve(t)
	out, err := run("pods", "-o", "json", "--socket", sock)
	if err != nil {
		t.Fatal(err)
	}
	var a admin.Allocations
	if err := json.Unmarshal([]byte(out), &a); err != nil || len(a.Items) != 1 || a.Items[0].Name != "web-1" {
		t.Errorf("pods -o json = %q (%v)", out, err)
	}
}

func TestErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "admin.sock")
	_, err := run("status", "--socket", missing)
	if err == nil || !strings.HasPrefix(err.Error(), "cannot reach the agent at "+missing+": dial unix "+missing) ||
		!strings.Contains(err.Error(), "is flock-agent running") {
		t.Errorf("no agent: %v", err)
	}
	if _, err := run("status", "-o", "yaml", "--socket", serve(t)); err == nil || !strings.Contains(err.Error(), `-o "yaml"`) {
		t.Errorf("-o yaml: %v", err)
	}
	if _, err := run("status", "extra"); err == nil {
		t.Error("status with an argument succeeded")
	}
}

type guard struct{}

func (guard) Drops(context.Context) (uint64, uint64, error) { return 7, 420, nil }
