package chaos

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fritzlab/flock/api/v1alpha1"
)

// auditResult is what one audit found.
type auditResult struct {
	leaked, duplicates int
	problems           []string
}

// audit compares, per node, the pods in the API (with addresses) with the
// allocations on disk, the flock veths, the flock host routes (proto 83,
// per family), and the anti-spoofing set entries (one per pod and family;
// the policy maps hold restricted pods only, and the suite has no policy);
// and the prefixes the router learned from the node with its pools (the
// suite serves no anycast). Duplicate addresses are counted across nodes.
// It retries for a while, so that deletions in flight settle.
func (s *suite) audit(ctx context.Context) auditResult {
	var last auditResult
	for range 20 {
		last = s.auditOnce(ctx)
		if last.leaked == 0 && last.duplicates == 0 && len(last.problems) == 0 {
			return last
		}
		time.Sleep(time.Second)
	}
	return last
}

func (s *suite) auditOnce(ctx context.Context) auditResult {
	var r auditResult
	pods, err := s.cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		r.problems = append(r.problems, "audit: list pods: "+err.Error())
		return r
	}
	owner := map[string]string{}
	perNode := map[string]int{}
	for _, p := range pods.Items {
		if len(p.Status.PodIPs) == 0 || p.DeletionTimestamp != nil {
			continue
		}
		perNode[p.Spec.NodeName]++
		for _, ip := range p.Status.PodIPs {
			if o, dup := owner[ip.IP]; dup {
				r.duplicates++
				r.problems = append(r.problems, fmt.Sprintf("address %s on %s and %s/%s", ip.IP, o, p.Namespace, p.Name))
			}
			owner[ip.IP] = p.Namespace + "/" + p.Name
		}
	}
	for _, n := range s.l.Nodes {
		want := perNode[n.Name]
		files, _ := filepath.Glob(filepath.Join(n.Dir, "allocations", "*.json"))
		counts := map[string]int{
			"allocations on disk": len(files),
			"veths":               count(run("ip", "-n", n.Netns, "-o", "link", "show", "type", "veth"), ": flock"),
			"IPv6 host routes":    count(run("ip", "-n", n.Netns, "-6", "route", "show", "proto", "83"), " dev flock"),
			"IPv4 host routes":    count(run("ip", "-n", n.Netns, "-4", "route", "show", "proto", "83"), " dev flock"),
			"anti-spoofing IPv6":  count(run("ip", "netns", "exec", n.Netns, "nft", "list", "set", "inet", "flock_guard", "sources6"), `"flock`),
			"anti-spoofing IPv4":  count(run("ip", "netns", "exec", n.Netns, "nft", "list", "set", "inet", "flock_guard", "sources4"), `"flock`),
		}
		for what, got := range counts {
			if got != want {
				r.leaked += abs(got - want)
				r.problems = append(r.problems, fmt.Sprintf("%s: %d pods in the API, %d %s", n.Name, want, got, what))
			}
		}
		pools := s.pools(ctx, n.Name)
		learned := s.learnedFrom(n.Addr6.Addr(), n.Addr4.Addr())
		for _, p := range pools {
			if !strings.Contains(learned, p.String()+" ") {
				r.problems = append(r.problems, fmt.Sprintf("%s: the router lacks its pool %s", n.Name, p))
			}
		}
		if got := count(learned, " via "); got != len(pools) {
			r.leaked += abs(got - len(pools))
			r.problems = append(r.problems, fmt.Sprintf("%s: the router learned %d prefixes from it, want its %d pools: %s", n.Name, got, len(pools), strings.TrimSpace(learned)))
		}
	}
	return r
}

// pools are a node's pools as its NodeConfig says now.
func (s *suite) pools(ctx context.Context, node string) []netip.Prefix {
	u, err := s.dyn.Resource(v1alpha1.NodeConfigGVR).Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, f := range []string{"cidr6", "cidr4"} {
		v, _, _ := unstructured.NestedString(u.Object, "spec", f)
		if p, err := netip.ParsePrefix(v); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// learnedFrom lists the router's BGP routes via a node's addresses.
func (s *suite) learnedFrom(v6, v4 netip.Addr) string {
	var b strings.Builder
	for _, fam := range []struct {
		flag string
		via  netip.Addr
	}{{"-6", v6}, {"-4", v4}} {
		for line := range strings.Lines(run("ip", "-n", s.l.Router, fam.flag, "route", "show", "proto", "bird")) {
			if strings.Contains(line, "via "+fam.via.String()+" ") {
				b.WriteString(line)
			}
		}
	}
	return b.String()
}

func run(args ...string) string {
	out, _ := exec.Command(args[0], args[1:]...).Output()
	return string(out)
}

func count(s, sub string) int { return strings.Count(s, sub) }

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
