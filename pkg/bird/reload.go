package bird

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Controller is what the Reloader needs of BIRD's control socket; *Client
// is one, and the tests have a fake.
type Controller interface {
	Command(ctx context.Context, cmd string) ([]Line, error)
}

// Timing of the Reloader.
const (
	// CoalesceWindow: after a reload, further changes within this window
	// are coalesced into one trailing reload at its end.
	CoalesceWindow = 500 * time.Millisecond
	// MinBackoff and MaxBackoff bound the wait before retrying a config
	// that BIRD refused or could not be reached for; it doubles per failure.
	MinBackoff = time.Second
	MaxBackoff = 30 * time.Second
	// commandTimeout bounds one command on the control socket.
	commandTimeout = 10 * time.Second
)

// Status is where the Reloader stands, for the agent's log and the
// NodeConfig's status condition.
type Status struct {
	// InSync is true when BIRD runs the config last given to Apply.
	InSync bool
	// Err is why the last attempt failed, while not in sync; nil otherwise.
	Err error
	// Failures counts the failed attempts since BIRD last took a config.
	Failures int
	// Reloads counts the configs BIRD took.
	Reloads int
	// LastReload is when BIRD last took a config.
	LastReload time.Time
}

// Reloader keeps BIRD running the latest config given to Apply. It writes
// the file atomically (a temporary file that BIRD checks, renamed over the
// config), then tells BIRD to reread it. The first change reloads at once;
// changes within CoalesceWindow of a reload coalesce into one trailing
// reload; a config equal to the one BIRD last took is not reloaded. A
// failure is retried with backoff, sooner if a new config comes.
//
// BIRD must run with -c Path, and see the directory of Path at the same
// path as the agent (it reads the temporary file by name).
type Reloader struct {
	// Path is the config file BIRD reads (bird -c).
	Path string
	// Control is BIRD's control socket.
	Control Controller
	// Log receives one line per failure and per recovery; nil: slog.Default.
	Log *slog.Logger
	// OnStatus, when set, is called with the new Status after every
	// attempt, from the goroutine running Run.
	OnStatus func(Status)

	mu      sync.Mutex
	desired []byte // the config last given to Apply
	applied []byte // the config BIRD last took
	status  Status
	poke    chan struct{}
	once    sync.Once
}

// NewReloader returns a Reloader for the config at path, reloaded through
// ctl. Start it with Run.
func NewReloader(path string, ctl Controller) *Reloader {
	return &Reloader{Path: path, Control: ctl}
}

func (r *Reloader) init() {
	r.once.Do(func() { r.poke = make(chan struct{}, 1) })
}

// Apply makes conf the config BIRD should run. It does not wait.
func (r *Reloader) Apply(conf []byte) {
	r.init()
	r.mu.Lock()
	r.desired = bytes.Clone(conf)
	r.status.InSync = bytes.Equal(r.desired, r.applied)
	r.mu.Unlock()
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

// Status returns where the Reloader stands.
func (r *Reloader) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// Run reloads BIRD as configs come, until ctx is done.
func (r *Reloader) Run(ctx context.Context) {
	r.init()
	log := r.Log
	if log == nil {
		log = slog.Default()
	}
	var (
		lastTry time.Time // start of the last attempt
		failed  []byte    // the config of the last failed attempt
		retryAt time.Time // when to retry failed
		backoff time.Duration
		timer   = time.NewTimer(time.Hour)
	)
	timer.Stop()
	for {
		r.mu.Lock()
		want := r.desired
		upToDate := want == nil || bytes.Equal(want, r.applied)
		recovered := want != nil && upToDate && (r.status.Err != nil || !r.status.InSync)
		if recovered {
			// Back to the config BIRD runs: nothing left to retry.
			r.status.InSync, r.status.Err, r.status.Failures = true, nil, 0
			failed, backoff = nil, 0
		}
		r.mu.Unlock()
		if recovered {
			r.notify()
		}
		if upToDate {
			select {
			case <-ctx.Done():
				return
			case <-r.poke:
				continue
			}
		}
		at := lastTry.Add(CoalesceWindow)
		if failed != nil && bytes.Equal(want, failed) && retryAt.After(at) {
			at = retryAt
		}
		if wait := time.Until(at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-r.poke:
				timer.Stop()
				continue
			case <-timer.C:
				continue
			}
		}

		lastTry = time.Now()
		err := r.reload(ctx, want)
		if ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		if err == nil {
			if r.status.Failures > 0 {
				log.Info("bird took the config again", "path", r.Path, "failures", r.status.Failures)
			}
			r.applied, failed, backoff = want, nil, 0
			r.status.Reloads++
			r.status.LastReload = lastTry
			r.status.Failures, r.status.Err = 0, nil
			r.status.InSync = bytes.Equal(r.desired, want)
		} else {
			backoff = min(max(2*backoff, MinBackoff), MaxBackoff)
			failed, retryAt = want, lastTry.Add(backoff)
			r.status.Failures++
			r.status.Err, r.status.InSync = err, false
			log.Warn("bird reload failed", "path", r.Path, "err", err,
				"failures", r.status.Failures, "retry_in", backoff)
		}
		r.mu.Unlock()
		r.notify()
	}
}

