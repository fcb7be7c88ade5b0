// Package kubelet is flock-lab's kubelet-lite: one per simulated node, it
// binds pending pods to the lab's nodes (the lab has no scheduler), gives
// each pod of its node a network namespace attached through the node's CNI
// conflist with the real plugins (libcni, the CNI arguments kubelet
// passes), runs the containers' commands as host processes in that
// namespace (images are ignored), turns readiness probes into the pod's
// Ready condition, and on deletion stops the processes, calls CNI DEL,
// removes the namespace and deletes the pod object. It also keeps its
// Node Ready. Serve is the server `flock-lab serve` runs in lab pods.
//
// kubelet-lite runs in the node's network namespace, or anywhere with
// Config.NodeNetns naming it (then only CNI calls and probe connections
// enter it). Either way it must run in the machine's mount namespace
// (enter the node with `nsenter --net=…`, not `ip netns exec`, whose
// private mount namespace would hide the pod namespaces from the agent);
// Run refuses to start otherwise.
package kubelet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

// Config configures one node's kubelet-lite.
type Config struct {
	// NodeName is the Node this kubelet-lite runs.
	NodeName string
	// RESTConfig reaches the API server.
	RESTConfig *rest.Config
	// CNIBinDir holds the CNI plugins (flock, portmap).
	CNIBinDir string
	// CNIConfList is the path of the node's conflist, read at every use.
	CNIConfList string
	// CNICacheDir is libcni's cache (default StateDir/cni-cache).
	CNICacheDir string
	// StateDir holds the pod records (pods/) and container logs (logs/).
	StateDir string
	// PodNetnsPrefix starts every pod namespace's name (default "flk-lab-pod-").
	PodNetnsPrefix string
	// BinDir is put first in the PATH of container processes (flock-lab).
	BinDir string
	// HostIPs are the node's addresses (its uplink IPv6 and IPv4): the pods'
	// hostIP(s) and the Node's InternalIPs. The first one's family is the
	// cluster's primary family, which orders pod IPs (IPv6 first when empty).
	HostIPs []string
	// NodeNetns is the path of the node's network namespace when
	// kubelet-lite does not run inside it ("" = the calling namespace).
	NodeNetns string
	// Log receives kubelet-lite's logs (default slog.Default()).
	Log *slog.Logger
}

// kubelet is one running kubelet-lite.
type kubelet struct {
	cfg      Config
	cs       kubernetes.Interface
	log      *slog.Logger
	host     *host
	net      *network
	store    *stateStore
	hostIPs  []string
	primary6 bool

	recorder      record.EventRecorder // as "kubelet"
	schedRecorder record.EventRecorder // as the scheduler, for Scheduled

	pods    corelisters.PodLister // this node's pods
	allPods corelisters.PodLister
	nodes   corelisters.NodeLister
}

func (c *Config) defaults() error {
	switch {
	case c.NodeName == "":
		return errors.New("kubelet-lite: NodeName is empty")
	case c.CNIBinDir == "" || c.CNIConfList == "":
		return errors.New("kubelet-lite: CNIBinDir and CNIConfList are required")
	case c.StateDir == "":
		return errors.New("kubelet-lite: StateDir is empty")
	}
	if c.PodNetnsPrefix == "" {
		c.PodNetnsPrefix = "flk-lab-pod-"
	}
	if c.CNICacheDir == "" {
		c.CNICacheDir = filepath.Join(c.StateDir, "cni-cache")
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	c.HostIPs = slices.Clone(c.HostIPs)
	for i, s := range c.HostIPs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("kubelet-lite: host IP %q: %w", s, err)
		}
		c.HostIPs[i] = a.Unmap().String()
	}
	return nil
}

