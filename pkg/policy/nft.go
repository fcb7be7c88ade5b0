package policy

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// NFT runs the nft binary (Debian package nftables, 1.0.6 or later).
type NFT struct {
	// Netns is the path of a network namespace (/run/netns/NAME) to run nft
	// in, through nsenter; empty runs it in the caller's own, which is how
	// the agent uses it.
	Netns string
}

// Run runs nft with args and stdin; the error carries what nft wrote to
// stderr.
func (n NFT) Run(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	name, argv := "nft", args
	if n.Netns != "" {
		name, argv = "nsenter", append([]string{"--net=" + n.Netns, "nft"}, args...)
	}
	cmd := exec.CommandContext(ctx, name, argv...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("nft %s: %w: %s", strings.Join(args, " "), err, firstLines(stderr.String(), 5))
	}
	return stdout.Bytes(), nil
}

// firstLines keeps an error short: nft repeats the whole offending line of a
// large script under its message.
func firstLines(s string, n int) string {
	lines := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	if len(lines) > n {
		lines = append(lines[:n], "…")
	}
	return strings.Join(lines, "\n")
}
