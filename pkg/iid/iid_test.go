package iid

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var (
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr
)

// zeros is a random source that only ever returns zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestParseAlgo(t *testing.T) {
	tests := []struct {
		in      string
		want    Algo
		wantErr bool
	}{
		{in: "random", want: Random},
		{in: "hash", want: Hash},
		{in: "ipv4", want: IPv4},
		{in: " Hash\t", want: Hash},
		{in: "IPV4", want: IPv4},
		{in: "", wantErr: true},
		{in: "sequential", wantErr: true},
		{in: "hash,ipv4", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseAlgo(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseAlgo(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseAlgo(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// The golden hash addresses were computed by hand from
// `echo -n default/web-0 | sha256sum` (53842afe623a6f1e182f9c81e2492a92…):
// the host part is the low bits of the first 16 bytes with the last nibble
// replaced by the counter. If this test fails, pods' stable addresses change
// across an upgrade: that is a breaking change, not a test to update.
func TestDeriveHashGolden(t *testing.T) {
	in := Input{Namespace: "default", Name: "web-0"}
	tests := []struct {
		r    string
		try  int
		want string
	}{
		{"2001:db8:42::/48", 0, "2001:db8:42:6f1e:182f:9c81:e249:2a90"},
		{"2001:db8:42:1::/64", 0, "2001:db8:42:1:182f:9c81:e249:2a90"},
		{"2001:db8:42:1::/64", 3, "2001:db8:42:1:182f:9c81:e249:2a93"},
		{"2001:db8:42:1::/64", 15, "2001:db8:42:1:182f:9c81:e249:2a9f"},
		{"2001:db8:42:1::/80", 0, "2001:db8:42:1::9c81:e249:2a90"},
		{"2001:db8:42:1::/96", 0, "2001:db8:42:1::e249:2a90"},
		{"2001:db8:42:1::/112", 1, "2001:db8:42:1::2a91"},
		{"2001:db8:42:1::/120", 2, "2001:db8:42:1::92"},
		// Host bits in the range are ignored: the range is its network.
		{"2001:db8:42:1::ffff/64", 0, "2001:db8:42:1:182f:9c81:e249:2a90"},
	}
	for _, tt := range tests {
		// A random source that fails shows hash never reads it.
		got, err := Derive(Hash, pfx(tt.r), in, tt.try, iotestErrReader{})
		if err != nil {
			t.Errorf("Derive(hash, %s, try %d): %v", tt.r, tt.try, err)
			continue
		}
		if got != addr(tt.want) {
			t.Errorf("Derive(hash, %s, try %d) = %s, want %s", tt.r, tt.try, got, tt.want)
		}
	}
}

func TestDeriveHashDiffersByName(t *testing.T) {
	r := pfx("2001:db8::/64")
	a, errA := Derive(Hash, r, Input{Namespace: "prod", Name: "db-1"}, 0, nil)
	b, errB := Derive(Hash, r, Input{Namespace: "prod", Name: "db-2"}, 0, nil)
	// "prod/db-1" must not equal namespace "prod/db" with name "-1" etc.:
	// the separator cannot occur in a namespace, so this is unambiguous.
	c, errC := Derive(Hash, r, Input{Namespace: "prodd", Name: "b-1"}, 0, nil)
	if err := errors.Join(errA, errB, errC); err != nil {
		t.Fatal(err)
	}
	if a == b || a == c {
		t.Errorf("different pods got the same address: %s %s %s", a, b, c)
	}
}

func TestDeriveIPv4(t *testing.T) {
	tests := []struct {
		r    string
		v4   string
		try  int
		want string
	}{
		{"2001:db8:42:1::/64", "10.42.1.5", 0, "2001:db8:42:1::a2a:105"},
		// The counter sits right above the IPv4 address (bits 32–35).
		{"2001:db8:42:1::/64", "10.42.1.5", 1, "2001:db8:42:1::1:a2a:105"},
		{"2001:db8:42:1::/64", "10.42.1.5", 15, "2001:db8:42:1::f:a2a:105"},
		{"2001:db8:42::/48", "192.0.2.1", 0, "2001:db8:42::c000:201"},
		{"2001:db8:42:1::/80", "192.0.2.1", 2, "2001:db8:42:1::2:c000:201"},
		{"2001:db8:42:1::/92", "255.255.255.255", 15, "2001:db8:42:1::f:ffff:ffff"},
		// An IPv4-mapped IPv6 address is still the pod's IPv4 address.
		{"2001:db8:42:1::/64", "::ffff:10.42.1.5", 0, "2001:db8:42:1::a2a:105"},
	}
	for _, tt := range tests {
		got, err := Derive(IPv4, pfx(tt.r), Input{IPv4: addr(tt.v4)}, tt.try, nil)
		if err != nil {
			t.Errorf("Derive(ipv4, %s, %s, try %d): %v", tt.r, tt.v4, tt.try, err)
			continue
		}
		if got != addr(tt.want) {
			t.Errorf("Derive(ipv4, %s, %s, try %d) = %s, want %s", tt.r, tt.v4, tt.try, got, tt.want)
		}
	}
}

func TestDeriveRandom(t *testing.T) {
	for _, r := range []string{"2001:db8::/48", "2001:db8::/64", "2001:db8::/80", "2001:db8::/96", "2001:db8::/112", "2001:db8::/120"} {
		p := pfx(r)
		// All-ones random bits give the highest address of the range, so
		// the test sees exactly which bits came from the source.
		ones := bytes.NewReader(bytes.Repeat([]byte{0xff}, 16))
		got, err := Derive(Random, p, Input{}, 0, ones)
		if err != nil {
			t.Fatalf("Derive(random, %s): %v", r, err)
		}
		if want := last(p); got != want {
			t.Errorf("Derive(random, %s) with all-ones bits = %s, want %s", r, got, want)
		}
	}
}

func TestDeriveRandomSkipsZeroHost(t *testing.T) {
	// The first draw is all zero in the host part (only prefix bits set),
	// the second gives host ::1: random must draw again, not return ::0.
	src := append(bytes.Repeat([]byte{0xff}, 15), 0x00)
	src = append(src, make([]byte, 15)...)
	src = append(src, 0x01)
	got, err := Derive(Random, pfx("2001:db8::/120"), Input{}, 0, bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if want := addr("2001:db8::1"); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestDeriveZeroHost(t *testing.T) {
	// sha256("default/pod-19") has byte 15 = 0x0a: in a /120 only its
	// high nibble (0) is used, so try 0 would be the subnet-router address.
	in := Input{Namespace: "default", Name: "pod-19"}
	r := pfx("2001:db8::/120")
	if _, err := Derive(Hash, r, in, 0, nil); !errors.Is(err, ErrSubnetRouter) {
		t.Errorf("hash try 0: err = %v, want ErrSubnetRouter", err)
	}
	if got, err := Derive(Hash, r, in, 1, nil); err != nil || got != addr("2001:db8::1") {
		t.Errorf("hash try 1 = %s, %v; want 2001:db8::1", got, err)
	}
	if _, err := Derive(IPv4, pfx("2001:db8::/64"), Input{IPv4: addr("0.0.0.0")}, 0, nil); !errors.Is(err, ErrSubnetRouter) {
		t.Errorf("ipv4 0.0.0.0 try 0: err = %v, want ErrSubnetRouter", err)
	}
}

func TestDeriveErrors(t *testing.T) {
	v4 := Input{Namespace: "ns", Name: "p", IPv4: addr("10.0.0.2")}
	tests := []struct {
		name string
		algo Algo
		r    netip.Prefix
		in   Input
		try  int
		rnd  io.Reader
		want string
	}{
		{"zero prefix", Hash, netip.Prefix{}, v4, 0, nil, "not a valid prefix"},
		{"ipv4 prefix", Hash, pfx("10.0.0.0/8"), v4, 0, nil, "not an IPv6 prefix"},
		{"mapped prefix", Hash, pfx("::ffff:10.0.0.0/104"), v4, 0, nil, "not an IPv6 prefix"},
		{"/121", Random, pfx("2001:db8::/121"), v4, 0, zeros{}, "longer than /120"},
		{"try 16", Hash, pfx("2001:db8::/64"), v4, 16, nil, "try 16 out of range"},
		{"try -1", Random, pfx("2001:db8::/64"), v4, -1, zeros{}, "try -1 out of range"},
		{"unknown algo", "sequential", pfx("2001:db8::/64"), v4, 0, nil, `unknown algorithm "sequential"`},
		{"empty algo", "", pfx("2001:db8::/64"), v4, 0, nil, `unknown algorithm ""`},
		{"ipv4 in /96", IPv4, pfx("2001:db8::/96"), v4, 0, nil, "longer than /92"},
		{"ipv4 in /93", IPv4, pfx("2001:db8::/93"), v4, 0, nil, "longer than /92"},
		{"ipv4 missing", IPv4, pfx("2001:db8::/64"), Input{}, 0, nil, "not a valid IPv4 address"},
		{"ipv4 is v6", IPv4, pfx("2001:db8::/64"), Input{IPv4: addr("2001:db8::1")}, 0, nil, "not a valid IPv4 address"},
		{"random nil reader", Random, pfx("2001:db8::/64"), v4, 0, nil, "no random source"},
		{"random read error", Random, pfx("2001:db8::/64"), v4, 0, iotestErrReader{}, "read random bits"},
		{"random short read", Random, pfx("2001:db8::/64"), v4, 0, bytes.NewReader([]byte{1, 2}), "unexpected EOF"},
		{"random only zeros", Random, pfx("2001:db8::/64"), v4, 0, zeros{}, "all-zero host part 64 times"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Derive(tt.algo, tt.r, tt.in, tt.try, tt.rnd)
			if err == nil {
				t.Fatalf("Derive = %s, want error containing %q", got, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestHostMask(t *testing.T) {
	tests := []struct {
		n    int
		want u128
	}{
		{8, u128{0, 0xff}},
		{64, u128{0, ^uint64(0)}},
		{65, u128{1, ^uint64(0)}},
		{80, u128{0xffff, ^uint64(0)}},
		{128, u128{^uint64(0), ^uint64(0)}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, hostMask(tt.n), cmp.AllowUnexported(u128{})); diff != "" {
			t.Errorf("hostMask(%d) (-want +got):\n%s", tt.n, diff)
		}
	}
}

// last is the highest address of p.
func last(p netip.Prefix) netip.Addr {
	return fromAddr(p.Masked().Addr()).or(hostMask(128 - p.Bits())).addr()
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("entropy pool on fire") }
