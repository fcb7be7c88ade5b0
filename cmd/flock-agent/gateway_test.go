package main

import (
	"errors"
	"net/netip"
	"sync"
	"testing"

	"github.com/fritzlab/flock/pkg/model"
)

type fakeGateways struct {
	gws    []netip.Addr
	fail   bool
	closed bool
}

func (f *fakeGateways) DefaultGateways() ([]netip.Addr, error) {
	if f.fail {
		return nil, errors.New("netlink socket broken")
	}
	return f.gws, nil
}

func (f *fakeGateways) Close() { f.closed = true }

// The resolver opens one netlink socket for all its callers and keeps it;
// a socket that failed is replaced on the next call; a node without
// default-gateway peers opens none.
func TestGatewayResolverReusesOneSocket(t *testing.T) {
	gw := netip.MustParseAddr("2001:db8:0:1::1")
	var (
		opens   int
		current *fakeGateways
	)
	g := &gatewayResolver{open: func() (gatewayLister, error) {
		opens++
		current = &fakeGateways{gws: []netip.Addr{gw}}
		return current, nil
	}}
	fixed := &model.Node{BGP: &model.BGP{Peers: []model.Peer{{Address: netip.MustParseAddr("2001:db8::9")}}}}
	if got := g.resolve(fixed); got != fixed || opens != 0 {
		t.Fatalf("a node without default-gateway peers: %d sockets opened", opens)
	}
	node := &model.Node{BGP: &model.BGP{Peers: []model.Peer{{DefaultGateway: 6, ASN: 65000}}}}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if got := g.resolve(node); got.BGP.Peers[0].Address != gw {
				t.Errorf("resolved peer %v, want %s", got.BGP.Peers[0].Address, gw)
			}
		})
	}
	wg.Wait()
	if opens != 1 {
		t.Errorf("%d sockets opened for 8 calls, want 1", opens)
	}
	broken := current
	broken.fail = true
	if got := g.resolve(node); got != node {
		t.Errorf("with a failing socket: %+v, want the node unresolved", got.BGP.Peers)
	}
	if !broken.closed {
		t.Error("the failed socket was not closed")
	}
	if got := g.resolve(node); got.BGP.Peers[0].Address != gw || opens != 2 {
		t.Errorf("after a failure: peer %v, %d sockets opened; want %s and a second socket", got.BGP.Peers[0].Address, opens, gw)
	}
}
