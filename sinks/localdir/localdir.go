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
	"slices"
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
	path, err := d.path(key)
	if err != nil {
		return false, err
	}
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

// Get reads the object under key.
func (d *Dir) Get(_ context.Context, key string) ([]byte, error) {
	path, err := d.path(key)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("localdir: %w", err)
	}
	return b, nil
}

// List returns the keys under prefix (a key prefix, not only a
// directory), in lexicographic order as S3 lists them. Files being
// written (.tmp-*) are not objects yet.
func (d *Dir) List(_ context.Context, prefix string) ([]string, error) {
	// Walk from the deepest directory the prefix names.
	start := d.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = filepath.Join(d.root, filepath.FromSlash(prefix[:i]))
	}
	var keys []string
	err := filepath.WalkDir(start, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() || strings.HasPrefix(e.Name(), ".tmp-") {
			return nil
		}
		rel, err := filepath.Rel(d.root, path)
		if err != nil {
			return err
		}
		if key := filepath.ToSlash(rel); strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("localdir: list %s: %w", prefix, err)
	}
	slices.Sort(keys)
	return keys, nil
}

// Delete removes the object under key; a missing key is not an error,
// as in S3.
func (d *Dir) Delete(_ context.Context, key string) error {
	path, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("localdir: %w", err)
	}
	return nil
}

func (d *Dir) path(key string) (string, error) {
	if key == "" || filepath.IsAbs(key) || filepath.Clean(key) != key || strings.HasPrefix(key, "..") {
		return "", fmt.Errorf("%w: %q", ErrBadKey, key)
	}
	return filepath.Join(d.root, filepath.FromSlash(key)), nil
}
