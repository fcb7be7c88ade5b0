package policy

import (
	"net/netip"
	"testing"
)

func TestDecide(t *testing.T) {
	a := &Allow{Rules: []Rule{
		{Peers: []Peer{{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Except: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}}},
			Ports: []PortRange{{TCP, 80, 80}}},
		{Peers: []Peer{{Prefix: netip.MustParsePrefix("2001:db8::/32")}}, Ports: []PortRange{{UDP, 1000, 2000}}},
		{Peers: []Peer{{Prefix: netip.MustParsePrefix("192.0.2.1/32")}}},
	}}
	for _, tc := range []struct {
		remote string
		proto  Protocol
		port   uint16
		rule   int
	}{
		{"10.2.3.4", TCP, 80, 0},
		{"10.1.3.4", TCP, 80, -1}, // the except
		{"10.2.3.4", UDP, 80, -1},
		{"2001:db8::5", UDP, 1500, 1},
		{"192.0.2.1", SCTP, 9, 2},
	} {
		d := Decide(a, netip.MustParseAddr(tc.remote), tc.proto, tc.port)
		if d.Rule != tc.rule || d.Allowed != (tc.rule >= 0) || !d.Isolated {
			t.Errorf("Decide(%s %s/%d) = %+v, want rule %d", tc.remote, tc.proto, tc.port, d, tc.rule)
		}
		if d.Allowed != a.Permits(netip.MustParseAddr(tc.remote), tc.proto, tc.port) {
			t.Errorf("Decide and Permits disagree on %s %s/%d", tc.remote, tc.proto, tc.port)
		}
	}
	if got := a.Rules[0].String(); got != "peers 10.0.0.0/8 except 10.1.0.0/16 on tcp/80" {
		t.Errorf("rule text %q", got)
	}
	if d := Decide(nil, netip.MustParseAddr("10.0.0.1"), TCP, 1); d.Isolated || !d.Allowed {
		t.Errorf("no allow-list: %+v, want unrestricted", d)
	}
}
