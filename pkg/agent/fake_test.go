package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/fritzlab/flock/pkg/datapath"
	"github.com/fritzlab/flock/pkg/model"
)

// fakeSource serves one node and a map of pods.
type fakeSource struct {
	mu       sync.Mutex
	node     *model.Node
	pods     map[string]*model.Pod
	gone     map[string]bool // ns/name the API does not have
	unsynced bool
}

func (s *fakeSource) Node(context.Context) (*model.Node, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.node == nil {
		return nil, fmt.Errorf("node test: %w", model.ErrNoNodeConfig)
	}
	n := *s.node
	return &n, nil
}

func (s *fakeSource) Pod(_ context.Context, ns, name string) (*model.Pod, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone[ns+"/"+name] {
		return nil, fmt.Errorf("pod %s/%s: %w", ns, name, model.ErrPodNotFound)
	}
	if p, ok := s.pods[ns+"/"+name]; ok {
		return p, nil
	}
	return &model.Pod{Namespace: ns, Name: name}, nil
}

// fakeRecorder keeps the warnings.
type fakeRecorder struct {
	mu       sync.Mutex
	warnings []string
}

func (r *fakeRecorder) PodWarning(pod *model.Pod, reason, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.warnings = append(r.warnings, pod.Key()+" "+reason+": "+msg)
}

// fakeDatapath keeps the set of attachments that are "in the kernel" and
// fails on demand.
type fakeDatapath struct {
	mu          sync.Mutex
	up          map[string]datapath.Attachment // by host iface
	pools       datapath.Pools
	failSetup   error
	failTeardow error
	stray       []string // host ifaces with no attachment
	anycast     map[string][]netip.Addr
	goneNetns   map[string]bool
	live        []datapath.Live
}

func newFakeDatapath() *fakeDatapath { return &fakeDatapath{up: map[string]datapath.Attachment{}} }

func (d *fakeDatapath) Setup(a datapath.Attachment) (datapath.Result, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failSetup != nil {
		return datapath.Result{}, d.failSetup
	}
	if a.HostIface != datapath.HostIfaceName(a.ContainerID) {
		return datapath.Result{}, errors.New("host iface not derived from the container id")
	}
	d.up[a.HostIface] = a
	return datapath.Result{HostMAC: "02:00:00:00:00:01", PodMAC: "02:00:00:00:00:02", PodIfIndex: 2}, nil
}

func (d *fakeDatapath) Teardown(a datapath.Attachment) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failTeardow != nil {
		return d.failTeardow
	}
	delete(d.up, a.HostIface)
	for i, s := range d.stray {
		if s == a.HostIface {
			d.stray = append(d.stray[:i], d.stray[i+1:]...)
			break
		}
	}
	return nil
}

func (d *fakeDatapath) Check(a datapath.Attachment) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if got, ok := d.up[a.HostIface]; !ok || got.IPv6 != a.IPv6 || got.IPv4 != a.IPv4 {
		return fmt.Errorf("%s not set up as %v %v", a.HostIface, a.IPv6, a.IPv4)
	}
	return nil
}

func (d *fakeDatapath) SetPodAnycast(netns string, addrs []netip.Addr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.anycast == nil {
		d.anycast = map[string][]netip.Addr{}
	}
	d.anycast[netns] = addrs
	return nil
}

func (d *fakeDatapath) SyncPools(p datapath.Pools) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pools = p
	return nil
}

func (d *fakeDatapath) HostIfaces() ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := append([]string(nil), d.stray...)
	for name := range d.up {
		out = append(out, name)
	}
	return out, nil
}

// HasSynced makes fakeSource a Synced source; unsynced plays an informer
// that has not listed yet.
func (s *fakeSource) HasSynced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.unsynced
}

// NetnsExists: every netns exists but those in goneNetns.
func (d *fakeDatapath) NetnsExists(path string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.goneNetns[path], nil
}

// Attached lists live (what a test put there).
func (d *fakeDatapath) Attached() ([]datapath.Live, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]datapath.Live(nil), d.live...), nil
}
