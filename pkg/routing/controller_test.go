package routing

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/bird"
	"github.com/fritzlab/flock/pkg/lbannounce"
	"github.com/fritzlab/flock/pkg/model"
)

// env is a controller over fakes, running in a synctest bubble: time only
// passes when every goroutine waits, so the Reloader's coalescing and the
// resync tick are exercised without real sleeps.
type env struct {
	t       *testing.T
	c       *Controller
	nodes   *fakeNodes
	addrs   *fakeAddrs
	secrets *fakeSecrets
	rep     *fakeReporter
	bird    *fakeBird
	log     *syncBuffer
	path    string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs a controller until the test ends; call it inside the bubble.
func start(t *testing.T, n *model.Node, opts ...func(*Options)) *env {
	path := filepath.Join(t.TempDir(), "bird.conf")
	e := &env{
		t: t, nodes: &fakeNodes{node: n}, addrs: &fakeAddrs{}, secrets: &fakeSecrets{values: map[string]string{}},
		rep: &fakeReporter{}, bird: &fakeBird{path: path}, log: &syncBuffer{}, path: path,
	}
	e.addrs.set("2001:db8:1ab:1::2/64", "198.19.1.2/24")
	o := Options{
		Nodes: e.nodes, Addresses: e.addrs, Secrets: e.secrets, Reporter: e.rep,
		Reloader: bird.NewReloader(path, e.bird),
		Log:      slog.New(slog.NewTextHandler(e.log, nil)),
	}
	for _, f := range opts {
		f(&o)
	}
	e.c = New(o)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { e.c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	e.settle()
	return e
}

// startConfigured runs a controller on node() whose password is then
// readable: settled with BIRD on the full config.
func startConfigured(t *testing.T, opts ...func(*Options)) *env {
	e := start(t, node(), opts...)
	e.secrets.set("bgp/router", "s3cret")
	e.c.Trigger()
	e.settle()
	return e
}

// settle lets the controller and the Reloader finish what they can,
// including a trailing reload at the end of a coalescing window.
func (e *env) settle() {
	synctest.Wait()
	time.Sleep(bird.CoalesceWindow)
	synctest.Wait()
}

// update changes the node as an informer event does.
func (e *env) update(n *model.Node, err error) {
	e.nodes.set(n, err)
	e.c.Trigger()
}

func (e *env) running() string {
	conf, _ := e.bird.state()
	return conf
}

func (e *env) wantCondition(ok bool, reason string, gen int64, msg string) {
	e.t.Helper()
	c, _ := e.rep.last()
	if c.OK != ok || c.Reason != reason || c.Generation != gen || !strings.Contains(c.Message, msg) {
		e.t.Errorf("condition %+v\nwant ok=%v reason %s generation %d with %q", c, ok, reason, gen, msg)
	}
}

// A password that cannot be read: BIRD keeps its config (here the
// bootstrap one) rather than run the session without it.
func TestPasswordUnavailable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := start(t, nil)
		if got := e.running(); got != string(bird.RenderBootstrap()) {
			t.Fatalf("no NodeConfig: bird runs\n%s\nwant the bootstrap config", got)
		}
		if _, n := e.rep.last(); n != 0 {
			t.Errorf("a condition was reported without a NodeConfig")
		}

		e.update(node(), nil)
		e.settle()
		if got := e.running(); got != string(bird.RenderBootstrap()) {
			t.Errorf("without its password bird runs\n%s", got)
		}
		e.wantCondition(false, v1alpha1.ReasonPasswordUnavailable, 3,
			`nodeconfig host001: spec.bgp.peers[1].passwordSecretRef bgp/router: secret kube-system/bgp: no key "router"`)

		// The Secret appears: taken at the next resync.
		e.secrets.set("bgp/router", "s3cret")
		time.Sleep(DefaultResync)
		e.settle()
		if got := e.running(); !strings.Contains(got, `password "s3cret";`) {
			t.Errorf("with its password bird runs\n%s", got)
		}
		e.wantCondition(true, v1alpha1.ReasonConfigured, 3, "")
	})
}

