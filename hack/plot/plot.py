#!/usr/bin/python3
"""Plot docs/performance.png from the benchmarks' output.

Usage: hack/plot/plot.py OUT.png BENCH_OUTPUT...

Reads the "RESULT ..." lines that hack/scalebench prints (make bench-agent,
make bench-scale):
  RESULT add_latency pods=<n> p50_ms=<x> p99_ms=<x> rss_mib=<x>
  RESULT agent_rss cluster_pods=<n> rss_mib=<x>
and draws CNI ADD latency against pods on the node, and the agent's RSS
against pods in the cluster. Needs python3-matplotlib (Debian).
"""
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def parse(lines):
    """RESULT lines -> {kind: [ {key: float} ]}; other lines are skipped.

    >>> parse(["x", "RESULT agent_rss cluster_pods=250 rss_mib=59.1"])
    {'agent_rss': [{'cluster_pods': 250.0, 'rss_mib': 59.1}]}
    """
    out = {}
    for line in lines:
        f = line.split()
        if len(f) < 3 or f[0] != "RESULT":
            continue
        row = {}
        for kv in f[2:]:
            k, _, v = kv.partition("=")
            row[k] = float(v)
        out.setdefault(f[1], []).append(row)
    return out


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    res = {}
    for path in argv[2:]:
        with open(path) as fh:
            for kind, rows in parse(fh).items():
                res.setdefault(kind, []).extend(rows)
    add = sorted(res.get("add_latency", []), key=lambda r: r["pods"])
    rss = sorted(res.get("agent_rss", []), key=lambda r: r["cluster_pods"])
    if not add or not rss:
        sys.exit("no RESULT add_latency or agent_rss lines in " + " ".join(argv[2:]))
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.plot([r["pods"] for r in add], [r["p50_ms"] for r in add], "o-", label="p50")
    a.plot([r["pods"] for r in add], [r["p99_ms"] for r in add], "s--", label="p99")
    a.set_xlabel("pods already on the node")
    a.set_ylabel("CNI ADD latency (ms)")
    a.set_title("ADD latency vs pods on the node\n(NetworkPolicy on, 200 policies)")
    a.grid(True, alpha=0.3)
    a.legend()
    b.plot([r["cluster_pods"] for r in rss], [r["rss_mib"] for r in rss], "o-")
    b.axhline(100, color="grey", linestyle=":", label="target 100 MiB")
    b.set_xlabel("pods in the cluster")
    b.set_ylabel("flock-agent RSS (MiB)")
    b.set_title("Agent memory vs cluster pods")
    b.set_ylim(bottom=0)
    b.grid(True, alpha=0.3)
    b.legend()
    fig.tight_layout()
    fig.savefig(argv[1], dpi=100)


if __name__ == "__main__":
    main(sys.argv)
