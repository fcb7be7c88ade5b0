// Package crd tests the NodeConfig CRD against a real kube-apiserver: the
// schema and its CEL rules accept what the agent can use and reject
// everything else with a message naming the field.
package crd

import (
	"testing"

	"github.com/fritzlab/flock/internal/lab/controlplane"
	"github.com/fritzlab/flock/internal/lab/controlplane/controlplanetest"
)

var shared = controlplanetest.Shared{Name: "crd"}

func TestMain(m *testing.M) { shared.Main(m) }

// controlPlane is the package's control plane (it installs deploy/crd/).
func controlPlane(t *testing.T) *controlplane.ControlPlane { return shared.Get(t) }
