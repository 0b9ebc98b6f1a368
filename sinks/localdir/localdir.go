// Package localdir stores objects as files under a directory, with the
// semantics tapline needs from S3: a key names one immutable object, a
// write is all-or-nothing (temporary file, fsync, rename), and writing a
// key that already exists succeeds without touching it, like a PUT with
// If-None-Match: * whose "already exists" is treated as success. That is
// what makes a replay after a crash harmless: it writes the same keys.
package localdir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Dir is an object store rooted at a directory. Safe for concurrent use
// by writers of different keys.
type Dir struct {
	root string
}

// New returns a store rooted at root, creating it.
func New(root string) (*Dir, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("localdir: %w", err)
	}
	return &Dir{root: root}, nil
}

// Root is the directory objects are stored under.
func (d *Dir) Root() string { return d.root }

// ErrBadKey is returned for keys that are not clean relative paths.
var ErrBadKey = errors.New("localdir: key must be a clean relative path")

// Put stores data under key unless an object with that key exists. It
// reports whether it wrote (false: the key existed and was left alone).
// Local writes are not cancelled: ctx is for the Store interface.
func (d *Dir) Put(_ context.Context, key string, data []byte) (bool, error) {
	if key == "" || filepath.IsAbs(key) || filepath.Clean(key) != key || strings.HasPrefix(key, "..") {
		return false, fmt.Errorf("%w: %q", ErrBadKey, key)
	}
	path := filepath.Join(d.root, filepath.FromSlash(key))
	if _, err := os.Stat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("localdir: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, fmt.Errorf("localdir: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return false, fmt.Errorf("localdir: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, fmt.Errorf("localdir: write %s: %w", key, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, fmt.Errorf("localdir: sync %s: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("localdir: close %s: %w", key, err)
	}
	// Link, not rename: link fails if the key appeared meanwhile, so a
	// concurrent writer of the same key never overwrites the first.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("localdir: put %s: %w", key, err)
	}
	return true, nil
}