// Run runs kubelet-lite until ctx ends. It returns an error only when it
// cannot start; once running, failures are logged, recorded as Events and
// retried. When ctx ends it stops the containers, leaves the sandboxes
// (a restarted kubelet-lite adopts them) and marks the Node NotReady.
func Run(ctx context.Context, cfg Config) error {
	if cfg.RESTConfig == nil {
		return errors.New("kubelet-lite: RESTConfig is nil")
	}
	rc := rest.CopyConfig(cfg.RESTConfig)
	rc.UserAgent = "flock-lab-kubelet/" + cfg.NodeName
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("kubelet-lite: client: %w", err)
	}
	return run(ctx, cfg, cs)
}

func run(ctx context.Context, cfg Config, cs kubernetes.Interface) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	h, err := newHost(cfg.NodeNetns)
	if err != nil {
		return fmt.Errorf("kubelet-lite: %w", err)
	}
	st, err := newStateStore(filepath.Join(cfg.StateDir, "pods"))
	if err != nil {
		return fmt.Errorf("kubelet-lite: %w", err)
	}
	k := &kubelet{cfg: cfg, cs: cs, log: cfg.Log.With("node", cfg.NodeName), host: h, store: st, hostIPs: cfg.HostIPs}
	k.primary6 = len(k.hostIPs) == 0 || netip.MustParseAddr(k.hostIPs[0]).Is6()
	k.net = newNetwork(h, cfg.CNIBinDir, cfg.CNICacheDir, cfg.CNIConfList, k.primary6)

	bc := record.NewBroadcaster()
	bc.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
	defer bc.Shutdown()
	k.recorder = bc.NewRecorder(scheme.Scheme, v1.EventSource{Component: "kubelet", Host: cfg.NodeName})
	k.schedRecorder = bc.NewRecorder(scheme.Scheme, v1.EventSource{Component: "flock-lab-scheduler"})

	if err := k.registerNode(ctx); err != nil {
		return err
	}
	k.log.Info("node registered and ready")

	mgr := newManager(k)
	bindPoke := make(chan struct{}, 1)
	pokeBinder := func() {
		select {
		case bindPoke <- struct{}{}:
		default:
		}
	}
	nodeFactory := informers.NewSharedInformerFactoryWithOptions(cs, 0,
		informers.WithTransform(stripManagedFields),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", cfg.NodeName).String()
		}))
	clusterFactory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithTransform(stripManagedFields))
	podInf := nodeFactory.Core().V1().Pods()
	allInf := clusterFactory.Core().V1().Pods()
	nodeInf := clusterFactory.Core().V1().Nodes()
	k.pods, k.allPods, k.nodes = podInf.Lister(), allInf.Lister(), nodeInf.Lister()
	for inf, poke := range map[cache.SharedIndexInformer]func(){
		podInf.Informer(): mgr.notify, allInf.Informer(): pokeBinder, nodeInf.Informer(): pokeBinder,
	} {
		if _, err := inf.AddEventHandler(pokeOn(poke)); err != nil {
			return fmt.Errorf("kubelet-lite: informer handler: %w", err)
		}
	}
	nodeFactory.Start(ctx.Done())
	clusterFactory.Start(ctx.Done())
	defer nodeFactory.Shutdown()
	defer clusterFactory.Shutdown()
	for _, synced := range []map[reflect.Type]bool{nodeFactory.WaitForCacheSync(ctx.Done()), clusterFactory.WaitForCacheSync(ctx.Done())} {
		for typ, ok := range synced {
			if !ok {
				return fmt.Errorf("kubelet-lite: informer cache of %v did not sync", typ)
			}
		}
	}

	mgr.adopt(ctx)
	done := make(chan struct{})
	go func() { k.heartbeat(ctx); close(done) }()
	go k.runBinder(ctx, bindPoke)
	mgr.notify()
	k.log.Info("kubelet-lite running", "netnsPrefix", cfg.PodNetnsPrefix, "conflist", cfg.CNIConfList)
	mgr.run(ctx)
	<-done
	k.log.Info("kubelet-lite stopped")
	return nil
}

// pokeOn is an informer handler that only pokes: the consumers re-read
// the caches (level-triggered).
func pokeOn(poke func()) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}
}

// stripManagedFields drops what no consumer reads and what makes cached
// objects big.
func stripManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}
