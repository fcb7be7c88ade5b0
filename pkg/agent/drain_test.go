package agent

import (
	"context"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fritzlab/flock/pkg/datapath"
	"github.com/fritzlab/flock/pkg/model"
	"github.com/fritzlab/flock/pkg/rpc"
	"github.com/fritzlab/flock/pkg/store"
)

var (
	pfx = netip.MustParsePrefix
	ip  = netip.MustParseAddr
)

var netipCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
var prefixCmp = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

func TestDrains(t *testing.T) {
	old6, old4 := pfx("2001:db8:42:1::/64"), pfx("10.42.1.0/24")
	new6, new4 := pfx("2001:db8:42:2::/64"), pfx("10.42.2.0/24")
	rec := func(v6, v4 string, p6, p4 netip.Prefix) store.Record {
		r := store.Record{Pool6: p6, Pool4: p4}
		if v6 != "" {
			r.IPv6 = ip(v6)
		}
		if v4 != "" {
			r.IPv4 = ip(v4)
			r.Gateway4 = ipam4Gateway(p4, v4)
		}
		return r
	}
	tests := []struct {
		name string
		recs []store.Record
		want []Drain
	}{
		{name: "no allocations", want: []Drain{}},
		{
			name: "all in the current pools",
			recs: []store.Record{rec("2001:db8:42:2::5", "10.42.2.5", new6, new4)},
			want: []Drain{},
		},
		{
			name: "two pods in the old pools, one in the new",
			recs: []store.Record{
				rec("2001:db8:42:1::5", "10.42.1.5", old6, old4),
				rec("2001:db8:42:1::6", "10.42.1.6", old6, old4),
				rec("2001:db8:42:2::5", "10.42.2.5", new6, new4),
			},
			want: []Drain{
				{Prefix: old4, Gateway4: ip("10.42.1.1"), Allocations: 2},
				{Prefix: old6, Allocations: 2},
			},
		},
		{
			name: "no pool recorded (an older agent's file): the address alone",
			recs: []store.Record{rec("2001:db8:42:1::5", "", netip.Prefix{}, netip.Prefix{})},
			want: []Drain{{Prefix: pfx("2001:db8:42:1::5/128"), Allocations: 1}},
		},
		{
			name: "recorded pool not containing the address is not trusted",
			recs: []store.Record{rec("2001:db8:99::5", "", old6, netip.Prefix{})},
			want: []Drain{{Prefix: pfx("2001:db8:99::5/128"), Allocations: 1}},
		},
		{
			name: "an old pool the new one contains is not draining",
			recs: []store.Record{rec("2001:db8:42:2::5", "", pfx("2001:db8:42:2::/80"), netip.Prefix{})},
			want: []Drain{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Drains(new6, new4, tt.recs)
			if diff := cmp.Diff(tt.want, got, netipCmp, prefixCmp); diff != "" {
				t.Errorf("Drains (-want +got):\n%s", diff)
			}
		})
	}
}

func ipam4Gateway(pool netip.Prefix, _ string) netip.Addr {
	if !pool.IsValid() {
		return netip.Addr{}
	}
	return datapath.PoolGateway4(pool)
}

// TestPoolChangeDrains: after a pool change, the old pools stay in the
// node's pool routes (and BIRD's announcements, through Draining) while a
// pod holds them, and go with its DEL; the hook hears both.
func TestPoolChangeDrains(t *testing.T) {
	e := newEnv(t)
	var heard [][]Drain
	e.a.SetDrainHook(func(_ *model.Node, d []Drain) { heard = append(heard, d) })
	e.add("old")
	old := *e.src.node
	e.src.mu.Lock()
	e.src.node.Pool6, e.src.node.Pool4 = pfx("2001:db8:42:2::/64"), pfx("10.42.2.0/29")
	e.src.mu.Unlock()
	res := e.add("new")
	if got := ips(res); len(got) != 2 || !pfx("2001:db8:42:2::/64").Contains(netip.MustParsePrefix(got[0]).Addr()) {
		t.Errorf("new pod got %v, want addresses of the new pools", got)
	}
	wantPools := datapath.Pools{Pool6: pfx("2001:db8:42:2::/64"), Pool4: pfx("10.42.2.0/29"),
		Draining: []netip.Prefix{old.Pool4, old.Pool6}, DrainGateways4: []netip.Addr{ip("10.42.1.1")}}
	if diff := cmp.Diff(wantPools, e.dp.pools, netipCmp, prefixCmp); diff != "" {
		t.Errorf("pool routes while draining (-want +got):\n%s", diff)
	}
	n, _ := e.src.Node(context.Background())
	if diff := cmp.Diff([]netip.Prefix{old.Pool4, old.Pool6}, e.a.Draining(n), prefixCmp); diff != "" {
		t.Errorf("Draining (-want +got):\n%s", diff)
	}
	if r := e.a.Handle(context.Background(), req(rpc.OpDel, "old")); r.Error != nil {
		t.Fatal(r.Error)
	}
	wantPools.Draining, wantPools.DrainGateways4 = nil, nil
	if diff := cmp.Diff(wantPools, e.dp.pools, netipCmp, prefixCmp); diff != "" {
		t.Errorf("pool routes after the last old pod's DEL (-want +got):\n%s", diff)
	}
	if d := e.a.Draining(n); len(d) != 0 {
		t.Errorf("Draining after the DEL = %v", d)
	}
	if len(heard) < 2 || len(heard[len(heard)-2]) != 2 || len(heard[len(heard)-1]) != 0 {
		t.Errorf("hook heard %v, want the two old pools, then none", heard)
	}
}
