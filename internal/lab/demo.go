package lab

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fritzlab/flock/internal/lab/controlplane"
)

// demoExamples are the manifests `flock-lab demo` applies, from examples/.
var demoExamples = []string{"dual-stack.yaml", "ipv6-only.yaml", "service.yaml"}

// Demo applies the example pods, waits until they are Ready, prints their
// nodes and addresses, and checks that every pod reaches every pod on the
// other nodes over each family it has (TCP to flock-lab serve on 8080), and
// the web Service on each of its ClusterIPs.
func (l *Lab) Demo(ctx context.Context, w io.Writer) error {
	root, err := controlplane.SourceRoot()
	if err != nil {
		return err
	}
	examples := demoExamples
	if l.real() {
		// LoadBalancer Services need EndpointSlices and kube-proxy.
		examples = append(examples, "loadbalancer.yaml")
	}
	for _, f := range examples {
		cmd := l.KubectlCommand(ctx, "apply", "-f", filepath.Join(root, "examples", f))
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("kubectl apply %s: %v: %s", f, err, out)
		}
	}
	cs, err := kubernetes.NewForConfig(l.cp.RESTConfig())
	if err != nil {
		return err
	}
	var pods []corev1.Pod
	err = poll(ctx, 90*time.Second, func() error {
		list, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, p := range list.Items {
			if !podReady(&p) {
				return fmt.Errorf("pod %s not Ready", p.Name)
			}
		}
		pods = list.Items
		return nil
	}, "the demo pods")
	if err != nil {
		return err
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nPOD\tNODE\tIPv6\tIPv4")
	for _, p := range pods {
		v6, v4 := podFamilies(&p)
		fmt.Fprintf(tw, "default/%s\t%s\t%s\t%s\n", p.Name, p.Spec.NodeName, orNone(v6), orNone(v4))
	}
	tw.Flush()

	fmt.Fprintln(w, "\nCross-node reachability (TCP 8080 to flock-lab serve, through the router):")
	failed := 0
	for _, src := range pods {
		netns, err := l.netnsOf(ctx, &src)
		if err != nil {
			return err
		}
		for _, dst := range pods {
			if dst.Spec.NodeName == src.Spec.NodeName {
				continue
			}
			v6, v4 := podFamilies(&dst)
			srcV6, srcV4 := podFamilies(&src)
			for _, pair := range [][2]netip.Addr{{srcV6, v6}, {srcV4, v4}} {
				if !pair[0].IsValid() || !pair[1].IsValid() {
					continue
				}
				out, err := NetnsCommand(ctx, netns, "nc", "-w", "3", pair[1].String(), "8080").CombinedOutput()
				got := strings.TrimSpace(string(out))
				mark := "ok"
				if err != nil || got != "default/"+dst.Name {
					mark, failed = "FAILED", failed+1
				}
				fmt.Fprintf(w, "  %-8s %-7s -> %-8s %-7s %-26s %s (%q)\n", src.Name, src.Spec.NodeName, dst.Name, dst.Spec.NodeName, pair[1], mark, got)
			}
		}
	}
	svc, err := cs.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "\nService default/web (TCP 80 on its ClusterIPs, DNATed to a web pod's 8080):")
	for _, src := range pods {
		netns, err := l.netnsOf(ctx, &src)
		if err != nil {
			return err
		}
		srcV6, srcV4 := podFamilies(&src)
		for _, ip := range svc.Spec.ClusterIPs {
			vip, err := netip.ParseAddr(ip)
			if err != nil || (vip.Is6() && !srcV6.IsValid()) || (vip.Is4() && !srcV4.IsValid()) {
				continue
			}
			// The proxies load the endpoints a moment after pods turn Ready.
			var got string
			for try := 0; try < 5; try++ {
				out, err := NetnsCommand(ctx, netns, "nc", "-w", "3", vip.String(), "80").CombinedOutput()
				if got = strings.TrimSpace(string(out)); err == nil && strings.HasPrefix(got, "default/web-") {
					break
				}
				time.Sleep(time.Second)
			}
			mark := "ok"
			if !strings.HasPrefix(got, "default/web-") {
				mark, failed = "FAILED", failed+1
			}
			fmt.Fprintf(w, "  %-8s %-7s -> %-26s %s (%q)\n", src.Name, src.Spec.NodeName, vip, mark, got)
		}
	}
	if l.real() {
		n, err := l.demoLoadBalancer(ctx, cs, w)
		if err != nil {
			return err
		}
		failed += n
	}
	if failed > 0 {
		return fmt.Errorf("%d checks failed", failed)
	}
	fmt.Fprintln(w, "\nAll checks passed. Try: flock-lab kubectl get pods,svc -o wide; flock-lab down")
	return nil
}

// demoLoadBalancer waits for web-lb's addresses, shows the router's routes
// to them and connects to each from the router's namespace, outside the
// cluster. It returns how many checks failed.
func (l *Lab) demoLoadBalancer(ctx context.Context, cs kubernetes.Interface, w io.Writer) (int, error) {
	var ingress []string
	err := poll(ctx, 60*time.Second, func() error {
		svc, err := cs.CoreV1().Services("default").Get(ctx, "web-lb", metav1.GetOptions{})
		if err != nil {
			return err
		}
		ingress = ingress[:0]
		for _, in := range svc.Status.LoadBalancer.Ingress {
			ingress = append(ingress, in.IP)
		}
		if len(ingress) < 2 {
			return fmt.Errorf("web-lb has addresses %v", ingress)
		}
		return nil
	}, "web-lb's LoadBalancer addresses")
	if err != nil {
		return 0, err
	}
	fmt.Fprintln(w, "\nLoadBalancer Service default/web-lb (TCP 80 from the router's namespace, outside the cluster):")
	failed := 0
	for _, ip := range ingress {
		// Announced once a node has a Ready web pod; kube-proxy's rules
		// follow within its sync period.
		var got, via string
		for try := 0; try < 20; try++ {
			out, err := NetnsCommand(ctx, l.Router, "nc", "-w", "3", ip, "80").CombinedOutput()
			if got = strings.TrimSpace(string(out)); err == nil && strings.HasPrefix(got, "default/web-") {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		fam := "-4"
		if strings.Contains(ip, ":") {
			fam = "-6"
		}
		if out, err := NetnsCommand(ctx, l.Router, "ip", fam, "route", "show", ip).Output(); err == nil {
			via = strings.Join(strings.Fields(string(out)), " ")
		}
		mark := "ok"
		if !strings.HasPrefix(got, "default/web-") {
			mark, failed = "FAILED", failed+1
		}
		fmt.Fprintf(w, "  router -> %-26s %s (%q)  route: %s\n", ip, mark, got, via)
	}
	return failed, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue && len(p.Status.PodIPs) > 0
		}
	}
	return false
}

func podFamilies(p *corev1.Pod) (v6, v4 netip.Addr) {
	for _, ip := range p.Status.PodIPs {
		if a, err := netip.ParseAddr(ip.IP); err == nil && a.Is4() {
			v4 = a
		} else if err == nil {
			v6 = a
		}
	}
	return v6, v4
}

func orNone(a netip.Addr) string {
	if !a.IsValid() {
		return "-"
	}
	return a.String()
}
