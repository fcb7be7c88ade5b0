package policy

import (
	"cmp"
	"slices"
	"strings"
)

// Verdict is what a local pod's entry in a dispatch map does with one
// direction of its traffic, as Render writes it.
type Verdict struct {
	// Isolated is false when no policy isolates the pod (no entry: all
	// traffic passes).
	Isolated bool
	// Chain is the allow-list chain the entry jumps to; empty for an
	// isolated pod that is allowed nothing (the entry drops).
	Chain string
}

// PodVerdict is a local pod's two verdicts.
type PodVerdict struct {
	Namespace, Name, Iface string
	Ingress, Egress        Verdict
}

// Verdicts tells, for every pod of m, what the script Render writes for m
// does with its traffic, naming the allow-list chains as the script does
// (for operators: which chain to `nft list` for a pod). Pods come sorted
// by namespace and name.
func Verdicts(m *Model) []PodVerdict {
	r := &renderer{chains: map[string]*chain{}, byAllow: map[allowKey]string{}}
	// Render's order, so that a chain renamed for a hash collision gets
	// the same name here.
	pods := slices.Clone(m.Pods)
	slices.SortFunc(pods, func(a, b PodPolicy) int { return strings.Compare(a.Iface, b.Iface) })
	out := make([]PodVerdict, 0, len(pods))
	for _, p := range pods {
		out = append(out, PodVerdict{
			Namespace: p.Namespace, Name: p.Name, Iface: p.Iface,
			Ingress: verdictOf(p.Ingress, r.verdict(true, p.Ingress)),
			Egress:  verdictOf(p.Egress, r.verdict(false, p.Egress)),
		})
	}
	slices.SortFunc(out, func(a, b PodVerdict) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Iface, b.Iface))
	})
	return out
}

// verdictOf reads a dispatch map value: "" (no entry), a jump to the
// deny chain or "jump <chain>". An allow-list that allows everything has no entry, as if
// no policy isolated the pod.
func verdictOf(a *Allow, v string) Verdict {
	if a == nil || v == "" {
		return Verdict{}
	}
	if chain, ok := strings.CutPrefix(v, "jump "); ok && chain != ingressDeny && chain != egressDeny {
		return Verdict{Isolated: true, Chain: chain}
	}
	return Verdict{Isolated: true}
}
