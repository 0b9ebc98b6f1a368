package localdir

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestPutOnceAndReplay(t *testing.T) {
	d, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key := "windows/dt=2026-11-27/hour=18/demo-1-9.parquet"
	if wrote, err := d.Put(context.Background(), key, []byte("first")); err != nil || !wrote {
		t.Fatalf("first put: %v %v", wrote, err)
	}
	if wrote, err := d.Put(context.Background(), key, []byte("second")); err != nil || wrote {
		t.Fatalf("replayed put: wrote=%v err=%v, want an untouched success", wrote, err)
	}
	got, _ := os.ReadFile(filepath.Join(d.Root(), key))
	if string(got) != "first" {
		t.Fatalf("object is %q after the replay", got)
	}
	left, _ := filepath.Glob(filepath.Join(d.Root(), "windows/dt=2026-11-27/hour=18/.tmp-*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	for _, bad := range []string{"", "/abs", "../x", "a/../../x", "a//b", "a/./b"} {
		if _, err := d.Put(context.Background(), bad, nil); !errors.Is(err, ErrBadKey) {
			t.Errorf("Put(%q) = %v, want ErrBadKey", bad, err)
		}
	}
}
