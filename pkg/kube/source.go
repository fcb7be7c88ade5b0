package kube

import (
	"context"
	"fmt"
	"log/slog"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/kube/apiclient"
	"github.com/fritzlab/flock/pkg/model"
)

// Source is the agent's Source on Kubernetes: the node's NodeConfig and
// the pods of the node, each from its own informer.
type Source struct {
	node    string
	configs *NodeConfigs
	pods    *Pods
}

// NewSource builds the informers for node; nothing runs until Run.
func NewSource(client apiclient.Interface, dyn dynamic.Interface, node string, log *slog.Logger) *Source {
	return &Source{node: node, configs: NewNodeConfigs(dyn, node, log), pods: NewPods(client, node)}
}

// SetSecretsNamespace makes the source reject a NodeConfig that names a
// password Secret outside ns (see NodeConfigs.SetSecretsNamespace). Call it
// before Run.
func (s *Source) SetSecretsNamespace(ns string) { s.configs.SetSecretsNamespace(ns) }

// SetEvents makes the source record Events on its NodeConfig (see
// NodeConfigs.SetEvents). Call it before Run.
func (s *Source) SetEvents(e NodeConfigEvents) { s.configs.SetEvents(e) }

// Run runs the informers and the NodeConfig status worker until ctx ends.
func (s *Source) Run(ctx context.Context) {
	go s.pods.Run(ctx)
	s.configs.Run(ctx)
}

// HasSynced reports whether both informers have listed once.
func (s *Source) HasSynced() bool { return s.configs.HasSynced() && s.pods.HasSynced() }

// WaitForSync blocks until both informers have listed once or ctx ends.
func (s *Source) WaitForSync(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), s.HasSynced) {
		return fmt.Errorf("wait for nodeconfig and pod caches of node %s: %w", s.node, context.Cause(ctx))
	}
	return nil
}

// Node returns the node's configuration (see NodeConfigs.Node).
func (s *Source) Node(ctx context.Context) (*model.Node, error) { return s.configs.Node(ctx) }

// Changes is poked whenever the node's NodeConfig changes or goes away.
func (s *Source) Changes() <-chan struct{} { return s.configs.Changes() }

// SetBGPCondition sets the NodeConfig's BGPConfigured condition (see
// NodeConfigs.SetBGPCondition).
func (s *Source) SetBGPCondition(ok bool, reason, message string, generation int64) {
	s.configs.SetBGPCondition(ok, reason, message, generation)
}

// SetDrainingPools sets the NodeConfig's status.drainingPools (see
// NodeConfigs.SetDrainingPools).
func (s *Source) SetDrainingPools(pools []v1alpha1.DrainingPool) { s.configs.SetDrainingPools(pools) }

// NodeConfigUID is the UID of the node's NodeConfig, "" while it has none.
func (s *Source) NodeConfigUID() string { return s.configs.UID() }

// SetUsage sets the NodeConfig's status.usage (see NodeConfigs.SetUsage).
func (s *Source) SetUsage(u *v1alpha1.NodeUsage) { s.configs.SetUsage(u) }

// Pod returns a pod's metadata, or an error wrapping model.ErrPodNotFound.
func (s *Source) Pod(ctx context.Context, namespace, name string) (*model.Pod, error) {
	return s.pods.Pod(ctx, namespace, name)
}

// PodReady reports whether a pod of this node is Ready.
func (s *Source) PodReady(namespace, name string) bool { return s.pods.PodReady(namespace, name) }

// ReadyChanges is poked when a pod of this node changes readiness.
func (s *Source) ReadyChanges() <-chan struct{} { return s.pods.ReadyChanges() }

// AllPools are every NodeConfig's pod pools (see NodeConfigs.AllPools).
func (s *Source) AllPools() []model.Pools { return s.configs.AllPools() }
