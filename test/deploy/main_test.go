// Package deploy tests the manifests in deploy/: their shape without a
// cluster, and as root against a real kube-apiserver that `kubectl apply
// --dry-run=server -k deploy/` succeeds and the RBAC grants exactly what the
// agent uses.
package deploy

import (
	"path/filepath"
	"testing"

	"github.com/fritzlab/flock/internal/lab/controlplane"
	"github.com/fritzlab/flock/internal/lab/controlplane/controlplanetest"
)

var shared = controlplanetest.Shared{Name: "deploy"}

func TestMain(m *testing.M) { shared.Main(m) }

// deployDir is the repository's deploy/.
func deployDir(t *testing.T) string {
	t.Helper()
	root, err := controlplane.SourceRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "deploy")
}

// controlPlane is the package's control plane (it installs deploy/crd/).
func controlPlane(t *testing.T) *controlplane.ControlPlane { return shared.Get(t) }
