// Package batch turns a shard's output (raw records, closed windows,
// alerts, dead letters) into Parquet and JSONL objects: it buffers rows per dataset and event
// hour, and on Flush writes one object per (dataset, hour) to a Store,
// named by package layout after the shard and the batch's first and last
// sequence numbers.
//
// Batch boundaries depend only on the input: a batch ends after MaxRows
// records or about MaxBytes of rows, or when the watermark passes the
// next multiple of FlushEvery of event time. A replay of the same records therefore cuts the same
// batches, names the same objects and writes the same bytes, and the
// store's put-if-absent turns the second write into a no-op. (At low
// traffic the watermark moves with the idle advance, which follows the
// wall clock; see package windows.)
//
// Flush returns the sequence number of the last record whose rows are
// now durable: the pipeline may acknowledge up to it, and no further.
// A Writer belongs to the shard goroutine.
package batch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/tapline/tapline/schemas"
	"github.com/tapline/tapline/sinks/layout"
	"github.com/tapline/tapline/sinks/parquet"
	"github.com/tapline/tapline/windows"
	"github.com/tapline/tapline/windows/rules"
)

// Store keeps immutable objects: Put writes data under key unless the key
// exists, and reports whether it wrote. s3sink.Store and localdir.Dir are
// stores.
type Store interface {
	Put(ctx context.Context, key string, data []byte) (bool, error)
}

// Options configure a Writer. The yaml tags are the service's
// configuration keys under "batch".
type Options struct {
	Prefix string `yaml:"-"` // key prefix, validated by layout
	Shard  string `yaml:"-"` // shard id, part of every object name
	// MaxRows ends a batch after this many records. Default 500,000.
	MaxRows int `yaml:"max_rows"`
	// MaxBytes ends a batch when its buffered rows reach about this many
	// bytes (an estimate from row contents, before compression; a function
	// of the input like everything here). Default 256 MiB.
	//
	// Larger batches make larger files, which Athena reads best (fewer
	// objects to list, open and plan, and Parquet compresses better);
	// smaller batches make data queryable sooner and lose less work to a
	// crash. MaxRows and MaxBytes bound size and memory at high traffic;
	// FlushEvery bounds staleness at low traffic.
	MaxBytes int `yaml:"max_bytes"`
	// FlushEvery ends a batch when the watermark passes a multiple of it:
	// how stale, in event time, the data in S3 may be. Default 1m.
	FlushEvery time.Duration `yaml:"flush_every"`
	// ZstdLevel compresses the files a batch writes, 1 (zstd's fastest)
	// to 22. Default 1: compression was nearly half of the files' encoding
	// and a seventh of the whole process's CPU at zstd's default level
	// 3, for raw files 2-4% and windows files 8% smaller (RESULTS.md,
	// session 14); these landing files live until compaction
	// rewrites them at level 3 (`tapline compact`), so the service
	// spends the least CPU on them.
	ZstdLevel int             `yaml:"zstd_level"`
	Parquet   parquet.Options `yaml:"-"`
}

// EnsureDefaults sets the zero fields that have defaults.
func (o *Options) EnsureDefaults() {
	if o.MaxRows == 0 {
		o.MaxRows = 500_000
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = 256 << 20
	}
	if o.FlushEvery == 0 {
		o.FlushEvery = time.Minute
	}
	if o.ZstdLevel == 0 {
		o.ZstdLevel = 1
	}
	if o.Parquet.ZstdLevel == 0 {
		o.Parquet.ZstdLevel = o.ZstdLevel
	}
}

// Validate reports every problem, one per line, each naming its
// configuration key. The shard id is checked by New.
func (o *Options) Validate() error {
	var errs []error
	if err := layout.ValidPrefix(o.Prefix); err != nil {
		errs = append(errs, err)
	}
	if o.MaxRows < 0 {
		errs = append(errs, fmt.Errorf("batch.max_rows: %d is negative", o.MaxRows))
	}
	if o.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("batch.max_bytes: %d is negative", o.MaxBytes))
	}
	if o.FlushEvery < 0 || o.FlushEvery%time.Millisecond != 0 {
		errs = append(errs, fmt.Errorf("batch.flush_every: %v must be whole non-negative milliseconds", o.FlushEvery))
	}
	if o.ZstdLevel < 0 || o.ZstdLevel > 22 {
		errs = append(errs, fmt.Errorf("batch.zstd_level: %d is not a zstd level (1 to 22)", o.ZstdLevel))
	} else if _, err := parquet.NewAlerts(o.Parquet); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Writer buffers one shard's rows.
