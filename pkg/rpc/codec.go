package rpc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ErrTooLarge is returned for a message longer than MaxMessageSize.
var ErrTooLarge = errors.New("message exceeds the size limit")

// ErrEmpty is returned when the peer closed without sending anything (a
// liveness probe, or a plugin killed before it wrote).
var ErrEmpty = errors.New("connection closed before a message")

// WriteMessage writes v as one JSON line.
func WriteMessage(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode message: %w", err)
	}
	b = append(b, '\n')
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write message: %w", err)
	}
	return nil
}

// ReadMessage reads one JSON line of at most max bytes into v. A message
// that does not end in a newline before EOF is accepted, so a peer that
// closes right after writing still gets its answer.
func ReadMessage(r io.Reader, max int, v any) error {
	line, err := readLine(r, max)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode message: %w", err)
	}
	if dec.More() {
		return fmt.Errorf("decode message: trailing data after the JSON value")
	}
	return nil
}

func readLine(r io.Reader, max int) ([]byte, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, int64(max)+1), 4096)
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > max {
			return nil, ErrTooLarge
		}
		switch {
		case err == nil:
			return buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(bytes.TrimSpace(buf)) == 0 {
				return nil, ErrEmpty
			}
			return buf, nil
		default:
			return nil, fmt.Errorf("read message: %w", err)
		}
	}
}
