// Package iid derives the interface identifier (the host part) of a pod's
// IPv6 address inside a range of the node's pool.
//
// Three algorithms exist (the pod annotation flock.fritzlab.net/ip-algo
// picks one):
//
//   - random: random bits below the prefix, fresh on every try. The
//     default: addresses say nothing about the pod and are hard to guess.
//   - hash: the low host bits of the first 16 bytes of
//     SHA-256("namespace/name"), read as a big-endian number. Stable by
//     contract: the same pod name gets the same address in the same pool on
//     any agent, before and after restarts and upgrades, so a StatefulSet
//     pod that comes back keeps its address. Changing the hash breaks that
//     contract; the tests pin golden addresses for that reason.
//   - ipv4: the pod's IPv4 address in the low 32 bits, so the two addresses
//     of a dual-stack pod are easy to correlate by eye.
//
// The deterministic algorithms would hand two pods the same address when
// their inputs collide (two names whose hashes agree in the host bits, or a
// pool so narrow that little of the hash fits). They therefore reserve one
// nibble as a collision counter, which the caller raises on every try:
//
//   - hash: the lowest nibble (bits 0–3), so the address ends in the counter
//     digit (usually 0). The lowest nibble works for every pool up to /120,
//     which leaves 4 hash bits above it.
//   - ipv4: the nibble right above the IPv4 address (bits 32–35), since the
//     low 32 bits are taken. This needs 36 host bits: the prefix must be /92
//     or shorter.
//
// The counter is a nibble so it shows as exactly one hex digit of the
// address; 16 tries are plenty when the input itself differs per pod.
package iid

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// Algo is an IID derivation algorithm.
type Algo string

// The algorithms; the values are what the ip-algo annotation says.
const (
	Random Algo = "random"
	Hash   Algo = "hash"
	IPv4   Algo = "ipv4"
)

// MaxTries is how many tries Derive accepts (try 0..MaxTries-1): the values
// of the one-nibble collision counter.
const MaxTries = 16

// MaxBits is the longest prefix Derive works in: the counter nibble plus at
// least four bits of the derived identifier.
const MaxBits = 120

// ErrSubnetRouter is returned when a deterministic algorithm would yield an
// all-zero host part: that is the range's subnet-router anycast address
// (RFC 4291 §2.6.1), which routers answer for, so a pod must never get it.
// It only happens on try 0; the caller moves on to the next try.
var ErrSubnetRouter = errors.New("host part is all zero (the subnet-router anycast address)")

// randomAttempts bounds how often random rereads when it drew the all-zero
// host part. With an 8-bit host part a draw is zero with probability 1/256,
// so 64 zero draws in a row mean the reader is broken, not unlucky.
const randomAttempts = 64

// ParseAlgo parses an algorithm name. It forgives surrounding whitespace and
// case ("Hash ", "IPV4") because annotations are typed by hand and the intent
// of such values is unambiguous.
func ParseAlgo(s string) (Algo, error) {
	switch a := Algo(strings.ToLower(strings.TrimSpace(s))); a {
	case Random, Hash, IPv4:
		return a, nil
	}
	return "", fmt.Errorf("unknown ip-algo %q (want random, hash or ipv4)", s)
}

// Input is what the deterministic algorithms derive from.
type Input struct {
	// Namespace and Name are the pod's; hash uses them.
	Namespace, Name string
	// IPv4 is the pod's IPv4 address; ipv4 embeds it.
	IPv4 netip.Addr
}

