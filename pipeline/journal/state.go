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
	"sync"

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
// has none. stateMagicChanges starts a state whose snapshot holds only
// what changed since the state before (pipeline.Processor.
// AppendSnapshotChanges): after the writer's position come the key of
// the base it builds on, the keys of the states between (the chain), and
// the watermark at the base.
const (
	stateMagic        = "tapline.journal/2"
	stateMagicChanges = "tapline.journal/3"
)

// fullSuffix names the base written with a state: its key is the
// state's plus this.
const fullSuffix = ".full"

// encode is the stored state of the shard that putState stores at key:
// the notifications of the batch it follows (republished after a crash
// unless confirmed), the batch writer's position, the base and chain it
// builds on, then the processor's snapshot of changes, compressed. When
// a new base is due (pipeline.Processor.BaseDue) it is returned too, to
// be stored at key+fullSuffix before the state.
func (j *Journal) encode(key string) (state, base []byte) {
	if j.baseKey == "" || j.proc.BaseDue(len(j.chain), j.baseWM) {
		j.baseSnap = j.proc.AppendBase(j.baseSnap[:0])
		base, j.scratch = compressState(j.baseSnap, j.scratch)
		j.baseKey, j.chain, j.baseWM = key+fullSuffix, j.chain[:0], j.proc.Watermark()
	} else {
		j.chain = append(j.chain, j.lastKey)
	}
	j.lastKey = key
	after, next := j.w.State()
	w := wire.Writer{B: j.snap[:0]}
	w.String(stateMagicChanges)
	rules.AppendAlerts(&w, j.sent)
	w.String(after)
	w.Int(next)
	w.String(j.baseKey)
	w.Uint(uint64(len(j.chain)))
	for _, k := range j.chain {
		w.String(k)
	}
	w.Int(j.baseWM)
	j.snap = j.proc.AppendSnapshotChanges(w.B)
	state, j.scratch = compressState(j.snap, j.scratch)
	return state, base
}

// errPartMissing: a state builds on a base or an earlier state the store
// does not have (expired, deleted): the shard starts with empty windows,
// as when the state itself is missing.
var errPartMissing = errors.New("journal: a part of the stored state is missing")

// stateHead is what a state holds before the processor's snapshot.
type stateHead struct {
	magic, after string
	next         int64
	sent         []rules.Alert
	base         string
	chain        []string
	baseWM       int64
}

// readHead reads a decompressed state's head; r is left at the
// processor's snapshot.
func readHead(r *wire.Reader) stateHead {
	var h stateHead
	h.after = r.String()
	h.magic = h.after
	if h.magic == stateMagic || h.magic == stateMagicChanges {
		h.sent = rules.ReadAlerts(r)
		h.after = r.String()
	}
	h.next = r.Int()
	if h.magic == stateMagicChanges {
		h.base = r.String()
		for range r.Len(1) {
			h.chain = append(h.chain, r.String())
		}
		h.baseWM = r.Int()
	}
	return h
}

// load restores the state stored at key, reading the base and the states
// it builds on.
func (j *Journal) load(ctx context.Context, key string, stored []byte) error {
	b, err := DecompressState(stored)
	if err != nil {
		return err
	}
	r := wire.Reader{B: b}
	h := readHead(&r)
	if r.Err() != nil {
		return fmt.Errorf("journal: shard state: %w", r.Err())
	}
	j.sent = h.sent
	if h.magic != stateMagicChanges {
		if err := j.proc.Restore(r.B); err != nil {
			return err
		}
		j.parts = 1
		j.w.Resume(h.after, h.next)
		return nil
	}
	// The keys are read from the store: each must name a base or a state
	// in a state directory of this shard, not any object.
	if err := j.ownKey(h.base, fullSuffix); err != nil {
		return err
	}
	for _, k := range h.chain {
		if err := j.ownKey(k, ".snap"); err != nil {
			return err
		}
	}
	parts, err := j.getAll(ctx, append([]string{h.base}, h.chain...))
	if err != nil {
		return err
	}
	changes := make([][]byte, 0, len(h.chain)+1)
	for i, k := range h.chain {
		cr := wire.Reader{B: parts[i+1]}
		ch := readHead(&cr)
		if cr.Err() != nil || ch.magic != stateMagicChanges || ch.base != h.base {
			return fmt.Errorf("journal: state %s, before %s: not a state of the same base (%v)", k, key, cr.Err())
		}
		changes = append(changes, cr.B)
	}
	changes = append(changes, r.B)
	if err := j.proc.RestoreParts(parts[0], changes); err != nil {
		return err
	}
	j.baseKey, j.chain, j.baseWM, j.lastKey = h.base, h.chain, h.baseWM, key
	j.parts = len(parts) + 1
	j.w.Resume(h.after, h.next)
	return nil
}

// ownKey checks that key names an object in one of the shard's state
// directories ({position}/{name}) whose name ends with suffix.
func (j *Journal) ownKey(key, suffix string) error {
	shardDir := strings.TrimSuffix(j.stateDir("x"), "x/")
	rest, ok := strings.CutPrefix(key, shardDir)
	if pos, name, _ := strings.Cut(rest, "/"); !ok || pos == "" || pos == ".." || strings.Contains(name, "/") || !strings.HasSuffix(name, suffix) {
		return fmt.Errorf("journal: shard state: %q is not a part of this shard's state", key)
	}
	return nil
}

// getAll reads and decompresses keys, a few at a time (a restore reads
// up to pipeline.MaxChain states).
func (j *Journal) getAll(ctx context.Context, keys []string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	errs := make([]error, len(keys))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			b, err := j.o.Store.Get(ctx, k)
			if err != nil {
				if list, lerr := j.o.Store.List(ctx, k); lerr == nil && !slices.Contains(list, k) {
					err = fmt.Errorf("%w: %s", errPartMissing, k)
				}
				errs[i] = err
				return
			}
			if out[i], err = DecompressState(b); err != nil {
				errs[i] = fmt.Errorf("journal: %s: %w", k, err)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
