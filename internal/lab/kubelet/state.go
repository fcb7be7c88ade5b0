package kubelet

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// podRecord is what kubelet-lite must remember about a pod across its own
// restarts to adopt it or clean it up: the namespace and sandbox it made
// and the processes it started. It is written before the namespace is
// created, so a crash at any point leaves a record of everything that may
// exist.
type podRecord struct {
	UID          types.UID     `json:"uid"`
	Namespace    string        `json:"namespace"`
	Name         string        `json:"name"`
	Netns        string        `json:"netns,omitempty"` // name under /run/netns; empty for host-network pods
	SandboxID    string        `json:"sandboxID,omitempty"`
	PortMappings []portMapping `json:"portMappings,omitempty"`
	Processes    []procRecord  `json:"processes,omitempty"`
}

// portMapping is one hostPort in the shape of CNI's portMappings capability.
type portMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// procRecord identifies a container process beyond its pid.
type procRecord struct {
	Container string `json:"container"`
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"`
}

func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// netnsName is the pod's namespace name: prefix and 10 hex digits of a hash
// of its UID (stable, so a restarted kubelet-lite finds it again).
func netnsName(prefix string, uid types.UID) string { return prefix + hashHex(string(uid))[:10] }

// sandboxID is the pod's CNI container id, 64 hex digits like a runtime's
// sandbox id, stable per pod UID.
func sandboxID(uid types.UID) string { return hashHex("flock-lab-sandbox/" + string(uid)) }

// stateStore keeps one JSON file per pod under dir, replaced atomically.
type stateStore struct {
	dir string
	mu  sync.Mutex
}

func newStateStore(dir string) (*stateStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create state dir %s: %w", dir, err)
	}
	return &stateStore{dir: dir}, nil
}

func (s *stateStore) path(uid types.UID) string { return filepath.Join(s.dir, string(uid)+".json") }

// save writes the record (a temporary file renamed into place).
func (s *stateStore) save(r *podRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.path(r.UID) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write state of pod %s/%s: %w", r.Namespace, r.Name, err)
	}
	if err := os.Rename(tmp, s.path(r.UID)); err != nil {
		return fmt.Errorf("write state of pod %s/%s: %w", r.Namespace, r.Name, err)
	}
	return nil
}

// remove forgets a pod; one already forgotten is fine.
func (s *stateStore) remove(uid types.UID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(s.path(uid)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove state of pod %s: %w", uid, err)
	}
	return nil
}

// list returns every record, sorted by UID; unreadable files are reported
// and skipped.
func (s *stateStore) list() ([]*podRecord, []error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, []error{fmt.Errorf("read state dir %s: %w", s.dir, err)}
	}
	var out []*podRecord
	var errs []error
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var r podRecord
		if err := json.Unmarshal(b, &r); err != nil || r.UID == "" {
			errs = append(errs, fmt.Errorf("parse %s: %v", e.Name(), err))
			continue
		}
		out = append(out, &r)
	}
	slices.SortFunc(out, func(a, b *podRecord) int { return strings.Compare(string(a.UID), string(b.UID)) })
	return out, errs
}
