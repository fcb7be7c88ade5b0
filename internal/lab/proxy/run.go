package proxy

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/fritzlab/flock/pkg/policy"
)

// settle is how long the proxy waits after a change for more before it
// loads the table (a Service and its pods usually change together).
const settle = 50 * time.Millisecond

// Run keeps the node's table in step with the cluster's Services and pods
// until ctx ends. nft runs in the caller's network namespace (the node's).
func Run(ctx context.Context, cs kubernetes.Interface, log *slog.Logger) error {
	factory := informers.NewSharedInformerFactory(cs, 0)
	svcs, pods := factory.Core().V1().Services(), factory.Core().V1().Pods()
	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}
	for _, inf := range []cache.SharedIndexInformer{svcs.Informer(), pods.Informer()} {
		if _, err := inf.AddEventHandler(handler); err != nil {
			return fmt.Errorf("proxy: %w", err)
		}
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("proxy: %v informer did not sync", typ)
		}
	}
	log.Info("proxy: informers synced")

	var loaded []byte
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			time.Sleep(settle)
		case <-retry.C:
		}
		s, err := svcs.Lister().List(labels.Everything())
		if err != nil {
			return fmt.Errorf("proxy: %w", err)
		}
		p, err := pods.Lister().List(labels.Everything())
		if err != nil {
			return fmt.Errorf("proxy: %w", err)
		}
		script := Render(Frontends(s, p))
		if bytes.Equal(script, loaded) {
			continue
		}
		if _, err := (policy.NFT{}).Run(ctx, script, "-f", "-"); err != nil {
			log.Error("proxy: load table", "err", err)
			retry.Reset(time.Second)
			continue
		}
		loaded = script
		log.Info("proxy: table loaded", "services", len(s), "bytes", len(script))
	}
}
