package parquet

import (
	"io"
	"runtime"
	"sync"

	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/klauspost/compress/zstd"
)

// arrow-go compresses each page with an encoder from a sync.Pool, which
// every garbage collection empties; a new encoder allocates (and zeroes)
// a history buffer of a megabyte or more on its first page. A busy shard
// collects often, so files paid for that buffer again and again (3% of
// the whole process's CPU in BenchmarkServiceThroughput). keptZstd keeps
// one encoder per level for the life of the process instead, each with a
// state per CPU, and writes exactly the bytes arrow-go's codec writes:
// the same options, and EncodeAll starts every page afresh
// (TestZstdAsArrow). Decoding and streaming stay arrow-go's.
type keptZstd struct {
	compress.Codec // arrow-go's, for everything but EncodeLevel and Encode
	mu             sync.Mutex
	encoders       map[zstd.EncoderLevel]*zstd.Encoder
}

func init() {
	orig, err := compress.GetCodec(compress.Codecs.Zstd)
	if err != nil {
		panic(err) // arrow-go registers zstd in its own init
	}
	compress.RegisterCodec(compress.Codecs.Zstd, &keptZstd{Codec: orig, encoders: map[zstd.EncoderLevel]*zstd.Encoder{}})
}

func (z *keptZstd) encoder(level zstd.EncoderLevel) *zstd.Encoder {
	z.mu.Lock()
	defer z.mu.Unlock()
	e := z.encoders[level]
	if e == nil {
		// arrow-go's options (parquet/compress/zstd.go), with a state
		// per CPU: EncodeAll is safe for concurrent use.
		e, _ = zstd.NewWriter(nil, zstd.WithZeroFrames(true), zstd.WithEncoderLevel(level),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithAllLitEntropyCompression(true))
		z.encoders[level] = e
	}
	return e
}

// EncodeLevel compresses src as arrow-go's codec does at level.
func (z *keptZstd) EncodeLevel(dst, src []byte, level int) []byte {
	l := zstd.EncoderLevelFromZstd(level)
	if level == compress.DefaultCompressionLevel {
		l = zstd.SpeedDefault
	}
	return z.encoder(l).EncodeAll(src, dst[:0])
}

// Encode compresses src at the default level.
func (z *keptZstd) Encode(dst, src []byte) []byte {
	return z.EncodeLevel(dst, src, compress.DefaultCompressionLevel)
}

// The optional interfaces arrow-go's codec implements, passed through.

func (z *keptZstd) DecodeWithError(dst, src []byte) ([]byte, error) {
	return compress.Decode(z.Codec, dst, src)
}

func (z *keptZstd) NewReader(r io.Reader) io.ReadCloser {
	return z.Codec.(compress.StreamingCodec).NewReader(r)
}

func (z *keptZstd) NewWriter(w io.Writer) io.WriteCloser {
	return z.Codec.(compress.StreamingCodec).NewWriter(w)
}

func (z *keptZstd) NewWriterLevel(w io.Writer, level int) (io.WriteCloser, error) {
	return z.Codec.(compress.StreamingCodec).NewWriterLevel(w, level)
}
