package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/internal/cnitest"
	"github.com/fritzlab/flock/pkg/bird"
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
	if ns := secretsNamespace(""); ns != "kube-system" {
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

// birdNode is a BIRD in a node's namespace, on a bootstrap config, as the
// DaemonSet's sidecar starts; the node gets an uplink to a router (absent)
// at 2001:db8:f10c:ff::1.
type birdNode struct {
	conf, sock string
	client     *bird.Client
}

const routerAddr = "2001:db8:f10c:ff::1"

// startBirdNode returns nil where bird is not installed.
func startBirdNode(t *testing.T, node *cnitest.Node) *birdNode {
	t.Helper()
	if _, err := exec.LookPath("bird"); err != nil {
		t.Log("bird is not installed: the agent runs without BGP (CI installs bird2)")
		return nil
	}
	for _, args := range [][]string{
		{"ip", "link", "add", "uplink", "type", "veth", "peer", "name", "router"},
		{"ip", "link", "set", "uplink", "up"},
		{"ip", "link", "set", "router", "up"},
		{"ip", "addr", "add", "2001:db8:f10c:ff::2/64", "dev", "uplink", "nodad"},
		{"ip", "addr", "add", "192.0.2.2/24", "dev", "uplink"},
	} {
		if _, err := node.NS.Run(args...); err != nil {
			t.Fatal(err)
		}
	}
	b := &birdNode{conf: filepath.Join(node.Dir, "bird.conf"), sock: filepath.Join(node.Dir, "bird.ctl")}
	if err := os.WriteFile(b.conf, bird.RenderBootstrap(), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command("ip", "netns", "exec", node.NS.Name, "bird", "-f", "-R", "-c", b.conf, "-s", b.sock,
		"-P", filepath.Join(node.Dir, "bird.pid"))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("bird's log:\n%s", out.String())
		}
	})
	b.client = bird.NewClient(b.sock)
	waitFor(t, "bird's control socket", func() bool {
		_, err := b.client.Command(context.Background(), "show status")
		return err == nil
	})
	return b
}

func (b *birdNode) args() []string { return []string{"--bird-config", b.conf, "--bird-socket", b.sock} }

// waitSessions waits until BIRD's BGP protocols are exactly names.
func (b *birdNode) waitSessions(t *testing.T, names ...string) {
	t.Helper()
	waitFor(t, "bird's BGP protocols "+strings.Join(names, ", "), func() bool {
		ps, err := b.client.Protocols(context.Background())
		if err != nil {
			return false
		}
		var got []string
		for _, p := range ps {
			if p.Proto == "BGP" {
				got = append(got, p.Name)
			}
		}
		return slices.Equal(got, names)
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
