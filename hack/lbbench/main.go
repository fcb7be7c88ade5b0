// Command lbbench measures Ready-gated LoadBalancer announcements in
// flock-lab on the real node stack (kubelet, kube-controller-manager's
// EndpointSlice controller, kube-proxy): the only backend of an
// externalTrafficPolicy Local Service, on node-1, is flipped between Ready
// and NotReady 20 times through its readiness probe, and each time the
// delay from the EndpointSlice changing in the API to the Service's address
// leaving or reaching the upstream router's kernel table is measured. Its
// last line is
//
//	lb_withdraw_p99_ms=<n> lb_announce_p99_ms=<n>
//
// Run it as root: `make bench-lb`. It starts and removes a lab of its own.
package main

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/fritzlab/flock/hack/internal/benchlab"
	"github.com/fritzlab/flock/internal/lab"
)

const down = "/tmp/lbbench.down"

func main() {
	// The real node stack: EndpointSlices come from kube-controller-manager
	// and readiness from kubelet's probes, as in a cluster.
	benchlab.MainWith("lbbench", "lb", lab.Options{Nodes: 2, Runtime: lab.RuntimeReal}, run)
}

func run(ctx context.Context, l *lab.Lab, _ string) error {
	cs, err := kubernetes.NewForConfig(l.ControlPlane().RESTConfig())
	if err != nil {
		return err
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "backend", Namespace: "default", Labels: map[string]string{"app": "lbbench"}},
		Spec: corev1.PodSpec{NodeName: l.Nodes[0].Name, Containers: []corev1.Container{{
			Name: "serve", Image: "lab", Command: []string{"flock-lab", "serve", "--tcp", "8080"},
			ReadinessProbe: &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "test ! -e " + down}}},
				PeriodSeconds: 1,
			},
		}}},
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return err
	}
	single := corev1.IPFamilyPolicySingleStack
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "lbbench", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "lbbench"},
			IPFamilyPolicy: &single, IPFamilies: []corev1.IPFamily{corev1.IPv6Protocol},
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			Ports:                 []corev1.ServicePort{{Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt(8080)}},
		},
	}
	if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return err
	}
	addr, err := waitIngress(ctx, cs, 90*time.Second)
	if err != nil {
		return err
	}
	routed := func() bool { return benchlab.RouterHas(l, addr.String()) }
	if err := benchlab.WaitState(ctx, "the EndpointSlice of default/lbbench", sliceReadyIn(cs), true, routed, 120*time.Second, nil); err != nil {
		return err
	}
	var withdraw, announce []time.Duration
	for range 20 {
		if err := setDown(ctx, l, true); err != nil {
			return err
		}
		if err := benchlab.WaitState(ctx, "the EndpointSlice of default/lbbench", sliceReadyIn(cs), false, routed, 30*time.Second, &withdraw); err != nil {
			return err
		}
		if err := setDown(ctx, l, false); err != nil {
			return err
		}
		if err := benchlab.WaitState(ctx, "the EndpointSlice of default/lbbench", sliceReadyIn(cs), true, routed, 30*time.Second, &announce); err != nil {
			return err
		}
	}
	w50, w99 := benchlab.Percentiles(withdraw)
	a50, a99 := benchlab.Percentiles(announce)
	fmt.Printf("EndpointSlice change in the API -> router kernel, 20 flips of %s: withdraw p50 %s p99 %s, announce p50 %s p99 %s\n",
		addr, benchlab.Ms(w50), benchlab.Ms(w99), benchlab.Ms(a50), benchlab.Ms(a99))
	fmt.Printf("lb_withdraw_p99_ms=%d lb_announce_p99_ms=%d\n", w99.Milliseconds(), a99.Milliseconds())
	return nil
}

// setDown fails (or heals) the backend's readiness probe from inside its
// container.
func setDown(ctx context.Context, l *lab.Lab, present bool) error {
	script := "touch " + down
	if !present {
		script = "rm -f " + down
	}
	_, stderr, code, err := l.Exec(ctx, "default", "backend", "", []string{"sh", "-c", script})
	if err != nil || code != 0 {
		return fmt.Errorf("%s in the backend: exit %d %v %s", script, code, err, stderr)
	}
	return nil
}

func waitIngress(ctx context.Context, cs kubernetes.Interface, timeout time.Duration) (netip.Addr, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		s, err := cs.CoreV1().Services("default").Get(ctx, "lbbench", metav1.GetOptions{})
		if err == nil && len(s.Status.LoadBalancer.Ingress) > 0 {
			return netip.ParseAddr(s.Status.LoadBalancer.Ingress[0].IP)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return netip.Addr{}, fmt.Errorf("the Service got no address in %s", timeout)
}

// sliceReadyIn reads whether the Service's EndpointSlices show the backend
// ready.
func sliceReadyIn(cs kubernetes.Interface) func(context.Context) (bool, error) {
	return func(ctx context.Context) (bool, error) {
		slices, err := cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{
			LabelSelector: discoveryv1.LabelServiceName + "=lbbench",
		})
		if err != nil {
			return false, err
		}
		return sliceReady(slices.Items), nil
	}
}

func sliceReady(slices []discoveryv1.EndpointSlice) bool {
	for _, s := range slices {
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
				return true
			}
		}
	}
	return false
}
