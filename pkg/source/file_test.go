package source

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fritzlab/flock/pkg/model"
)

const good = `apiVersion: flock.fritzlab.net/v1alpha1
kind: NodeConfig
metadata:
  name: host001
  annotations:
    flock.fritzlab.net/ip-algo: hash
spec:
  cidr6: 2001:db8:42:1::/64
  cidr4: 10.42.1.0/24
  defaults: {ipv6: true, ipv4: false}
`

func TestFileNode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nc.yaml")
	f := &File{NodeConfigPath: path, PodsDir: filepath.Join(dir, "pods")}
	ctx := context.Background()
	if _, err := f.Node(ctx); !errors.Is(err, model.ErrNoNodeConfig) {
		t.Errorf("missing file: %v, want ErrNoNodeConfig", err)
	}
	os.WriteFile(path, []byte(good), 0o644)
	n, err := f.Node(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n.Name != "host001" || n.Pool6.String() != "2001:db8:42:1::/64" || n.Defaults.IPv4 == nil || *n.Defaults.IPv4 || n.Annotations["flock.fritzlab.net/ip-algo"] != "hash" {
		t.Errorf("node: %+v", n)
	}
	// An edit takes effect without a restart; a typo is an error naming it.
	bad := strings.Replace(good, "cidr4:", "cidr44:", 1)
	os.WriteFile(path, []byte(bad), 0o644)
	os.Chtimes(path, time.Now().Add(time.Second), time.Now().Add(time.Second))
	if _, err := f.Node(ctx); err == nil || !strings.Contains(err.Error(), "cidr44") {
		t.Errorf("unknown field: %v, want an error naming cidr44", err)
	}
	os.WriteFile(path, []byte(strings.Replace(good, "10.42.1.0/24", "10.42.1.7/24", 1)), 0o644)
	os.Chtimes(path, time.Now().Add(2*time.Second), time.Now().Add(2*time.Second))
	if _, err := f.Node(ctx); err == nil || !strings.Contains(err.Error(), `spec.cidr4 "10.42.1.7/24"`) {
		t.Errorf("bad cidr4: %v", err)
	}
	os.WriteFile(path, []byte(strings.Replace(good, "kind: NodeConfig", "kind: Pod", 1)), 0o644)
	os.Chtimes(path, time.Now().Add(3*time.Second), time.Now().Add(3*time.Second))
	if _, err := f.Node(ctx); err == nil || !strings.Contains(err.Error(), `kind "Pod"`) {
		t.Errorf("wrong kind: %v", err)
	}
}

func TestFilePod(t *testing.T) {
	dir := t.TempDir()
	f := &File{PodsDir: dir}
	ctx := context.Background()
	p, err := f.Pod(ctx, "default", "nofile")
	if err != nil || p.Key() != "default/nofile" || len(p.Annotations) != 0 {
		t.Errorf("pod without a file: %+v %v", p, err)
	}
	os.MkdirAll(filepath.Join(dir, "default"), 0o755)
	os.WriteFile(filepath.Join(dir, "default", "web.yaml"), []byte("name: web\nuid: u1\nannotations:\n  flock.fritzlab.net/ipv4: \"false\"\n"), 0o644)
	p, err = f.Pod(ctx, "default", "web")
	if err != nil || p.UID != "u1" || p.Annotations["flock.fritzlab.net/ipv4"] != "false" {
		t.Errorf("pod: %+v %v", p, err)
	}
	os.WriteFile(filepath.Join(dir, "default", "bad.yaml"), []byte("annotations: [1,2]\n"), 0o644)
	if _, err := f.Pod(ctx, "default", "bad"); err == nil || !strings.Contains(err.Error(), "default/bad") {
		t.Errorf("malformed pod file: %v", err)
	}
}

func TestFileWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nc.yaml")
		f := &File{NodeConfigPath: path}
		changes := f.Watch(t.Context(), time.Second)
		poked := func() bool {
			time.Sleep(time.Second)
			synctest.Wait()
			select {
			case <-changes:
				return true
			default:
				return false
			}
		}
		if poked() {
			t.Error("poked without a change")
		}
		for i, change := range []func() error{
			func() error { return os.WriteFile(path, []byte(good), 0o644) },
			func() error { return os.WriteFile(path, []byte(good+"\n"), 0o644) },
			func() error { return os.Remove(path) },
		} {
			if err := change(); err != nil {
				t.Fatal(err)
			}
			if !poked() {
				t.Errorf("change %d: no poke", i)
			}
			if poked() {
				t.Errorf("change %d: poked twice", i)
			}
		}
	})
}
