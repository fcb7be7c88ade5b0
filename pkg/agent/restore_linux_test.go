package agent

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fritzlab/flock/internal/testns"
	"github.com/fritzlab/flock/pkg/datapath"
	"github.com/fritzlab/flock/pkg/model"
	"github.com/fritzlab/flock/pkg/rpc"
	"github.com/fritzlab/flock/pkg/store"
)

// lockedBuffer is a log sink safe for the agent's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRestoreFromKernel: a live pod's allocation file is damaged while the
// agent is down. The restarted agent, on the real kernel, never hands the
// live pod's addresses to a new pod, and rebuilds the allocation from the
// veth's alias; a veth without an alias keeps its addresses reserved.
func TestRestoreFromKernel(t *testing.T) {
	for _, tc := range []struct {
		name    string
		damage  func(b []byte) []byte
		noAlias bool
	}{
		{name: "truncated", damage: func(b []byte) []byte { return b[:len(b)/2] }},
		{name: "garbage", damage: func([]byte) []byte { return []byte("\x00\xffnot json at all\x7f") }},
		{name: "truncated, veth without alias", damage: func(b []byte) []byte { return b[:10] }, noAlias: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodeNS := testns.New(t, "agn")
			k, err := datapath.NewAt(testns.Path(nodeNS))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(k.Close)
			if err := k.Init(); err != nil {
				t.Fatal(err)
			}
			src := &fakeSource{pods: map[string]*model.Pod{}, node: &model.Node{Name: "test",
				Pool6: netip.MustParsePrefix("2001:db8:42:1::/64"), Pool4: netip.MustParsePrefix("10.42.1.0/29")}}
			dir := t.TempDir()
			logs := &lockedBuffer{}
			rec := &fakeRecorder{}
			start := func() (*Agent, *store.Store) {
				st, err := store.Open(dir, store.Options{}, discard)
				if err != nil {
					t.Fatal(err)
				}
				a := New(src, rec, k, st, slog.New(slog.NewTextHandler(logs, nil)))
				if err := a.Restore(); err != nil {
					t.Fatal(err)
				}
				return a, st
			}
			add := func(a *Agent, id string) store.Record {
				t.Helper()
				pod := testns.New(t, "agp")
				r := &rpc.Request{Op: rpc.OpAdd, ContainerID: id, IfName: "eth0", Netns: testns.Path(pod),
					Args: "K8S_POD_NAMESPACE=default;K8S_POD_NAME=" + id}
				if resp := a.Handle(context.Background(), r); resp.Error != nil {
					t.Fatalf("ADD %s: %v", id, resp.Error)
				}
				got, _ := a.store.Get(store.Key{ContainerID: id, IfName: "eth0"})
				return got
			}

			a, _ := start()
			live := add(a, "live-"+tc.name[:4])
			if tc.noAlias {
				testns.Run(t, "ip", "-n", nodeNS, "link", "set", "dev", live.HostIface, "alias", "")
			}
			file := filepath.Join(dir, store.KeyFile(live.Key()))
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, tc.damage(b), 0o600); err != nil {
				t.Fatal(err)
			}

			a, st := start()
			fresh := add(a, "new-"+tc.name[:4])
			for _, ip := range addrs(fresh) {
				if ip == live.IPv6 || ip == live.IPv4 {
					t.Errorf("the new pod got %s, the live pod's address", ip)
				}
			}
			got, rebuilt := st.Get(live.Key())
			line := "allocation file corrupt: quarantined, allocation rebuilt from the kernel"
			if tc.noAlias {
				line = "allocation file corrupt: quarantined, nothing to rebuild"
				if rebuilt {
					t.Errorf("an allocation was rebuilt from a veth without alias: %+v", got)
				}
			} else {
				if !rebuilt || got.IPv6 != live.IPv6 || got.IPv4 != live.IPv4 || got.Gateway4 != live.Gateway4 ||
					got.Netns != live.Netns || got.Namespace != live.Namespace || got.Name != live.Name || got.HostIface != live.HostIface {
					t.Errorf("rebuilt allocation %+v (found %v), want the live pod's %+v", got, rebuilt, live)
				}
				if !strings.Contains(strings.Join(rec.warnings, "\n"), "default/"+live.Name+" FlockAllocationRebuilt") {
					t.Errorf("no FlockAllocationRebuilt warning on the pod: %q", rec.warnings)
				}
				// The kernel's CHECK passes on the rebuilt allocation.
				if err := k.Check(attachment(got)); err != nil {
					t.Errorf("CHECK of the rebuilt allocation: %v", err)
				}
			}
			if n := strings.Count(logs.String(), line); n != 1 || !strings.Contains(logs.String(), "file="+store.KeyFile(live.Key())) {
				t.Errorf("want one %q line naming %s; log:\n%s", line, store.KeyFile(live.Key()), logs)
			}
			if _, err := os.Stat(file + store.QuarantineSuffix); err != nil {
				t.Errorf("damaged file not quarantined: %v", err)
			}
		})
	}
}
