package controlplanetest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/fritzlab/flock/internal/lab/controlplane"
)

// AgentUser is the identity of the agent's ServiceAccount token: a client
// with it gets only what deploy/rbac.yaml grants the agent, so a call
// outside that RBAC fails in the test as in a cluster.
const AgentUser = "system:serviceaccount:flock-system:flock-agent"

// StartWithAgent starts a control plane of the test's own, with the
// agent's RBAC (deploy/rbac.yaml) applied, and returns it with a token for
// the agent's ServiceAccount; it is stopped when the test ends. It skips
// the test for users other than root (CI runs as root).
func StartWithAgent(t *testing.T) (cp *controlplane.ControlPlane, agentToken string) {
	t.Helper()
	skipUnlessRoot(t)
	// A cold build of kube-apiserver takes minutes: allow what the test has.
	ctx, cancel := context.WithCancel(context.Background())
	if d, ok := t.Deadline(); ok {
		ctx, cancel = context.WithDeadline(context.Background(), d.Add(-10*time.Second))
	}
	defer cancel()
	root, err := controlplane.SourceRoot()
	if err != nil {
		t.Fatal(err)
	}
	agentToken = controlplane.NewToken()
	cp, err = controlplane.Start(ctx, controlplane.Options{
		Dir: t.TempDir(), Log: t.Output(),
		Tokens: []controlplane.Token{{Token: agentToken, User: AgentUser, UID: "flock-agent",
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:flock-system"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.Stop() })
	if err := controlplane.ApplyFiles(ctx, cp.RESTConfig(), filepath.Join(root, "deploy", "rbac.yaml")); err != nil {
		t.Fatal(err)
	}
	return cp, agentToken
}
