// Package annotations reads flock's pod annotations and resolves them,
// together with the node's configuration, into what a pod should get: its
// address families, the ranges of the node pool to allocate from and the IPv6
// interface identifier algorithm.
//
// Bad input is never fatal on its own: an empty or invalid value is reported
// as a Warning (which the agent logs and turns into a pod Event) and the next
// level of precedence decides, so a typo degrades to the node's behaviour
// instead of leaving the pod without a network. Only a combination that
// leaves nothing to allocate (no family, no usable range) is an error.
package annotations

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/fritzlab/flock/pkg/iid"
	"github.com/fritzlab/flock/pkg/model"
)

// Prefix is what every flock annotation key starts with.
const Prefix = "flock.fritzlab.net/"

// The annotation keys. They keep the original system's names so existing
// clusters keep working.
const (
	KeyIPv6    = Prefix + "ipv6"
	KeyIPv4    = Prefix + "ipv4"
	KeyCIDR6   = Prefix + "cidr6"
	KeyCIDR4   = Prefix + "cidr4"
	KeyIPAlgo  = Prefix + "ip-algo"
	KeyAnycast = Prefix + "anycast"
)

// Warning is an annotation value that was ignored, in whole or in part.
type Warning struct {
	// Key is the annotation key; empty for warnings of Narrow, whose caller
	// knows the key.
	Key string
	// Value is the annotation's whole value as written.
	Value string
	// Reason says what is wrong and what flock does instead; it continues
	// the sentence "annotation <key>=<value> …".
	Reason string
}

// String is a sentence an operator can act on without reading code, e.g.
// `annotation flock.fritzlab.net/ipv4="maybe" is not true or false; using the
// NodeConfig default (spec.defaults.ipv4: true)`.
func (w Warning) String() string {
	if w.Key == "" {
		return w.Reason
	}
	return "annotation " + w.Key + "=" + strconv.Quote(w.Value) + " " + w.Reason
}

// Families resolves which address families a pod gets. Per family the pod
// annotation decides if it says "true" or "false" (case-insensitively, with
// surrounding whitespace ignored: hand-typed YAML gets "True" and " false"
// wrong often enough and the intent is plain); anything else, including the
// empty string and strconv.ParseBool's "1"/"t" (which a reader of the
// annotation could not tell from a typo), falls through with a warning to the
// node default and then to the built-in default, true. A pod that would get
// neither family is an error: there would be nothing to give it.
func Families(pod map[string]string, node model.FamilyDefaults) (model.Families, []Warning, error) {
	return families(family(pod, KeyIPv6, node.IPv6, "ipv6"), family(pod, KeyIPv4, node.IPv4, "ipv4"))
}

func families(v6, v4 familyChoice) (model.Families, []Warning, error) {
	ws := appendWarning(appendWarning(nil, v6.warning), v4.warning)
	if !v6.want && !v4.want {
		return model.Families{}, ws, fmt.Errorf("pod gets no address family: %s is false (%s) and %s is false (%s)",
			KeyIPv6, v6.source, KeyIPv4, v4.source)
	}
	return model.Families{IPv6: v6.want, IPv4: v4.want}, ws, nil
}

// familyChoice is one family's decision and where it came from, so errors
// can tell the operator which setting to change.
type familyChoice struct {
	want    bool
	source  string
	warning *Warning
}

func family(pod map[string]string, key string, def *bool, field string) familyChoice {
	fallback := familyChoice{want: true, source: "built-in default"}
	if def != nil {
		fallback = familyChoice{want: *def, source: "NodeConfig spec.defaults." + field}
	}
	v, ok := pod[key]
	if !ok {
		return fallback
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true":
		return familyChoice{want: true, source: "pod annotation"}
	case "false":
		return familyChoice{want: false, source: "pod annotation"}
	}
	problem := "is not true or false"
	if strings.TrimSpace(v) == "" {
		problem = "is empty"
	}
	fallback.warning = &Warning{Key: key, Value: v,
		Reason: fmt.Sprintf("%s; using the %s (%t)", problem, fallback.source, fallback.want)}
	return fallback
}

// IPAlgo resolves the IPv6 interface identifier algorithm: the pod
// annotation, else the NodeConfig's metadata.annotations, else iid.Random.
// An empty or unknown value at either level is warned about and falls
// through; the NodeConfig's value is only looked at (and warned about) when
// the pod leaves the choice to it.
func IPAlgo(pod, node map[string]string) (iid.Algo, []Warning) {
	podAlgo, podBad := lookupAlgo(pod)
	if podAlgo != "" {
		return podAlgo, nil
	}
	nodeAlgo, nodeBad := lookupAlgo(node)
	algo, from := nodeAlgo, "the NodeConfig's "+string(nodeAlgo)
	if nodeAlgo == "" {
		algo, from = iid.Random, "the default, random"
	}
	var ws []Warning
	if podBad != nil {
		podBad.Reason += "; using " + from
		ws = append(ws, *podBad)
	}
	if nodeBad != nil {
		nodeBad.Reason = "on the NodeConfig " + nodeBad.Reason + "; using the default, random"
		ws = append(ws, *nodeBad)
	}
	return algo, ws
}

// lookupAlgo returns the algorithm an annotation map names, or "" and, if
// the annotation is present but unusable, a warning without its consequence.
func lookupAlgo(m map[string]string) (iid.Algo, *Warning) {
	v, ok := m[KeyIPAlgo]
	if !ok {
		return "", nil
	}
	if strings.TrimSpace(v) == "" {
		return "", &Warning{Key: KeyIPAlgo, Value: v, Reason: "is empty"}
	}
	a, err := iid.ParseAlgo(v)
	if err != nil {
		return "", &Warning{Key: KeyIPAlgo, Value: v, Reason: "is not one of random, hash or ipv4"}
	}
	return a, nil
}

func appendWarning(ws []Warning, w *Warning) []Warning {
	if w == nil {
		return ws
	}
	return append(ws, *w)
}
