// Package chaos is flock's fault-injection suite (`make chaos`, and a
// smaller sample in test/lab): seven scenarios in a lab of two nodes, each
// under continuous traffic between pods on different nodes (pings and TCP
// connections, both families) and each followed by a leak audit. It prints
// one line per scenario and a summary line of key=value pairs.
package chaos

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/fritzlab/flock/internal/lab"
)

// Options size the suite. Full is what `make chaos` runs; CI a sample
// with fewer repetitions of the same scenarios.
type Options struct {
	AgentKills int           // scenario 1: kill -9 of an agent during the storm
	StormPods  int           // scenario 1: pods created and deleted
	APIDown    time.Duration // scenario 3
	Out        io.Writer
}

var (
	Full = Options{AgentKills: 10, StormPods: 50, APIDown: 120 * time.Second}
	CI   = Options{AgentKills: 2, StormPods: 8, APIDown: 15 * time.Second}
)

// Result is one scenario's outcome.
type Result struct {
	Name       string
	Failures   []string
	Leaked     int
	LostPings  int
	Duplicates int
	Notes      []string
}

// Summary is the whole run.
type Summary struct {
	Results                               []Result
	Failed, Leaked, LostPings, Duplicates int
}

// Line is the summary's last line.
func (s Summary) Line() string {
	return fmt.Sprintf("chaos_scenarios=%d failed=%d leaked=%d lost_pings=%d duplicate_addresses=%d",
		len(s.Results), s.Failed, s.Leaked, s.LostPings, s.Duplicates)
}

const ns = "chaos"

type suite struct {
	l   *lab.Lab
	cs  kubernetes.Interface
	dyn dynamic.Interface
	opt Options
	// traffic pods: src on node-1, dst on node-2 (dst is replaced by the
	// pool-change scenario).
	src *corev1.Pod
	dst atomic.Pointer[corev1.Pod]
	seq atomic.Int64
}

// Run runs every scenario in order on a lab of at least two nodes.
func Run(ctx context.Context, l *lab.Lab, opt Options) (Summary, error) {
	cfg := l.ControlPlane().RESTConfig()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return Summary{}, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return Summary{}, err
	}
	s := &suite{l: l, cs: cs, dyn: dyn, opt: opt}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return Summary{}, err
	}
	if s.src, err = s.start(ctx, "traffic-src", "node-1", nil); err != nil {
		return Summary{}, err
	}
	dst, err := s.start(ctx, "traffic-dst", "node-2", nil)
	if err != nil {
		return Summary{}, err
	}
	s.dst.Store(dst)
	var sum Summary
	for _, sc := range []struct {
		name string
		run  func(context.Context, *Result)
	}{
		{"agent-kill-storm", s.agentKillStorm},
		{"bird-kill", s.birdKill},
		{"api-down", s.apiDown},
		{"store-corrupt", s.storeCorrupt},
		{"pool-change", s.poolChange},
		{"pool-exhaustion", s.exhaustion},
		{"uplink-flap", s.uplinkFlap},
	} {
		r := Result{Name: sc.name}
		tr := s.traffic(ctx)
		sc.run(ctx, &r)
		lost, detail := tr.stop()
		if sc.name == "uplink-flap" {
			// The link is down for a while: losses are expected and only
			// reported.
			r.Notes = append(r.Notes, fmt.Sprintf("pings lost while the link was down: %d", lost))
		} else {
			r.LostPings = lost
			if detail != "" {
				r.Notes = append(r.Notes, detail)
			}
		}
		a := s.audit(ctx)
		r.Leaked += a.leaked
		r.Duplicates += a.duplicates
		r.Failures = append(r.Failures, a.problems...)
		sum.Results = append(sum.Results, r)
		if len(r.Failures) > 0 {
			sum.Failed++
		}
		sum.Leaked += r.Leaked
		sum.LostPings += r.LostPings
		sum.Duplicates += r.Duplicates
		fmt.Fprintln(opt.Out, r.line())
	}
	fmt.Fprintln(opt.Out, sum.Line())
	return sum, nil
}

func (r Result) line() string {
	status := "ok"
	if len(r.Failures) > 0 {
		status = "FAILED"
	}
	out := fmt.Sprintf("scenario=%s result=%s leaked=%d lost_pings=%d duplicate_addresses=%d", r.Name, status, r.Leaked, r.LostPings, r.Duplicates)
	if len(r.Failures) > 0 {
		out += " failures=" + fmt.Sprintf("%q", strings.Join(r.Failures, "; "))
	}
	if len(r.Notes) > 0 {
		out += " notes=" + fmt.Sprintf("%q", strings.Join(r.Notes, "; "))
	}
	return out
}

