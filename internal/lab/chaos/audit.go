package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/internal/lab"
	"github.com/fritzlab/flock/pkg/datapath"
	"github.com/fritzlab/flock/pkg/policy"
	"github.com/fritzlab/flock/pkg/store"
)

// auditResult is what one audit found.
type auditResult struct {
	leaked, duplicates int
	problems           []string
	// checked counts the objects found on every node, by kind.
	checked map[string]int
}

// summary lists what the audit found, by kind.
func (r auditResult) summary() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(r.checked)) {
		parts = append(parts, fmt.Sprintf("%d %s", r.checked[k], k))
	}
	return strings.Join(parts, ", ")
}

// audit checks, per node, every object of flock's against the pods in the
// API (ledger.go): the allocations on disk, the host veths, the host
// routes (proto 83) and anycast routes (proto 84), the anti-spoofing
// entries, the elements of the NetworkPolicy table, and the prefixes the
// router learned from the node (its pools and its Ready pods' anycast
// addresses). A leak names the object. Duplicate addresses are counted
// across nodes. It retries for a while, so that deletions in flight
// settle.
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
	policies, err := s.cs.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{})
	if err != nil {
		r.problems = append(r.problems, "audit: list NetworkPolicies: "+err.Error())
		return r
	}
	owner := map[string]string{}
	perNode := map[string][]livePod{}
	for _, p := range pods.Items {
		if len(p.Status.PodIPs) == 0 || p.DeletionTimestamp != nil || p.Spec.HostNetwork {
			continue
		}
		lp := livePod{Key: p.Namespace + "/" + p.Name, Ready: ready(&p)}
		lp.V6, lp.V4 = addrs(&p)
		lp.Restricted = restrictions(&p, policies.Items)
		perNode[p.Spec.NodeName] = append(perNode[p.Spec.NodeName], lp)
		for _, ip := range p.Status.PodIPs {
			if o, dup := owner[ip.IP]; dup {
				r.duplicates++
				r.problems = append(r.problems, fmt.Sprintf("address %s on %s and %s/%s", ip.IP, o, p.Namespace, p.Name))
			}
			owner[ip.IP] = p.Namespace + "/" + p.Name
		}
	}
	for _, n := range s.l.Nodes {
		st, err := s.nodeState(ctx, n)
		if err != nil {
			r.problems = append(r.problems, fmt.Sprintf("audit %s: %v", n.Name, err))
			continue
		}
		l := st.audit(n.Name, perNode[n.Name])
		if r.checked == nil {
			r.checked = map[string]int{}
		}
		for k, v := range l.checked {
			r.checked[k] += v
		}
		r.leaked += l.leaked
		r.problems = append(r.problems, l.problems...)
	}
	return r
}

// nodeState reads what flock has on a node: its allocation files, host
// veths, flock routes, anti-spoofing and NetworkPolicy tables, and what
// the router learned from it.
func (s *suite) nodeState(ctx context.Context, n lab.Node) (nodeState, error) {
	st := nodeState{Allocations: map[string]store.Record{}, Pools: s.pools(ctx, n.Name)}
	files, err := filepath.Glob(filepath.Join(n.Dir, "allocations", "*.json"))
	if err != nil {
		return st, err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // released between the glob and the read
			}
			return st, err
		}
		var rec store.Record
		if err := json.Unmarshal(b, &rec); err != nil {
			// A leak the agent left unreadable is a leak too.
			rec = store.Record{Namespace: "?", Name: "unreadable: " + err.Error()}
		}
		st.Allocations[filepath.Base(f)] = rec
	}
	if st.Veths, err = parseLinks(out("ip", "-n", n.Netns, "-j", "link", "show", "type", "veth")); err != nil {
		return st, err
	}
	for _, fam := range []string{"-6", "-4"} {
		hosts, err := parseRoutes(out("ip", "-n", n.Netns, "-j", fam, "route", "show", "proto", strconv.Itoa(datapath.RouteProtocol)))
		if err != nil {
			return st, err
		}
		st.HostRoutes = append(st.HostRoutes, hosts...)
		any, err := parseRoutes(out("ip", "-n", n.Netns, "-j", fam, "route", "show", "proto", strconv.Itoa(datapath.AnycastRouteProtocol)))
		if err != nil {
			return st, err
		}
		st.AnycastRoutes = append(st.AnycastRoutes, any...)
		learned, err := parseLearned(out("ip", "-n", s.l.Router, "-j", fam, "route", "show", "proto", "bird"), n.Addr6.Addr(), n.Addr4.Addr())
		if err != nil {
			return st, err
		}
		st.Learned = append(st.Learned, learned...)
	}
	guard, err := exec.Command("ip", "netns", "exec", n.Netns, "nft", "-j", "list", "table", policy.GuardFamily, policy.GuardTable).Output()
	if err != nil {
		return st, fmt.Errorf("list the anti-spoofing table: %w", err)
	}
	if st.Guard, err = parseGuard(guard); err != nil {
		return st, err
	}
	// The policy table exists once the agent applied policy.
	if tbl, err := exec.Command("ip", "netns", "exec", n.Netns, "nft", "-j", "list", "table", policy.TableFamily, policy.TableName).Output(); err == nil {
		st.PolicyTable = true
		if st.Policy, err = parsePolicy(tbl); err != nil {
			return st, err
		}
	}
	return st, nil
}

// restrictions is what the NetworkPolicies say about a pod, per direction
// (policyTypes defaulted as the API server does).
func restrictions(p *corev1.Pod, policies []networkingv1.NetworkPolicy) [2]restriction {
	var out [2]restriction
	for _, d := range []int{0, 1} {
		out[d].DenyAll = true
	}
	for _, np := range policies {
		if np.Namespace != p.Namespace {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(labels.Set(p.Labels)) {
			continue
		}
		types := np.Spec.PolicyTypes
		if len(types) == 0 {
			types = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
			if len(np.Spec.Egress) > 0 {
				types = append(types, networkingv1.PolicyTypeEgress)
			}
		}
		for _, t := range types {
			d, rules := 0, len(np.Spec.Ingress)
			if t == networkingv1.PolicyTypeEgress {
				d, rules = 1, len(np.Spec.Egress)
			}
			out[d].Selected = true
			out[d].DenyAll = out[d].DenyAll && rules == 0
		}
	}
	for d := range out {
		out[d].DenyAll = out[d].DenyAll && out[d].Selected
	}
	return out
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

func run(args ...string) string { return string(out(args...)) }

// out is a command's output; a failed command gives what it printed
// (nothing, for the listings the audit reads: an empty listing).
func out(args ...string) []byte {
	b, _ := exec.Command(args[0], args[1:]...).Output()
	return b
}
