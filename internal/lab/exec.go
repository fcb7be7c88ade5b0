package lab

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fritzlab/flock/internal/lab/kubelet"
	"github.com/fritzlab/flock/pkg/admin"
)

// PodNetns returns the network namespace kubelet-lite made for a pod, from
// the pod's annotation.
func (l *Lab) PodNetns(ctx context.Context, namespace, name string) (string, error) {
	pod, err := l.getPod(ctx, namespace, name)
	if err != nil {
		return "", err
	}
	return l.netnsOf(ctx, pod)
}

// netnsOf returns a pod's network namespace name, on either runtime.
func (l *Lab) netnsOf(ctx context.Context, pod *corev1.Pod) (string, error) {
	if l.real() {
		return l.realPodNetns(ctx, pod)
	}
	return podNetns(pod)
}

func (l *Lab) getPod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	cs, err := kubernetes.NewForConfig(l.cp.RESTConfig())
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s: %w", namespace, name, err)
	}
	pod, err := cs.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s: %w", namespace, name, err)
	}
	return pod, nil
}

// Real reports whether the lab runs the real node stack (--runtime=real).
func (l *Lab) Real() bool { return l.real() }

// realPodNetns asks the pod's node's agent which network namespace
// containerd handed it in CNI ADD (CNI_NETNS, a name under /run/netns).
func (l *Lab) realPodNetns(ctx context.Context, pod *corev1.Pod) (string, error) {
	n, ok := l.Node(pod.Spec.NodeName)
	if !ok {
		return "", fmt.Errorf("pod %s/%s is on no node of the lab (%q)", pod.Namespace, pod.Name, pod.Spec.NodeName)
	}
	var allocs admin.Allocations
	if err := admin.NewClient(filepath.Join(n.Dir, "admin.sock"), 5*time.Second).Get(ctx, "/v1/allocations", &allocs); err != nil {
		return "", fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	for _, a := range allocs.Items {
		if a.Namespace == pod.Namespace && a.Name == pod.Name && a.UID == string(pod.UID) && a.Netns != "" {
			return netnsName(a.Netns), nil
		}
	}
	return "", fmt.Errorf("pod %s/%s has no network yet (no allocation on %s)", pod.Namespace, pod.Name, n.Name)
}

// netnsName turns a namespace path under /run/netns into its name.
func netnsName(path string) string {
	for _, dir := range []string{"/var/run/netns/", "/run/netns/"} {
		if name, ok := strings.CutPrefix(path, dir); ok {
			return name
		}
	}
	return path
}

// podNetns reads a pod's network namespace from kubelet-lite's annotation.
func podNetns(pod *corev1.Pod) (string, error) {
	netns := pod.Annotations[kubelet.NetnsAnnotation]
	if netns == "" {
		return "", fmt.Errorf("pod %s/%s has no network namespace yet (annotation %s)", pod.Namespace, pod.Name, kubelet.NetnsAnnotation)
	}
	// The annotation holds a name under /run/netns; accept its path too.
	return netnsName(netns), nil
}

// NodeNetns returns the namespace of the node named name.
func (l *Lab) NodeNetns(name string) (string, error) {
	n, ok := l.Node(name)
	if !ok {
		return "", fmt.Errorf("no node %s in the lab", name)
	}
	return n.Netns, nil
}

// NetnsCommand runs args inside a named network namespace, with `ip netns
// exec` (which also shows the namespace's own /sys), for interactive use.
func NetnsCommand(ctx context.Context, netns string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", netns}, args...)...)
}

// KubectlCommand runs kubectl with the lab's kubeconfig.
func (l *Lab) KubectlCommand(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", l.Kubeconfig}, args...)...)
}
