package lab

import (
	"context"
	"fmt"
	"os/exec"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fritzlab/flock/internal/lab/kubelet"
)

// PodNetns returns the network namespace kubelet-lite made for a pod, from
// the pod's annotation.
func (l *Lab) PodNetns(ctx context.Context, namespace, name string) (string, error) {
	cs, err := kubernetes.NewForConfig(l.cp.RESTConfig())
	if err != nil {
		return "", fmt.Errorf("pod %s/%s: %w", namespace, name, err)
	}
	pod, err := cs.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("pod %s/%s: %w", namespace, name, err)
	}
	return podNetns(pod)
}

// podNetns reads a pod's network namespace from kubelet-lite's annotation.
func podNetns(pod *corev1.Pod) (string, error) {
	netns := pod.Annotations[kubelet.NetnsAnnotation]
	if netns == "" {
		return "", fmt.Errorf("pod %s/%s has no network namespace yet (annotation %s)", pod.Namespace, pod.Name, kubelet.NetnsAnnotation)
	}
	// The annotation holds a name under /run/netns; accept its path too.
	return strings.TrimPrefix(netns, "/run/netns/"), nil
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
