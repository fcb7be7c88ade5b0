package main

import (
	"bytes"
	"context"
	"log/slog"
	"os/exec"
	"strings"
	"testing"

	"github.com/fritzlab/flock/internal/testns"
	"github.com/fritzlab/flock/pkg/policy"
)

// TestRemoveNetpol starts as an agent with --netpol=false does, in a node
// namespace where an earlier run left flock's table with a dropping chain:
// the table goes and the log says so; the next start finds none.
func TestRemoveNetpol(t *testing.T) {
	nft := policy.NFT{Netns: testns.Path(testns.New(t, "npoff"))}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatal("needs nft: apt-get install -y nftables")
	}
	ctx := context.Background()
	earlier := "table inet flock {\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy drop;\n\t}\n}\n"
	if _, err := nft.Run(ctx, []byte(earlier), "-f", "-"); err != nil {
		t.Fatal(err)
	}

	for _, want := range []string{"deleted the table an earlier run loaded", "no table to delete"} {
		var logs bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logs, nil))
		if err := removeNetpol(ctx, log, policy.NewApplier(nft)); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), want) || !strings.Contains(logs.String(), `table="inet flock"`) {
			t.Errorf("log %q, want %q", logs.String(), want)
		}
		out, err := nft.Run(ctx, nil, "list", "tables")
		if err != nil || len(out) != 0 {
			t.Errorf("tables after removeNetpol: %q, %v; want none", out, err)
		}
	}
}
