package model

import (
	"net/netip"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fritzlab/flock/api/v1alpha1"
)

func nc(cidr6, cidr4 string) *v1alpha1.NodeConfig {
	return &v1alpha1.NodeConfig{ObjectMeta: metav1.ObjectMeta{Name: "host001"}, Spec: v1alpha1.NodeConfigSpec{CIDR6: cidr6, CIDR4: cidr4}}
}

func TestNodeFromConfig(t *testing.T) {
	for _, tc := range []struct {
		cidr6, cidr4 string
		wantErr      string
	}{
		{"2001:db8:42:1::/64", "10.42.1.0/24", ""},
		{"2001:db8:42:1::/64", "", ""},
		{"", "10.42.1.0/30", ""},
		{"", "", "neither spec.cidr6 nor spec.cidr4"},
		{"2001:db8:42:1::1/64", "", `spec.cidr6 "2001:db8:42:1::1/64": host bits set`},
		{"10.0.0.0/8", "", `spec.cidr6 "10.0.0.0/8": not an IPv6 prefix`},
		{"", "2001:db8::/64", `spec.cidr4 "2001:db8::/64": not an IPv4 prefix`},
		{"", "10.0.0.0/31", `spec.cidr4 "10.0.0.0/31": prefix longer than /30`},
		{"2001:db8::/124", "", "prefix longer than /120"},
		{"fe80::/64", "", "not a unicast pod range"},
		{"", "not-a-cidr", `spec.cidr4 "not-a-cidr"`},
		{"::ffff:10.0.0.0/120", "", "not an IPv6 prefix"},
	} {
		n, err := NodeFromConfig(nc(tc.cidr6, tc.cidr4))
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("%q %q: %v", tc.cidr6, tc.cidr4, err)
			} else if n.Name != "host001" || (tc.cidr6 != "" && n.Pool6 != netip.MustParsePrefix(tc.cidr6)) {
				t.Errorf("%q %q: got %+v", tc.cidr6, tc.cidr4, n)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "host001") {
			t.Errorf("%q %q: error %v, want %q naming the node", tc.cidr6, tc.cidr4, err, tc.wantErr)
		}
	}
}

func FuzzNodeFromConfig(f *testing.F) {
	f.Add("2001:db8:42:1::/64", "10.42.1.0/24")
	f.Add("::/0", "0.0.0.0/0")
	f.Add("", "10.0.0.0/30")
	f.Fuzz(func(t *testing.T, cidr6, cidr4 string) {
		n, err := NodeFromConfig(nc(cidr6, cidr4))
		if err != nil {
			return
		}
		if n.Pool6.IsValid() && (!n.Pool6.Addr().Is6() || n.Pool6.Bits() > 120 || n.Pool6 != n.Pool6.Masked()) {
			t.Fatalf("bad pool6 accepted: %v", n.Pool6)
		}
		if n.Pool4.IsValid() && (!n.Pool4.Addr().Is4() || n.Pool4.Bits() > 30 || n.Pool4 != n.Pool4.Masked()) {
			t.Fatalf("bad pool4 accepted: %v", n.Pool4)
		}
	})
}