type Writer struct {
	opts        Options
	store       Store
	raw         hours[parquet.Raw]
	windows     hours[parquet.Windows]
	alerts      hours[parquet.Alerts]
	dead        hours[jsonl] // dead letters, by arrival hour
	first, last string       // sequence numbers of the batch's records
	after       string       // last sequence number of the previous batch
	records     int
	rows        int      // rows of every dataset
	bytes       int      // estimated size of the buffered rows
	nextFlush   int64    // watermark at which the batch ends
	pending     []object // encoded, not yet written: retried first
	pendingLast string   // last sequence number of the pending batch
	Written     int      // objects written
	Existing    int      // objects found already written (replays)
}

const hourMs = 3_600_000

// New returns a Writer; it starts nothing.
func New(store Store, o Options) (*Writer, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	if _, err := layout.Key(o.Prefix, layout.Raw, 0, o.Shard, "0", "0", "parquet"); err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	return &Writer{opts: o, store: store}, nil
}

// hours holds a dataset's encoders by event hour, and those of earlier
// batches for the next: an encoder keeps its columns' memory between
// files (its WriteTo empties it), so a batch refills columns instead of
// growing them from nothing. Dropping the encoders after each batch made
// zeroing and copying fresh columns 2% of the whole process.
type hours[E any] struct {
	by    map[int64]*E
	spare []*E
}

// keptEncoders bounds the spare encoders of a dataset: a batch's rows
// usually fall in one or two event hours; a backlog's many hours' do not
// all stay allocated.
const keptEncoders = 2

// at returns the encoder of ms's hour.
func (hs *hours[E]) at(ms int64, o parquet.Options, mk func(parquet.Options) (*E, error)) *E {
	h := ms - ms%hourMs
	e := hs.by[h]
	if e == nil {
		if n := len(hs.spare); n > 0 {
			e, hs.spare = hs.spare[n-1], hs.spare[:n-1]
		} else {
			e, _ = mk(o) // New checked the options
		}
		if hs.by == nil {
			hs.by = map[int64]*E{}
		}
		hs.by[h] = e
	}
	return e
}

// done keeps up to keptEncoders of the batch's encoders, emptied, for
// the next batch.
func (hs *hours[E]) done() {
	for _, e := range hs.by {
		if len(hs.spare) < keptEncoders {
			hs.spare = append(hs.spare, e)
		}
	}
	clear(hs.by)
}

// Record buffers an aggregated record (pipeline.Options.OnRecord).
func (w *Writer) Record(rec *schemas.Record, seq string, arrival int64) {
	w.seen(seq)
	w.bytes += 40 + len(rec.DeviceID) + len(w.opts.Shard) + len(seq)
	for _, m := range rec.Metrics {
		w.bytes += 12 + len(m.Name)
	}
	w.raw.at(rec.Time, w.opts.Parquet, parquet.NewRaw).Append(rec, arrival, w.opts.Shard, seq)
	w.rows++
}

// Write buffers a dead letter (it makes the Writer a
// pipeline.DeadLetters): rejected records go to the deadletter dataset as
// JSON lines, partitioned by arrival time, and count towards the batch
// like any record, so acknowledging the batch covers them.
func (w *Writer) Write(d *schemas.DeadLetter) error {
	w.seen(d.Sequence)
	j := w.dead.at(d.Arrival, w.opts.Parquet, newJSONL)
	n := len(j.buf)
	j.buf = append(d.AppendJSON(j.buf), '\n')
	w.bytes += len(j.buf) - n
	j.rows++
	w.rows++
	return nil
}

func (w *Writer) seen(seq string) {
	if w.records == 0 {
		w.first = seq
	}
	w.last = seq
	w.records++
}

// jsonl is a buffer of JSON lines with the encoders' interface.
type jsonl struct {
	buf  []byte
	rows int
}

func newJSONL(parquet.Options) (*jsonl, error) { return &jsonl{}, nil }

func (j *jsonl) Rows() int { return j.rows }

func (j *jsonl) Bytes() ([]byte, error) {
	b := j.buf
	j.buf, j.rows = nil, 0
	return b, nil
}

