// Package source provides where the agent learns its node's configuration
// and its pods' metadata when it does not run against Kubernetes: files in
// the shapes Kubernetes uses (a NodeConfig manifest; pod metadata).
package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/model"
)

// File reads the node's NodeConfig from a YAML file and each pod's metadata
// from PodsDir/<namespace>/<name>.yaml (an ObjectMeta: name, namespace, uid,
// annotations). A pod without a file has no annotations. The NodeConfig is
// re-read when the file changes, so edits take effect without a restart.
type File struct {
	NodeConfigPath string
	PodsDir        string

	mu      sync.Mutex
	modTime time.Time
	size    int64
	node    *model.Node
	err     error
}

// Node returns the node's configuration.
func (f *File) Node(context.Context) (*model.Node, error) {
	fi, err := os.Stat(f.NodeConfigPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", f.NodeConfigPath, model.ErrNoNodeConfig)
	}
	if err != nil {
		return nil, fmt.Errorf("read nodeconfig: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if (f.node != nil || f.err != nil) && fi.ModTime().Equal(f.modTime) && fi.Size() == f.size {
		return f.node, f.err
	}
	f.modTime, f.size = fi.ModTime(), fi.Size()
	f.node, f.err = ReadNodeConfig(f.NodeConfigPath)
	return f.node, f.err
}

// ReadNodeConfig parses and validates a NodeConfig manifest. Unknown fields
// are errors, so a misspelt field is never silently ignored.
func ReadNodeConfig(path string) (*model.Node, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read nodeconfig: %w", err)
	}
	var nc v1alpha1.NodeConfig
	if err := yaml.UnmarshalStrict(b, &nc); err != nil {
		return nil, fmt.Errorf("parse nodeconfig %s: %w", path, err)
	}
	if nc.Kind != "" && nc.Kind != "NodeConfig" {
		return nil, fmt.Errorf("parse nodeconfig %s: kind %q is not NodeConfig", path, nc.Kind)
	}
	return model.NodeFromConfig(&nc)
}

// Pod returns a pod's metadata.
func (f *File) Pod(_ context.Context, namespace, name string) (*model.Pod, error) {
	pod := &model.Pod{Namespace: namespace, Name: name}
	if f.PodsDir == "" {
		return pod, nil
	}
	// namespace and name are DNS names (validated by the RPC server), so
	// they cannot leave PodsDir.
	b, err := os.ReadFile(filepath.Join(f.PodsDir, namespace, name+".yaml"))
	if errors.Is(err, fs.ErrNotExist) {
		return pod, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pod %s/%s: %w", namespace, name, err)
	}
	var meta metav1.ObjectMeta
	if err := yaml.UnmarshalStrict(b, &meta); err != nil {
		return nil, fmt.Errorf("parse pod %s/%s: %w", namespace, name, err)
	}
	pod.UID = string(meta.UID)
	pod.Annotations = meta.Annotations
	return pod, nil
}

// LogRecorder reports pod warnings to the agent's log.
type LogRecorder struct{ Log *slog.Logger }

// PodWarning logs a warning about a pod.
func (r LogRecorder) PodWarning(pod *model.Pod, reason, message string) {
	r.Log.Warn(message, "pod", pod.Key(), "reason", reason)
}

// Watch returns a channel poked when the NodeConfig file changes (appears,
// goes away, or gets another modification time or size), checked every
// interval until ctx ends. File mode has no informer: this is its change
// poke. The channel holds one pending poke.
func (f *File) Watch(ctx context.Context, every time.Duration) <-chan struct{} {
	ch := make(chan struct{}, 1)
	type state struct {
		exists  bool
		modTime time.Time
		size    int64
	}
	read := func() state {
		fi, err := os.Stat(f.NodeConfigPath)
		if err != nil {
			return state{}
		}
		return state{true, fi.ModTime(), fi.Size()}
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		last := read()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if cur := read(); cur.exists != last.exists || cur.size != last.size || !cur.modTime.Equal(last.modTime) {
				last = cur
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
	}()
	return ch
}
