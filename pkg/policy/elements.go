package policy

import (
	"maps"
	"slices"
	"strconv"
)

// sets are the contents of one allow-list, per family, ready for nftables:
// any* are the peers allowed on every protocol and port, ports* the
// (peer, protocol, port range) triples, all disjoint.
type sets struct {
	any6, any4     []span
	ports6, ports4 []elem
}

// elem is one element of a ports set: peers . protocol . ports.
type elem struct {
	peers       span
	proto       Protocol
	first, last int
}

func (e elem) String() string { return string(e.appendTo(nil)) }

func (e elem) appendTo(b []byte) []byte {
	b = e.peers.appendTo(b)
	b = append(append(append(b, " . "...), e.proto.String()...), " . "...)
	b = strconv.AppendInt(b, int64(e.first), 10)
	if e.first != e.last {
		b = strconv.AppendInt(append(b, '-'), int64(e.last), 10)
	}
	return b
}

// empty says whether the allow-list allows nothing.
func (s *sets) empty() bool {
	return len(s.any6)+len(s.any4)+len(s.ports6)+len(s.ports4) == 0
}

// full says whether the allow-list allows everything.
func (s *sets) full() bool {
	return isFull(s.any6, true) && isFull(s.any4, false)
}

func buildSets(a *Allow) *sets {
	s := &sets{}
	s.any6, s.ports6 = familySets(a, true)
	s.any4, s.ports4 = familySets(a, false)
	return s
}

type portItem struct {
	first, last int
	peers       []span
}

// familySets reduces the rules of one family to the peers allowed on every
// port and to disjoint (peers, protocol, ports) elements. Port ranges are cut
// at every boundary any rule has; each piece gets the union of the peers of
// the rules covering it; neighbouring pieces with the same peers are joined
// again. So no two elements overlap, as nftables requires.
func familySets(a *Allow, is6 bool) ([]span, []elem) {
	var anyPeers []span
	items := map[Protocol][]portItem{}
	for _, r := range a.Rules {
		var peers []span
		for _, p := range r.Peers {
			peers = append(peers, peerSpans(p, is6)...)
		}
		if len(peers) == 0 {
			continue
		}
		if r.Ports == nil {
			anyPeers = append(anyPeers, peers...)
			continue
		}
		peers = mergeSpans(peers)
		for _, pr := range r.Ports {
			items[pr.Protocol] = append(items[pr.Protocol], portItem{int(pr.First), int(pr.Last), peers})
		}
	}
	var elems []elem
	for _, proto := range slices.Sorted(maps.Keys(items)) {
		elems = appendProtoElems(elems, proto, items[proto])
	}
	return mergeSpans(anyPeers), elems
}

func appendProtoElems(elems []elem, proto Protocol, items []portItem) []elem {
	var cuts []int
	for _, it := range items {
		cuts = append(cuts, it.first, it.last+1)
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	// Piece i is ports cuts[i] .. cuts[i+1]-1.
	pieces := make([][]span, len(cuts)-1)
	for _, it := range items {
		i, _ := slices.BinarySearch(cuts, it.first)
		for ; cuts[i] <= it.last; i++ {
			pieces[i] = append(pieces[i], it.peers...)
		}
	}
	for i := range pieces {
		pieces[i] = mergeSpans(pieces[i])
	}
	for i := 0; i < len(pieces); {
		j := i + 1
		for j < len(pieces) && len(pieces[i]) > 0 && slices.Equal(pieces[i], pieces[j]) {
			j++
		}
		for _, sp := range pieces[i] {
			elems = append(elems, elem{sp, proto, cuts[i], cuts[j] - 1})
		}
		i = j
	}
	return elems
}
