package datapath

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// netipEqual compares netip values by ==, their meaning.
var netipEqual = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

var (
	pod6   = netip.MustParseAddr("2001:db8:42:1::5")
	pod4   = netip.MustParseAddr("10.42.1.5")
	gw4    = netip.MustParseAddr("10.42.1.1")
	any6   = netip.MustParsePrefix("::/0")
	any4   = netip.MustParsePrefix("0.0.0.0/0")
	c1MAC  = net.HardwareAddr{0x1e, 0xdb, 0xa8, 0xdb, 0x3b, 0xcf} // from sha256("c1") = d0f631ca 1ddba8db3bcf…
	c1Host = "flockd0f631ca"
)

func TestPlanPod(t *testing.T) {
	tests := []struct {
		name string
		a    Attachment
		want Plan
	}{{
		name: "dual-stack",
		a:    Attachment{ContainerID: "c1", IfName: "eth0", Netns: "/run/netns/x", IPv6: pod6, IPv4: pod4, Gateway4: gw4},
		want: Plan{
			HostIface:    c1Host,
			HostMAC:      c1MAC,
			PodIface:     "eth0",
			MTU:          1500,
			HostAddrs:    []netip.Prefix{netip.MustParsePrefix("fe80::1/64")},
			ProxyARP:     true,
			HostRoutes:   []Route{{Dst: netip.MustParsePrefix("2001:db8:42:1::5/128")}, {Dst: netip.MustParsePrefix("10.42.1.5/32")}},
			PodAddrs:     []netip.Prefix{netip.MustParsePrefix("2001:db8:42:1::5/128"), netip.MustParsePrefix("10.42.1.5/32")},
			PodNeighbors: []netip.Addr{netip.MustParseAddr("fe80::1"), gw4},
			PodRoutes:    []Route{{Dst: any6, Via: netip.MustParseAddr("fe80::1")}, {Dst: any4, Via: gw4, OnLink: true}},
		},
	}, {
		name: "ipv6 only, defaults filled in",
		a:    Attachment{ContainerID: "c1", Netns: "/run/netns/x", IPv6: pod6},
		want: Plan{
			HostIface:    c1Host,
			HostMAC:      c1MAC,
			PodIface:     "eth0",
			MTU:          1500,
			HostAddrs:    []netip.Prefix{netip.MustParsePrefix("fe80::1/64")},
			HostRoutes:   []Route{{Dst: netip.MustParsePrefix("2001:db8:42:1::5/128")}},
			PodAddrs:     []netip.Prefix{netip.MustParsePrefix("2001:db8:42:1::5/128")},
			PodNeighbors: []netip.Addr{netip.MustParseAddr("fe80::1")},
			PodRoutes:    []Route{{Dst: any6, Via: netip.MustParseAddr("fe80::1")}},
		},
	}, {
		name: "ipv4 only: no fe80::1 on the host veth",
		a:    Attachment{ContainerID: "c1", IfName: "net1", Netns: "/proc/1/ns/net", HostIface: c1Host, IPv4: pod4, Gateway4: gw4, MTU: 9000},
		want: Plan{
			HostIface:    c1Host,
			HostMAC:      c1MAC,
			PodIface:     "net1",
			MTU:          9000,
			ProxyARP:     true,
			HostRoutes:   []Route{{Dst: netip.MustParsePrefix("10.42.1.5/32")}},
			PodAddrs:     []netip.Prefix{netip.MustParsePrefix("10.42.1.5/32")},
			PodNeighbors: []netip.Addr{gw4},
			PodRoutes:    []Route{{Dst: any4, Via: gw4, OnLink: true}},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.a.Validate(); err != nil {
				t.Fatalf("test attachment invalid: %v", err)
			}
			if diff := cmp.Diff(tt.want, PlanPod(tt.a), netipEqual); diff != "" {
				t.Errorf("PlanPod() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRouteString(t *testing.T) {
	for _, tt := range []struct {
		r    Route
		want string
	}{
		{Route{Dst: netip.MustParsePrefix("10.42.1.5/32")}, "10.42.1.5/32"},
		{Route{Dst: any4, Via: gw4, OnLink: true}, "0.0.0.0/0 via 10.42.1.1 onlink"},
		{Route{Dst: any6, Via: GatewayIPv6}, "::/0 via fe80::1"},
	} {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestPlanPools(t *testing.T) {
	tests := []struct {
		name    string
		p       Pools
		want    PoolPlan
		wantErr string
	}{
		{name: "none", p: Pools{}, want: PoolPlan{}},
		{
			name: "dual-stack, host bits masked, sorted",
			p:    Pools{Pool6: netip.MustParsePrefix("2001:db8:42:1::7/64"), Pool4: netip.MustParsePrefix("10.42.1.9/24")},
			want: PoolPlan{
				Blackholes: []netip.Prefix{netip.MustParsePrefix("10.42.1.0/24"), netip.MustParsePrefix("2001:db8:42:1::/64")},
				LoAddrs:    []netip.Prefix{netip.MustParsePrefix("10.42.1.1/32")},
			},
		},
		{
			name: "ipv6 only: no gateway on lo",
			p:    Pools{Pool6: netip.MustParsePrefix("2001:db8::/96")},
			want: PoolPlan{Blackholes: []netip.Prefix{netip.MustParsePrefix("2001:db8::/96")}},
		},
		{
			name: "smallest ipv4 pool",
			p:    Pools{Pool4: netip.MustParsePrefix("192.0.2.4/30")},
			want: PoolPlan{
				Blackholes: []netip.Prefix{netip.MustParsePrefix("192.0.2.4/30")},
				LoAddrs:    []netip.Prefix{netip.MustParsePrefix("192.0.2.5/32")},
			},
		},
		{
			name: "draining pools and their gateway kept, duplicates once",
			p: Pools{Pool6: netip.MustParsePrefix("2001:db8:42:2::/64"), Pool4: netip.MustParsePrefix("10.42.2.0/24"),
				Draining: []netip.Prefix{netip.MustParsePrefix("2001:db8:42:1::/64"), netip.MustParsePrefix("10.42.1.0/24"),
					netip.MustParsePrefix("2001:db8:42:1::/64")},
				DrainGateways4: []netip.Addr{netip.MustParseAddr("10.42.1.1"), netip.MustParseAddr("10.42.1.1")}},
			want: PoolPlan{
				Blackholes: []netip.Prefix{netip.MustParsePrefix("10.42.1.0/24"), netip.MustParsePrefix("10.42.2.0/24"),
					netip.MustParsePrefix("2001:db8:42:1::/64"), netip.MustParsePrefix("2001:db8:42:2::/64")},
				LoAddrs: []netip.Prefix{netip.MustParsePrefix("10.42.1.1/32"), netip.MustParsePrefix("10.42.2.1/32")},
			},
		},
		{name: "ipv4 /31", p: Pools{Pool4: netip.MustParsePrefix("192.0.2.4/31")}, wantErr: "ipv4 pool 192.0.2.4/31"},
		{name: "ipv6 in pool4", p: Pools{Pool4: netip.MustParsePrefix("2001:db8::/64")}, wantErr: "ipv4 pool"},
		{name: "ipv4 in pool6", p: Pools{Pool6: netip.MustParsePrefix("10.0.0.0/8")}, wantErr: "ipv6 pool 10.0.0.0/8"},
		{name: "ipv6 /128", p: Pools{Pool6: netip.MustParsePrefix("2001:db8::1/128")}, wantErr: "ipv6 pool"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PlanPools(tt.p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("PlanPools() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("PlanPools() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got, netipEqual); diff != "" {
				t.Errorf("PlanPools() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