func (r *Result) fail(format string, args ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
}

// pod is a lab pod serving TCP and UDP on 8080, Ready once TCP answers.
func pod(name, node string, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{{
				Name: "serve", Image: "flock-lab",
				Command: []string{"flock-lab", "serve", "--tcp", "8080", "--udp", "8080"},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt(8080)}},
					PeriodSeconds: 1,
				},
			}},
		},
	}
}

// start creates a pod and waits until it is Ready.
func (s *suite) start(ctx context.Context, name, node string, ann map[string]string) (*corev1.Pod, error) {
	if _, err := s.cs.CoreV1().Pods(ns).Create(ctx, pod(name, node, ann), metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create pod %s: %w", name, err)
	}
	return s.waitReady(ctx, name, 90*time.Second)
}

func (s *suite) waitReady(ctx context.Context, name string, timeout time.Duration) (*corev1.Pod, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		p, err := s.cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && ready(p) {
			return p, nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return nil, fmt.Errorf("pod %s/%s not Ready within %s", ns, name, timeout)
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && len(p.Status.PodIPs) > 0 {
			return true
		}
	}
	return false
}

// remove deletes pods and waits until they are gone.
func (s *suite) remove(ctx context.Context, names ...string) error {
	for _, n := range names {
		if err := s.cs.CoreV1().Pods(ns).Delete(ctx, n, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	for _, n := range names {
		for {
			if _, err := s.cs.CoreV1().Pods(ns).Get(ctx, n, metav1.GetOptions{}); apierrors.IsNotFound(err) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("pod %s/%s still there 90s after delete", ns, n)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	return nil
}

func addrs(p *corev1.Pod) (v6, v4 netip.Addr) {
	for _, ip := range p.Status.PodIPs {
		a, err := netip.ParseAddr(ip.IP)
		if err != nil {
			continue
		}
		if a.Is4() {
			v4 = a
		} else {
			v6 = a
		}
	}
	return v6, v4
}

// reach connects from the traffic source to p's addresses over TCP.
func (s *suite) reach(ctx context.Context, p *corev1.Pod) error {
	srcNS, err := s.l.PodNetns(ctx, s.src.Namespace, s.src.Name)
	if err != nil {
		return err
	}
	v6, v4 := addrs(p)
	for _, a := range []netip.Addr{v6, v4} {
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", srcNS, "nc", "-w", "3", a.String(), "8080").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != ns+"/"+p.Name {
			return fmt.Errorf("%s (%s) unreachable: %q %v", p.Name, a, out, err)
		}
	}
	return nil
}

// traffic pings the destination pod from the source pod on both families
// (every 200 ms) and opens a TCP connection to it (every second) until
// stop, which returns the lost pings and failed connections.
type traffic struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	lost    atomic.Int64
	tcpFail atomic.Int64
}

func (s *suite) traffic(ctx context.Context) *traffic {
	ctx, cancel := context.WithCancel(ctx)
	t := &traffic{cancel: cancel}
	srcNS, err := s.l.PodNetns(ctx, s.src.Namespace, s.src.Name)
	if err != nil {
		t.lost.Add(1)
		return t
	}
	for fam := range 2 {
		t.wg.Go(func() {
			every(ctx, 200*time.Millisecond, func() {
				v6, v4 := addrs(s.dst.Load())
				a := v6
				if fam == 1 {
					a = v4
				}
				if exec.Command("ip", "netns", "exec", srcNS, "ping", "-c1", "-W1", "-n", "-q", a.String()).Run() != nil && ctx.Err() == nil {
					t.lost.Add(1)
				}
			})
		})
	}
	t.wg.Go(func() {
		every(ctx, time.Second, func() {
			v6, v4 := addrs(s.dst.Load())
			for _, a := range []netip.Addr{v6, v4} {
				if exec.Command("ip", "netns", "exec", srcNS, "nc", "-w", "2", a.String(), "8080").Run() != nil && ctx.Err() == nil {
					t.tcpFail.Add(1)
				}
			}
		})
	})
	return t
}

// every runs f every d until ctx ends.
func every(ctx context.Context, d time.Duration, f func()) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			f()
		}
	}
}

func (t *traffic) stop() (lost int, detail string) {
	t.cancel()
	t.wg.Wait()
	if n := t.tcpFail.Load(); n > 0 {
		detail = fmt.Sprintf("%d failed TCP connections", n)
	}
	return int(t.lost.Load()), detail
}
