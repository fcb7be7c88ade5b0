package datapath

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAliasRoundTrip(t *testing.T) {
	long := strings.Repeat("x", 200)
	tests := []struct {
		name string
		in   Owner
		want Owner // what survives the length limit
	}{
		{
			name: "all fields",
			in:   Owner{ContainerID: "c0ffee", IfName: "eth0", Netns: "/run/netns/cni-1 a&b=c", Namespace: "demo", Name: "web", UID: "u-1"},
			want: Owner{ContainerID: "c0ffee", IfName: "eth0", Netns: "/run/netns/cni-1 a&b=c", Namespace: "demo", Name: "web", UID: "u-1"},
		},
		{
			name: "too long: uid and pod left out first",
			in:   Owner{ContainerID: "c0ffee", IfName: "eth0", Netns: "/run/netns/x", Namespace: "demo", Name: long, UID: "u-1"},
			want: Owner{ContainerID: "c0ffee", IfName: "eth0", Netns: "/run/netns/x"},
		},
		{
			name: "too long: netns left out last",
			in:   Owner{ContainerID: "c0ffee", IfName: "eth0", Netns: "/" + long + long, Namespace: "demo", Name: "web"},
			want: Owner{ContainerID: "c0ffee", IfName: "eth0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := tt.in.Alias()
			if !ok || len(s) > maxAlias {
				t.Fatalf("Alias() = %q (%d bytes), %v", s, len(s), ok)
			}
			got, err := ParseAlias(s)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
	if s, ok := (Owner{ContainerID: strings.Repeat("c", 300)}).Alias(); ok {
		t.Errorf("a container id longer than an alias gave %q", s)
	}
}

func TestParseAliasRejects(t *testing.T) {
	for in, want := range map[string]string{
		"":                                      "not written by flock",
		"my uplink":                             "not written by flock",
		"flock:v1 i=eth0":                       "no container id",
		"flock:v1 c=a&x=1":                      `unknown field "x"`,
		"flock:v1 c=a&c=b":                      `field "c" given 2 times`,
		"flock:v1 c=a&i=a/b":                    `pod interface "a/b"`,
		"flock:v1 c=a&ns=demo":                  "go together",
		"flock:v1 c=%zz":                        "invalid URL escape",
		"flock:v2 c=a":                          "not written by flock",
		"flock:v1 c=a&i=" + "eth01234567890123": "pod interface",
	} {
		if _, err := ParseAlias(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseAlias(%q) = %v, want an error containing %q", in, err, want)
		}
	}
}

func TestOwnerOf(t *testing.T) {
	s, _ := Owner{ContainerID: "c0ffee"}.Alias()
	if o, err := ownerOf(HostIfaceName("c0ffee"), s); err != nil || o.ContainerID != "c0ffee" {
		t.Errorf("ownerOf = %+v, %v", o, err)
	}
	if _, err := ownerOf(HostIfaceName("other"), s); err == nil || !strings.Contains(err.Error(), "whose veth is") {
		t.Errorf("ownerOf of another veth's alias: %v", err)
	}
	if _, err := ownerOf("flock00000000", ""); err != errNoAlias {
		t.Errorf("ownerOf without alias: %v", err)
	}
}

// FuzzParseAlias: ParseAlias never panics, and what it accepts encodes
// back to an alias that parses to the same owner.
func FuzzParseAlias(f *testing.F) {
	for _, s := range []string{"flock:v1 c=c0ffee&i=eth0&n=%2Frun%2Fnetns%2Fx&ns=demo&p=web&u=1", "flock:v1 c=a", "flock:v1 ", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseAlias(s)
		if err != nil {
			return
		}
		s2, ok := o.Alias()
		if !ok {
			return // longer than an alias once re-encoded
		}
		o2, err := ParseAlias(s2)
		if err != nil {
			t.Fatalf("re-encoded %q of %q does not parse: %v", s2, s, err)
		}
		if o2.ContainerID != o.ContainerID || o2.IfName != o.IfName {
			t.Fatalf("%q: %+v then %+v", s, o, o2)
		}
	})
}
