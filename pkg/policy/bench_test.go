package policy_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/fritzlab/flock/pkg/policy"
	"github.com/fritzlab/flock/pkg/policy/policytest"
)

var benchSize = policytest.Size{Pods: 1000, Local: 200, Policies: 1000, Seed: 1}

// BenchmarkTranslateRender: the pure part of a full policy sync for a
// cluster of 1000 pods (200 on this node) and 1000 policies of mixed shapes.
func BenchmarkTranslateRender(b *testing.B) {
	in := policytest.Cluster(benchSize)
	var script []byte
	for b.Loop() {
		var err error
		if script, err = policy.Render(policy.Translate(in)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(script))/1024, "script-KiB")
	b.ReportMetric(float64(bytes.Count(script, []byte(" . "))/2), "set-elements")
	b.ReportMetric(float64(bytes.Count(script, []byte("\tchain "))), "chains")
}

// BenchmarkApply adds loading the script with nft into a fresh network
// namespace (root only): the whole of a full sync.
func BenchmarkApply(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root for a network namespace")
	}
	netns := fmt.Sprintf("flk-pol-%d-bench", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", netns).CombinedOutput(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
	b.Cleanup(func() { _ = exec.Command("ip", "netns", "del", netns).Run() })
	in := policytest.Cluster(benchSize)
	nft := policy.NFT{Netns: "/run/netns/" + netns}
	ctx := context.Background()
	for b.Loop() {
		a := policy.NewApplier(nft) // a fresh Applier never skips
		if _, err := a.Apply(ctx, policy.Translate(in)); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	if _, err := nft.Run(ctx, nil, "list", "table", policy.TableFamily, policy.TableName); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "list-ms")
}