// Derive returns the address for the try-th attempt (0..MaxTries-1) inside
// r, an IPv6 prefix of length at most MaxBits. random reads from rnd and
// ignores try beyond checking it; hash and ipv4 ignore rnd and return the
// same address for the same input, range and try. The result is always
// inside r and never r's all-zero host part.
func Derive(algo Algo, r netip.Prefix, in Input, try int, rnd io.Reader) (netip.Addr, error) {
	if err := checkRange(r); err != nil {
		return netip.Addr{}, fmt.Errorf("iid %s: %w", algo, err)
	}
	if try < 0 || try >= MaxTries {
		return netip.Addr{}, fmt.Errorf("iid %s in %s: try %d out of range 0..%d", algo, r, try, MaxTries-1)
	}
	r = r.Masked()
	mask := hostMask(128 - r.Bits())
	var host u128
	switch algo {
	case Random:
		h, err := random(rnd, mask)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("iid random in %s: %w", r, err)
		}
		host = h
	case Hash:
		sum := sha256.Sum256([]byte(in.Namespace + "/" + in.Name))
		host = fromBytes(sum[:16]).and(mask)
		host.lo = host.lo&^0xf | uint64(try)
	case IPv4:
		if r.Bits() > 92 {
			return netip.Addr{}, fmt.Errorf("iid ipv4 in %s: prefix longer than /92 leaves no room for the IPv4 address and the collision counter", r)
		}
		v4 := in.IPv4.Unmap()
		if !v4.Is4() {
			return netip.Addr{}, fmt.Errorf("iid ipv4 in %s: pod IPv4 address %q is not a valid IPv4 address", r, in.IPv4)
		}
		host.lo = uint64(try)<<32 | uint64(binary.BigEndian.Uint32(v4.AsSlice()))
	default:
		return netip.Addr{}, fmt.Errorf("iid in %s: unknown algorithm %q", r, algo)
	}
	if host.isZero() {
		return netip.Addr{}, fmt.Errorf("iid %s in %s try %d: %w", algo, r, try, ErrSubnetRouter)
	}
	return fromAddr(r.Addr()).or(host).addr(), nil
}

// checkRange rejects what Derive cannot work in.
func checkRange(r netip.Prefix) error {
	switch {
	case !r.IsValid():
		return fmt.Errorf("range %s is not a valid prefix", r)
	case !r.Addr().Is6() || r.Addr().Is4In6():
		return fmt.Errorf("range %s is not an IPv6 prefix", r)
	case r.Bits() > MaxBits:
		return fmt.Errorf("range %s is longer than /%d: no room for a collision counter and a host part", r, MaxBits)
	}
	return nil
}

// random draws host bits until they are not all zero.
func random(rnd io.Reader, mask u128) (u128, error) {
	if rnd == nil {
		return u128{}, errors.New("no random source")
	}
	var b [16]byte
	for range randomAttempts {
		if _, err := io.ReadFull(rnd, b[:]); err != nil {
			return u128{}, fmt.Errorf("read random bits: %w", err)
		}
		if h := fromBytes(b[:]).and(mask); !h.isZero() {
			return h, nil
		}
	}
	return u128{}, fmt.Errorf("random source returned an all-zero host part %d times in a row", randomAttempts)
}

// u128 is an IPv6 address as a number, for masking and combining.
type u128 struct{ hi, lo uint64 }

func fromBytes(b []byte) u128 {
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:16])}
}

func fromAddr(a netip.Addr) u128 {
	b := a.As16()
	return fromBytes(b[:])
}

func (u u128) addr() netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], u.hi)
	binary.BigEndian.PutUint64(b[8:], u.lo)
	return netip.AddrFrom16(b)
}

// hostMask has the low n bits set (0 < n <= 128).
func hostMask(n int) u128 {
	switch {
	case n >= 128:
		return u128{^uint64(0), ^uint64(0)}
	case n > 64:
		return u128{^uint64(0) >> (128 - n), ^uint64(0)}
	default:
		return u128{0, ^uint64(0) >> (64 - n)}
	}
}

func (u u128) and(v u128) u128 { return u128{u.hi & v.hi, u.lo & v.lo} }
func (u u128) or(v u128) u128  { return u128{u.hi | v.hi, u.lo | v.lo} }
func (u u128) isZero() bool    { return u.hi == 0 && u.lo == 0 }
