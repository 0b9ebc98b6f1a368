package journal

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/tapline/tapline/windows/rules"
	"github.com/tapline/tapline/windows/wire"
)

// Stored shard state is compressed with S2 (klauspost/compress/s2, block
// format): it is the open panes of every live series, written every
// batch. zstd at its fastest level stored a fifth to a quarter less but
// cost 1.7-2.7 times the CPU, a tenth of the whole process's
// (BenchmarkSnapshotCompress; benchmarks/RESULTS.md). The stored form is
// s2Magic, the CRC-32C of the state, then the block. States stored
// before, zstd-compressed (zstd's magic number) or uncompressed (neither
// magic: they start with a varint and a sequence number's digits),
// still load.
var (
	s2Magic         = []byte("TLS2")
	castagnoli      = crc32.MakeTable(crc32.Castagnoli)
	stateDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxState))
	zstdMagic       = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// maxState bounds a stored state's decompressed size (a corrupt length
// must not allocate the machine's memory).
const maxState = 8 << 30

// CompressState is the form shard state is stored in. Safe for
// concurrent use (shards compress on their own goroutines).
func CompressState(state []byte) []byte {
	stored, _ := compressState(state, nil)
	return stored
}

// compressState is CompressState with a scratch buffer (nil for none)
// for the block; it returns the stored form and the scratch to reuse.
// The stored bytes are new: the store may keep them.
func compressState(state, scratch []byte) ([]byte, []byte) {
	if n := s2.MaxEncodedLen(len(state)); cap(scratch) < n {
		scratch = make([]byte, n)
	}
	block := s2.Encode(scratch[:cap(scratch)], state)
	stored := make([]byte, 0, len(s2Magic)+4+len(block))
	stored = append(stored, s2Magic...)
	stored = binary.LittleEndian.AppendUint32(stored, crc32.Checksum(state, castagnoli))
	return append(stored, block...), scratch
}

// DecompressState reverses CompressState, and passes through state stored
// uncompressed.
func DecompressState(stored []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(stored, s2Magic):
		head := len(s2Magic) + 4
		if len(stored) < head {
			return nil, errors.New("journal: stored state: truncated")
		}
		block := stored[head:]
		if n, err := s2.DecodedLen(block); err != nil || uint64(n) > maxState {
			return nil, fmt.Errorf("journal: stored state: corrupt (decoded length %d): %v", n, err)
		}
		b, err := s2.Decode(nil, block)
		if err != nil {
			return nil, fmt.Errorf("journal: stored state: %w", err)
		}
		if crc32.Checksum(b, castagnoli) != binary.LittleEndian.Uint32(stored[len(s2Magic):]) {
			return nil, errors.New("journal: stored state: checksum mismatch")
		}
		return b, nil
	case bytes.HasPrefix(stored, zstdMagic):
		b, err := stateDecoder.DecodeAll(stored, nil)
		if err != nil {
			return nil, fmt.Errorf("journal: stored state: %w", err)
		}
		return b, nil
	}
	return stored, nil
}

// stateMagic starts a state with the notifications of its batch; a state
// without it (it starts with the writer's position, a sequence number)
// has none. stateMagicChanges starts a state whose rule states are those
// changed since a rules base stored apart (pipeline.Processor.
// AppendSnapshotChanges): after the writer's position come the base's
// key and the count and watermark of the states written against it.
const (
	stateMagic        = "tapline.journal/2"
	stateMagicChanges = "tapline.journal/3"
)

// rulesSuffix names the rules base written with a state: its key is the
// state's plus this.
const rulesSuffix = ".rules"

// encode is the stored state of the shard that putState stores at key:
// the notifications of the batch it follows (republished after a crash
// unless confirmed), the batch writer's position, the rules base it
// needs, then the processor's snapshot, compressed. When a new rules
// base is due (pipeline.Processor.RulesBaseDue) it is returned too, to
// be stored at key+rulesSuffix before the state.
func (j *Journal) encode(key string) (state, base []byte) {
	if j.rulesBase == "" || j.proc.RulesBaseDue(j.sinceBase, j.baseWM) {
		j.baseSnap = j.proc.AppendRulesBase(j.baseSnap[:0])
		base, j.scratch = compressState(j.baseSnap, j.scratch)
		j.rulesBase, j.sinceBase, j.baseWM = key+rulesSuffix, 0, j.proc.Watermark()
	}
	j.sinceBase++
	after, next := j.w.State()
	w := wire.Writer{B: j.snap[:0]}
	w.String(stateMagicChanges)
	rules.AppendAlerts(&w, j.sent)
	w.String(after)
	w.Int(next)
	w.String(j.rulesBase)
	w.Int(int64(j.sinceBase))
	w.Int(j.baseWM)
	j.snap = j.proc.AppendSnapshotChanges(w.B)
	state, j.scratch = compressState(j.snap, j.scratch)
	return state, base
}

// errRulesBaseMissing: a state names a rules base the store does not
// have (expired, deleted): the shard starts with empty windows, as when
// the state itself is missing.
var errRulesBaseMissing = errors.New("journal: the state's rules base is missing")

// load restores what encode stored, reading the rules base it names.
func (j *Journal) load(ctx context.Context, stored []byte) error {
	b, err := DecompressState(stored)
	if err != nil {
		return err
	}
	r := wire.Reader{B: b}
	after := r.String()
	j.sent = nil
	magic := after
	if magic == stateMagic || magic == stateMagicChanges {
		j.sent = rules.ReadAlerts(&r)
		after = r.String()
	}
	next := r.Int()
	var baseKey string
	var since, baseWM int64
	if magic == stateMagicChanges {
		baseKey, since, baseWM = r.String(), r.Int(), r.Int()
	}
	if r.Err() != nil {
		return fmt.Errorf("journal: shard state: %w", r.Err())
	}
	if magic != stateMagicChanges {
		if err := j.proc.Restore(r.B); err != nil {
			return err
		}
		j.w.Resume(after, next)
		return nil
	}
	// The key is read from the store: it must name a rules base in a
	// state directory of this shard ({position}/{name}.rules), not any
	// object.
	shardDir := strings.TrimSuffix(j.stateDir("x"), "x/")
	rest, ok := strings.CutPrefix(baseKey, shardDir)
	if pos, name, _ := strings.Cut(rest, "/"); !ok || pos == "" || pos == ".." || strings.Contains(name, "/") || !strings.HasSuffix(name, rulesSuffix) {
		return fmt.Errorf("journal: shard state: rules base %q is not this shard's", baseKey)
	}
	base, err := j.o.Store.Get(ctx, baseKey)
	if err != nil {
		keys, lerr := j.o.Store.List(ctx, baseKey)
		if lerr == nil && !slices.Contains(keys, baseKey) {
			return fmt.Errorf("%w: %s", errRulesBaseMissing, baseKey)
		}
		return err
	}
	if base, err = DecompressState(base); err != nil {
		return fmt.Errorf("journal: rules base %s: %w", baseKey, err)
	}
	if err := j.proc.RestoreChanges(r.B, base); err != nil {
		return err
	}
	j.rulesBase, j.sinceBase, j.baseWM = baseKey, int(since), baseWM
	j.w.Resume(after, next)
	return nil
}
