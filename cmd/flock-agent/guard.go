package main

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"

	"github.com/fritzlab/flock/pkg/agent"
	"github.com/fritzlab/flock/pkg/policy"
)

// startGuard turns anti-spoofing on (the default, in both modes: unlike
// NetworkPolicy it needs nothing from Kubernetes, and an operator expects
// it whether or not policies are enforced) and loads the sources of every
// allocation on disk before the CNI socket listens, so pods that survived
// a restart keep sending from their own addresses only. With it off, the
// table an earlier run loaded is deleted. It returns the guard (the admin
// API reads its counter), nil when off.
func startGuard(ctx context.Context, log *slog.Logger, on bool, a *agent.Agent) (*policy.Guard, error) {
	table := policy.GuardFamily + " " + policy.GuardTable
	_, lookErr := exec.LookPath("nft")
	if !on {
		if lookErr != nil {
			log.Warn("anti-spoofing off; without the nft binary a table an earlier run loaded stays", "table", table)
			return nil, nil
		}
		existed, err := policy.NewGuard(policy.NFT{}).Delete(ctx)
		if err != nil {
			// Not fatal: pods are networked without it.
			log.Error("anti-spoofing off, but the table an earlier run loaded may stay", "table", table, "err", err)
		} else if existed {
			log.Info("anti-spoofing off: deleted the table an earlier run loaded", "table", table)
		}
		return nil, nil
	}
	if lookErr != nil {
		return nil, fmt.Errorf("anti-spoofing (--anti-spoofing, on by default) needs the nft binary (Debian package nftables): %w", lookErr)
	}
	g := policy.NewGuard(policy.NFT{})
	a.SetGuard(guardAdapter{g})
	if err := a.SyncGuard(ctx); err != nil {
		return nil, fmt.Errorf("anti-spoofing: %w", err)
	}
	log.Info("anti-spoofing on", "table", table)
	return g, nil
}

// guardAdapter is policy.Guard as the agent's SourceGuard.
type guardAdapter struct{ g *policy.Guard }

func (ga guardAdapter) Allow(ctx context.Context, pods []agent.PodSources) error {
	src := make([]policy.Source, len(pods))
	for i, p := range pods {
		src[i] = policy.Source{Iface: p.Iface, Addrs: p.Addrs}
	}
	_, err := ga.g.Apply(ctx, src)
	return err
}

func (ga guardAdapter) Resync(ctx context.Context) error { return ga.g.Resync(ctx) }
