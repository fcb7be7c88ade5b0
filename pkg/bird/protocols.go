package bird

import (
	"context"
	"strings"
)

// Protocol is one row of `show protocols`.
type Protocol struct {
	Name  string // bgp6_2001_db8_1ab_1__1 (see PeerName), kernel6, static4, …
	Proto string // BGP, Kernel, Static, Device, …
	Table string // master6, master4, or --- for none
	State string // up, start, down, …
	Since string // when State was entered, as BIRD prints it
	Info  string // for BGP: Established, Active, Connect, … and any error
}

// Established tells whether a BGP protocol's session is up.
func (p Protocol) Established() bool {
	return p.State == "up" && strings.HasPrefix(p.Info, "Established")
}

// Protocols runs `show protocols` and returns its rows.
func (c *Client) Protocols(ctx context.Context) ([]Protocol, error) {
	lines, err := c.Command(ctx, "show protocols")
	if err != nil {
		return nil, err
	}
	return ParseProtocols(lines), nil
}

// ParseProtocols reads the rows of a `show protocols` reply (code 1002),
// skipping the header and anything it cannot read.
func ParseProtocols(lines []Line) []Protocol {
	var out []Protocol
	for _, l := range lines {
		if l.Code != 1002 {
			continue
		}
		f := strings.Fields(l.Text)
		if len(f) < 5 {
			continue
		}
		p := Protocol{Name: f[0], Proto: f[1], Table: f[2], State: f[3], Since: f[4]}
		if len(f) > 5 {
			p.Info = strings.Join(f[5:], " ")
		}
		out = append(out, p)
	}
	return out
}
