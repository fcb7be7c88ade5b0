package netpol

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fritzlab/flock/pkg/policy"
	"github.com/fritzlab/flock/pkg/store"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeCluster is an informer cache the test fills.
type fakeCluster struct {
	synced               atomic.Bool
	changes, peerChanges chan struct{}

	mu   sync.Mutex
	in   policy.Input
	gets int // Pod calls
}

func newFakeCluster() *fakeCluster {
	return &fakeCluster{changes: make(chan struct{}, 1), peerChanges: make(chan struct{}, 1)}
}

func (f *fakeCluster) HasSynced() bool              { return f.synced.Load() }
func (f *fakeCluster) Changes() <-chan struct{}     { return f.changes }
func (f *fakeCluster) PeerChanges() <-chan struct{} { return f.peerChanges }

func (f *fakeCluster) Input([]policy.Pod) *policy.Input {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &policy.Input{
		Policies:   slices.Clone(f.in.Policies),
		Namespaces: slices.Clone(f.in.Namespaces),
		Pods:       slices.Clone(f.in.Pods),
	}
}

func (f *fakeCluster) Pod(_ context.Context, namespace, name, uid string) (*policy.Pod, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	for _, p := range f.in.Pods {
		if p.Namespace == namespace && p.Name == name && (uid == "" || p.UID == uid) {
			return &p, nil
		}
	}
	return nil, errors.New("pod " + namespace + "/" + name + " not found")
}

func (f *fakeCluster) set(mut func(in *policy.Input)) {
	f.mu.Lock()
	mut(&f.in)
	f.mu.Unlock()
	select {
	case f.changes <- struct{}{}:
	default:
	}
}

// peerChanged pokes PeerChanges, as a pod elsewhere that the node's rules
// reference does.
func (f *fakeCluster) peerChanged() {
	select {
	case f.peerChanges <- struct{}{}:
	default:
	}
}

// fakeLocals is the agent's store.
type fakeLocals struct {
	mu      sync.Mutex
	records []store.Record
	// onList, when set, runs once after the next List has read the
	// records (to make something happen in between).
	onList func()
}

func (f *fakeLocals) List() []store.Record {
	f.mu.Lock()
	out := slices.Clone(f.records)
	hook := f.onList
	f.onList = nil
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	return out
}

func (f *fakeLocals) add(r store.Record) {
	f.mu.Lock()
	f.records = append(f.records, r)
	f.mu.Unlock()
}

func (f *fakeLocals) remove(iface string) {
	f.mu.Lock()
	f.records = slices.DeleteFunc(f.records, func(r store.Record) bool { return r.HostIface == iface })
	f.mu.Unlock()
}

// fakeRules records what the controller asks of the kernel.
type fakeRules struct {
	mu       sync.Mutex
	calls    []string
	models   []*policy.Model
	applyErr error
	addOK    bool
	addErr   error
}

func (f *fakeRules) Apply(_ context.Context, m *policy.Model) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "apply")
	f.models = append(f.models, m)
	return true, f.applyErr
}

func (f *fakeRules) Add(_ context.Context, m *policy.Model) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "add")
	f.models = append(f.models, m)
	return f.addOK, f.addErr
}

func (f *fakeRules) Resync(context.Context) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "resync")
	return false, nil
}

func (f *fakeRules) failApply(err error) {
	f.mu.Lock()
	f.applyErr = err
	f.mu.Unlock()
}

// take returns and forgets the calls and models so far.
func (f *fakeRules) take() ([]string, []*policy.Model) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, m := f.calls, f.models
	f.calls, f.models = nil, nil
	return c, m
}

// The test cluster: namespace x with a default deny of ingress and an
// allow from pods labelled role=client; pods x/remote on node n2 (a
// client) and x/a on this node n1.
const node = "n1"

func testCluster() *fakeCluster {
	f := newFakeCluster()
	f.in = policy.Input{
		Namespaces: []policy.Namespace{{Name: "x"}},
		Policies: []networkingv1.NetworkPolicy{
			{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "deny"}},
			{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "clients"}, Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "server"}},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{
					PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "client"}},
				}}}},
			}},
		},
		Pods: []policy.Pod{
			{Namespace: "x", Name: "remote", UID: "u-r", Node: "n2", Labels: map[string]string{"role": "client"},
				IPs: []netip.Addr{netip.MustParseAddr("2001:db8:2::1")}},
			{Namespace: "x", Name: "a", UID: "u-a", Node: node, Labels: map[string]string{"role": "server"},
				IPs: []netip.Addr{netip.MustParseAddr("2001:db8:1::a")}},
		},
	}
	return f
}

func record(ns, name, uid, iface string, ip string) store.Record {
	return store.Record{ContainerID: "c-" + name, IfName: "eth0", Namespace: ns, Name: name, UID: uid,
		HostIface: iface, IPv6: netip.MustParseAddr(ip)}
}
