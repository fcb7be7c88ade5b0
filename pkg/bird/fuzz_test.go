package bird

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzRender: any input is either rejected by Validate (and so by Render),
// or renders a config whose structure no operator value changed and which
// the real BIRD parses (when bird is installed).
func FuzzRender(f *testing.F) {
	f.Add("", uint32(65101), "2001:db8:1ab:1::2/64,198.19.1.2/24", "2001:db8:1ab:1::1", "198.19.1.1",
		uint32(65000), "", false, 0, 0, 0, "", "2001:db8:42:1::/64", "10.42.1.0/24", "", true)
	f.Add("192.0.2.1", uint32(4200000000), "2001:db8:1ab:1::2/64", "2001:db8:99::1", "2001:db8:1ab:1::1",
		uint32(65101), "2001:db8:1ab:1::2", true, 90, 300, 2, "s3cr3t {};", "2001:db8:42:1::/64", "", "2001:db8:ffff::1,192.0.2.5", false)
	f.Add("", uint32(65101), "198.19.1.2/24", "198.19.1.1", "198.19.1.1", uint32(65000), "", false, 0, 0, 0,
		"a\"; } protocol bgp x {", "", "10.42.1.0/24", "", true)
	f.Add("", uint32(1), "fe80::2/64", "fe80::1", "", uint32(1), "", false, 2, 5000, 300, "\n", "fe80::/64", "10.42.1.1/24", "ff02::1", true)

	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, routerID string, asn uint32, addrs, peer1, peer2 string, peerASN uint32,
		source string, bfd bool, hold, restart, multihop int, password, pool6, pool4, anycast string, gr bool) {
		c := &Config{ASN: asn, RouterID: parseAddr(routerID), Pool6: parsePrefix(pool6), Pool4: parsePrefix(pool4)}
		for _, s := range strings.Split(addrs, ",") {
			if p, err := netip.ParsePrefix(s); err == nil {
				c.Addresses = append(c.Addresses, p)
			}
		}
		for i, s := range strings.Split(anycast, ",") {
			if a, err := netip.ParseAddr(s); err == nil {
				c.Anycast = append(c.Anycast, a)
				// The same addresses as Service routes with communities:
				// half of them both anycast and Service.
				c.Services = append(c.Services, ServiceRoute{Addr: a, Communities: []Community{{uint16(i), uint16(peerASN)}},
					LargeCommunities: []LargeCommunity{{asn, uint32(i), peerASN}}})
				if i%2 == 1 {
					c.Anycast = c.Anycast[:len(c.Anycast)-1]
				}
			}
		}
		for _, s := range []string{peer1, peer2} {
			if s == "" {
				continue
			}
			c.Peers = append(c.Peers, Peer{Address: parseAddr(s), ASN: peerASN, SourceAddress: parseAddr(source),
				BFD: bfd, HoldTime: hold, RestartTime: restart, Multihop: multihop, Password: password,
				DisableGracefulRestart: !gr, Communities: []Community{{uint16(asn), uint16(peerASN)}}})
		}

		verr := c.Validate()
		out, rerr := Render(c)
		if verr != nil {
			if rerr == nil {
				t.Fatalf("Validate rejects (%v) but Render renders", verr)
			}
			return
		}
		if rerr != nil {
			t.Fatalf("Validate accepts but Render fails: %v", rerr)
		}

		// The password is the only free text: rendered with a harmless one
		// instead, the config must be the same but for that string.
		for i := range c.Peers {
			c.Peers[i].Password = strings.Repeat("x", min(len(password), 1))
		}
		plain, err := Render(c)
		if err != nil {
			t.Fatalf("Render with a plain password: %v", err)
		}
		if password != "" {
			plain = bytes.ReplaceAll(plain, []byte(`password "x";`), []byte(`password "`+password+`";`))
		}
		if !bytes.Equal(out, plain) {
			t.Fatalf("the password changed the structure of the config:\n%s", out)
		}
		if bytes.Count(out, []byte("{")) != bytes.Count(out, []byte("}")) && !strings.ContainsAny(password, "{}") {
			t.Fatalf("unbalanced braces:\n%s", out)
		}

		if _, err := exec.LookPath("bird"); err != nil {
			return
		}
		path := filepath.Join(dir, "fuzz.conf")
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		if msg, err := exec.Command("bird", "-p", "-c", path).CombinedOutput(); err != nil {
			t.Fatalf("bird -p rejects the rendered config: %v: %s\n%s", err, msg, out)
		}
	})
}

func parseAddr(s string) netip.Addr {
	a, _ := netip.ParseAddr(s)
	return a
}

func parsePrefix(s string) netip.Prefix {
	p, _ := netip.ParsePrefix(s)
	return p
}
