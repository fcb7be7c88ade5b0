package policy

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/fritzlab/flock/internal/golden"
	"github.com/fritzlab/flock/pkg/policy/nptest"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// goldenInputs are the scenarios kept as testdata/NAME.nft.
func goldenInputs() map[string]*Input {
	out := map[string]*Input{}

	out["empty"] = handCluster()

	in := handCluster()
	in.Policies = []networkingv1.NetworkPolicy{nptest.Policy("x", "deny", nil, nptest.Types(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress))}
	out["deny-all"] = in

	// Every feature at once: the shape of a real namespace's policies.
	in = handCluster()
	in.Policies = []networkingv1.NetworkPolicy{
		nptest.Policy("x", "default-deny", nil, nptest.Types(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress)),
		nptest.Policy("x", "dns", nil, nptest.Types(networkingv1.PolicyTypeEgress),
			nptest.Egress(nptest.Peers(nptest.NSPeer(nptest.Labels(nsNameLabel, "kube-system"))), nptest.Port(corev1.ProtocolUDP, 53), nptest.Port("", 53)),
			nptest.Egress(nptest.Peers(nptest.Block("2001:db8:53::/64"), nptest.Block("192.0.2.53/32")), nptest.Port(corev1.ProtocolUDP, 53))),
		nptest.Policy("x", "web", nptest.Labels("app", "web"),
			nptest.Ingress(nptest.Peers(nptest.NSPodPeer(nptest.Labels("team", "b"), nptest.Labels("app", "web")), nptest.PodPeer(nptest.Labels("pod", "b"))),
				nptest.Port("", "http"), nptest.Port(corev1.ProtocolUDP, "dns")),
			nptest.Ingress(nptest.Peers(nptest.Block("10.0.0.0/8", "10.42.0.0/16"), nptest.Block("2001:db8::/32", "2001:db8:42::/48")),
				nptest.Port("", 8000, 8099), nptest.Port(corev1.ProtocolSCTP, nil))),
		nptest.Policy("x", "db", nptest.Labels("app", "db"), nptest.Types(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress),
			nptest.Ingress(nptest.Peers(nptest.PodPeer(nptest.Labels("app", "web"))), nptest.Port("", "http")),
			nptest.Egress(nptest.Peers(nptest.NSPeer(nptest.Labels("team", "b"))), nptest.Port("", "http")),
			nptest.Egress(nil, nptest.Port("", 443))),
	}
	out["features"] = in

	// Two replicas and an empty rule: one shared chain, and nothing at all
	// for an allow-list that allows everything.
	in = handCluster()
	in.Pods[1].Labels = in.Pods[0].Labels
	in.Pods[1].Ports = in.Pods[0].Ports
	in.Policies = []networkingv1.NetworkPolicy{
		nptest.Policy("x", "web", nptest.Labels("app", "web"), nptest.Ingress(nptest.Peers(nptest.NSPeer(all)), nptest.Port("", "http"))),
		nptest.Policy("x", "open", nptest.Labels("app", "web"), nptest.Types(networkingv1.PolicyTypeEgress), nptest.Egress(nil)),
	}
	out["replicas"] = in
	return out
}

func TestGolden(t *testing.T) {
	for name, in := range goldenInputs() {
		t.Run(name, func(t *testing.T) {
			got, err := Render(Translate(in))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", name+".nft")
			golden.Check(t, path, "rendered ruleset", got)
			nftCheck(t, path)
		})
	}
}

// nftCheck has the real nft (in a fresh network namespace) judge a script:
// syntax, types, overlapping set elements, jumps. It skips when nft is not
// installed; CI installs it.
func nftCheck(t testing.TB, path string) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft not installed, so rendered rulesets are not checked by nftables: apt-get install -y nftables (CI installs it)")
	}
	out, err := exec.Command("unshare", "-rn", "nft", "--check", "-f", path).CombinedOutput()
	if err != nil {
		t.Errorf("nft --check -f %s: %v\n%s", path, err, out)
	}
}

func TestRenderShape(t *testing.T) {
	b, err := Render(Translate(goldenInputs()["features"]))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.HasPrefix(s, "# ") || !strings.Contains(s, "\ntable inet flock\ndelete table inet flock\ntable inet flock {\n") {
		t.Errorf("the script does not replace the table in one transaction:\n%s", s)
	}
	// The base chains: established first, then ICMP, then a pod's hairpin
	// through a Service, then dispatch by veth only (never by address:
	// anycast and DNATed traffic must be covered).
	forward := nftBlock(t, s, "chain forward")
	wantForward := append(append([]string{"type filter hook forward priority filter; policy accept;"}, preamble...),
		"iifname . oifname @hairpin accept", "iifname vmap @egress_by_iface", "oifname vmap @ingress_by_iface")
	if d := cmp.Diff(wantForward, forward); d != "" {
		t.Errorf("forward chain (-want +got):\n%s", d)
	}
	input := nftBlock(t, s, "chain input")
	wantInput := append(append([]string{"type filter hook input priority filter; policy accept;"}, preamble...),
		"iifname vmap @egress_by_iface")
	if d := cmp.Diff(wantInput, input); d != "" {
		t.Errorf("input chain (-want +got):\n%s", d)
	}
	for _, icmp := range []string{"packet-too-big", "nd-neighbor-solicit", "nd-neighbor-advert", "nd-router-advert", "destination-unreachable"} {
		if !strings.Contains(preamble[1], icmp) {
			t.Errorf("ICMPv6 %s is not always accepted", icmp)
		}
	}
	// Host to pod goes through output, which flock must not filter.
	if strings.Contains(s, "hook output") || strings.Contains(s, "chain fwd ") {
		t.Errorf("the ruleset has an output chain or a chain named fwd:\n%s", s)
	}
	// Allow-list chains: bounded, ingress accepts, egress returns (so the
	// receiving pod's ingress is still checked), both end in a counted drop.
	chains := regexp.MustCompile(`(?m)^\tchain ((?:ingress|egress)_[0-9a-f]{16}) \{$`).FindAllStringSubmatch(s, -1)
	if len(chains) < 4 {
		t.Fatalf("%d allow-list chains, want at least 4:\n%s", len(chains), s)
	}
	for _, c := range chains {
		rules := nftBlock(t, s, "chain "+c[1])
		verdict := " return"
		if strings.HasPrefix(c[1], "ingress") {
			verdict = " accept"
		}
		if len(rules) > 8 || rules[1] != "ct state invalid drop" || rules[len(rules)-2] != countDrop(strings.HasPrefix(c[1], "ingress")) || rules[len(rules)-1] != "drop" {
			t.Errorf("chain %s: %q", c[1], rules)
		}
		for _, r := range rules[2 : len(rules)-2] {
			if !strings.HasSuffix(r, verdict) || !strings.Contains(r, " @"+c[1]+"_") {
				t.Errorf("chain %s: rule %q is not one set lookup ending in%s", c[1], r, verdict)
			}
		}
	}
}

