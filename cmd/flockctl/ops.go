package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fritzlab/flock/pkg/admin"
)

// opsCommands are what an operator asks when something is wrong: drops,
// doctor, trace.
func opsCommands(o *options) []*cobra.Command {
	trace := &cobra.Command{
		Use:   "trace SRC DST PORT/PROTO",
		Short: "Which NetworkPolicy rule decides a packet from SRC to DST (addresses) on PORT/PROTO (80/tcp)",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := traceQuery(args[0], args[1], args[2])
			if err != nil {
				return err
			}
			return get(cmd, o, path, printTrace)
		},
	}
	return []*cobra.Command{
		command(o, "drops", "Local pods by packets NetworkPolicy dropped, most first", admin.PathDrops, printDrops),
		command(o, "doctor", "Check the node's sysctls, routes, BIRD config and nftables table against the agent's state; non-zero exit on a problem", admin.PathDoctor, printDoctor),
		trace,
	}
}

// traceQuery builds the trace path, naming a bad argument.
func traceQuery(src, dst, portProto string) (string, error) {
	for _, a := range []struct{ name, v string }{{"SRC", src}, {"DST", dst}} {
		if _, err := netip.ParseAddr(a.v); err != nil {
			return "", fmt.Errorf("%s %q: want a pod's IPv6 or IPv4 address", a.name, a.v)
		}
	}
	port, proto, ok := strings.Cut(portProto, "/")
	if !ok {
		proto = "tcp"
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", fmt.Errorf("PORT/PROTO %q: want a port 1-65535, then /tcp, /udp or /sctp", portProto)
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return "", fmt.Errorf("PORT/PROTO %q: protocol %q, want tcp, udp or sctp", portProto, proto)
	}
	q := url.Values{"src": {src}, "dst": {dst}, "port": {port}, "proto": {proto}}
	return admin.PathTrace + "?" + q.Encode(), nil
}

func printDrops(w io.Writer, d *admin.Drops) error {
	if !d.Enabled {
		fmt.Fprintln(w, "NetworkPolicy is off on this node (file mode, or --netpol=false): nothing is dropped.")
		return nil
	}
	if d.Error != "" {
		return errors.New("drop counters unreadable: " + d.Error)
	}
	tw := table(w)
	row(tw, "NAMESPACE", "NAME", "INTERFACE", "INGRESS", "EGRESS")
	for _, p := range d.Items {
		row(tw, p.Namespace, p.Name, p.Iface, strconv.FormatUint(p.Ingress, 10), strconv.FormatUint(p.Egress, 10))
	}
	return tw.Flush()
}

func printDoctor(w io.Writer, d *admin.Doctor) error {
	if len(d.Problems) == 0 {
		fmt.Fprintf(w, "No problems found (checked: %s).\n", strings.Join(d.Checks, ", "))
		return nil
	}
	var names []string
	for _, p := range d.Problems {
		fmt.Fprintf(w, "%-8s  %s\n", p.Check, p.Detail)
		names = append(names, p.Check+": "+p.Detail)
	}
	return fmt.Errorf("%d problem(s): %s", len(d.Problems), strings.Join(names, "; "))
}

func printTrace(w io.Writer, t *admin.Trace) error {
	verdict := "DROPPED"
	if t.Allowed {
		verdict = "ALLOWED"
	}
	fmt.Fprintf(w, "%s -> %s %d/%s: %s\n", t.Src, t.Dst, t.Port, t.Proto, verdict)
	for _, s := range []struct {
		dir  string
		step admin.TraceStep
	}{{"egress ", t.Egress}, {"ingress", t.Ingress}} {
		fmt.Fprintf(w, "  %s  %s\n", s.dir, traceStep(s.step))
	}
	return nil
}

func traceStep(s admin.TraceStep) string {
	switch {
	case s.Pod == "":
		return "not a pod of this node: its own node decides"
	case !s.Isolated:
		return s.Pod + ": no policy isolates it, allowed"
	case s.Allowed:
		return fmt.Sprintf("%s: allowed by rule %d of chain %s (%s)", s.Pod, s.Rule, s.Chain, s.RuleText)
	case s.Chain == "":
		return s.Pod + ": isolated and allowed nothing, dropped (default deny)"
	default:
		return fmt.Sprintf("%s: no rule of chain %s matches, dropped (default deny)", s.Pod, s.Chain)
	}
}
