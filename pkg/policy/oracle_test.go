package policy_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/fritzlab/flock/pkg/policy"
	"github.com/fritzlab/flock/pkg/policy/policytest"
	"github.com/mattfenwick/cyclonus/pkg/matcher"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// The oracle is cyclonus' matcher (FACTS.md): an independent reading of
// networking.k8s.io/v1. Every probe of a scenario (policytest.Scenario.Probes)
// is asked of it, of Translate's model, and of the sets Render writes. The
// second oracle, kube-network-policies, is in the module test/oracle (its
// dependencies do not fit this module's).

// cyclonusOptions: cyclonus reads NotIn on a missing key unlike
// labels.Selector (see TestTranslate's NotIn case), so the scenarios it
// judges only use NotIn on keys every object has.
var cyclonusOptions = policytest.Options{NotInAnyKey: false}

// checkScenario compares the model and the rendered sets with the oracle on
// every probe and returns the disagreements (at most max).
func checkScenario(s *policytest.Scenario, max int, n *policytest.Tally) ([]string, error) {
	var nps []*networkingv1.NetworkPolicy
	for _, np := range s.In.Policies {
		nps = append(nps, policytest.APIDefaults(np))
	}
	oracle := matcher.BuildNetworkPolicies(false, nps)
	policies, problem := policytest.LocalPolicies(s)
	if problem != "" {
		return []string{problem}, nil
	}
	nsLabels := map[string]map[string]string{}
	for _, ns := range s.In.Namespaces {
		nsLabels[ns.Name] = ns.Labels
	}
	built := map[*policy.Allow]func(netip.Addr, policy.Protocol, uint16) bool{}
	setsPermit := func(a *policy.Allow, remote netip.Addr, proto policy.Protocol, port uint16) bool {
		if built[a] == nil {
			built[a] = policy.SetsPermit(a)
		}
		return built[a](remote, proto, port)
	}
	peer := func(e policytest.Endpoint) *matcher.TrafficPeer {
		tp := &matcher.TrafficPeer{IP: e.Addr.String()}
		if e.Pod != nil {
			tp.Internal = &matcher.InternalPeer{PodLabels: e.Pod.Labels, Namespace: e.Pod.Namespace, NamespaceLabels: nsLabels[e.Pod.Namespace]}
		}
		return tp
	}

	var bad []string
	for pr := range s.Probes() {
		tr := &matcher.Traffic{Source: peer(pr.Src), Destination: peer(pr.Dst), ResolvedPort: int(pr.Port),
			ResolvedPortName: pr.NamedPort(), Protocol: corev1.Protocol(strings.ToUpper(pr.Protocol.String()))}
		want := oracle.IsTrafficAllowed(tr)
		if pr.Dst.Local() {
			n.Add(want.Ingress.IsAllowed())
			a := policies[pr.Dst.Pod.Key()].Ingress
			if got := a.Permits(pr.Src.Addr, pr.Protocol, pr.Port); got != want.Ingress.IsAllowed() {
				bad = append(bad, fmt.Sprintf("ingress %s: model %v, oracle %v", pr, got, want.Ingress.IsAllowed())+want.Table())
			} else if a != nil && setsPermit(a, pr.Src.Addr, pr.Protocol, pr.Port) != got {
				bad = append(bad, fmt.Sprintf("ingress %s: rendered sets %v, model %v", pr, !got, got))
			}
		}
		if pr.Src.Local() {
			n.Add(want.Egress.IsAllowed())
			a := policies[pr.Src.Pod.Key()].Egress
			if got := a.Permits(pr.Dst.Addr, pr.Protocol, pr.Port); got != want.Egress.IsAllowed() {
				bad = append(bad, fmt.Sprintf("egress %s: model %v, oracle %v", pr, got, want.Egress.IsAllowed())+want.Table())
			} else if a != nil && setsPermit(a, pr.Dst.Addr, pr.Protocol, pr.Port) != got {
				bad = append(bad, fmt.Sprintf("egress %s: rendered sets %v, model %v", pr, !got, got))
			}
		}
		if len(bad) >= max {
			return bad, nil
		}
	}
	return bad, nil
}

func TestOracle(t *testing.T) {
	policytest.CheckRandom(t, "the oracle", 20260601, 6, cyclonusOptions, checkScenario)
}

func FuzzTranslate(f *testing.F) {
	for _, b := range policytest.FuzzSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := policytest.CheckFuzz(t, "the oracle", data, cyclonusOptions, checkScenario)
		if _, err := policy.Render(policy.Translate(s.In)); err != nil {
			t.Fatalf("Render: %v", err)
		}
	})
}
