package main

import (
	"context"
	"log/slog"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/klog/v2"

	"github.com/fritzlab/flock/pkg/agent"
	"github.com/fritzlab/flock/pkg/kube"
	"github.com/fritzlab/flock/pkg/kube/apiclient"
	"github.com/fritzlab/flock/pkg/source"
)

// syncWait is how long the agent waits for its caches before it serves
// anyway (--sync-wait): until they fill, ADD fails with an error naming the
// node, which is more useful to the runtime than a socket that is not
// there, and nothing the agent owns is pruned or withdrawn.
var syncWait = 30 * time.Second

// backend is what the agent talks to in the chosen mode.
type backend struct {
	src agent.Source
	rec agent.Recorder
	// changes is poked when the node's configuration changes.
	changes <-chan struct{}
	// serving runs once the socket listens; ready is the agent's readiness.
	serving func(ctx context.Context, ready func(context.Context) error)
	stop    func()
	// kube is set in Kubernetes mode.
	kube *kubeParts
}

// kubeParts are what the BGP controller uses of Kubernetes mode: the
// client for Secrets and the source that writes the NodeConfig's status.
type kubeParts struct {
	client apiclient.Interface
	dyn    dynamic.Interface
	src    *kube.Source
	rec    *kube.Recorder
	// draining are the pools last reported draining (reportDrains).
	draining map[string]bool
}

// fileWatchEvery is how often file mode checks the NodeConfig file for a
// change (a stat), so that an edit reaches BIRD without waiting for a tick.
const fileWatchEvery = time.Second

func fileBackend(ctx context.Context, m mode, log *slog.Logger) *backend {
	src := &source.File{NodeConfigPath: m.NodeConfig, PodsDir: m.PodsDir}
	return &backend{
		src:     src,
		rec:     source.LogRecorder{Log: log},
		changes: src.Watch(ctx, fileWatchEvery),
		serving: func(context.Context, func(context.Context) error) {},
		stop:    func() {},
	}
}

// kubeBackend starts the informers of the node's NodeConfig and pods and
// the Event recorder.
func kubeBackend(ctx context.Context, m mode, log *slog.Logger) (*backend, error) {
	klog.SetSlogLogger(log) // client-go's own messages go through the same handler
	cfg, err := kube.RESTConfig(m.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.UserAgent = "flock-agent/" + m.NodeName
	client, dyn, err := apiclient.New(cfg)
	if err != nil {
		return nil, err
	}
	rec := kube.NewRecorder(ctx, client, m.NodeName, log)
	src := kube.NewSource(client, dyn, m.NodeName, log)
	if m.Namespace != "" {
		src.SetSecretsNamespace(m.Namespace)
	}
	src.SetEvents(rec)
	go src.Run(ctx)
	wctx, cancel := context.WithTimeout(ctx, syncWait)
	defer cancel()
	if err := src.WaitForSync(wctx); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		log.Warn("caches not synced yet; serving anyway", "node", m.NodeName, "err", err)
	}
	return &backend{
		src:     src,
		rec:     rec,
		changes: src.Changes(),
		serving: func(ctx context.Context, ready func(context.Context) error) {
			go kube.KeepNodeNetwork(ctx, client, m.NodeName, ready, kube.NodeReadyEvery, log)
		},
		stop: rec.Shutdown,
		kube: &kubeParts{client: client, dyn: dyn, src: src, rec: rec},
	}, nil
}
