package prefetch

import (
	"bytes"
	"testing"
	"unsafe"
)

// TestPrefetchChangesNothing runs the instructions on every architecture
// the tests run on (make test runs this package as linux/arm64 too, under
// qemu-user): a prefetch reads nothing into Go's view and writes nothing,
// whatever the count, and a line past the buffer's end does not fault.
func TestPrefetchChangesNothing(t *testing.T) {
	buf := make([]byte, 4096)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	want := bytes.Clone(buf)
	p := unsafe.Pointer(&buf[0])
	Line(p)
	Line(unsafe.Add(p, 4095))
	for _, n := range []int{-1, 0, 1, 2, 64, 65} { // 65 lines: one past the end
		Lines(p, n)
	}
	if !bytes.Equal(buf, want) {
		t.Fatal("prefetching changed the memory")
	}
}
