package policy

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/mattfenwick/cyclonus/pkg/matcher"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// The oracle is cyclonus' matcher (FACTS.md): an independent reading of
// networking.k8s.io/v1 that agrees with kube-network-policies on generated
// cases. Every (source, destination, family, protocol, port) of a scenario
// is asked of it, of Translate's model, and of the sets Render writes.

// apiDefaults applies the API server's defaulting of policyTypes and port
// protocols, written here apart from Normalize so that the oracle does not
// lean on the code it checks.
func apiDefaults(np networkingv1.NetworkPolicy) *networkingv1.NetworkPolicy {
	out := np.DeepCopy()
	if len(out.Spec.PolicyTypes) == 0 {
		out.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		if len(out.Spec.Egress) > 0 {
			out.Spec.PolicyTypes = append(out.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
		}
	}
	tcp := corev1.ProtocolTCP
	for _, r := range out.Spec.Ingress {
		for i := range r.Ports {
			if r.Ports[i].Protocol == nil {
				r.Ports[i].Protocol = &tcp
			}
		}
	}
	for _, r := range out.Spec.Egress {
		for i := range r.Ports {
			if r.Ports[i].Protocol == nil {
				r.Ports[i].Protocol = &tcp
			}
		}
	}
	return out
}

// endpoint is one side of a probe: a pod (with one of its addresses) or an
// external address.
type endpoint struct {
	pod  *Pod
	addr netip.Addr
}

func (e endpoint) String() string {
	if e.pod == nil {
		return e.addr.String()
	}
	return e.pod.Key() + "@" + e.addr.String()
}

// tally counts the oracle's verdicts, to show that a run checked both.
type tally struct{ allowed, denied int }

func (t *tally) add(ok bool) {
	if ok {
		t.allowed++
	} else {
		t.denied++
	}
}

// checkScenario compares the model and the rendered sets with the oracle on
// every probe and returns the disagreements (at most max).
func checkScenario(s *scenario, max int, n *tally) []string {
	var nps []*networkingv1.NetworkPolicy
	for _, np := range s.in.Policies {
		nps = append(nps, apiDefaults(np))
	}
	oracle := matcher.BuildNetworkPolicies(false, nps)
	m := Translate(s.in)
	if len(m.Warnings) > 0 {
		return []string{fmt.Sprintf("warnings on valid input: %v", m.Warnings)}
	}
	policies := map[string]*PodPolicy{}
	for i := range m.Pods {
		policies[m.Pods[i].Namespace+"/"+m.Pods[i].Name] = &m.Pods[i]
	}
	nsLabels := map[string]map[string]string{}
	for _, ns := range s.in.Namespaces {
		nsLabels[ns.Name] = ns.Labels
	}
	built := map[*Allow]*sets{}
	setsOf := func(a *Allow) *sets {
		if built[a] == nil {
			built[a] = buildSets(a)
		}
		return built[a]
	}

	var eps []endpoint
	for i := range s.in.Pods {
		p := &s.in.Pods[i]
		if p.Iface != "" && policies[p.Key()] == nil {
			return []string{fmt.Sprintf("local pod %s missing from the model", p.Key())}
		}
		for _, a := range p.IPs {
			eps = append(eps, endpoint{p, a})
		}
	}
	for _, a := range s.external {
		eps = append(eps, endpoint{nil, a})
	}
	peer := func(e endpoint) *matcher.TrafficPeer {
		tp := &matcher.TrafficPeer{IP: e.addr.String()}
		if e.pod != nil {
			tp.Internal = &matcher.InternalPeer{PodLabels: e.pod.Labels, Namespace: e.pod.Namespace, NamespaceLabels: nsLabels[e.pod.Namespace]}
		}
		return tp
	}

	var bad []string
	for _, src := range eps {
		for _, dst := range eps {
			if src.addr.Is4() != dst.addr.Is4() {
				continue
			}
			srcLocal := src.pod != nil && src.pod.Iface != ""
			dstLocal := dst.pod != nil && dst.pod.Iface != ""
			if !srcLocal && !dstLocal {
				continue
			}
			for _, proto := range []Protocol{TCP, UDP, SCTP} {
				for port := uint16(79); port <= 83; port++ {
					tr := &matcher.Traffic{Source: peer(src), Destination: peer(dst), ResolvedPort: int(port),
						Protocol: corev1.Protocol(strings.ToUpper(proto.String()))}
					if dst.pod != nil {
						for _, cp := range dst.pod.Ports {
							if cp.Port == port && cp.Protocol == proto {
								tr.ResolvedPortName = cp.Name
							}
						}
					}
					want := oracle.IsTrafficAllowed(tr)
					probe := fmt.Sprintf("%s -> %s %s/%d", src, dst, proto, port)
					if dstLocal {
						n.add(want.Ingress.IsAllowed())
						a := policies[dst.pod.Key()].Ingress
						if got := a.Permits(src.addr, proto, port); got != want.Ingress.IsAllowed() {
							bad = append(bad, fmt.Sprintf("ingress %s: model %v, oracle %v", probe, got, want.Ingress.IsAllowed())+want.Table())
						} else if a != nil && setsOf(a).permits(src.addr, proto, port) != got {
							bad = append(bad, fmt.Sprintf("ingress %s: rendered sets %v, model %v", probe, !got, got))
						}
					}
					if srcLocal {
						n.add(want.Egress.IsAllowed())
						a := policies[src.pod.Key()].Egress
						if got := a.Permits(dst.addr, proto, port); got != want.Egress.IsAllowed() {
							bad = append(bad, fmt.Sprintf("egress %s: model %v, oracle %v", probe, got, want.Egress.IsAllowed())+want.Table())
						} else if a != nil && setsOf(a).permits(dst.addr, proto, port) != got {
							bad = append(bad, fmt.Sprintf("egress %s: rendered sets %v, model %v", probe, !got, got))
						}
					}
					if len(bad) >= max {
						return bad
					}
				}
			}
		}
	}
	return bad
}

// permits evaluates the sets as the kernel does with the chain Render writes.
func (s *sets) permits(remote netip.Addr, proto Protocol, port uint16) bool {
	any, ports := s.any4, s.ports4
	if remote.Is6() {
		any, ports = s.any6, s.ports6
	}
	in := func(sp span) bool { return sp.contains(remote) }
	for _, sp := range any {
		if in(sp) {
			return true
		}
	}
	for _, e := range ports {
		if e.proto == proto && e.first <= int(port) && int(port) <= e.last && in(e.peers) {
			return true
		}
	}
	return false
}

func describe(s *scenario) string {
	b, _ := json.MarshalIndent(struct {
		Namespaces []Namespace
		Pods       []Pod
		Policies   []networkingv1.NetworkPolicy
	}{s.in.Namespaces, s.in.Pods, s.in.Policies}, "", "  ")
	return string(b)
}

func TestOracle(t *testing.T) {
	n := 400
	if testing.Short() {
		n = 50
	}
	r := rand.New(rand.NewPCG(20260601, 6))
	var probes tally
	for i := 0; i < n; i++ {
		s := genScenario(randChooser{r})
		if bad := checkScenario(s, 10, &probes); len(bad) > 0 {
			t.Fatalf("scenario %d: %d disagreements with the oracle:\n%s\nscenario:\n%s", i, len(bad), strings.Join(bad, "\n"), describe(s))
		}
	}
	t.Logf("%d scenarios agree with the oracle: %d probes allowed, %d denied", n, probes.allowed, probes.denied)
	if probes.allowed == 0 || probes.denied == 0 {
		t.Errorf("the scenarios exercise one verdict only")
	}
}

func FuzzTranslate(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 8; i++ {
		b := make([]byte, 256)
		for j := range b {
			b[j] = byte(r.IntN(256))
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := genScenario(&byteChooser{b: data})
		if bad := checkScenario(s, 10, &tally{}); len(bad) > 0 {
			t.Fatalf("%d disagreements with the oracle:\n%s\nscenario:\n%s", len(bad), strings.Join(bad, "\n"), describe(s))
		}
		if _, err := Render(Translate(s.in)); err != nil {
			t.Fatalf("Render: %v", err)
		}
	})
}