// Window buffers a closed window (pipeline.Options.OnWindow).
func (w *Writer) Window(win *windows.Window) {
	w.bytes += 140 + len(win.Spec.Name) + len(win.DeviceID) + len(win.Metric)
	w.windows.at(win.Start, w.opts.Parquet, parquet.NewWindows).Append(win)
	w.rows++
}

// Alert buffers an alert (pipeline.Options.OnAlert).
func (w *Writer) Alert(a *rules.Alert) {
	w.bytes += 120 + len(a.Rule) + len(a.Device) + len(a.Metric) + len(a.Message)
	w.alerts.at(a.At, w.opts.Parquet, parquet.NewAlerts).Append(a)
	w.rows++
}

// Due reports whether the batch should be flushed now, given the
// processor's watermark.
func (w *Writer) Due(watermark int64) bool {
	step := w.opts.FlushEvery.Milliseconds()
	if w.nextFlush == 0 && watermark > 0 {
		w.nextFlush = watermark - watermark%step + step
	}
	return len(w.pending) > 0 || w.records >= w.opts.MaxRows || w.bytes >= w.opts.MaxBytes ||
		w.rows > 0 && watermark >= w.nextFlush
}

// Resume continues after a restart: after is the last sequence number
// of the last durable batch and nextFlush the watermark at which the
// batch ends, both from State at that time. A restored shard cuts the
// same batches as the one that stopped.
func (w *Writer) Resume(after string, nextFlush int64) { w.after, w.nextFlush = after, nextFlush }

// State returns what Resume needs. Call it after a Flush.
func (w *Writer) State() (after string, nextFlush int64) { return w.after, w.nextFlush }

// Flush writes the batch, one object per dataset and event hour, and
// returns the sequence number of its last record ("" when there was no
// record). A batch of rows without records (windows closed by an idle
// advance or at shard end) is named after the previous batch and the
// watermark, which is the same in a replay. The batch is encoded once; if a write fails, Flush
// returns the error, nothing of the batch may be acknowledged, and the
// next Flush writes the same objects (same keys, same bytes) before
// anything newer.
func (w *Writer) Flush(ctx context.Context, watermark int64) (string, error) {
	if len(w.pending) == 0 && w.rows > 0 {
		if w.records == 0 {
			w.first = w.after
			if w.first == "" {
				w.first = "0"
			}
			w.last = "w" + strconv.FormatInt(max(watermark, 0), 10)
		}
		if err := errors.Join(
			encode(w, layout.Raw, &w.raw),
			encode(w, layout.Windows, &w.windows),
			encode(w, layout.Alerts, &w.alerts),
			encode(w, layout.DeadLetter, &w.dead),
		); err != nil {
			return "", err
		}
		if w.records > 0 {
			w.pendingLast, w.after = w.last, w.last
		}
		w.records, w.bytes, w.rows = 0, 0, 0
		if step := w.opts.FlushEvery.Milliseconds(); watermark > 0 {
			w.nextFlush = watermark - watermark%step + step
		}
	}
	for len(w.pending) > 0 {
		o := w.pending[0]
		wrote, err := w.store.Put(ctx, o.key, o.data)
		if err != nil {
			return "", err
		}
		if wrote {
			w.Written++
		} else {
			w.Existing++
		}
		w.pending = w.pending[1:]
	}
	last := w.pendingLast
	w.pendingLast = ""
	return last, nil
}

type object struct {
	key  string
	data []byte
}

// encode moves one dataset's rows, in hour order, into pending objects.
func encode[T any, E interface {
	*T
	Rows() int
	Bytes() ([]byte, error)
}](w *Writer, dataset string, hs *hours[T]) error {
	keys := make([]int64, 0, len(hs.by))
	for h := range hs.by {
		keys = append(keys, h)
	}
	slices.Sort(keys)
	for _, h := range keys {
		e := E(hs.by[h])
		if e.Rows() == 0 {
			continue
		}
		ext := "parquet"
		if dataset == layout.DeadLetter {
			ext = "jsonl"
		}
		key, err := layout.Key(w.opts.Prefix, dataset, h, w.opts.Shard, w.first, w.last, ext)
		if err != nil {
			return err
		}
		data, err := e.Bytes()
		if err != nil {
			return err
		}
		w.pending = append(w.pending, object{key, data})
	}
	hs.done()
	return nil
}
