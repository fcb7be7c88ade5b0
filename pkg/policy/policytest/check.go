package policytest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/fritzlab/flock/pkg/policy"
)

// LocalPolicies translates a scenario and returns the model's pods by
// namespace/name; problem, when not empty, is why the model cannot be
// compared with an oracle (warnings on valid input, a local pod missing).
func LocalPolicies(s *Scenario) (pods map[string]*policy.PodPolicy, problem string) {
	m := policy.Translate(s.In)
	if len(m.Warnings) > 0 {
		return nil, fmt.Sprintf("warnings on valid input: %v", m.Warnings)
	}
	pods = map[string]*policy.PodPolicy{}
	for i := range m.Pods {
		pods[m.Pods[i].Namespace+"/"+m.Pods[i].Name] = &m.Pods[i]
	}
	for _, p := range s.In.Pods {
		if p.Iface != "" && pods[p.Key()] == nil {
			return nil, fmt.Sprintf("local pod %s missing from the model", p.Key())
		}
	}
	return pods, ""
}

// Checker compares Translate with an oracle on every probe of s, counting
// the oracle's verdicts in n, and returns the disagreements (at most max).
type Checker func(s *Scenario, max int, n *Tally) ([]string, error)

// CheckRandom checks 400 random scenarios (50 with -short) from the seeds
// and fails t at the first disagreement with oracle, or when the scenarios
// exercised one verdict only.
func CheckRandom(t *testing.T, oracle string, seed1, seed2 uint64, o Options, check Checker) {
	t.Helper()
	n := 400
	if testing.Short() {
		n = 50
	}
	c := NewRandChooser(seed1, seed2)
	var verdicts Tally
	for i := range n {
		s := GenScenario(c, o)
		bad, err := check(s, 10, &verdicts)
		if err != nil {
			t.Fatalf("scenario %d: %v\nscenario:\n%s", i, err, Describe(s))
		}
		if len(bad) > 0 {
			t.Fatalf("scenario %d: %d disagreements with %s:\n%s\nscenario:\n%s", i, len(bad), oracle, strings.Join(bad, "\n"), Describe(s))
		}
	}
	t.Logf("%d scenarios agree with %s: %d verdicts allowed, %d denied", n, oracle, verdicts.Allowed, verdicts.Denied)
	if verdicts.Allowed == 0 || verdicts.Denied == 0 {
		t.Errorf("the scenarios exercise one verdict only")
	}
}

// CheckFuzz checks the scenario a fuzz input makes, failing t at a
// disagreement with oracle, and returns it.
func CheckFuzz(t *testing.T, oracle string, data []byte, o Options, check Checker) *Scenario {
	t.Helper()
	s := GenScenario(&ByteChooser{B: data}, o)
	bad, err := check(s, 10, &Tally{})
	if err != nil {
		t.Fatalf("%v\nscenario:\n%s", err, Describe(s))
	}
	if len(bad) > 0 {
		t.Fatalf("%d disagreements with %s:\n%s\nscenario:\n%s", len(bad), oracle, strings.Join(bad, "\n"), Describe(s))
	}
	return s
}
