// Package ipam hands out pod addresses from a node's pools. It keeps no
// state on disk: the agent persists every allocation and, after a restart,
// seeds a fresh Allocator with Reserve before it serves the first request.
//
// One mutex guards everything. An allocation does a handful of map lookups
// for IPv6 and a bitmap scan from a cursor for IPv4, both far cheaper than
// the veth and netlink work around them, so finer locking would buy nothing.
package ipam

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"

	"github.com/fritzlab/flock/pkg/iid"
	"github.com/fritzlab/flock/pkg/model"
)

// ErrExhausted is wrapped by allocation errors when a range had no free
// address, so callers can tell a full pool from a misconfiguration.
var ErrExhausted = errors.New("range exhausted")

// Request asks for a pod's addresses.
type Request struct {
	// Owner is recorded with each address (e.g. "containerID/ifname"), so
	// that InUse can say who holds an address.
	Owner string
	// Namespace and Name are the pod's; the hash algorithm derives from them.
	Namespace, Name string
	// Families are the families to allocate; at least one.
	Families model.Families
	// Ranges6 and Ranges4 are the candidate ranges in order of preference
	// (annotations.Resolve narrows them against the pools). Empty means the
	// whole pool. Parts of a range outside the pool are never used.
	Ranges6, Ranges4 []netip.Prefix
	// Algo derives the IPv6 interface identifier; empty means iid.Random.
	Algo iid.Algo
}

// Allocation is what a Request got.
type Allocation struct {
	// IPv6 and IPv4 are the pod's addresses; zero for a family not asked for.
	IPv6, IPv4 netip.Addr
	// Gateway4 is the pool's IPv4 gateway when IPv4 was allocated: the pod's
	// on-link default gateway, answered by proxy_arp on the host veth.
	Gateway4 netip.Addr
}

// Allocator hands out addresses from one node's pools. It is safe for
// concurrent use.
type Allocator struct {
	pool6, pool4 netip.Prefix

	mu  sync.Mutex
	rnd io.Reader
	// owners holds every address in use, inside the pools or not.
	owners map[netip.Addr]string
	// v4 mirrors owners for the addresses of pool4, by offset from its
	// network address, so a scan does not probe the map address by address.
	v4 bitmap
	// cursor4 is the pool4 offset after the last IPv4 allocation. Scanning
	// from there rather than from the start hands out every address before
	// reusing a released one, like host-local does: a just-freed address may
	// still be in peers' conntrack and neighbour tables.
	cursor4 uint64
	// onRetry is called for every IPv6 candidate already in use.
	onRetry func()
}

// OnRetry sets a function called (under the Allocator's lock) for every
// IPv6 candidate that was already in use, so the agent can count
// collisions; set it before the first Allocate.
func (a *Allocator) OnRetry(f func()) { a.onRetry = f }

// New returns an Allocator for the given pools; either may be the zero
// Prefix when the node has no pool of that family. rnd feeds the random IID
// algorithm; nil means crypto/rand.
func New(pool6, pool4 netip.Prefix, rnd io.Reader) *Allocator {
	if rnd == nil {
		rnd = rand.Reader
	}
	return &Allocator{
		pool6:  pool6.Masked(),
		pool4:  pool4.Masked(),
		rnd:    rnd,
		owners: map[netip.Addr]string{},
	}
}

