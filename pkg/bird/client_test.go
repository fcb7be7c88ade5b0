package bird

import (
	"bufio"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// serveControl listens on a unix socket like BIRD's and answers each
// connection's one command with replies[command] (raw text, lines ending in
// \n), after the greeting.
func serveControl(t *testing.T, greeting string, replies map[string]string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "bird.ctl")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte(greeting))
				cmd, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					return
				}
				reply, ok := replies[strings.TrimSuffix(cmd, "\n")]
				if !ok {
					reply = "9001 syntax error\n"
				}
				c.Write([]byte(reply))
				time.Sleep(10 * time.Millisecond)
			}()
		}
	}()
	return sock
}

const greeting = "0001 BIRD 2.0.12 ready.\n"

func TestClientCommand(t *testing.T) {
	sock := serveControl(t, greeting, map[string]string{
		"show protocols": "2002-Name       Proto      Table      State  Since         Info\n" +
			"1002-device1    Device     ---        up     22:00:00.000  \n" +
			" kernel6    Kernel     master6    up     22:00:00.000  \n" +
			"0000 \n",
		"configure":       "0002-Reading configuration from /etc/bird.conf\n0003 Reconfigured\n",
		"configure check": "0002-Reading configuration from /etc/bird.conf\n8002 /etc/bird.conf:3:1 syntax error, unexpected CF_SYM_UNDEFINED\n",
		"show status":     "1000-BIRD 2.0.12\n1011-Router ID is 198.19.1.2\n0013 Daemon is up and running\n",
		"bare final":      "0003\n",
		"garbage":         "hello\n",
	})
	c := NewClient(sock)
	ctx := context.Background()

	lines, err := c.Command(ctx, "show protocols")
	if err != nil {
		t.Fatal(err)
	}
	want := []Line{
		{2002, "Name       Proto      Table      State  Since         Info"},
		{1002, "device1    Device     ---        up     22:00:00.000  "},
		{1002, "kernel6    Kernel     master6    up     22:00:00.000  "},
		{0, ""},
	}
	if d := cmp.Diff(want, lines); d != "" {
		t.Errorf("show protocols (-want +got):\n%s", d)
	}

	lines, err = c.Command(ctx, "configure")
	if err != nil || lines[len(lines)-1] != (Line{3, "Reconfigured"}) {
		t.Errorf("configure = %v, %v", lines, err)
	}
	if lines, err = c.Command(ctx, "bare final"); err != nil || lines[0] != (Line{3, ""}) {
		t.Errorf("bare final = %v, %v", lines, err)
	}

	var re *ReplyError
	lines, err = c.Command(ctx, "configure check")
	if !errors.As(err, &re) || re.Code != 8002 || !strings.Contains(re.Text, "bird.conf:3:1 syntax error") || len(lines) != 2 {
		t.Errorf("configure check = %v, %v; want a ReplyError 8002 with the lines", lines, err)
	}
	if _, err = c.Command(ctx, "no such command"); !errors.As(err, &re) || re.Code != 9001 {
		t.Errorf("unknown command: %v, want ReplyError 9001", err)
	}
	if _, err = c.Command(ctx, "garbage"); err == nil || !strings.Contains(err.Error(), `malformed reply line "hello"`) {
		t.Errorf("garbage reply: %v", err)
	}
	if _, err = c.Command(ctx, "show status\nconfigure"); err == nil || !strings.Contains(err.Error(), "line break") {
		t.Errorf("command with a line break: %v, want refused", err)
	}
}

func TestClientErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := NewClient(filepath.Join(t.TempDir(), "none")).Command(ctx, "show status"); err == nil {
		t.Error("no socket: want an error")
	} else if errors.As(err, new(*ReplyError)) {
		t.Errorf("no socket: %v is a ReplyError, want a connection error", err)
	}

	sock := serveControl(t, "0002 Something else\n", nil)
	if _, err := NewClient(sock).Command(ctx, "show status"); err == nil || !strings.Contains(err.Error(), "unexpected greeting") {
		t.Errorf("wrong greeting: %v", err)
	}

	// A BIRD that never answers: the context's deadline ends the wait.
	sock = filepath.Join(t.TempDir(), "mute.ctl")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := NewClient(sock).Command(ctx, "show status"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("mute BIRD: %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("mute BIRD: waited %v", d)
	}
}

func TestParseProtocols(t *testing.T) {
	// As BIRD 2.0.12 prints it.
	lines := []Line{
		{2002, "Name       Proto      Table      State  Since         Info"},
		{1002, "device1    Device     ---        up     22:31:54.620  "},
		{1002, "kernel6    Kernel     master6    up     22:31:54.620  "},
		{1002, "bgp6_2001_db8_1ab_1__1 BGP        ---        start  22:31:54.666  Active        Socket: Connection refused"},
		{1002, "bgp4_198_19_1_1 BGP        ---        up     22:31:58.001  Established   "},
		{0, ""},
	}
	want := []Protocol{
		{"device1", "Device", "---", "up", "22:31:54.620", ""},
		{"kernel6", "Kernel", "master6", "up", "22:31:54.620", ""},
		{"bgp6_2001_db8_1ab_1__1", "BGP", "---", "start", "22:31:54.666", "Active Socket: Connection refused"},
		{"bgp4_198_19_1_1", "BGP", "---", "up", "22:31:58.001", "Established"},
	}
	got := ParseProtocols(lines)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ParseProtocols (-want +got):\n%s", d)
	}
	if got[2].Established() || !got[3].Established() {
		t.Errorf("Established: %v %v, want false true", got[2].Established(), got[3].Established())
	}
}