// nftBlock returns the lines of a chain or set, trimmed, without the braces.
func nftBlock(t *testing.T, s, head string) []string {
	t.Helper()
	i := strings.Index(s, "\t"+head+" {\n")
	if i < 0 {
		t.Fatalf("no %q in:\n%s", head, s)
	}
	body := s[i+len(head)+4:]
	body = body[:strings.Index(body, "\n\t}\n")]
	var out []string
	for _, l := range strings.Split(body, "\n") {
		out = append(out, strings.TrimSpace(l))
	}
	return out
}

func TestRenderVerdicts(t *testing.T) {
	in := handCluster()
	in.Policies = []networkingv1.NetworkPolicy{
		nptest.Policy("x", "deny-a", nptest.Labels("pod", "a")),
		nptest.Policy("x", "open-b", nptest.Labels("pod", "b"), nptest.Ingress(nil)),
	}
	b, err := Render(Translate(in))
	if err != nil {
		t.Fatal(err)
	}
	got := nftBlock(t, string(b), "map ingress_by_iface")
	want := []string{"type ifname : verdict", `comment "what each local pod under an ingress policy may receive, by its host veth"`,
		"elements = {", `"flock0000000a" comment "x/a" : jump ingress_deny`, "}"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("deny-all is a jump to the counting deny chain in the map, allow-all no entry at all (-want +got):\n%s", d)
	}
	// Only the restricted pod has a drop counter, found by its veth.
	if got, want := nftBlock(t, string(b), "map ingress_drops"), []string{"type ifname : counter",
		`comment "the drop counter of each local pod under an ingress policy"`, "elements = {", `"flock0000000a" : "drop_in_flock0000000a"`, "}"}; !cmp.Equal(want, got) {
		t.Errorf("ingress drop counters (-want +got):\n%s", cmp.Diff(want, got))
	}
	if got := nftBlock(t, string(b), "chain ingress_deny"); !slices.Equal(got[1:], []string{"counter name oifname map @ingress_drops", "drop"}) {
		t.Errorf("ingress_deny chain: %q", got)
	}
}

func TestRenderSharesChains(t *testing.T) {
	b, err := Render(Translate(goldenInputs()["replicas"]))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if n := len(regexp.MustCompile(`\tchain ingress_[0-9a-f]{16} `).FindAllString(s, -1)); n != 1 {
		t.Errorf("%d ingress chains for two replicas, want 1:\n%s", n, s)
	}
	if regexp.MustCompile(`chain egress_[0-9a-f]{16} `).MatchString(s) || strings.Contains(strings.Join(nftBlock(t, s, "map egress_by_iface"), "\n"), "flock") {
		t.Errorf("an egress rule without peers or ports still dispatches:\n%s", s)
	}
}

func TestRenderRejects(t *testing.T) {
	for _, m := range []*Model{
		{Pods: []PodPolicy{{Namespace: "x", Name: "a", Iface: `a" accept`}}},
		{Pods: []PodPolicy{{Namespace: "x", Name: "a", Iface: "flock1"}, {Namespace: "x", Name: "b", Iface: "flock1"}}},
	} {
		if out, err := Render(m); err == nil {
			t.Errorf("Render(%+v) = %s, want an error", m.Pods, out)
		}
	}
}

// Render must not depend on the order of a model's pods.
func TestRenderOrder(t *testing.T) {
	m := Translate(goldenInputs()["features"])
	a, _ := Render(m)
	m.Pods[0], m.Pods[1] = m.Pods[1], m.Pods[0]
	b, _ := Render(m)
	if d := cmp.Diff(string(a), string(b)); d != "" {
		t.Errorf("reordered pods changed the ruleset:\n%s", d)
	}
}

func TestComment(t *testing.T) {
	long := strings.Repeat("n", 63) + "/" + strings.Repeat("p", 100)
	for in, want := range map[string]string{
		"x/a":            "x/a",
		`x/"a" \ {}`:     "x/_a______",
		long:             long[:127],
		"ns/pod-1.a_b-2": "ns/pod-1.a_b-2",
	} {
		if got := comment(in); got != want {
			t.Errorf("comment(%q) = %q, want %q", in, got, want)
		}
	}
}
