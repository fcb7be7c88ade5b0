package routing

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/fritzlab/flock/pkg/bird"
	"github.com/fritzlab/flock/pkg/model"
)

// fakeNodes serves a node, or an error, that the test sets.
type fakeNodes struct {
	mu       sync.Mutex
	node     *model.Node
	err      error
	unsynced bool
}

func (f *fakeNodes) Node(context.Context) (*model.Node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	if f.node == nil {
		return nil, fmt.Errorf("node-1: %w", model.ErrNoNodeConfig)
	}
	return f.node, nil
}

func (f *fakeNodes) HasSynced() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.unsynced
}

func (f *fakeNodes) set(n *model.Node, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.node, f.err = n, err
}

// fakeAddrs is the node's interface addresses.
type fakeAddrs struct {
	mu    sync.Mutex
	addrs []netip.Prefix
	err   error
}

func (f *fakeAddrs) Addresses() ([]netip.Prefix, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addrs, f.err
}

// fail makes Addresses return err (nil: the addresses again).
func (f *fakeAddrs) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeAddrs) set(addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addrs = nil
	for _, a := range addrs {
		f.addrs = append(f.addrs, netip.MustParsePrefix(a))
	}
}

// fakeSecrets holds Secret values by "name/key" and counts the reads.
type fakeSecrets struct {
	mu     sync.Mutex
	values map[string]string
	reads  int
}

func (f *fakeSecrets) Value(_ context.Context, name, key string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	v, ok := f.values[name+"/"+key]
	if !ok {
		return "", fmt.Errorf("secret kube-system/%s: no key %q", name, key)
	}
	return v, nil
}

func (f *fakeSecrets) set(ref, v string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.values[ref] = v
}

// fakeReporter records the conditions reported.
type fakeReporter struct {
	mu    sync.Mutex
	conds []Condition
}

func (f *fakeReporter) ReportBGP(c Condition) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conds = append(f.conds, c)
}

func (f *fakeReporter) last() (Condition, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.conds) == 0 {
		return Condition{}, 0
	}
	return f.conds[len(f.conds)-1], len(f.conds)
}

// fakeBird plays BIRD's control socket: it takes every config (or refuses
// all while refuse is set) and keeps what it was told to run.
type fakeBird struct {
	path string // the config file, read at `configure`

	mu      sync.Mutex
	refuse  bool
	down    bool
	reloads int
	running string // the config BIRD runs
}

func (f *fakeBird) Command(_ context.Context, cmd string) ([]bird.Line, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.down:
		return nil, fmt.Errorf("bird %q: dial unix /run/bird.ctl: connect: no such file or directory", cmd)
	case f.refuse && strings.HasPrefix(cmd, "configure check"):
		return []bird.Line{{Code: 8002, Text: "bird.conf:3:1 syntax error"}},
			&bird.ReplyError{Command: cmd, Code: 8002, Text: "bird.conf:3:1 syntax error"}
	case strings.HasPrefix(cmd, "configure check"):
		return []bird.Line{{Code: 20, Text: "Configuration OK"}}, nil
	case cmd == "configure":
		b, err := os.ReadFile(f.path)
		if err != nil {
			return nil, err
		}
		f.running = string(b)
		f.reloads++
		return []bird.Line{{Code: 2, Text: "Reading configuration"}, {Code: 3, Text: "Reconfigured"}}, nil
	}
	return nil, fmt.Errorf("fake bird: unexpected command %q", cmd)
}

func (f *fakeBird) state() (running string, reloads int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.running, f.reloads
}

func (f *fakeBird) setRefuse(refuse, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuse, f.down = refuse, down
}
