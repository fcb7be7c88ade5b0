// Command chaos is flock's fault-injection suite in a lab of its own: the
// seven scenarios of internal/lab/chaos under continuous traffic, each
// followed by a leak audit. One line per scenario, then
//
//	chaos_scenarios=<n> failed=<n> leaked=<n> lost_pings=<n> duplicate_addresses=<n>
//
// Run it as root: `make chaos` (CHAOS=ci: the CI sample, fewer repetitions
// of the same scenarios). It exits 1 when a scenario failed.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/fritzlab/flock/hack/internal/benchlab"
	"github.com/fritzlab/flock/internal/lab"
	"github.com/fritzlab/flock/internal/lab/chaos"
)

// The lab's default runtime: the real node stack, as TestChaos runs it.
func main() { benchlab.MainWith("chaos", "ch", lab.Options{Nodes: 2}, run) }

func run(ctx context.Context, l *lab.Lab, _ string) error {
	opt := chaos.Full
	if os.Getenv("CHAOS") == "ci" {
		opt = chaos.CI
	}
	opt.Out = os.Stdout
	sum, err := chaos.Run(ctx, l, opt)
	if err != nil {
		return err
	}
	if sum.Failed > 0 {
		return fmt.Errorf("%d of %d scenarios failed", sum.Failed, len(sum.Results))
	}
	return nil
}
