package datapath

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fritzlab/flock/pkg/anycast"
)

var (
	acAddr6 = netip.MustParseAddr("2001:db8:ffff::80")
	acAddr4 = netip.MustParseAddr("192.0.2.180")
	acDst6  = netip.PrefixFrom(acAddr6, 128)
	acDst4  = netip.PrefixFrom(acAddr4, 32)
	acA6    = anycast.NextHop{Via: netip.MustParseAddr("2001:db8:42:1::a"), Dev: "flock0000000a"}
	acB6    = anycast.NextHop{Via: netip.MustParseAddr("2001:db8:42:1::b"), Dev: "flock0000000b"}
	acA4    = anycast.NextHop{Via: netip.MustParseAddr("10.42.1.10"), Dev: "flock0000000a"}
	acB4    = anycast.NextHop{Via: netip.MustParseAddr("10.42.1.11"), Dev: "flock0000000b"}
)

func TestAnycastRoutes(t *testing.T) {
	addr := netip.MustParseAddr
	got, errs := anycastRoutes(map[netip.Addr][]anycast.NextHop{
		// Sorted, deduplicated.
		acAddr6: {acB6, acA6, acB6},
		// The next hop of the wrong family is dropped, the other kept.
		acAddr4: {acA4, {Via: acA6.Via, Dev: "flockx"}},
		// Nothing left to route: absent.
		addr("fe80::1"):            {acA6},
		addr("2001:db8:ffff::1"):   {{Via: acA6.Via, Dev: "bad/name"}},
		addr("::ffff:192.0.2.1"):   {acA4},
		addr("2001:db8:ffff::3"):   {{Via: addr("fe80::2"), Dev: "flock0000000a"}},
		addr("2001:db8:ffff::4%x"): {acA6},
		// No next hop at all: absent, and not an error.
		addr("2001:db8:ffff::2"): nil,
	})
	want := []anycastRoute{
		{Dst: acDst4, Hops: []anycast.NextHop{acA4}},
		{Dst: acDst6, Hops: []anycast.NextHop{acA6, acB6}},
	}
	if diff := cmp.Diff(want, got, netipEqual); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	wantErrs := []string{
		"anycast address 192.0.2.180: next hop via 2001:db8:42:1::a dev flockx: not a global unicast address of the same family",
		"anycast address ::ffff:192.0.2.1: not a global unicast address",
		"anycast address 2001:db8:ffff::1: next hop via 2001:db8:42:1::a dev bad/name: invalid device name",
		"anycast address 2001:db8:ffff::3: next hop via fe80::2 dev flock0000000a: not a global unicast address of the same family",
		"anycast address 2001:db8:ffff::4%x: not a global unicast address",
		"anycast address fe80::1: not a global unicast address",
	}
	if diff := cmp.Diff(wantErrs, msgs); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestPlanAnycast(t *testing.T) {
	r6 := anycastRoute{Dst: acDst6, Hops: []anycast.NextHop{acA6, acB6}}
	r4 := anycastRoute{Dst: acDst4, Hops: []anycast.NextHop{acA4}}
	other := netip.MustParsePrefix("2001:db8:ffff::99/128")
	tests := []struct {
		name       string
		want, have []anycastRoute
		plan       anycastPlan
	}{{
		name: "nothing",
	}, {
		name: "all new",
		want: []anycastRoute{r4, r6},
		plan: anycastPlan{Add: []anycastRoute{r4, r6}},
	}, {
		name: "already right, next hops in another order",
		want: []anycastRoute{r4, r6},
		have: []anycastRoute{{Dst: acDst6, Hops: []anycast.NextHop{acB6, acA6}}, r4},
	}, {
		name: "a next hop less",
		want: []anycastRoute{{Dst: acDst6, Hops: []anycast.NextHop{acB6}}},
		have: []anycastRoute{r6},
		plan: anycastPlan{Replace: []anycastRoute{{Dst: acDst6, Hops: []anycast.NextHop{acB6}}}},
	}, {
		name: "a next hop more",
		want: []anycastRoute{r6},
		have: []anycastRoute{{Dst: acDst6, Hops: []anycast.NextHop{acA6}}},
		plan: anycastPlan{Replace: []anycastRoute{r6}},
	}, {
		name: "same next hops, odd shape",
		want: []anycastRoute{r4},
		have: []anycastRoute{{Dst: acDst4, Hops: []anycast.NextHop{acA4}, Odd: true}},
		plan: anycastPlan{Replace: []anycastRoute{r4}},
	}, {
		name: "not wanted any more",
		want: []anycastRoute{r4},
		have: []anycastRoute{{Dst: other, Hops: []anycast.NextHop{acA6}}, r6, r4},
		plan: anycastPlan{Delete: []int{1, 0}},
	}, {
		name: "two routes for one destination: start over",
		want: []anycastRoute{r6},
		have: []anycastRoute{r6, {Dst: acDst6, Hops: []anycast.NextHop{acA6}}},
		plan: anycastPlan{Delete: []int{0, 1}, Add: []anycastRoute{r6}},
	}, {
		name: "everything goes",
		have: []anycastRoute{r6, r4},
		plan: anycastPlan{Delete: []int{1, 0}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.plan, planAnycast(tt.want, tt.have), netipEqual); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAnycastRouteString(t *testing.T) {
	r := anycastRoute{Dst: acDst6, Hops: []anycast.NextHop{acA6, acB6}}
	want := "2001:db8:ffff::80/128 via 2001:db8:42:1::a dev flock0000000a via 2001:db8:42:1::b dev flock0000000b"
	if got := r.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
