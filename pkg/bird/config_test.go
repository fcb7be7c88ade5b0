package bird

import (
	"net/netip"
	"strings"
	"testing"
)

func TestValidateAccepts(t *testing.T) {
	for name, mod := range map[string]func(c *Config){
		"typical":       func(c *Config) {},
		"no peers":      func(c *Config) { c.Peers = nil },
		"no pools":      func(c *Config) { c.Pool6, c.Pool4 = netip.Prefix{}, netip.Prefix{} },
		"ibgp":          func(c *Config) { c.Peers[0].ASN = c.ASN },
		"4-byte asns":   func(c *Config) { c.ASN, c.Peers[0].ASN = 4200000000, 4294967295 },
		"hold time 3":   func(c *Config) { c.Peers[0].HoldTime = 3 },
		"hold max":      func(c *Config) { c.Peers[0].HoldTime = 65535 },
		"restart 1":     func(c *Config) { c.Peers[0].RestartTime = 1 },
		"restart max":   func(c *Config) { c.Peers[0].RestartTime = 4095 },
		"multihop 255":  func(c *Config) { c.Peers[0].Multihop = 255 },
		"password 80":   func(c *Config) { c.Peers[0].Password = strings.Repeat("x", 80) },
		"password punc": func(c *Config) { c.Peers[0].Password = " !#$%&'()*+,-./:;<=>?@[]^_`{|}~" },
		"anycast dup":   func(c *Config) { c.Anycast = []netip.Addr{addr("192.0.2.1"), addr("192.0.2.1")} },
		"ipv6-only with router id": func(c *Config) {
			c.Addresses, c.Pool4 = []netip.Prefix{pfx("2001:db8:1ab:1::2/64")}, netip.Prefix{}
			c.Peers, c.RouterID = c.Peers[:1], addr("10.0.0.1")
		},
		"ipv6-only without peers": func(c *Config) {
			c.Addresses, c.Peers = []netip.Prefix{pfx("2001:db8:1ab:1::2/64")}, nil
		},
		"multihop with source": func(c *Config) {
			c.Peers[0] = Peer{Address: addr("2001:db8:99::1"), ASN: 65000, Multihop: 3, SourceAddress: addr("2001:db8:1ab:1::2")}
		},
		"multihop on the subnet": func(c *Config) { c.Peers[0].Multihop = 2 },
	} {
		c := typicalNode()
		mod(c)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: Validate: %v", name, err)
		}
	}
}