func TestFullAndBootstrapConfig(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := start(t, nil)
		e.secrets.set("bgp/router", "s3cret")
		e.update(node(), nil)
		e.settle()
		want, err := Render(node(), e.addrs.addrs, nil, nil, nil, map[model.SecretRef]string{{Name: "bgp", Key: "router"}: "s3cret"})
		if err != nil {
			t.Fatal(err)
		}
		if got := e.running(); got != string(want) {
			t.Fatalf("bird runs\n%s\nwant\n%s", got, want)
		}
		e.wantCondition(true, v1alpha1.ReasonConfigured, 3, "BGP peers: 2")
		if !strings.Contains(e.log.String(), "bird reloaded") || !strings.Contains(e.log.String(), "reloads=2") {
			t.Errorf("no reload log line with its count:\n%s", e.log)
		}

		// spec.bgp removed: bootstrap, sessions gone.
		n := node()
		n.BGP, n.Generation = nil, 4
		e.update(n, nil)
		e.settle()
		if got := e.running(); got != string(bird.RenderBootstrap()) {
			t.Errorf("without spec.bgp bird runs\n%s", got)
		}
		e.wantCondition(false, v1alpha1.ReasonNoBGP, 4, "spec.bgp is not set")

		// NodeConfig deleted: bootstrap, and nothing more to report on.
		_, before := e.rep.last()
		e.update(nil, nil)
		e.settle()
		if _, after := e.rep.last(); after != before {
			t.Errorf("a condition was reported for a deleted NodeConfig")
		}
	})
}

func TestPeerChangeRerenders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := startConfigured(t)
		_, reloads := e.bird.state()

		n := node()
		n.BGP.Peers[0].Address, n.BGP.Peers[0].ASN, n.Generation = addr("2001:db8:1ab:1::9"), 65009, 5
		e.update(n, nil)
		e.settle()
		got := e.running()
		if !strings.Contains(got, "neighbor 2001:db8:1ab:1::9 as 65009;") || strings.Contains(got, "bgp6_2001_db8_1ab_1__1") {
			t.Errorf("after the peer moved bird runs\n%s", got)
		}
		if _, r := e.bird.state(); r != reloads+1 {
			t.Errorf("%d reloads for one change, want 1", r-reloads)
		}
		e.wantCondition(true, v1alpha1.ReasonConfigured, 5, "")

		// The same config again (a resync, a reordered NodeConfig): no reload.
		n2 := node()
		n2.BGP.Peers[0].Address, n2.BGP.Peers[0].ASN, n2.Generation = addr("2001:db8:1ab:1::9"), 65009, 5
		n2.BGP.Peers[0], n2.BGP.Peers[1] = n2.BGP.Peers[1], n2.BGP.Peers[0]
		e.update(n2, nil)
		time.Sleep(DefaultResync)
		e.settle()
		if _, r := e.bird.state(); r != reloads+1 {
			t.Errorf("an unchanged config reloaded bird (%d reloads)", r-reloads)
		}
	})
}

// A value bird cannot use: BIRD keeps its config, the condition names the
// field; fixed, it is configured again.
func TestBadValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := startConfigured(t)
		good := e.running()

		n := node()
		n.BGP.Peers[0].Address, n.Generation = addr("2001:db8:99::1"), 6
		e.update(n, nil)
		e.settle()
		e.wantCondition(false, v1alpha1.ReasonInvalid, 6, `spec.bgp.peers[0].address "2001:db8:99::1": no node address on the peer's subnet`)
		if e.running() != good {
			t.Errorf("bird's config changed on a bad value")
		}
		if !strings.Contains(e.log.String(), `level=ERROR msg="bgp not configured"`) {
			t.Errorf("the error is not logged:\n%s", e.log)
		}

		// Rejected by the model (Accepted=False): the same, generation unknown.
		e.update(nil, errors.New(`nodeconfig host001: spec.bgp.peers[0].holdTime 2: must be 0 (the default) or 3 to 65535 seconds`))
		e.settle()
		e.wantCondition(false, v1alpha1.ReasonInvalid, 0, "spec.bgp.peers[0].holdTime 2")
		if e.running() != good {
			t.Errorf("bird's config changed on a rejected NodeConfig")
		}

		// The node gains an address on the peer's subnet: picked up at the
		// next resync, without a poke.
		e.update(n, nil)
		e.settle()
		e.addrs.set("2001:db8:1ab:1::2/64", "2001:db8:99::2/64", "198.19.1.2/24")
		time.Sleep(DefaultResync)
		e.settle()
		e.wantCondition(true, v1alpha1.ReasonConfigured, 6, "")
		if !strings.Contains(e.running(), "local 2001:db8:99::2 as 65101;") {
			t.Errorf("bird runs\n%s", e.running())
		}
	})
}

func TestBirdFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := start(t, node())
		e.secrets.set("bgp/router", "s3cret")
		e.bird.setRefuse(true, false)
		e.c.Trigger()
		e.settle()
		e.wantCondition(false, v1alpha1.ReasonReloadFailed, 3, "bird refuses the config")

		e.bird.setRefuse(false, true)
		time.Sleep(bird.MaxBackoff)
		e.settle()
		e.wantCondition(false, v1alpha1.ReasonReloadFailed, 3, "bird unreachable")

		e.bird.setRefuse(false, false)
		time.Sleep(bird.MaxBackoff)
		e.settle()
		e.wantCondition(true, v1alpha1.ReasonConfigured, 3, "")
	})
}

// 100 NodeConfig updates within a second: a handful of reloads, and BIRD
// ends on the last one.
func TestBurstCoalesces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := startConfigured(t)
		_, before := e.bird.state()
		reads := e.secrets.reads
		for i := range 100 {
			n := node()
			n.BGP.Peers[0].ASN = uint32(64000 + i)
			e.update(n, nil)
			time.Sleep(10 * time.Millisecond)
		}
		e.settle()
		got, after := e.bird.state()
		t.Logf("%d reloads for 100 updates", after-before)
		if r := after - before; r < 2 || r > 4 {
			t.Errorf("%d reloads for 100 updates in 1 s, want 2 to 4 (one per %v)", r, bird.CoalesceWindow)
		}
		if !strings.Contains(got, "neighbor 2001:db8:1ab:1::1 as 64099;") {
			t.Errorf("bird does not run the last update:\n%s", got)
		}
		if e.secrets.reads != reads {
			t.Errorf("%d Secret reads for 100 updates, want none (read on resync)", e.secrets.reads-reads)
		}
	})
}

func TestAnycast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := startConfigured(t)
		e.c.SetAnycast([]netip.Addr{addr("2001:db8:ffff::1"), addr("198.51.100.1")})
		e.settle()
		for _, want := range []string{"route 2001:db8:ffff::1/128 blackhole;", "route 198.51.100.1/32 blackhole;"} {
			if !strings.Contains(e.running(), want) {
				t.Errorf("bird's config lacks %q", want)
			}
		}
		_, reloads := e.bird.state()
		e.c.SetAnycast([]netip.Addr{addr("198.51.100.1"), addr("2001:db8:ffff::1"), addr("198.51.100.1")})
		e.settle()
		if _, r := e.bird.state(); r != reloads {
			t.Errorf("the same anycast set in another order reloaded bird")
		}
		e.c.SetAnycast(nil)
		e.settle()
		if strings.Contains(e.running(), "2001:db8:ffff::1/128") {
			t.Errorf("a withdrawn anycast address is still announced")
		}
	})
}

// Before the NodeConfig informer has listed, a restarted agent leaves
// BIRD's config alone (the bootstrap one would end its sessions), except on
// a first boot, when BIRD has no config file to start with.
func TestUnsyncedSourceKeepsBird(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "bird.conf")
		if err := os.WriteFile(path, []byte("# the config of the last run\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		fb := &fakeBird{path: path}
		c := New(Options{Nodes: &fakeNodes{unsynced: true}, Addresses: &fakeAddrs{}, Reloader: bird.NewReloader(path, fb),
			Log: slog.New(slog.DiscardHandler)})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go c.Run(ctx)
		time.Sleep(time.Second)
		synctest.Wait()
		if b, _ := os.ReadFile(path); string(b) != "# the config of the last run\n" {
			t.Errorf("unsynced: the config file became\n%s", b)
		}
		if _, r := fb.state(); r != 0 {
			t.Errorf("unsynced: bird reloaded")
		}
		os.Remove(path)
		c.Trigger()
		synctest.Wait()
		if b, _ := os.ReadFile(path); string(b) != string(bird.RenderBootstrap()) {
			t.Errorf("first boot: the config file is\n%s\nwant the bootstrap config", b)
		}
		cancel()
		synctest.Wait()
	})
}

