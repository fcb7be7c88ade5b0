package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fritzlab/flock/internal/lab/apiproxy"
	"github.com/fritzlab/flock/internal/lab/nsnet"
	"github.com/fritzlab/flock/pkg/rpc"
)

// NodeStatus is what Status finds about one node.
type NodeStatus struct {
	Name       string
	Ready      bool   // the Node's Ready condition
	Agent      string // "ok", or why the agent's STATUS failed
	AgentPid   int    // 0 when not running
	KubeletPid int    // kubelet-lite's, or the real kubelet's
	// RuntimeReal only: the node's containerd and kube-proxy (0 when not
	// running) and containerd's CRI answer ("ok", or why not).
	ContainerdPid int
	KubeProxyPid  int
	CRI           string
	APIProxyErr   error // reaching the API server from the node
}

// Status reports every node; it needs the control plane for the Ready
// conditions and reports the rest without it.
func (l *Lab) Status(ctx context.Context) ([]NodeStatus, error) {
	var ready map[string]bool // none Ready when the API cannot say
	var apiErr error
	if cs, err := kubernetes.NewForConfig(l.cp.RESTConfig()); err != nil {
		apiErr = err
	} else if ready, err = readyNodes(ctx, cs); err != nil {
		apiErr = fmt.Errorf("list nodes: %w", err)
	}
	var out []NodeStatus
	for _, n := range l.Nodes {
		s := NodeStatus{Name: n.Name, Ready: ready[n.Name], Agent: agentStatus(ctx, n.AgentSocket)}
		s.AgentPid, _ = l.daemonPid(n.Name + "-agent")
		s.KubeletPid, _ = l.daemonPid(n.Name + "-kubelet")
		if l.real() {
			s.ContainerdPid, _ = l.daemonPid(n.Name + "-containerd")
			s.KubeProxyPid, _ = l.daemonPid(n.Name + "-kube-proxy")
			s.CRI = l.criStatus(ctx, n.Name)
		}
		s.APIProxyErr = dialAPI(ctx, n.Netns)
		out = append(out, s)
	}
	return out, apiErr
}

