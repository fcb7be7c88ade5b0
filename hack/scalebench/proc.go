package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// procStat is what the benchmark reads of a process: resident memory and
// CPU time used so far.
type procStat struct {
	rssKiB int64
	// anonKiB is the anonymous part of the RSS (RssAnon: heap, stacks,
	// runtime); the rest is mostly the binary's own pages, which the
	// kernel maps in and out with the page cache, so it varies from run to
	// run on a busy machine.
	anonKiB int64
	cpu     time.Duration
}

// clockTick is USER_HZ, 100 on every Linux the project runs on.
const clockTick = 10 * time.Millisecond

// readProc reads /proc/PID/status and /proc/PID/stat.
func readProc(pid int) (procStat, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procStat{}, err
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	return parseProc(string(status), string(stat))
}

// parseProc takes VmRSS from a status file and utime+stime from a stat
// line (fields 14 and 15; the command in field 2 may hold spaces and
// parentheses, so fields are counted after its last ')').
func parseProc(status, stat string) (procStat, error) {
	var out procStat
	found := false
	for _, line := range strings.Split(status, "\n") {
		for _, field := range []struct {
			key string
			dst *int64
		}{{"VmRSS", &out.rssKiB}, {"RssAnon", &out.anonKiB}} {
			v, ok := strings.CutPrefix(line, field.key+":")
			if !ok {
				continue
			}
			f := strings.Fields(v)
			if len(f) != 2 || f[1] != "kB" {
				return out, fmt.Errorf("%s line %q is not '<n> kB'", field.key, line)
			}
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return out, fmt.Errorf("%s %q: %w", field.key, f[0], err)
			}
			*field.dst = n
			found = found || field.key == "VmRSS"
		}
	}
	if !found {
		return out, fmt.Errorf("no VmRSS line in the status file")
	}
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return out, fmt.Errorf("stat line %.40q has no ')'", stat)
	}
	f := strings.Fields(stat[i+1:])
	// After the command: state is field 3, utime 14, stime 15.
	if len(f) < 13 {
		return out, fmt.Errorf("stat line has %d fields after the command, want at least 13", len(f))
	}
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return out, fmt.Errorf("stat cpu field %q: %w", s, err)
		}
		out.cpu += time.Duration(n) * clockTick
	}
	return out, nil
}

func (p procStat) rssMiB() float64  { return float64(p.rssKiB) / 1024 }
func (p procStat) anonMiB() float64 { return float64(p.anonKiB) / 1024 }

// logCount counts lines of an agent log holding msg (slog text format).
func logCount(log, msg string) int {
	return strings.Count(log, `msg="`+msg+`"`)
}

// syncTiming is one "networkpolicy sync" line of the agent's debug log.
type syncTiming struct{ translate, apply time.Duration }

// parseSyncs reads the timings of every "networkpolicy sync" line.
func parseSyncs(log string) ([]syncTiming, error) {
	var out []syncTiming
	for n, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, `msg="networkpolicy sync"`) {
			continue
		}
		var t syncTiming
		for _, kv := range []struct {
			key string
			dst *time.Duration
		}{{"translate_ms", &t.translate}, {"apply_ms", &t.apply}} {
			_, rest, ok := strings.Cut(line, " "+kv.key+"=")
			if !ok {
				return nil, fmt.Errorf("log line %d: no %s", n+1, kv.key)
			}
			v, _, _ := strings.Cut(rest, " ")
			ms, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("log line %d: %s=%q is not an integer", n+1, kv.key, v)
			}
			*kv.dst = time.Duration(ms) * time.Millisecond
		}
		out = append(out, t)
	}
	return out, nil
}
