package bird

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// ProtocolDetail is one protocol of `show protocols all`: its row, and
// for BGP the session's state, the neighbour and the route counts of each
// channel.
type ProtocolDetail struct {
	Protocol
	// BGPState is the BGP FSM state (Idle, Connect, Active, OpenSent,
	// OpenConfirm, Established); empty for other protocols.
	BGPState string
	Neighbor netip.Addr
	// Channels are the route counts by channel name (ipv6, ipv4).
	Channels map[string]RouteCounts
}

// RouteCounts are a channel's "Routes:" line.
type RouteCounts struct{ Imported, Exported int }

// ProtocolsAll runs `show protocols all` and returns every protocol.
func (c *Client) ProtocolsAll(ctx context.Context) ([]ProtocolDetail, error) {
	lines, err := c.Command(ctx, "show protocols all")
	if err != nil {
		return nil, err
	}
	return ParseProtocolsAll(lines), nil
}

// ParseProtocolsAll reads a `show protocols all` reply: a 1002 row opens a
// protocol, the 1006 lines after it describe it. Lines it cannot read are
// skipped.
func ParseProtocolsAll(lines []Line) []ProtocolDetail {
	var out []ProtocolDetail
	var cur *ProtocolDetail
	channel := ""
	for _, l := range lines {
		switch l.Code {
		case 1002:
			ps := ParseProtocols([]Line{l})
			if len(ps) == 0 {
				cur = nil
				continue
			}
			out = append(out, ProtocolDetail{Protocol: ps[0]})
			cur, channel = &out[len(out)-1], ""
		case 1006:
			if cur == nil {
				continue
			}
			key, value, _ := strings.Cut(strings.TrimSpace(l.Text), ":")
			value = strings.TrimSpace(value)
			switch {
			case strings.HasPrefix(key, "Channel "):
				channel = strings.TrimSpace(strings.TrimPrefix(key, "Channel "))
			case key == "BGP state":
				cur.BGPState = value
			case key == "Neighbor address":
				cur.Neighbor, _ = netip.ParseAddr(value)
			case key == "Routes" && channel != "":
				if cur.Channels == nil {
					cur.Channels = map[string]RouteCounts{}
				}
				cur.Channels[channel] = parseRoutes(value)
			}
		}
	}
	return out
}

// parseRoutes reads "3 imported, 1 filtered, 2 exported, 3 preferred".
func parseRoutes(s string) RouteCounts {
	var rc RouteCounts
	for part := range strings.SplitSeq(s, ",") {
		f := strings.Fields(part)
		if len(f) != 2 {
			continue
		}
		n, err := strconv.Atoi(f[0])
		if err != nil || n < 0 {
			continue
		}
		switch f[1] {
		case "imported":
			rc.Imported = n
		case "exported":
			rc.Exported = n
		}
	}
	return rc
}

// BFDSession is one row of `show bfd sessions`.
type BFDSession struct {
	Address   netip.Addr
	Interface string
	State     string // Up, Down, Init, AdminDown
}

// BFDSessions runs `show bfd sessions`. A BIRD without a bfd protocol
// answers with an error, which is no sessions.
func (c *Client) BFDSessions(ctx context.Context) ([]BFDSession, error) {
	lines, err := c.Command(ctx, "show bfd sessions")
	if _, ok := err.(*ReplyError); ok {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseBFDSessions(lines), nil
}

// ParseBFDSessions reads the rows of a `show bfd sessions` reply (code
// 1020): every line that starts with an address.
func ParseBFDSessions(lines []Line) []BFDSession {
	var out []BFDSession
	for _, l := range lines {
		if l.Code != 1020 {
			continue
		}
		f := strings.Fields(l.Text)
		if len(f) < 3 {
			continue
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil {
			continue
		}
		out = append(out, BFDSession{Address: a, Interface: f[1], State: f[2]})
	}
	return out
}

// ParseSince reads a protocol's Since column as BIRD prints it by default:
// a time of day (15:04:05.000) within the last day, else a date. A time of
// day is the latest such moment not after now, in now's location; a date
// is its midnight. False when s is neither, or names a moment after now.
func ParseSince(s string, now time.Time) (time.Time, bool) {
	for _, layout := range []string{"15:04:05.000", "15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, now.Location()); err == nil {
			y, m, d := now.Date()
			t = time.Date(y, m, d, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), now.Location())
			if t.After(now) {
				t = t.AddDate(0, 0, -1)
			}
			return t, true
		}
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, now.Location()); err == nil && !t.After(now) {
			return t, true
		}
	}
	return time.Time{}, false
}