// PrintStatus writes the control plane's and every node's state.
func (l *Lab) PrintStatus(ctx context.Context, w io.Writer) error {
	nodes, err := l.Status(ctx)
	cp := "running"
	if !l.cp.Running() {
		cp = "NOT RUNNING"
	}
	fmt.Fprintf(w, "control plane: %s, %s (kubeconfig %s)\n", cp, l.Server, l.Kubeconfig)
	if err != nil {
		fmt.Fprintf(w, "API server: %v\n", err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if l.real() {
		fmt.Fprintln(tw, "NODE\tNETNS\tREADY\tAGENT\tAGENT PID\tCONTAINERD PID\tCRI\tKUBELET PID\tKUBE-PROXY PID\tAPI FROM NODE\tPOOLS")
	} else {
		fmt.Fprintln(tw, "NODE\tNETNS\tREADY\tAGENT\tAGENT PID\tKUBELET PID\tAPI FROM NODE\tPOOLS")
	}
	for i, s := range nodes {
		n := l.Nodes[i]
		api := "ok"
		if s.APIProxyErr != nil {
			api = s.APIProxyErr.Error()
		}
		if l.real() {
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s %s\n", s.Name, n.Netns, s.Ready, s.Agent,
				pidText(s.AgentPid), pidText(s.ContainerdPid), s.CRI, pidText(s.KubeletPid), pidText(s.KubeProxyPid), api, n.Pool6, n.Pool4)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\t%s\t%s %s\n", s.Name, n.Netns, s.Ready, s.Agent,
			pidText(s.AgentPid), pidText(s.KubeletPid), api, n.Pool6, n.Pool4)
	}
	tw.Flush()
	if l.real() {
		for _, d := range []string{"kube-controller-manager", "kube-scheduler"} {
			if pid, ok := l.daemonPid(d); ok {
				fmt.Fprintf(w, "%s: pid %d\n", d, pid)
			} else {
				fmt.Fprintf(w, "%s: NOT RUNNING\n", d)
			}
		}
	}
	if pid, ok := l.daemonPid("apiproxy"); ok {
		fmt.Fprintf(w, "apiproxy: pid %d\n", pid)
	} else {
		fmt.Fprintln(w, "apiproxy: NOT RUNNING")
	}
	for i := range controllerReplicas {
		id := fmt.Sprintf("flock-controller-%d", i)
		pid, _ := l.daemonPid(id)
		fmt.Fprintf(w, "%s: %s\n", id, pidText(pid))
	}
	return err
}

func pidText(pid int) string {
	if pid == 0 {
		return "not running"
	}
	return fmt.Sprint(pid)
}

// agentStatus sends CNI STATUS to the agent, as the runtime would.
func agentStatus(ctx context.Context, socket string) string {
	resp, err := rpc.Call(ctx, socket, &rpc.Request{Op: rpc.OpStatus}, 5*time.Second)
	switch {
	case err != nil:
		return err.Error()
	case resp.Error != nil:
		return resp.Error.Error()
	}
	return "ok"
}

// readyNodes lists the Nodes and tells which are Ready.
func readyNodes(ctx context.Context, cs kubernetes.Interface) (map[string]bool, error) {
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	ready := map[string]bool{}
	for _, n := range nodes.Items {
		ready[n.Name] = nodeReady(&n)
	}
	return ready, nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// dialAPI checks that the API forwarder answers inside the node namespace.
func dialAPI(ctx context.Context, netns string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := nsnet.Dial(ctx, netns, "tcp", apiproxy.Addr)
	if err != nil {
		return err
	}
	return c.Close()
}

func (l *Lab) waitAPIProxy(ctx context.Context, timeout time.Duration) error {
	return poll(ctx, timeout, func() error {
		if _, ok := l.daemonPid("apiproxy"); !ok {
			return l.exited("apiproxy")
		}
		for _, n := range l.Nodes {
			if err := dialAPI(ctx, n.Netns); err != nil {
				return err
			}
		}
		return nil
	}, "the API forwarder")
}

// waitReady waits until every node is Ready and its agent answers STATUS ok.
func (l *Lab) waitReady(ctx context.Context, cs kubernetes.Interface, timeout time.Duration) error {
	return poll(ctx, timeout, func() error {
		var problems []string
		ready, err := readyNodes(ctx, cs)
		if err != nil {
			return err
		}
		for _, n := range l.Nodes {
			for _, d := range l.nodeDaemons(n.Name) {
				if _, ok := l.daemonPid(d); !ok {
					return l.exited(d)
				}
			}
			if !ready[n.Name] {
				problems = append(problems, n.Name+" not Ready")
			}
			if s := agentStatus(ctx, n.AgentSocket); s != "ok" {
				problems = append(problems, n.Name+" agent: "+s)
			}
		}
		if len(problems) > 0 {
			return errors.New(strings.Join(problems, "; "))
		}
		return nil
	}, "the nodes")
}

// nodeDaemons are the daemons a node of this lab runs.
func (l *Lab) nodeDaemons(name string) []string {
	if l.real() {
		return append([]string{name + "-agent"}, realDaemons(name)...)
	}
	return []string{name + "-agent", name + "-kubelet", name + "-proxy"}
}

// exitedError says a daemon is gone: waiting longer cannot help.
type exitedError struct{ name, log string }

func (e *exitedError) Error() string { return fmt.Sprintf("%s exited (see %s)", e.name, e.log) }

func (l *Lab) exited(daemon string) error {
	return &exitedError{name: daemon, log: filepath.Join(l.logDir(), daemon+".log")}
}

// poll calls check every 200 ms until it succeeds or timeout passes; an
// exitedError ends it at once.
func poll(ctx context.Context, timeout time.Duration, check func() error, what string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := check()
		if err == nil {
			return nil
		}
		var exited *exitedError
		if errors.As(err, &exited) {
			return fmt.Errorf("wait for %s: %w", what, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w (last: %v)", what, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
