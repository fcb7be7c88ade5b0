package policy

import "strings"

// Stats counts what a script Render wrote declares: rules in chains, sets
// and maps, and their elements.
type Stats struct {
	Rules, Sets, Elements int
}

// ScriptStats counts a rendered script's rules, sets (maps included) and
// elements by its layout: declarations one tab deep, their bodies two, set
// elements three (one a line).
func ScriptStats(script []byte) Stats {
	var st Stats
	block := "" // "chain", "set" or "" between blocks
	inElems := false
	for line := range strings.Lines(string(script)) {
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "\tchain ") && strings.HasSuffix(line, "{"):
			block = "chain"
		case (strings.HasPrefix(line, "\tset ") || strings.HasPrefix(line, "\tmap ")) && strings.HasSuffix(line, "{"):
			block = "set"
			st.Sets++
		case line == "\t}":
			block, inElems = "", false
		case block == "chain" && strings.HasPrefix(line, "\t\t") && !strings.HasPrefix(line, "\t\t\t"):
			r := strings.TrimSpace(line)
			if !strings.HasPrefix(r, "type ") && !strings.HasPrefix(r, "comment ") {
				st.Rules++
			}
		case block == "set" && strings.TrimSpace(line) == "elements = {":
			inElems = true
		case block == "set" && inElems && line == "\t\t}":
			inElems = false
		case block == "set" && inElems && strings.HasPrefix(line, "\t\t\t"):
			st.Elements++
		}
	}
	return st
}

// Stats counts what the table last loaded declares (zero before a load).
func (a *Applier) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats
}
