package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fritzlab/flock/internal/lab"
	"github.com/fritzlab/flock/internal/lab/topology"
	"github.com/fritzlab/flock/pkg/bird"
)

// The anycast addresses every BGP node announces: the router merges each
// into one multipath route.
var bgpAnycast = []netip.Addr{netip.MustParseAddr("2001:db8:ffff::53"), netip.MustParseAddr("192.0.2.53")}

// birdProc is one BIRD in a namespace.
type birdProc struct {
	cmd  *exec.Cmd
	sock string
}

func startBIRD(netns, dir string, conf []byte) (*birdProc, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cf, sock := filepath.Join(dir, "bird.conf"), filepath.Join(dir, "bird.ctl")
	if err := os.WriteFile(cf, conf, 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "bird.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command("ip", "netns", "exec", netns, "bird", "-f", "-c", cf, "-s", sock, "-P", filepath.Join(dir, "bird.pid"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go cmd.Wait()
	return &birdProc{cmd: cmd, sock: sock}, nil
}

func (b *birdProc) kill() {
	_ = b.cmd.Process.Signal(syscall.SIGKILL)
	for range 100 {
		if b.cmd.ProcessState != nil || syscall.Kill(b.cmd.Process.Pid, 0) != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	os.Remove(b.sock)
}

// established counts the router's BGP sessions that are up (0 while its
// BIRD does not answer).
func (b *birdProc) established(ctx context.Context) int {
	ps, err := bird.NewClient(b.sock).Protocols(ctx)
	if err != nil {
		return 0
	}
	n := 0
	for _, p := range ps {
		if p.Established() {
			n++
		}
	}
	return n
}

// routerRoutes counts the BGP-learned routes in the router's kernel.
func routerRoutes(netns string) int {
	n := 0
	for _, fam := range []string{"-6", "-4"} {
		out, _ := exec.Command("ip", "-n", netns, fam, "route", "show", "proto", "bird").Output()
		for _, line := range strings.Split(string(out), "\n") {
			if line != "" && !strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, " ") {
				n++
			}
		}
	}
	return n
}

// bgpScale builds the lab's topology with nodes BIRD-only nodes, each
// rendering its config with pkg/bird as an agent would (both pools and the
// shared anycast addresses), and the lab router with one session per node
// and family; it times all sessions up from a cold start and after a
// restart of the router's BIRD, and counts the router's routes.
func bgpScale(ctx context.Context, dir string, nodes int) error {
	cfg := topology.Config{Prefix: fmt.Sprintf("flk-sb%d", os.Getpid()), Nodes: nodes}
	topo, err := topology.Create(cfg)
	if err != nil {
		return err
	}
	defer topo.Destroy()
	var birds []*birdProc
	defer func() {
		for _, b := range birds {
			b.kill()
		}
	}()
	for _, n := range topo.Nodes {
		conf, err := bird.Render(&bird.Config{
			ASN: uint32(lab.NodeASN(n.Index)), Addresses: []netip.Prefix{n.Addr6, n.Addr4},
			Peers: []bird.Peer{{Address: n.RouterAddr6.Addr(), ASN: lab.RouterASN}, {Address: n.RouterAddr4.Addr(), ASN: lab.RouterASN}},
			Pool6: n.Pool6, Pool4: n.Pool4, Anycast: bgpAnycast,
		})
		if err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
		b, err := startBIRD(n.Netns, filepath.Join(dir, "bgp", n.Name), conf)
		if err != nil {
			return err
		}
		birds = append(birds, b)
	}
	rconf, err := lab.RouterConf(topo.Nodes)
	if err != nil {
		return err
	}
	router := cfg.RouterNetns()
	rdir := filepath.Join(dir, "bgp", "router")
	sessions, wantRoutes := 2*nodes, 2*nodes+len(bgpAnycast)
	up := func(what string) (time.Duration, time.Duration, error) {
		start := time.Now()
		r, err := startBIRD(router, rdir, rconf)
		if err != nil {
			return 0, 0, err
		}
		birds = append(birds, r)
		var all time.Duration
		for {
			if all == 0 && r.established(ctx) == sessions {
				all = time.Since(start)
			}
			if all != 0 && routerRoutes(router) == wantRoutes {
				return all, time.Since(start), nil
			}
			if time.Since(start) > 5*time.Minute {
				return 0, 0, fmt.Errorf("%s: %d/%d sessions, %d/%d routes after 5 minutes",
					what, r.established(ctx), sessions, routerRoutes(router), wantRoutes)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	cold, coldRoutes, err := up("cold start")
	if err != nil {
		return err
	}
	fmt.Printf("BGP: %d nodes (one BIRD each, %d sessions at the router: one per node and family), cold start: all Established in %s, all %d routes in the router's kernel in %s\n",
		nodes, sessions, cold.Round(time.Millisecond), wantRoutes, coldRoutes.Round(time.Millisecond))
	birds[len(birds)-1].kill()
	birds = birds[:len(birds)-1]
	warm, warmRoutes, err := up("router restart")
	if err != nil {
		return err
	}
	fmt.Printf("BGP: router BIRD killed and restarted: all %d sessions Established in %s, routes back in %s; router routes %d = %d pools x 2 families + %d anycast (one multipath route each)\n",
		sessions, warm.Round(time.Millisecond), warmRoutes.Round(time.Millisecond), routerRoutes(router), nodes, len(bgpAnycast))
	fmt.Printf("RESULT bgp nodes=%d established_after_restart_ms=%d routes=%d\n", nodes, warm.Milliseconds(), routerRoutes(router))
	return nil
}