// With AwaitAnycast, a synced controller still keeps BIRD's config until
// the anycast reconciler has said what is active: rendering before that
// would withdraw every anycast address a restarted agent's BIRD announces.
// Draining pools are announced as the pool is.
func TestAwaitAnycastAndDraining(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "bird.conf")
		if err := os.WriteFile(path, []byte("# the config of the last run\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		fb := &fakeBird{path: path}
		addrs := &fakeAddrs{}
		addrs.set("2001:db8:1ab:1::2/64", "198.19.1.2/24")
		n := node()
		n.BGP.Peers = n.BGP.Peers[:1]
		n.BGP.Peers[0].Password = nil
		draining := []netip.Prefix{prefix("2001:db8:41:1::/64")}
		c := New(Options{Nodes: &fakeNodes{node: n}, Addresses: addrs, Reloader: bird.NewReloader(path, fb),
			Log: slog.New(slog.DiscardHandler), AwaitAnycast: true,
			Draining: func(*model.Node) []netip.Prefix { return draining }})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go c.Run(ctx)
		time.Sleep(time.Second)
		synctest.Wait()
		if b, _ := os.ReadFile(path); string(b) != "# the config of the last run\n" {
			t.Errorf("before the first anycast set: the config file became\n%s", b)
		}
		c.SetAnycast(nil) // the reconciler ran: nothing active is news too
		time.Sleep(bird.CoalesceWindow)
		synctest.Wait()
		conf, _ := fb.state()
		if !strings.Contains(conf, "route 2001:db8:41:1::/64 blackhole;") || !strings.Contains(conf, "route 2001:db8:42:1::/64 blackhole;") {
			t.Errorf("after the first anycast set, bird runs\n%s\nwant the pool and the draining pool announced", conf)
		}
		cancel()
		synctest.Wait()
	})
}

// Service routes are announced with their communities; the same set in
// another order does not reload BIRD, a changed community does, and an
// empty set withdraws them.
func TestServices(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := startConfigured(t)
		v6 := lbannounce.Route{Addr: addr("2001:db8:5::10"), Communities: []model.Community{{ASN: 65000, Value: 5}}}
		v4 := lbannounce.Route{Addr: addr("192.0.2.10"), LargeCommunities: []model.LargeCommunity{{Global: 1, Data1: 2, Data2: 3}}}
		e.c.SetServices([]lbannounce.Route{v6, v4}, time.Time{})
		e.settle()
		for _, want := range []string{
			"route 2001:db8:5::10/128 blackhole { bgp_community.add((65000, 5)); };",
			"route 192.0.2.10/32 blackhole { bgp_large_community.add((1, 2, 3)); };",
		} {
			if !strings.Contains(e.running(), want) {
				t.Errorf("bird's config lacks %q:\n%s", want, e.running())
			}
		}
		_, reloads := e.bird.state()
		e.c.SetServices([]lbannounce.Route{v4, v6}, time.Time{})
		e.settle()
		if _, r := e.bird.state(); r != reloads {
			t.Errorf("the same service set in another order reloaded bird")
		}
		v6.Communities = []model.Community{{ASN: 65000, Value: 6}}
		e.c.SetServices([]lbannounce.Route{v4, v6}, time.Time{})
		e.settle()
		if !strings.Contains(e.running(), "bgp_community.add((65000, 6))") {
			t.Errorf("a changed community is not in bird's config:\n%s", e.running())
		}
		e.c.SetServices(nil, time.Time{})
		e.settle()
		if strings.Contains(e.running(), "2001:db8:5::10/128") || strings.Contains(e.running(), "192.0.2.10/32") {
			t.Errorf("withdrawn service addresses are still announced:\n%s", e.running())
		}
	})
}

