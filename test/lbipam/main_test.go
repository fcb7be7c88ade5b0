// Package lbipam tests flock-controller's Service address assignment
// against a real kube-apiserver: the binary itself, as the Deployment's
// replicas run it, with the RBAC of deploy/controller-rbac.yaml, two at once
// competing for the Lease in the failover test.
package lbipam

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/internal/lab/controlplane/controlplanetest"
)

var shared = controlplanetest.Controller{Name: "lbipam"}

func TestMain(m *testing.M) { shared.Main(m) }

// harness is the shared control plane with the controller's RBAC and a
// built flock-controller (controlplanetest.Controller), used by the
// package's tests one after the other.
type harness struct {
	*controlplanetest.ControllerEnv
	cs kubernetes.Interface
	dc dynamic.Interface
}

func setup(t *testing.T) *harness {
	t.Helper()
	e := shared.Get(t)
	return &harness{ControllerEnv: e, cs: e.Kube, dc: e.Dynamic}
}

var waitFor = controlplanetest.WaitFor

// freePort is a loopback address:port nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// scrape is the /metrics text at addr ("" while it does not answer).
func scrape(addr string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// namespace creates a namespace labelled test=<name>, the label the
// test's pool selects.
func (h *harness) namespace(t *testing.T, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"test": name}}}
	if _, err := h.cs.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// createPool creates a ServiceAddressPool for the namespace labelled
// test=<ns>.
func (h *harness) createPool(t *testing.T, name, ns string, cidrs ...string) {
	t.Helper()
	p := &v1alpha1.ServiceAddressPool{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: v1alpha1.ServiceAddressPoolKind},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ServiceAddressPoolSpec{CIDRs: cidrs,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"test": ns}}},
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.dc.Resource(v1alpha1.ServiceAddressPoolGVR).Create(context.Background(), &unstructured.Unstructured{Object: m}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) pool(t *testing.T, name string) *v1alpha1.ServiceAddressPool {
	t.Helper()
	u, err := h.dc.Resource(v1alpha1.ServiceAddressPoolGVR).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := &v1alpha1.ServiceAddressPool{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// svcOpt changes a Service before it is created.
type svcOpt func(*corev1.Service)

func preferDual(s *corev1.Service) {
	p := corev1.IPFamilyPolicyPreferDualStack
	s.Spec.IPFamilyPolicy = &p
}

func requestIPs(v string) svcOpt {
	return func(s *corev1.Service) {
		s.Annotations = map[string]string{v1alpha1.AnnotationLoadBalancerIPs: v}
	}
}

// createService creates a LoadBalancer Service ns/name.
func (h *harness) createService(t *testing.T, ns, name string, opts ...svcOpt) {
	t.Helper()
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}},
	}
	for _, o := range opts {
		o(s)
	}
	if _, err := h.cs.CoreV1().Services(ns).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// ingress is the Service's status.loadBalancer.ingress as "ip,ip" (""
// for none); every entry must have ipMode VIP.
func (h *harness) ingress(t *testing.T, ns, name string) string {
	t.Helper()
	s, err := h.cs.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, in := range s.Status.LoadBalancer.Ingress {
		if in.IPMode == nil || *in.IPMode != corev1.LoadBalancerIPModeVIP {
			t.Errorf("%s/%s: ingress %s has ipMode %v, want VIP", ns, name, in.IP, in.IPMode)
		}
		ips = append(ips, in.IP)
	}
	return strings.Join(ips, ",")
}

// waitIngress waits until the Service's ingress is want.
func (h *harness) waitIngress(t *testing.T, ns, name, want string) {
	t.Helper()
	waitFor(t, 30*time.Second, fmt.Sprintf("%s/%s ingress %q", ns, name, want), func() (bool, string) {
		got := h.ingress(t, ns, name)
		return got == want, got
	})
}

// waitEvent waits for an Event of reason on the Service and returns its
// message.
func (h *harness) waitEvent(t *testing.T, ns, name, reason string) string {
	t.Helper()
	var msg string
	waitFor(t, 30*time.Second, fmt.Sprintf("Event %s on %s/%s", reason, ns, name), func() (bool, string) {
		evs, err := h.cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
			FieldSelector: fields.Set{"involvedObject.name": name, "involvedObject.kind": "Service", "reason": reason}.String()})
		if err != nil {
			return false, err.Error()
		}
		if len(evs.Items) == 0 {
			return false, "none"
		}
		msg = evs.Items[0].Message
		return true, ""
	})
	return msg
}