func (r *Reloader) notify() {
	if r.OnStatus != nil {
		r.OnStatus(r.Status())
	}
}

// reload writes conf next to Path, has BIRD check it, renames it over Path
// and has BIRD reread Path. A config BIRD refuses never replaces Path, so a
// restarting BIRD always finds one it takes. When BIRD cannot be reached,
// Path is replaced all the same: a BIRD that starts later reads the newest
// config.
func (r *Reloader) reload(ctx context.Context, conf []byte) error {
	tmp, err := writeTemp(r.Path, conf)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // a no-op once renamed
	if strings.ContainsAny(tmp, "\"\r\n") {
		return fmt.Errorf("bird config path %q: contains a quote or line break", tmp)
	}
	var refused *ReplyError
	_, err = r.command(ctx, fmt.Sprintf("configure check %q", tmp), 20)
	switch {
	case errors.As(err, &refused):
		return fmt.Errorf("bird refuses the config: %w", err)
	case err != nil:
		if rerr := os.Rename(tmp, r.Path); rerr != nil {
			return fmt.Errorf("replace %s: %w", r.Path, rerr)
		}
		return fmt.Errorf("bird unreachable: %w", err)
	}
	if err := os.Rename(tmp, r.Path); err != nil {
		return fmt.Errorf("replace %s: %w", r.Path, err)
	}
	// 0003 Reconfigured; 0004 in progress (some protocols restart); 0005
	// queued behind a reconfiguration in progress.
	if _, err := r.command(ctx, "configure", 3, 4, 5); err != nil {
		return err
	}
	return nil
}

// command runs cmd and wants its reply to end with one of the codes.
func (r *Reloader) command(ctx context.Context, cmd string, codes ...int) ([]Line, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	lines, err := r.Control.Command(ctx, cmd)
	if err != nil {
		return lines, err
	}
	if len(lines) == 0 {
		return nil, &ReplyError{Command: cmd, Text: "empty reply"}
	}
	last := lines[len(lines)-1]
	for _, c := range codes {
		if last.Code == c {
			return lines, nil
		}
	}
	return lines, &ReplyError{Command: cmd, Code: last.Code, Text: last.Text}
}

// ConfigMode is the mode of the config file the Reloader writes: it holds
// the peers' TCP MD5 passwords, so only its owner (the agent, and BIRD
// running as the same user) may read it. DirMode is the mode of the
// directory the agent keeps it in (PrepareDir).
const (
	ConfigMode os.FileMode = 0o600
	DirMode    os.FileMode = 0o700
)

// PrepareDir creates the directory of the config file path with DirMode,
// or tightens an existing one to it (a hostPath volume the kubelet created
// is 0755), so that no other user of the host can list or open the config
// or the temporary files beside it.
func PrepareDir(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return fmt.Errorf("bird config directory: %w", err)
	}
	if err := os.Chmod(dir, DirMode); err != nil {
		return fmt.Errorf("bird config directory: %w", err)
	}
	return nil
}

// writeTemp writes conf to a new file beside path, with ConfigMode, and
// returns its name.
func writeTemp(path string, conf []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return "", fmt.Errorf("write bird config: %w", err)
	}
	_, err = f.Write(conf)
	if err == nil {
		err = f.Chmod(ConfigMode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write bird config %s: %w", f.Name(), err)
	}
	return f.Name(), nil
}