// Every bad value is rejected with an error that names its field and
// value.
func TestValidateRejects(t *testing.T) {
	for _, tc := range []struct {
		mod  func(c *Config)
		want string
	}{
		{func(c *Config) { c.ASN = 0 }, "asn 0: must be 1 to 4294967295"},
		{func(c *Config) { c.ASN = 23456 }, "asn 23456: is AS_TRANS"},
		{func(c *Config) { c.RouterID = addr("2001:db8::1") }, `routerID "2001:db8::1": not an IPv4 address`},
		{func(c *Config) { c.RouterID = addr("0.0.0.0") }, `routerID "0.0.0.0": must not be 0.0.0.0`},
		{func(c *Config) { c.Addresses = []netip.Prefix{pfx("2001:db8:1ab:1::2/64")} },
			"routerID: not set, and the node has no IPv4 address outside pool4"},
		{func(c *Config) { c.Addresses = append(c.Addresses, netip.Prefix{}) }, `addresses[6] "invalid Prefix": not an address`},
		{func(c *Config) { c.Addresses[0] = pfx("::ffff:198.19.1.2/120") }, `addresses[0] "::ffff:198.19.1.2/120": an IPv4-mapped`},
		{func(c *Config) { c.Pool6 = pfx("10.0.0.0/8") }, `pool6 "10.0.0.0/8": not an IPv6 prefix`},
		{func(c *Config) { c.Pool6 = pfx("::ffff:10.0.0.0/104") }, `pool6 "::ffff:10.0.0.0/104": not an IPv6 prefix`},
		{func(c *Config) { c.Pool4 = pfx("2001:db8::/64") }, `pool4 "2001:db8::/64": not an IPv4 prefix`},
		{func(c *Config) { c.Pool4 = pfx("10.42.1.1/24") }, `pool4 "10.42.1.1/24": host bits set (the network is 10.42.1.0/24)`},
		{func(c *Config) { c.Pool6 = pfx("fe80::/64") }, `pool6 "fe80::/64": not a global unicast`},
		{func(c *Config) { c.Pool4 = pfx("224.0.0.0/24") }, `pool4 "224.0.0.0/24": not a global unicast`},
		{func(c *Config) { c.Anycast = []netip.Addr{addr("192.0.2.1"), {}} }, `anycast[1] "invalid IP": not an IP address`},
		{func(c *Config) { c.Anycast = []netip.Addr{addr("ff02::1")} }, `anycast[0] "ff02::1": not a global unicast`},
		{func(c *Config) { c.Anycast = []netip.Addr{addr("fe80::1%eth0")} }, `anycast[0] "fe80::1%eth0": has a zone`},
		{func(c *Config) { c.Anycast = []netip.Addr{addr("::ffff:192.0.2.1")} }, `anycast[0] "::ffff:192.0.2.1": an IPv4-mapped`},
		{func(c *Config) { c.Anycast = []netip.Addr{addr("255.255.255.255")} }, `anycast[0] "255.255.255.255": not a global unicast`},
		{func(c *Config) { c.Peers[1].Address = netip.Addr{} }, `peers[1].address "invalid IP": not an IP address`},
		{func(c *Config) { c.Peers[0].Address = addr("fe80::1") }, `peers[0].address "fe80::1": not a global unicast`},
		{func(c *Config) { c.Peers[0].Address = addr("::") }, `peers[0].address "::": not a global unicast`},
		{func(c *Config) { c.Peers[1].Address = addr("127.0.0.1") }, `peers[1].address "127.0.0.1": not a global unicast`},
		{func(c *Config) { c.Peers[1].Address = addr("::ffff:198.19.1.1") }, `peers[1].address "::ffff:198.19.1.1": an IPv4-mapped`},
		{func(c *Config) { c.Peers[1].Address = c.Peers[0].Address }, `peers[1].address "2001:db8:1ab:1::1": listed twice (also peers[0])`},
		{func(c *Config) { c.Peers[1].Address = addr("198.19.1.2") }, `peers[1].address "198.19.1.2": is one of the node's own addresses`},
		{func(c *Config) { c.Peers[0].Address = addr("2001:db8:42:1::1") }, `peers[0].address "2001:db8:42:1::1": inside the node's pod pool 2001:db8:42:1::/64`},
		{func(c *Config) { c.Peers[0].Address = addr("2001:db8:99::1") }, `peers[0].address "2001:db8:99::1": no node address on the peer's subnet`},
		{func(c *Config) { c.Peers[0].Address, c.Peers[0].Multihop = addr("2001:db8:99::1"), 2 },
			`peers[0].address "2001:db8:99::1": no node address on the peer's subnet; set sourceAddress for a multihop peer`},
		{func(c *Config) { c.Peers[0].ASN = 0 }, "peers[0].asn 0: must be 1"},
		{func(c *Config) { c.Peers[1].ASN = 23456 }, "peers[1].asn 23456: is AS_TRANS"},
		{func(c *Config) { c.Peers[0].HoldTime = 2 }, "peers[0].holdTime 2: must be 0 (BIRD's default) or 3 to 65535 seconds"},
		{func(c *Config) { c.Peers[0].HoldTime = -1 }, "peers[0].holdTime -1:"},
		{func(c *Config) { c.Peers[0].HoldTime = 65536 }, "peers[0].holdTime 65536:"},
		{func(c *Config) { c.Peers[0].RestartTime = 4096 }, "peers[0].restartTime 4096: must be 0 (BIRD's default) or 1 to 4095 seconds"},
		{func(c *Config) { c.Peers[0].RestartTime = -5 }, "peers[0].restartTime -5:"},
		{func(c *Config) { c.Peers[0].Multihop = 256 }, "peers[0].multihop 256: must be 0 (directly connected) or a TTL of 1 to 255"},
		{func(c *Config) { c.Peers[0].Multihop = -1 }, "peers[0].multihop -1:"},
		{func(c *Config) { c.Peers[0].Password = `a"b` }, "peers[0].password: byte 1 is a double quote"},
		{func(c *Config) { c.Peers[0].Password = `a\` }, "peers[0].password: byte 1 is a backslash"},
		{func(c *Config) { c.Peers[0].Password = "a\nb" }, "peers[0].password: byte 1 is not printable ASCII"},
		{func(c *Config) { c.Peers[0].Password = "\x00" }, "peers[0].password: byte 0 is not printable ASCII"},
		{func(c *Config) { c.Peers[0].Password = "pä" }, "peers[0].password: byte 1 is not printable ASCII"},
		{func(c *Config) { c.Peers[0].Password = "x\x7f" }, "peers[0].password: byte 1 is not printable ASCII"},
		{func(c *Config) { c.Peers[0].Password = strings.Repeat("x", 81) }, "peers[0].password: 81 bytes long, at most 80"},
		{func(c *Config) { c.Peers[0].SourceAddress = addr("2001:db8:1ab:1::99") }, `peers[0].sourceAddress "2001:db8:1ab:1::99": not one of the node's addresses`},
		{func(c *Config) { c.Peers[0].SourceAddress = addr("198.19.1.2") }, `peers[0].sourceAddress "198.19.1.2": not of the same family as address "2001:db8:1ab:1::1"`},
		{func(c *Config) { c.Peers[0].SourceAddress = addr("fe80::2") }, `peers[0].sourceAddress "fe80::2": not a global unicast`},
	} {
		c := typicalNode()
		tc.mod(c)
		err := c.Validate()
		if err == nil {
			t.Errorf("Validate accepted a config that should fail with %q", tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate: %v\nwant an error containing %q", err, tc.want)
		}
		if _, rerr := Render(c); rerr == nil {
			t.Errorf("Render accepted a config that Validate rejects (%q)", tc.want)
		}
	}
}

func TestValidateNeverEchoesPassword(t *testing.T) {
	c := typicalNode()
	c.Peers[0].Password = "hunter2\"secret"
	if err := c.Validate(); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Validate: %v; want an error that does not repeat the password", err)
	}
}

// All problems are reported at once, so an operator fixes them in one go.
func TestValidateReportsAll(t *testing.T) {
	c := typicalNode()
	c.ASN = 0
	c.Peers[0].HoldTime = 1
	c.Peers[1].Multihop = 300
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate accepted three bad values")
	}
	for _, want := range []string{"asn 0", "peers[0].holdTime 1", "peers[1].multihop 300"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v\nlacks %q", err, want)
		}
	}
}

