package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/internal/cnitest"
	"github.com/fritzlab/flock/pkg/bird/birdtest"
)

func TestBirdFlags(t *testing.T) {
	for _, f := range []birdFlags{{}, {Config: "/run/flock/bird/bird.conf", Socket: "/run/flock/bird/bird.ctl"}} {
		if err := f.check(); err != nil {
			t.Errorf("%+v: %v", f, err)
		}
	}
	for _, f := range []birdFlags{{Config: "bird.conf"}, {Socket: "bird.ctl"}} {
		if err := f.check(); err == nil || !strings.Contains(err.Error(), "--bird-config and --bird-socket go together") {
			t.Errorf("%+v: %v", f, err)
		}
	}
	t.Setenv("POD_NAMESPACE", "")
	if ns := secretsNamespace(""); ns != "flock-system" {
		t.Errorf("default namespace %q", ns)
	}
	t.Setenv("POD_NAMESPACE", "flock")
	if ns := secretsNamespace(""); ns != "flock" {
		t.Errorf("namespace from $POD_NAMESPACE: %q", ns)
	}
	if ns := secretsNamespace("other"); ns != "other" {
		t.Errorf("namespace from the flag: %q", ns)
	}
}

// startBirdNode gives the node an uplink to a router (absent) at
// birdtest.Router6 and starts BIRD on a bootstrap config, as the
// DaemonSet's sidecar does. It returns nil where bird is not installed.
func startBirdNode(t *testing.T, node *cnitest.Node) *birdtest.Sidecar {
	t.Helper()
	if _, err := exec.LookPath("bird"); err != nil {
		t.Log("bird is not installed: the agent runs without BGP (CI installs bird2)")
		return nil
	}
	birdtest.Uplink(t, node.NS.Name)
	return birdtest.StartSidecar(t, node.NS.Name, node.Dir)
}

// waitSessions waits until BIRD's BGP protocols are exactly names, sorted.
func waitSessions(t *testing.T, b *birdtest.Sidecar, names ...string) {
	t.Helper()
	waitFor(t, "bird's BGP protocols "+strings.Join(names, ", "), func() bool {
		return slices.Equal(birdtest.Sessions(t, b.Client), names)
	})
}

// bgpConfigured returns the BGPConfigured condition of a NodeConfig as
// status, reason, message, and whether it is about the current generation.
func bgpConfigured(u *unstructured.Unstructured) (status, reason, message string, current bool) {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok || m["type"] != v1alpha1.ConditionBGPConfigured {
			continue
		}
		status, _ = m["status"].(string)
		reason, _ = m["reason"].(string)
		message, _ = m["message"].(string)
		gen, _ := m["observedGeneration"].(int64)
		return status, reason, message, gen == u.GetGeneration()
	}
	return "", "", "", false
}
