package bird

import (
	"bufio"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// lines splits a reply as readReply would have read it.
func replyLines(t *testing.T, s string) []Line {
	t.Helper()
	out, err := readReply(bufioReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

// Captured from BIRD 2.0.12: an idle BGP session, an established one (with
// a filtered count), a static protocol.
const protocolsAll = `2002-Name       Proto      Table      State  Since         Info
1002-bgp6_2001_db8_ff__1 BGP        ---        start  15:10:10.164  Idle
1006-  BGP state:          Idle
     Neighbor address: 2001:db8:ff::1
     Neighbor AS:      65000
     Local AS:         65001
   Channel ipv6
     State:          DOWN
     Table:          master6
 
1002-bgp4_192_0_2_1 BGP        ---        up     15:11:00.000  Established
1006-  BGP state:          Established
     Neighbor address: 192.0.2.1
   Channel ipv4
     State:          UP
     Routes:         3 imported, 1 filtered, 2 exported, 3 preferred
   Channel ipv6
     Routes:         0 imported, 1 exported, 0 preferred
 
1002-static6    Static     master6    up     15:10:10.164
1006-  Channel ipv6
     Routes:         1 imported, 0 exported, 1 preferred
 
0000 
`

func TestParseProtocolsAll(t *testing.T) {
	got := ParseProtocolsAll(replyLines(t, protocolsAll))
	want := []ProtocolDetail{
		{Protocol: Protocol{Name: "bgp6_2001_db8_ff__1", Proto: "BGP", Table: "---", State: "start", Since: "15:10:10.164", Info: "Idle"},
			BGPState: "Idle", Neighbor: netip.MustParseAddr("2001:db8:ff::1")},
		{Protocol: Protocol{Name: "bgp4_192_0_2_1", Proto: "BGP", Table: "---", State: "up", Since: "15:11:00.000", Info: "Established"},
			BGPState: "Established", Neighbor: netip.MustParseAddr("192.0.2.1"),
			Channels: map[string]RouteCounts{"ipv4": {Imported: 3, Exported: 2}, "ipv6": {Exported: 1}}},
		{Protocol: Protocol{Name: "static6", Proto: "Static", Table: "master6", State: "up", Since: "15:10:10.164"},
			Channels: map[string]RouteCounts{"ipv6": {Imported: 1}}},
	}
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("ParseProtocolsAll (-want +got):\n%s", d)
	}
}

func TestParseBFDSessions(t *testing.T) {
	got := ParseBFDSessions(replyLines(t, `1020-bfd1:
 IP address                Interface  State      Since         Interval  Timeout
 2001:db8:ff::1            eth0       Up         15:10:10.164    0.100    0.500
 192.0.2.1                 eth0       Down       15:10:10.164    1.000    0.000
0000 
`))
	want := []BFDSession{
		{Address: netip.MustParseAddr("2001:db8:ff::1"), Interface: "eth0", State: "Up"},
		{Address: netip.MustParseAddr("192.0.2.1"), Interface: "eth0", State: "Down"},
	}
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("ParseBFDSessions (-want +got):\n%s", d)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"14:59:30.500", time.Date(2026, 12, 3, 14, 59, 30, 5e8, time.UTC), true},
		{"15:30:00", time.Date(2026, 12, 2, 15, 30, 0, 0, time.UTC), true}, // later than now: yesterday
		{"2026-11-30", time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), true},
		{"soon", time.Time{}, false},
	} {
		got, ok := ParseSince(tc.in, now)
		if ok != tc.ok || !got.Equal(tc.want) {
			t.Errorf("ParseSince(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzParseProtocolsAll(f *testing.F) {
	f.Add(protocolsAll)
	f.Add("1020-bfd1:\n 2001:db8::1 eth0 Up 15:10:10.164 0.1 0.5\n0000 \n")
	f.Fuzz(func(t *testing.T, s string) {
		lines, err := readReply(bufioReader(s))
		if err != nil {
			return
		}
		for _, p := range ParseProtocolsAll(lines) {
			for _, rc := range p.Channels {
				if rc.Imported < 0 || rc.Exported < 0 {
					t.Fatalf("negative route count %+v", rc)
				}
			}
		}
		for _, b := range ParseBFDSessions(lines) {
			if !b.Address.IsValid() {
				t.Fatalf("session without an address: %+v", b)
			}
		}
		now := time.Now()
		if got, ok := ParseSince(strings.TrimSpace(s), now); ok && got.After(now) {
			t.Fatalf("ParseSince(%q) = %v, after now", s, got)
		}
	})
}
