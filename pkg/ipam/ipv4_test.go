package ipam

import (
	"net/netip"
	"testing"
)

// The bitmap's word and chunk boundaries are where an off-by-one would hide.
func TestBitmapNextClear(t *testing.T) {
	var b bitmap
	for i := range uint64(chunkBits + 70) {
		b.set(i)
	}
	b.set(2*chunkBits + 5)
	b.clear(64)
	tests := []struct {
		from, to uint64
		want     uint64
		ok       bool
	}{
		{0, 64, 0, false},
		{0, 65, 64, true},
		{65, 128, 0, false},
		{0, 100, 64, true},
		{65, chunkBits, 0, false},
		{65, chunkBits + 70, 0, false},
		{65, chunkBits + 71, chunkBits + 70, true},
		{chunkBits - 1, 3 * chunkBits, chunkBits + 70, true},
		{2 * chunkBits, 3 * chunkBits, 2 * chunkBits, true},
		{2*chunkBits + 5, 2*chunkBits + 6, 0, false},
		{2*chunkBits + 5, 2*chunkBits + 7, 2*chunkBits + 6, true},
		// A chunk never allocated is all clear.
		{5 * chunkBits, 5*chunkBits + 1, 5 * chunkBits, true},
		{7, 7, 0, false},
	}
	for _, tt := range tests {
		got, ok := b.nextClear(tt.from, tt.to)
		if got != tt.want || ok != tt.ok {
			t.Errorf("nextClear(%d, %d) = %d, %v; want %d, %v", tt.from, tt.to, got, ok, tt.want, tt.ok)
		}
	}
}

func TestGateway(t *testing.T) {
	tests := []struct {
		pool netip.Prefix
		want netip.Addr
	}{
		{pfx("10.42.1.0/24"), addr("10.42.1.1")},
		{pfx("10.42.1.77/24"), addr("10.42.1.1")},
		{pfx("192.0.2.4/30"), addr("192.0.2.5")},
		{pfx("2001:db8::/64"), netip.Addr{}},
		{netip.Prefix{}, netip.Addr{}},
	}
	for _, tt := range tests {
		if got := Gateway(tt.pool); got != tt.want {
			t.Errorf("Gateway(%s) = %s, want %s", tt.pool, got, tt.want)
		}
	}
}
