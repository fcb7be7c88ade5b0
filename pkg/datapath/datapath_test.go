package datapath

import (
	"net/netip"
	"strings"
	"testing"
)

func TestHostIfaceName(t *testing.T) {
	tests := []struct {
		id   string
		want string
	}{
		// printf %s ID | sha256sum | cut -c1-8
		{"", "flocke3b0c442"},
		{"abc", "flockba7816bf"},
		{"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "flocka8ae6e6e"},
	}
	for _, tt := range tests {
		if got := HostIfaceName(tt.id); got != tt.want {
			t.Errorf("HostIfaceName(%q) = %q, want %q", tt.id, got, tt.want)
		}
	}
	if HostIfaceName("a") == HostIfaceName("b") {
		t.Errorf("HostIfaceName gives different ids the same name")
	}
}

func FuzzHostIfaceName(f *testing.F) {
	for _, s := range []string{"", "abc", "a/b c:d", strings.Repeat("x", 300), "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		name := HostIfaceName(id)
		if !validIfName(name) || len(name) > 15 {
			t.Fatalf("HostIfaceName(%q) = %q, not a valid interface name", id, name)
		}
		if !isHostIface(name) {
			t.Fatalf("HostIfaceName(%q) = %q, not recognised by isHostIface", id, name)
		}
		if again := HostIfaceName(id); again != name {
			t.Fatalf("HostIfaceName(%q) = %q, then %q", id, name, again)
		}
		mac := hostMAC(id)
		if len(mac) != 6 || mac[0]&0x01 != 0 || mac[0]&0x02 == 0 {
			t.Fatalf("hostMAC(%q) = %s, not a locally administered unicast MAC", id, mac)
		}
	})
}

func TestIsHostIface(t *testing.T) {
	for name, want := range map[string]bool{
		"flock1a2b3c4d":  true,
		"flock1A2B3C4D":  false,
		"flock1a2b3c4":   false,
		"flock1a2b3c4d5": false,
		"flack1a2b3c4d":  false,
		"flock1a2b3c4g":  false,
		"eth0":           false,
	} {
		if got := isHostIface(name); got != want {
			t.Errorf("isHostIface(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Attachment{
		ContainerID: "c1",
		IfName:      "eth0",
		Netns:       "/run/netns/x",
		IPv6:        netip.MustParseAddr("2001:db8::5"),
		IPv4:        netip.MustParseAddr("10.42.1.5"),
		Gateway4:    netip.MustParseAddr("10.42.1.1"),
	}
	tests := []struct {
		name    string
		edit    func(a *Attachment)
		wantErr string // "" = valid
	}{
		{"dual-stack", func(a *Attachment) {}, ""},
		{"ipv6 only", func(a *Attachment) { a.IPv4, a.Gateway4 = netip.Addr{}, netip.Addr{} }, ""},
		{"ipv4 only", func(a *Attachment) { a.IPv6 = netip.Addr{} }, ""},
		{"default ifname", func(a *Attachment) { a.IfName = "" }, ""},
		{"host iface given", func(a *Attachment) { a.HostIface = HostIfaceName("c1") }, ""},
		{"mtu", func(a *Attachment) { a.MTU = 9000 }, ""},
		{"ipv4 only small mtu", func(a *Attachment) { a.IPv6, a.MTU = netip.Addr{}, 576 }, ""},
		{"no container id", func(a *Attachment) { a.ContainerID = "" }, "no container id"},
		{"wrong host iface", func(a *Attachment) { a.HostIface = "flock00000000" }, `host iface "flock00000000"`},
		{"bad ifname", func(a *Attachment) { a.IfName = "eth0/1" }, "pod iface name"},
		{"long ifname", func(a *Attachment) { a.IfName = "a234567890123456" }, "pod iface name"},
		{"no netns", func(a *Attachment) { a.Netns = "" }, "no netns"},
		{"no address", func(a *Attachment) { a.IPv6, a.IPv4 = netip.Addr{}, netip.Addr{} }, "neither"},
		{"ipv4 in ipv6 field", func(a *Attachment) { a.IPv6 = netip.MustParseAddr("10.0.0.1") }, "ipv6 address 10.0.0.1"},
		{"4in6 in ipv6 field", func(a *Attachment) { a.IPv6 = netip.MustParseAddr("::ffff:10.0.0.1") }, "ipv6 address"},
		{"link-local ipv6", func(a *Attachment) { a.IPv6 = netip.MustParseAddr("fe80::5") }, "ipv6 address fe80::5"},
		{"ipv6 in ipv4 field", func(a *Attachment) { a.IPv4 = netip.MustParseAddr("2001:db8::1") }, "ipv4 address"},
		{"no gateway", func(a *Attachment) { a.Gateway4 = netip.Addr{} }, "ipv4 gateway"},
		{"gateway is pod", func(a *Attachment) { a.Gateway4 = a.IPv4 }, "ipv4 gateway"},
		{"mtu too small for ipv6", func(a *Attachment) { a.MTU = 1000 }, "mtu 1000 is outside 1280-65535"},
		{"mtu too big", func(a *Attachment) { a.MTU = 70000 }, "mtu 70000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := ok
			tt.edit(&a)
			err := a.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestPoolGateway4(t *testing.T) {
	for pool, want := range map[string]string{
		"10.42.1.0/24":  "10.42.1.1",
		"10.42.1.77/24": "10.42.1.1",
		"10.0.0.0/8":    "10.0.0.1",
		"192.0.2.64/26": "192.0.2.65",
	} {
		if got := PoolGateway4(netip.MustParsePrefix(pool)); got != netip.MustParseAddr(want) {
			t.Errorf("PoolGateway4(%s) = %s, want %s", pool, got, want)
		}
	}
}
