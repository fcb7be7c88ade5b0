package policy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Verdicts says for every pod exactly what the rendered script's dispatch
// maps say: no entry, drop, or a jump to a chain the script declares.
func TestVerdictsMatchRender(t *testing.T) {
	for name, in := range goldenInputs() {
		t.Run(name, func(t *testing.T) {
			m := Translate(in)
			b, err := Render(m)
			if err != nil {
				t.Fatal(err)
			}
			s := string(b)
			verdicts := Verdicts(m)
			if len(verdicts) != len(m.Pods) {
				t.Fatalf("%d verdicts for %d pods", len(verdicts), len(m.Pods))
			}
			var got, want []string
			for _, mp := range []string{"map ingress_by_iface", "map egress_by_iface"} {
				for _, l := range nftBlock(t, s, mp) {
					if strings.HasPrefix(l, `"flock`) {
						want = append(want, mp+" "+strings.TrimSuffix(l, ","))
					}
				}
			}
			entry := func(mp string, p PodVerdict, v Verdict) {
				switch {
				case !v.Isolated:
				case v.Chain == "":
					deny := map[string]string{"map ingress_by_iface": ingressDeny, "map egress_by_iface": egressDeny}[mp]
					got = append(got, fmt.Sprintf("%s %q comment %q : jump %s", mp, p.Iface, p.Namespace+"/"+p.Name, deny))
				default:
					got = append(got, fmt.Sprintf("%s %q comment %q : jump %s", mp, p.Iface, p.Namespace+"/"+p.Name, v.Chain))
					if !strings.Contains(s, "\tchain "+v.Chain+" {") {
						t.Errorf("pod %s/%s jumps to %s, which the script does not declare", p.Namespace, p.Name, v.Chain)
					}
				}
			}
			for _, p := range verdicts {
				entry("map ingress_by_iface", p, p.Ingress)
			}
			for _, p := range verdicts {
				entry("map egress_by_iface", p, p.Egress)
			}
			slices.Sort(got)
			slices.Sort(want)
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("Verdicts against the script's map entries (-script +Verdicts):\n%s", d)
			}
		})
	}
}

func TestVerdictsKinds(t *testing.T) {
	kinds := map[string]bool{}
	var all []PodVerdict
	for _, name := range []string{"deny-all", "features", "empty"} {
		all = append(all, Verdicts(Translate(goldenInputs()[name]))...)
	}
	for _, p := range all {
		for _, v := range []Verdict{p.Ingress, p.Egress} {
			switch {
			case !v.Isolated:
				kinds["unrestricted"] = true
			case v.Chain == "":
				kinds["deny"] = true
			default:
				kinds["allow-list"] = true
			}
		}
	}
	if len(kinds) != 3 {
		t.Errorf("the scenarios give the verdicts %v, want all three kinds (so that the test above covers each)", kinds)
	}
}