// With AwaitServices (and AwaitAnycast), a synced controller keeps BIRD's
// config until both the anycast and the Service reconcilers have given a
// set: a restarted agent must not withdraw the Service addresses its BIRD
// announces before its Service caches have synced.
func TestAwaitServices(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "bird.conf")
		const last = "# the config of the last run\n"
		if err := os.WriteFile(path, []byte(last), 0o644); err != nil {
			t.Fatal(err)
		}
		fb := &fakeBird{path: path}
		addrs := &fakeAddrs{}
		addrs.set("2001:db8:1ab:1::2/64", "198.19.1.2/24")
		n := node()
		n.BGP.Peers = n.BGP.Peers[:1]
		n.BGP.Peers[0].Password = nil
		c := New(Options{Nodes: &fakeNodes{node: n}, Addresses: addrs, Reloader: bird.NewReloader(path, fb),
			Log: slog.New(slog.DiscardHandler), AwaitAnycast: true, AwaitServices: true})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go c.Run(ctx)
		time.Sleep(time.Second)
		synctest.Wait()
		c.SetAnycast(nil)
		time.Sleep(time.Second)
		synctest.Wait()
		if b, _ := os.ReadFile(path); string(b) != last {
			t.Errorf("before the first service set: the config file became\n%s", b)
		}
		c.SetServices([]lbannounce.Route{{Addr: addr("2001:db8:5::10")}}, time.Time{})
		time.Sleep(bird.CoalesceWindow)
		synctest.Wait()
		if conf, _ := fb.state(); !strings.Contains(conf, "route 2001:db8:5::10/128 blackhole;") {
			t.Errorf("after the first service set, bird runs\n%s\nwant the service address announced", conf)
		}
		cancel()
		synctest.Wait()
	})
}

// startTimed is startConfigured with ServicesReloaded recording into the
// list timings returns.
func startTimed(t *testing.T) (e *env, timings func() []time.Duration) {
	var mu sync.Mutex
	var got []time.Duration
	e = startConfigured(t, func(o *Options) {
		o.ServicesReloaded = func(d time.Duration) { mu.Lock(); got = append(got, d); mu.Unlock() }
	})
	return e, func() []time.Duration { mu.Lock(); defer mu.Unlock(); return slices.Clone(got) }
}

// A Service change with a cause is timed until BIRD runs it, once; one
// without a cause, or that changes nothing, is not.
func TestServicesReloaded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, timings := startTimed(t)
		r := []lbannounce.Route{{Addr: addr("2001:db8:5::10")}}
		e.c.SetServices(r, time.Time{})
		e.settle()
		if got := timings(); len(got) != 0 {
			t.Fatalf("a set without a cause was timed: %v", got)
		}
		cause := time.Now().Add(-50 * time.Millisecond)
		e.c.SetServices(nil, cause)
		e.settle()
		e.c.SetServices(nil, time.Now()) // no change
		e.settle()
		if got := timings(); len(got) != 1 || got[0] < 50*time.Millisecond || got[0] > 50*time.Millisecond+bird.CoalesceWindow {
			t.Errorf("timings %v, want one of 50 ms to 50 ms + the coalescing window", got)
		}
	})
}

// A Service change whose first render fails is timed from its cause once a
// later render succeeds, not lost.
func TestServicesReloadedAfterAFailedRender(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, timings := startTimed(t)
		e.addrs.fail(errors.New("netlink: no answer"))
		e.c.SetServices([]lbannounce.Route{{Addr: addr("2001:db8:5::10")}}, time.Now())
		e.settle()
		if got := timings(); len(got) != 0 {
			t.Fatalf("timed while the render failed: %v", got)
		}
		time.Sleep(time.Second)
		e.addrs.fail(nil)
		e.c.Trigger()
		e.settle()
		if got := timings(); len(got) != 1 || got[0] < time.Second {
			t.Errorf("timings %v, want one of over 1 s (from the change, through the failed render)", got)
		}
	})
}
