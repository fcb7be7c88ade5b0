package main

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"github.com/fritzlab/flock/api/v1alpha1"
	"github.com/fritzlab/flock/pkg/agent"
	"github.com/fritzlab/flock/pkg/bird"
	"github.com/fritzlab/flock/pkg/health"
	"github.com/fritzlab/flock/pkg/kube"
	"github.com/fritzlab/flock/pkg/metrics"
	"github.com/fritzlab/flock/pkg/routing"
)

// birdFlags say whether and how the agent drives BIRD.
type birdFlags struct {
	// Config is the bird.conf the agent renders (bird -c), Socket BIRD's
	// control socket (bird -s); both empty: BGP is off, the agent leaves
	// BIRD alone.
	Config, Socket string
	// Namespace is the agent's namespace, where the Secrets of the BGP
	// passwords are (Kubernetes mode).
	Namespace string
}

func (f birdFlags) enabled() bool { return f.Config != "" }

func (f birdFlags) check() error {
	if (f.Config == "") != (f.Socket == "") {
		return errors.New("--bird-config and --bird-socket go together: give both to drive BIRD, or neither")
	}
	return nil
}

// secretsNamespace is the namespace of the BGP password Secrets: the flag,
// else the pod's namespace (the DaemonSet sets $POD_NAMESPACE), else where
// deploy/ installs the agent.
func secretsNamespace(flag string) string {
	if flag != "" {
		return flag
	}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return v1alpha1.DefaultNamespace
}

// startBGP starts the controller that renders BIRD's config from the node
// and reloads BIRD; it runs until ctx ends. It returns the controller and
// its Reloader (flockctl doctor asks it whether BIRD is in step).
// With anycast on, the controller waits for the anycast reconciler's first
// set before it renders (see routing.Options.AwaitAnycast), and with
// services on for the Service announcer's (AwaitServices).
func startBGP(ctx context.Context, log *slog.Logger, f birdFlags, b *backend, a *agent.Agent, anycast, services bool, m *metrics.Metrics, loop *health.Loop) (*routing.Controller, *bird.Reloader, error) {
	// The DaemonSet's BIRD waits for the file to appear in this directory.
	if err := bird.PrepareDir(f.Config); err != nil {
		return nil, nil, err
	}
	ifs, err := routing.NewInterfaces()
	if err != nil {
		return nil, nil, err
	}
	reloader := bird.NewReloader(f.Config, bird.NewClient(f.Socket))
	opts := routing.Options{
		Nodes:     b.src,
		Addresses: ifs,
		Gateways:  ifs,
		Reloader:  reloader,
		Log:       log,
		Loop:      loop,
		// Old pools that still hold pods stay announced.
		Draining:      a.Draining,
		AwaitAnycast:  anycast,
		AwaitServices: services,
	}
	if services {
		opts.ServicesReloaded = m.LBAnnounced
	}
	if b.kube != nil {
		opts.Secrets = kube.NewSecrets(b.kube.client, f.Namespace)
		opts.Reporter = bgpReporter{b.kube.src}
	}
	c := routing.New(opts)
	go func() {
		defer ifs.Close()
		c.Run(ctx)
	}()
	log.Info("driving bird", "config", f.Config, "socket", f.Socket)
	return c, reloader, nil
}

// bgpReporter writes the BGPConfigured condition on the NodeConfig.
type bgpReporter struct{ src *kube.Source }

func (r bgpReporter) ReportBGP(c routing.Condition) {
	r.src.SetBGPCondition(c.OK, c.Reason, c.Message, c.Generation)
}
