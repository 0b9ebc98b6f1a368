package journal

import (
	"bytes"
	"fmt"

	"github.com/klauspost/compress/zstd"

	"github.com/tapline/tapline/windows/rules"
	"github.com/tapline/tapline/windows/wire"
)

// Stored shard state is compressed, zstd at its fastest level: it is the
// open panes of every live series, written every batch, and compresses
// well (BenchmarkSnapshotCompress; figures in benchmarks/RESULTS.md). A
// state written before compression (it never starts with zstd's magic
// number) still loads.
var (
	stateEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	stateDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(8<<30))
	zstdMagic       = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// CompressState is the form shard state is stored in. Safe for
// concurrent use (shards compress on their own goroutines).
func CompressState(state []byte) []byte {
	return stateEncoder.EncodeAll(state, make([]byte, 0, len(state)/4))
}

// compressState is CompressState into a buffer of capacity size, the
// caller's guess of the result's size.
func compressState(state []byte, size int) []byte {
	return stateEncoder.EncodeAll(state, make([]byte, 0, max(size, len(state)/4)))
}

// DecompressState reverses CompressState, and passes through state stored
// uncompressed.
func DecompressState(stored []byte) ([]byte, error) {
	if !bytes.HasPrefix(stored, zstdMagic) {
		return stored, nil
	}
	b, err := stateDecoder.DecodeAll(stored, nil)
	if err != nil {
		return nil, fmt.Errorf("journal: stored state: %w", err)
	}
	return b, nil
}

// stateMagic starts a state with the notifications of its batch; a state
// without it (it starts with the writer's position, a sequence number)
// has none.
const stateMagic = "tapline.journal/2"

// encode is the stored state of the shard: the notifications of the
// batch it follows (republished after a crash unless confirmed), the
// batch writer's position, then the processor's snapshot, compressed.
func (j *Journal) encode() []byte {
	after, next := j.w.State()
	w := wire.Writer{B: j.snap[:0]}
	w.String(stateMagic)
	rules.AppendAlerts(&w, j.sent)
	w.String(after)
	w.Int(next)
	j.snap = j.proc.AppendSnapshot(w.B)
	// The stored bytes are handed to the store, which may keep them: a
	// new buffer, with room for the last size and a little more.
	packed := compressState(j.snap, j.packed+j.packed/8)
	j.packed = len(packed)
	return packed
}

// load restores what encode stored.
func (j *Journal) load(stored []byte) error {
	b, err := DecompressState(stored)
	if err != nil {
		return err
	}
	r := wire.Reader{B: b}
	after := r.String()
	j.sent = nil
	if after == stateMagic {
		j.sent = rules.ReadAlerts(&r)
		after = r.String()
	}
	next := r.Int()
	if r.Err() != nil {
		return fmt.Errorf("journal: shard state: %w", r.Err())
	}
	if err := j.proc.Restore(r.B); err != nil {
		return err
	}
	j.w.Resume(after, next)
	return nil
}
