// Package deadletter stores records tapline could not use as JSON lines,
// one file per shard, so they can be inspected and replayed.
package deadletter

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/tapline/tapline/schemas"
)

// File appends dead letters to a local JSONL file. It is safe for
// concurrent use; Close flushes and closes the file.
type File struct {
	mu     sync.Mutex
	path   string
	f      *os.File
	w      *bufio.Writer
	closed bool
	count  uint64
}

// Open opens (creating or appending to) path, creating its directory.
func Open(path string) (*File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	return &File{path: path, f: f, w: bufio.NewWriter(f)}, nil
}

// Write appends one dead letter.
func (f *File) Write(d *schemas.DeadLetter) error {
	line, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("dead letters: encode: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return fmt.Errorf("dead letters: %s is closed", f.path)
	}
	f.w.Write(line)
	if err := f.w.WriteByte('\n'); err != nil {
		return fmt.Errorf("dead letters: write %s: %w", f.path, err)
	}
	f.count++
	return nil
}

// Count returns how many dead letters were written.
func (f *File) Count() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count
}

// Path is the file written to.
func (f *File) Path() string { return f.path }

// Close flushes and closes the file. Calling it twice is safe.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	if err := f.w.Flush(); err != nil {
		f.f.Close()
		return fmt.Errorf("dead letters: flush %s: %w", f.path, err)
	}
	return f.f.Close()
}
