// Command flock-agent is flock's node agent: it owns all pod networking state
// of its node and answers the flock CNI plugin over a unix socket.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fritzlab/flock/pkg/agent"
	"github.com/fritzlab/flock/pkg/datapath"
	"github.com/fritzlab/flock/pkg/rpc"
	"github.com/fritzlab/flock/pkg/source"
	"github.com/fritzlab/flock/pkg/store"
)

func main() {
	var (
		socket     = flag.String("socket", rpc.DefaultSocket, "unix socket the CNI plugin calls")
		stateDir   = flag.String("state-dir", "/var/lib/flock/allocations", "directory of the pod allocations")
		nodeConfig = flag.String("node-config", "", "NodeConfig manifest (file-backed mode)")
		podsDir    = flag.String("pods-dir", "", "pod metadata as <dir>/<namespace>/<name>.yaml (file-backed mode)")
		syncEvery  = flag.Duration("resync", 30*time.Second, "how often the node's pool routes are re-checked")
		fsync      = flag.Bool("fsync", false, "fsync allocations so they also survive a power loss (a crash of the agent never loses them)")
		logLevel   = flag.String("log-level", "info", "debug, info, warn or error")
	)
	flag.Parse()
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "flock-agent: --log-level %q: %v\n", *logLevel, err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *nodeConfig == "" {
		fmt.Fprintln(os.Stderr, "flock-agent: --node-config is required (the Kubernetes-backed source is not built yet)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log, *socket, *stateDir, *nodeConfig, *podsDir, *syncEvery, *fsync); err != nil {
		log.Error("flock-agent failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, socket, stateDir, nodeConfig, podsDir string, every time.Duration, fsync bool) error {
	dp, err := datapath.New()
	if err != nil {
		return err
	}
	if err := dp.Init(); err != nil {
		return err
	}
	st, err := store.Open(stateDir, store.Options{Sync: fsync}, log)
	if err != nil {
		return err
	}
	src := &source.File{NodeConfigPath: nodeConfig, PodsDir: podsDir}
	a := agent.New(src, source.LogRecorder{Log: log}, dp, st, log)
	if _, _, err := a.Sync(ctx); err != nil {
		// Not fatal: STATUS reports it and ADD fails until a config appears.
		log.Warn("node not configured yet", "err", err)
	}
	ln, err := rpc.Listen(socket)
	if err != nil {
		return err
	}
	go a.Run(ctx, every)
	log.Info("flock-agent serving", "socket", socket, "state", stateDir, "allocations", len(st.List()))
	return rpc.Serve(ctx, ln, a, log)
}