func TestLocalAddress(t *testing.T) {
	addrs := []netip.Prefix{
		pfx("fe80::2/64"), pfx("2001:db8:1ab::5/48"), pfx("2001:db8:1ab:1::9/64"), pfx("2001:db8:1ab:1::3/64"),
		pfx("198.19.0.2/16"), pfx("198.19.1.2/24"), pfx("::ffff:198.19.1.7/120"), pfx("10.0.0.1/32"),
	}
	for _, tc := range []struct{ peer, want string }{
		{"2001:db8:1ab:1::1", "2001:db8:1ab:1::3"}, // the most specific subnet, then the lowest address
		{"2001:db8:1ab:7::1", "2001:db8:1ab::5"},
		{"198.19.1.1", "198.19.1.2"},
		{"198.19.9.1", "198.19.0.2"},
		{"fe80::1", ""}, // never a link-local source
		{"2001:db8:2::1", ""},
		{"10.0.0.1", ""}, // the node's own address
		{"192.0.2.1", ""},
	} {
		got, err := LocalAddress(addr(tc.peer), addrs)
		if tc.want == "" {
			if err == nil {
				t.Errorf("LocalAddress(%s) = %s, want an error", tc.peer, got)
			}
			continue
		}
		if err != nil || got != addr(tc.want) {
			t.Errorf("LocalAddress(%s) = %v, %v; want %s", tc.peer, got, err, tc.want)
		}
	}
}
