package main

import (
	"context"
	"math/big"
	"net/netip"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/metrics"
)

// usageEvery is how often the agent recomputes the NodeConfig's
// status.usage; it is written only when it changed, so a burst of ADDs is
// at most one write per period.
const usageEvery = 5 * time.Second

// usageSink writes status.usage (kube.Source).
type usageSink interface {
	SetUsage(u *v1alpha1.NodeUsage)
}

// usageParts are what status.usage is made of; nil ones are off.
type usageParts struct {
	pools   func() []metrics.Pool
	peers   func(ctx context.Context) ([]metrics.Peer, error)
	anycast func() metrics.Anycast
	policy  func() metrics.Policy
	// loads counts the NetworkPolicy tables loaded (nil: policy off).
	loads *atomic.Int64
}

// reportUsage recomputes the usage every usageEvery and hands it to sink
// when it changed, until ctx ends.
func reportUsage(ctx context.Context, sink usageSink, p usageParts) {
	t := time.NewTicker(usageEvery)
	defer t.Stop()
	var last *v1alpha1.NodeUsage
	for {
		u := p.usage(ctx)
		if last == nil || !equality.Semantic.DeepEqual(*u, *last) {
			sink.SetUsage(u)
			last = u
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p usageParts) usage(ctx context.Context) *v1alpha1.NodeUsage {
	u := &v1alpha1.NodeUsage{}
	for _, pool := range p.pools() {
		u.Pools = append(u.Pools, v1alpha1.PoolUsage{Family: pool.Family, CIDR: pool.CIDR, Allocated: int64(pool.Allocated),
			Free: freeAddrs(pool.CIDR, int64(pool.Allocated))})
	}
	if p.peers != nil {
		peers, _ := p.peers(ctx)
		u.BGPConfigured = int32(len(peers))
		for _, peer := range peers {
			if peer.Established {
				u.BGPEstablished++
			}
		}
	}
	if p.anycast != nil {
		u.AnycastAnnounced = int32(p.anycast().Announced)
	}
	if p.policy != nil && p.loads != nil {
		u.PolicyGeneration = p.loads.Load()
		if at := p.policy().LastApply; !at.IsZero() {
			// Whole seconds, as the API server keeps it, so an unchanged
			// usage compares equal to what the object says.
			t := metav1.NewTime(at).Rfc3339Copy()
			u.PolicyAppliedTime = &t
		}
	}
	return u
}

// freeAddrs counts a pool's free addresses exactly (a float loses the low
// digits of an IPv6 /64): its size less the addresses never handed out
// (ipam.Capacity) less those allocated.
func freeAddrs(cidr string, allocated int64) string {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return "0"
	}
	n := new(big.Int).Lsh(big.NewInt(1), uint(p.Addr().BitLen()-p.Bits()))
	reserved := int64(1) // the IPv6 subnet-router anycast address
	if p.Addr().Is4() {
		reserved = 3 // network, gateway, broadcast
	}
	n.Sub(n, big.NewInt(reserved+allocated))
	if n.Sign() < 0 {
		return "0"
	}
	return n.String()
}
