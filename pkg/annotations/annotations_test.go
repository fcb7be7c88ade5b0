package annotations

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fritzlab/flock/pkg/iid"
	"github.com/fritzlab/flock/pkg/model"
)

func ptr(b bool) *bool { return &b }

func TestWarningString(t *testing.T) {
	w := Warning{Key: KeyIPv4, Value: "maybe", Reason: "is not true or false; using the built-in default (true)"}
	want := `annotation flock.fritzlab.net/ipv4="maybe" is not true or false; using the built-in default (true)`
	if got := w.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestFamilies(t *testing.T) {
	none := model.FamilyDefaults{}
	tests := []struct {
		name    string
		pod     map[string]string
		node    model.FamilyDefaults
		want    model.Families
		warns   []Warning
		wantErr string
	}{
		{name: "built-in default", pod: nil, node: none, want: model.Families{IPv6: true, IPv4: true}},
		{name: "node default v6 only", node: model.FamilyDefaults{IPv4: ptr(false)}, want: model.Families{IPv6: true}},
		{name: "node default v4 only", node: model.FamilyDefaults{IPv6: ptr(false), IPv4: ptr(true)}, want: model.Families{IPv4: true}},
		{name: "pod overrides node false", pod: map[string]string{KeyIPv4: "true"},
			node: model.FamilyDefaults{IPv4: ptr(false)}, want: model.Families{IPv6: true, IPv4: true}},
		{name: "pod overrides node true", pod: map[string]string{KeyIPv6: "false"},
			node: model.FamilyDefaults{IPv6: ptr(true)}, want: model.Families{IPv4: true}},
		{name: "pod overrides built-in", pod: map[string]string{KeyIPv4: "false"}, want: model.Families{IPv6: true}},
		{name: "case and whitespace forgiven", pod: map[string]string{KeyIPv6: " TRUE ", KeyIPv4: "False\n"},
			node: model.FamilyDefaults{IPv6: ptr(false)}, want: model.Families{IPv6: true}},
		{name: "invalid falls through to node", pod: map[string]string{KeyIPv4: "maybe"},
			node: model.FamilyDefaults{IPv4: ptr(false)}, want: model.Families{IPv6: true},
			warns: []Warning{{KeyIPv4, "maybe", "is not true or false; using the NodeConfig spec.defaults.ipv4 (false)"}}},
		{name: "invalid falls through to built-in", pod: map[string]string{KeyIPv6: "yes"},
			want:  model.Families{IPv6: true, IPv4: true},
			warns: []Warning{{KeyIPv6, "yes", "is not true or false; using the built-in default (true)"}}},
		{name: "ParseBool's 1 is not accepted", pod: map[string]string{KeyIPv6: "0"},
			want:  model.Families{IPv6: true, IPv4: true},
			warns: []Warning{{KeyIPv6, "0", "is not true or false; using the built-in default (true)"}}},
		{name: "empty falls through", pod: map[string]string{KeyIPv6: "", KeyIPv4: "  "},
			node: model.FamilyDefaults{IPv6: ptr(true), IPv4: ptr(false)}, want: model.Families{IPv6: true},
			warns: []Warning{
				{KeyIPv6, "", "is empty; using the NodeConfig spec.defaults.ipv6 (true)"},
				{KeyIPv4, "  ", "is empty; using the NodeConfig spec.defaults.ipv4 (false)"},
			}},
		{name: "both false on pod", pod: map[string]string{KeyIPv6: "false", KeyIPv4: "false"},
			wantErr: "pod gets no address family: flock.fritzlab.net/ipv6 is false (pod annotation) and flock.fritzlab.net/ipv4 is false (pod annotation)"},
		{name: "both false mixed", pod: map[string]string{KeyIPv6: "false"}, node: model.FamilyDefaults{IPv4: ptr(false)},
			wantErr: "flock.fritzlab.net/ipv6 is false (pod annotation) and flock.fritzlab.net/ipv4 is false (NodeConfig spec.defaults.ipv4)"},
		{name: "both false on node, invalid pod value", pod: map[string]string{KeyIPv4: "nope"},
			node:    model.FamilyDefaults{IPv6: ptr(false), IPv4: ptr(false)},
			warns:   []Warning{{KeyIPv4, "nope", "is not true or false; using the NodeConfig spec.defaults.ipv4 (false)"}},
			wantErr: "ipv6 is false (NodeConfig spec.defaults.ipv6) and flock.fritzlab.net/ipv4 is false (NodeConfig spec.defaults.ipv4)"},
		{name: "other annotations ignored", pod: map[string]string{"flock.fritzlab.net/ipv6x": "false", "ipv6": "false"},
			want: model.Families{IPv6: true, IPv4: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warns, err := Families(tt.pod, tt.node)
			checkErr(t, err, tt.wantErr)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("families (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.warns, warns); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIPAlgo(t *testing.T) {
	tests := []struct {
		name  string
		pod   map[string]string
		node  map[string]string
		want  iid.Algo
		warns []string
	}{
		{name: "default random", want: iid.Random},
		{name: "node", node: map[string]string{KeyIPAlgo: "hash"}, want: iid.Hash},
		{name: "pod over node", pod: map[string]string{KeyIPAlgo: "ipv4"}, node: map[string]string{KeyIPAlgo: "hash"}, want: iid.IPv4},
		{name: "pod only", pod: map[string]string{KeyIPAlgo: "hash"}, want: iid.Hash},
		{name: "pod explicit random over node", pod: map[string]string{KeyIPAlgo: "random"}, node: map[string]string{KeyIPAlgo: "hash"}, want: iid.Random},
		{name: "lenient case", pod: map[string]string{KeyIPAlgo: " Hash "}, want: iid.Hash},
		{name: "pod invalid falls to node", pod: map[string]string{KeyIPAlgo: "eui64"}, node: map[string]string{KeyIPAlgo: "ipv4"}, want: iid.IPv4,
			warns: []string{`annotation flock.fritzlab.net/ip-algo="eui64" is not one of random, hash or ipv4; using the NodeConfig's ipv4`}},
		{name: "pod empty falls to default", pod: map[string]string{KeyIPAlgo: ""}, want: iid.Random,
			warns: []string{`annotation flock.fritzlab.net/ip-algo="" is empty; using the default, random`}},
		{name: "node invalid", node: map[string]string{KeyIPAlgo: "sha1"}, want: iid.Random,
			warns: []string{`annotation flock.fritzlab.net/ip-algo="sha1" on the NodeConfig is not one of random, hash or ipv4; using the default, random`}},
		{name: "node empty", node: map[string]string{KeyIPAlgo: " "}, want: iid.Random,
			warns: []string{`annotation flock.fritzlab.net/ip-algo=" " on the NodeConfig is empty; using the default, random`}},
		{name: "both invalid", pod: map[string]string{KeyIPAlgo: "x"}, node: map[string]string{KeyIPAlgo: "y"}, want: iid.Random,
			warns: []string{
				`annotation flock.fritzlab.net/ip-algo="x" is not one of random, hash or ipv4; using the default, random`,
				`annotation flock.fritzlab.net/ip-algo="y" on the NodeConfig is not one of random, hash or ipv4; using the default, random`,
			}},
		// The node's bad value does not matter when the pod decides.
		{name: "pod valid node invalid", pod: map[string]string{KeyIPAlgo: "hash"}, node: map[string]string{KeyIPAlgo: "y"}, want: iid.Hash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warns := IPAlgo(tt.pod, tt.node)
			if got != tt.want {
				t.Errorf("IPAlgo = %q, want %q", got, tt.want)
			}
			if diff := cmp.Diff(tt.warns, strs(warns)); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

func strs(ws []Warning) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.String())
	}
	return out
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("no error, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("error %q does not contain %q", err, want)
	}
}
