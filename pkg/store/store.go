// Package store keeps the node's pod allocations on disk: one small JSON file
// per attachment (container id + interface), written to a temporary file and
// renamed into place. A rename is atomic, so a crash at any point leaves
// either the old file or the new one, and a torn write can only ever damage
// the temporary file of the one allocation being written. A file damaged
// some other way (a disk error, an operator's editor) is quarantined by Open;
// the agent then rebuilds what it can from the kernel (agent.Restore).
package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Record is one attachment's allocation and what is needed to tear it down.
type Record struct {
	ContainerID string     `json:"containerID"`
	IfName      string     `json:"ifName"`
	Namespace   string     `json:"namespace,omitempty"`
	Name        string     `json:"name,omitempty"`
	UID         string     `json:"uid,omitempty"`
	Netns       string     `json:"netns,omitempty"`
	HostIface   string     `json:"hostIface"`
	IPv6        netip.Addr `json:"ipv6,omitzero"`
	IPv4        netip.Addr `json:"ipv4,omitzero"`
	Gateway4    netip.Addr `json:"gateway4,omitzero"`
	MTU         int        `json:"mtu,omitempty"`
	// Anycast are the anycast addresses accepted for the pod (on its lo).
	Anycast []netip.Addr `json:"anycast,omitempty"`
	// Pool6 and Pool4 are the node pools the addresses came from, so that a
	// pool the NodeConfig replaced stays announced while it holds pods.
	Pool6 netip.Prefix `json:"pool6,omitzero"`
	Pool4 netip.Prefix `json:"pool4,omitzero"`
	// Created is when the allocation was first made (for a record written
	// before the field existed: its file's modification time). The leak
	// sweep leaves young allocations alone.
	Created time.Time `json:"created,omitzero"`
}

// Key identifies an attachment.
type Key struct{ ContainerID, IfName string }

// Key returns the record's key.
func (r *Record) Key() Key { return Key{r.ContainerID, r.IfName} }

// Store is the set of allocations, on disk and mirrored in memory.
type Store struct {
	dir  string
	sync bool

	mu      sync.Mutex
	records map[Key]Record
	// quarantined are the files Open moved aside.
	quarantined []Quarantined
}

// Quarantined is an allocation file Open could not use and moved aside.
type Quarantined struct {
	// File is the allocation file's name in the store's directory (the
	// hash of its key: KeyFile(key) of the attachment it was for).
	File string
	// Path is where it is now.
	Path string
	// Err says what was wrong with it.
	Err error
}

// Options tune the store.
type Options struct {
	// Sync fsyncs every write and the directory, so allocations also
	// survive a power loss, not just a crash of the agent.
	Sync bool
}

const (
	suffix    = ".json"
	tmpPrefix = ".tmp-"
)

// QuarantineSuffix is appended to the name of an allocation file that could
// not be used: Open renames it so and keeps it for the operator to read.
const QuarantineSuffix = ".corrupt"

// Open loads every allocation in dir, creating dir if needed. Leftover
// temporary files are removed; a file that cannot be parsed is renamed to
// *.corrupt (QuarantineSuffix) and listed by Quarantined, and never stops
// the others from loading. The caller reports those (it can tell, after a
// look at the kernel, what became of the attachment).
func Open(dir string, opt Options, log *slog.Logger) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	// Also a directory that existed: allocations are root's alone (files
	// are 0600, from CreateTemp).
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	s := &Store{dir: dir, sync: opt.Sync, records: map[Key]Record{}}
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		switch {
		case strings.HasPrefix(name, tmpPrefix):
			_ = os.Remove(path)
		case strings.HasSuffix(name, suffix):
			rec, err := readRecord(path)
			if err == nil && fileName(rec.Key()) != name {
				err = fmt.Errorf("file name does not match %s/%s", rec.ContainerID, rec.IfName)
			}
			if err != nil {
				q := Quarantined{File: name, Path: path + QuarantineSuffix, Err: err}
				if rerr := os.Rename(path, q.Path); rerr != nil {
					log.Error("allocation file unreadable and cannot be moved aside", "file", path, "err", err, "rename", rerr)
					q.Path = path
				}
				s.quarantined = append(s.quarantined, q)
				continue
			}
			if rec.Created.IsZero() {
				if info, err := e.Info(); err == nil {
					rec.Created = info.ModTime()
				}
			}
			s.records[rec.Key()] = rec
		}
	}
	return s, nil
}

func readRecord(path string) (Record, error) {
	var rec Record
	b, err := os.ReadFile(path)
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, err
	}
	if rec.ContainerID == "" || rec.IfName == "" || rec.HostIface == "" {
		return rec, errors.New("containerID, ifName or hostIface missing")
	}
	return rec, nil
}

// Quarantined lists the allocation files Open moved aside.
func (s *Store) Quarantined() []Quarantined { return slices.Clone(s.quarantined) }

// KeyFile is the name of the allocation file of k in the store's
// directory.
func KeyFile(k Key) string { return fileName(k) }

// fileName hashes the key, so no container id can form a path and every
// name has the same length.
func fileName(k Key) string {
	h := sha256.Sum256([]byte(k.ContainerID + "\x00" + k.IfName))
	return hex.EncodeToString(h[:16]) + suffix
}

// Save writes rec to disk, then makes it visible in memory.
func (s *Store) Save(rec Record) error {
	k := rec.Key()
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("save allocation %s/%s: %w", k.ContainerID, k.IfName, err)
	}
	if err := s.write(fileName(k), b); err != nil {
		return fmt.Errorf("save allocation %s/%s: %w", k.ContainerID, k.IfName, err)
	}
	s.mu.Lock()
	s.records[k] = rec
	s.mu.Unlock()
	return nil
}

func (s *Store) write(name string, b []byte) error {
	f, err := os.CreateTemp(s.dir, tmpPrefix)
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil && s.sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, name))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if s.sync {
		return syncDir(s.dir)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Delete removes an allocation; a missing one is not an error.
func (s *Store) Delete(k Key) error {
	err := os.Remove(filepath.Join(s.dir, fileName(k)))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete allocation %s/%s: %w", k.ContainerID, k.IfName, err)
	}
	s.mu.Lock()
	delete(s.records, k)
	s.mu.Unlock()
	return nil
}

// Get returns the allocation for k.
func (s *Store) Get(k Key) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[k]
	return r, ok
}

// List returns every allocation, sorted by container id and interface.
func (s *Store) List() []Record {
	s.mu.Lock()
	out := make([]Record, 0, len(s.records))
	for _, r := range s.records {
		out = append(out, r)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].ContainerID != out[j].ContainerID {
			return out[i].ContainerID < out[j].ContainerID
		}
		return out[i].IfName < out[j].IfName
	})
	return out
}
