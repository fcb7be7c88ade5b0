package agent

import (
	"context"
	"net/netip"

	"github.com/fritzlab/flock/pkg/model"
)

// Policy enforces NetworkPolicy for the node's pods. The agent tells it of
// every pod it adds before the pod's routes exist, and of every pod it
// deletes, so a pod selected by a default-deny policy is never reachable
// unfiltered, not even for the moment between ADD and the next informer
// event.
type Policy interface {
	// PodAdded makes the pod's rules part of the applied ruleset; an error
	// fails the ADD.
	PodAdded(ctx context.Context, pod *model.Pod, hostIface string, ips []netip.Addr) error
	// PodDeleted drops the pod from the ruleset (best effort: the periodic
	// resync catches up).
	PodDeleted(ctx context.Context, namespace, name string)
}

// SetPolicy installs the NetworkPolicy enforcer; nil (the default) enforces
// nothing.
func (a *Agent) SetPolicy(p Policy) { a.policy = p }
