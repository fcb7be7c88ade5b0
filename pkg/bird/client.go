package bird

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// Client sends commands to BIRD's control socket, as birdc does. Each
// command uses its own connection, so a BIRD that restarted between two
// commands is no concern of the caller's.
type Client struct {
	// Socket is the path of the control socket (bird -s).
	Socket string
	// Timeout bounds one command when ctx has no earlier deadline.
	Timeout time.Duration
}

// NewClient returns a Client for the control socket at path.
func NewClient(socket string) *Client {
	return &Client{Socket: socket, Timeout: 10 * time.Second}
}

// Line is one line of a reply. BIRD numbers every line with a four-digit
// code: 0xxx ends a successful command, 1xxx is data, 2xxx a table header,
// 8xxx a runtime error and 9xxx a parse error. A continuation line has the
// code of the line it continues.
type Line struct {
	Code int
	Text string
}

// ReplyError is a reply that ended with an error code (8xxx, 9xxx) or with
// a code the caller did not expect.
type ReplyError struct {
	Command string
	Code    int
	Text    string
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("bird %s: %04d %s", e.Command, e.Code, e.Text)
}

// Command sends one command and returns the lines of its reply, the final
// one included. A reply that ends with an error code returns its lines and
// a *ReplyError; any other error means the command did not get a reply
// (BIRD not running, socket missing, connection cut, ctx done).
func (c *Client) Command(ctx context.Context, cmd string) ([]Line, error) {
	if strings.ContainsAny(cmd, "\r\n") {
		return nil, fmt.Errorf("bird command %q: contains a line break", cmd)
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.Socket)
	if err != nil {
		return nil, fmt.Errorf("bird %q: %w", cmd, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// Unblock reads and writes when ctx is cancelled before its deadline.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	r := bufio.NewReader(conn)
	greeting, err := readReply(r)
	if err != nil {
		return nil, fmt.Errorf("bird %q: greeting: %w", cmd, ctxErr(ctx, err))
	}
	if g := greeting[len(greeting)-1]; g.Code != 1 {
		return nil, fmt.Errorf("bird %q: unexpected greeting %04d %s", cmd, g.Code, g.Text)
	}
	if _, err := conn.Write([]byte(cmd + "\n")); err != nil {
		return nil, fmt.Errorf("bird %q: %w", cmd, ctxErr(ctx, err))
	}
	lines, err := readReply(r)
	if err != nil {
		return nil, fmt.Errorf("bird %q: %w", cmd, ctxErr(ctx, err))
	}
	if last := lines[len(lines)-1]; last.Code >= 8000 {
		return lines, &ReplyError{Command: cmd, Code: last.Code, Text: last.Text}
	}
	return lines, nil
}

// ctxErr reports the i/o timeout that the context's deadline or
// cancellation caused as the context's error.
func ctxErr(ctx context.Context, err error) error {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	// The socket's deadline is the context's; its timer may not have fired.
	return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
}

// readReply reads lines up to and including the final one, "DDDD text".
func readReply(r *bufio.Reader) ([]Line, error) {
	var lines []Line
	code := 0
	for {
		s, err := r.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("reply cut short after %d lines: %w", len(lines), err)
		}
		s = strings.TrimSuffix(s, "\n")
		switch {
		case len(s) >= 5 && isDigits(s[:4]) && (s[4] == '-' || s[4] == ' '):
			code = atoi4(s[:4])
			lines = append(lines, Line{Code: code, Text: s[5:]})
			if s[4] == ' ' {
				return lines, nil
			}
		case len(s) == 4 && isDigits(s):
			// A final line with no text, as some BIRD versions send it.
			return append(lines, Line{Code: atoi4(s)}), nil
		case strings.HasPrefix(s, " ") && len(lines) > 0:
			lines = append(lines, Line{Code: code, Text: s[1:]})
		default:
			return nil, fmt.Errorf("malformed reply line %q", s)
		}
	}
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func atoi4(s string) int {
	return int(s[0]-'0')*1000 + int(s[1]-'0')*100 + int(s[2]-'0')*10 + int(s[3]-'0')
}