// Allocate reserves the requested families' addresses for req.Owner. IPv4
// comes first because the ipv4 IID algorithm embeds it. Either every
// requested family is allocated or nothing stays reserved.
func (a *Allocator) Allocate(req Request) (Allocation, error) {
	pod := req.Namespace + "/" + req.Name
	if !req.Families.IPv6 && !req.Families.IPv4 {
		return Allocation{}, fmt.Errorf("allocate for %s: no address family requested", pod)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var out Allocation
	if req.Families.IPv4 {
		addr, err := a.allocate4(req.Ranges4)
		if err != nil {
			return Allocation{}, fmt.Errorf("allocate IPv4 for %s: %w", pod, err)
		}
		a.take(addr, req.Owner)
		out.IPv4, out.Gateway4 = addr, Gateway(a.pool4)
	}
	if req.Families.IPv6 {
		addr, err := a.allocate6(req, out.IPv4)
		if err != nil {
			if out.IPv4.IsValid() {
				a.release(out.IPv4)
			}
			return Allocation{}, fmt.Errorf("allocate IPv6 for %s: %w", pod, err)
		}
		a.take(addr, req.Owner)
		out.IPv6 = addr
	}
	return out, nil
}

// allocate6 tries each range in order; in each, the IID algorithm's tries
// until one yields a free address.
func (a *Allocator) allocate6(req Request, v4 netip.Addr) (netip.Addr, error) {
	if !a.pool6.IsValid() {
		return netip.Addr{}, errors.New("the node has no IPv6 pool")
	}
	algo := req.Algo
	if algo == "" {
		algo = iid.Random
	}
	in := iid.Input{Namespace: req.Namespace, Name: req.Name, IPv4: v4}
	var errs rangeErrors
	for _, r := range orPool(req.Ranges6, a.pool6) {
		r, ok := clip(a.pool6, r)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: outside pool %s", r, a.pool6))
			continue
		}
		addr, err := a.derive(algo, r, in)
		if err == nil {
			return addr, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", r, err))
	}
	return netip.Addr{}, errs
}

// derive returns the first free address of the algorithm's tries in r.
func (a *Allocator) derive(algo iid.Algo, r netip.Prefix, in iid.Input) (netip.Addr, error) {
	for try := range iid.MaxTries {
		addr, err := iid.Derive(algo, r, in, try, a.rnd)
		if errors.Is(err, iid.ErrSubnetRouter) {
			continue
		}
		if err != nil {
			return netip.Addr{}, err
		}
		if _, used := a.owners[addr]; !used {
			return addr, nil
		}
		if a.onRetry != nil {
			a.onRetry()
		}
	}
	return netip.Addr{}, fmt.Errorf("%w: the %d addresses ip-algo %s yields are all in use", ErrExhausted, iid.MaxTries, algo)
}

// Reserve records addresses as in use by owner: the agent seeds the
// Allocator from its on-disk store with it. Addresses outside the pools are
// recorded too, so that if the pools change they are still never handed
// out while a pod holds them. Reserving an address again for the same owner
// is a no-op; an address held by another owner is an error, and then nothing
// is reserved.
func (a *Allocator) Reserve(owner string, addrs ...netip.Addr) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, addr := range addrs {
		if !addr.IsValid() {
			return fmt.Errorf("reserve for %s: invalid address", owner)
		}
		if o, ok := a.owners[addr.Unmap()]; ok && o != owner {
			return fmt.Errorf("reserve %s for %s: already in use by %s", addr, owner, o)
		}
	}
	for _, addr := range addrs {
		a.take(addr.Unmap(), owner)
	}
	return nil
}

// Release frees addresses. Addresses not in use are ignored, so releasing
// twice (a repeated CNI DEL) is harmless.
func (a *Allocator) Release(addrs ...netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, addr := range addrs {
		a.release(addr.Unmap())
	}
}

// InUse reports whether addr is in use, and by whom.
func (a *Allocator) InUse(addr netip.Addr) (owner string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	owner, ok = a.owners[addr.Unmap()]
	return owner, ok
}

// Used is the number of addresses in use.
func (a *Allocator) Used() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.owners)
}

func (a *Allocator) take(addr netip.Addr, owner string) {
	a.owners[addr] = owner
	if off, ok := a.offset4(addr); ok {
		a.v4.set(off)
	}
}

func (a *Allocator) release(addr netip.Addr) {
	if _, ok := a.owners[addr]; !ok {
		return
	}
	delete(a.owners, addr)
	if off, ok := a.offset4(addr); ok {
		a.v4.clear(off)
	}
}

// clip returns the part of r inside pool: the pool when r covers it, r when
// the pool covers it; false when they do not overlap or differ in family.
func clip(pool, r netip.Prefix) (netip.Prefix, bool) {
	r = r.Masked()
	switch {
	case !r.IsValid() || r.Addr().BitLen() != pool.Addr().BitLen():
		return r, false
	case r.Bits() <= pool.Bits() && r.Contains(pool.Addr()):
		return pool, true
	case pool.Contains(r.Addr()):
		return r, true
	}
	return r, false
}

func orPool(ranges []netip.Prefix, pool netip.Prefix) []netip.Prefix {
	if len(ranges) == 0 {
		return []netip.Prefix{pool}
	}
	return ranges
}

// rangeErrors says why each range failed, on one line (it ends up in a CNI
// error and an Event), and unwraps to every reason so errors.Is finds
// ErrExhausted.
type rangeErrors []error

func (e rangeErrors) Error() string {
	s := make([]string, len(e))
	for i, err := range e {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

func (e rangeErrors) Unwrap() []error { return e }
