package windows

import (
	"errors"
	"fmt"

	"github.com/tapline/tapline/windows/wire"
)

// Snapshots in parts. A shard's open panes are most of its snapshot, and
// most of them no longer change: a pane before its device's closed panes
// takes no record (the record would be late), so between two snapshots
// only the panes at or after each device's closed point then can have
// changed. With 1-minute panes and an hourly window that is a pane or
// two of the sixty a series keeps. So the Aggregator can write its panes
// in full as a base (AppendBase) and, for each snapshot after it, the
// panes that may have changed since the snapshot before (AppendChanges),
// everything else as AppendSnapshot does. Parts puts a base and the
// changes after it, in order, back into what AppendSnapshot would have
// written with the last of them, and restores that: restoring from the
// parts is restoring from the whole.
//
// A pane changes only by a record (pane.add, at or after its device's
// closed point) or by its series' eviction, which clears all of them:
// an evicted series is written whole in the next changes.

const (
	baseMagic    = "tapline.windows-base/1"
	changesMagic = "tapline.windows-changes/1"
)

// AppendBase appends every series' open panes, the base the snapshots
// of changes after it build on.
func (a *Aggregator) AppendBase(b []byte) []byte {
	start := len(b)
	w := wire.Writer{B: b}
	w.String(baseMagic)
	w.Uint(uint64(len(a.series)))
	for si := range a.series {
		mark := w.Open()
		a.appendPanes(&w, uint32(si), false)
		w.Close(mark)
	}
	a.settle()
	a.based, a.baseBytes, a.written = true, len(w.B)-start, 0
	return w.B
}

// AppendChanges appends the Aggregator's snapshot with, of each series'
// panes, only those that may have changed since the last AppendChanges
// or AppendBase; it counts what it writes toward BaseCost. Each call
// starts the next changes: call it once for each snapshot stored.
func (a *Aggregator) AppendChanges(b []byte) []byte {
	w := wire.Writer{B: b}
	w.String(changesMagic)
	mark := w.Open()
	a.appendHead(&w)
	w.Close(mark)
	w.Uint(uint64(len(a.series)))
	for si := range a.series {
		s := &a.series[si]
		w.Uint(uint64(s.gen))
		w.Int(s.last)
		whole := a.isReset(si)
		w.Bool(whole)
		at := len(w.B)
		a.appendPanes(&w, uint32(si), !whole)
		a.written += len(w.B) - at
	}
	mark = w.Open()
	a.appendTail(&w)
	w.Close(mark)
	w.Uint(uint64(a.written))
	a.settle()
	return w.B
}

// BaseCost says whether there is a base the Aggregator's changes build
// on (none after New or Restore), and the bytes of panes its changes
// have written since it against the base's size: the pipeline writes a
// new base when the changes add up to about the base (pipeline.
// Processor.BaseDue).
func (a *Aggregator) BaseCost() (based bool, written, base int) {
	return a.based, a.written, a.baseBytes
}

// settle marks the current panes as the ones later changes are relative
// to: a series' panes before its device's closed point are final.
func (a *Aggregator) settle() {
	for si := range a.series {
		a.series[si].from = 0 // a free series: whatever it gets is new
	}
	for di := range a.devices {
		d := &a.devices[di]
		if d.id == "" {
			continue
		}
		from := uint32(floorDiv(d.closed, a.pane))
		for j := range int(d.n) {
			a.series[d.slot(j).series].from = from
		}
	}
	clear(a.reset)
}

// markReset records that series si's panes were cleared (evicted).
func (a *Aggregator) markReset(si uint32) {
	for int(si/64) >= len(a.reset) {
		a.reset = append(a.reset, 0)
	}
	a.reset[si/64] |= 1 << (si % 64)
}

func (a *Aggregator) isReset(si int) bool {
	return si/64 < len(a.reset) && a.reset[si/64]&(1<<(si%64)) != 0
}

// paneRec is one pane as a snapshot writes it.
type paneRec struct {
	off uint64
	rec []byte
}

// Parts joins a base (AppendBase) and the changes written after it
// (AppendChanges), applied in order, into a new Aggregator.
type Parts struct {
	a          *Aggregator
	baseBytes  int
	head, tail []byte
	meta       []seriesMeta
	panes      [][]paneRec // by series, in offset order
	written    uint64
	applied    bool
}

// Parts starts restoring a new Aggregator (one that has seen no record)
// from base.
func (a *Aggregator) Parts(base []byte) (*Parts, error) {
	if a.maxTS != noData || len(a.devices) > 0 {
		return nil, errors.New("windows: restoring from parts needs a new Aggregator")
	}
	r := wire.Reader{B: base}
	if m := r.String(); m != baseMagic {
		return nil, fmt.Errorf("windows: not a windows base (%q)", m)
	}
	p := &Parts{a: a, baseBytes: len(base)}
	p.panes = make([][]paneRec, r.Len(4))
	for si := range p.panes {
		s := r.Section()
		p.panes[si] = a.readPanes(&s, nil)
		if s.Err() == nil && len(s.B) != 0 {
			s.Fail("%d bytes after series %d's panes", len(s.B), si)
		}
		if err := s.Err(); err != nil {
			r.Fail("%v", err)
			break
		}
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("windows: base: %w", err)
	}
	if len(r.B) != 0 {
		return nil, fmt.Errorf("windows: base: %d bytes after it", len(r.B))
	}
	return p, nil
}

// readPanes reads a list of panes as appendPanes writes it, into recs.
func (a *Aggregator) readPanes(r *wire.Reader, recs []paneRec) []paneRec {
	for range r.Len(12) {
		at := r.B
		off := r.Uint()
		r.Uint()            // epoch
		r.Uint()            // count
		if len(r.B) < 6*8 { // six floats: not read, only passed over
			r.Fail("short pane")
			break
		}
		r.B = r.B[6*8:]
		r.Int()
		r.Int()
		if a.opts.Quantiles {
			r.Bytes()
		}
		if r.Err() != nil {
			break
		}
		if off >= uint64(a.ring) || len(recs) > 0 && off <= recs[len(recs)-1].off {
			r.Fail("pane offset %d out of order or range", off)
			break
		}
		recs = append(recs, paneRec{off, at[:len(at)-len(r.B)]})
	}
	return recs
}

// Apply reads the next snapshot of changes and returns the bytes after
// it.
func (p *Parts) Apply(changes []byte) ([]byte, error) {
	r := wire.Reader{B: changes}
	if m := r.String(); m != changesMagic {
		return nil, fmt.Errorf("windows: not a windows changes snapshot (%q)", m)
	}
	head := r.Section()
	n := r.Len(3)
	p.meta = p.meta[:0]
	var recs []paneRec
	for si := range n {
		gen, last, whole := r.Uint(), r.Int(), r.Bool()
		recs = p.a.readPanes(&r, recs[:0])
		if r.Err() != nil {
			break
		}
		p.meta = append(p.meta, seriesMeta{gen: uint32(gen), last: last})
		for si >= len(p.panes) {
			p.panes = append(p.panes, nil)
		}
		if whole {
			p.panes[si] = append(p.panes[si][:0], recs...)
		} else {
			p.panes[si] = mergePanes(p.panes[si], recs)
		}
	}
	tail := r.Section()
	p.written = r.Uint()
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("windows: changes: %w", err)
	}
	p.panes = p.panes[:n]
	p.head, p.tail, p.applied = head.B, tail.B, true
	return r.B, nil
}

// mergePanes returns have with the panes of changed in place of those at
// the same offsets, both in offset order. Most changed panes take a ring
// slot a pane held before: those are overwritten in place.
func mergePanes(have, changed []paneRec) []paneRec {
	i := 0
	for _, c := range changed {
		for i < len(have) && have[i].off < c.off {
			i++
		}
		if i == len(have) || have[i].off != c.off {
			return insertPanes(have, changed)
		}
		have[i] = c
		i++
	}
	return have
}

// insertPanes is mergePanes when changed holds offsets have does not.
func insertPanes(have, changed []paneRec) []paneRec {
	out := make([]paneRec, 0, len(have)+len(changed))
	i := 0
	for _, c := range changed {
		for i < len(have) && have[i].off < c.off {
			out = append(out, have[i])
			i++
		}
		if i < len(have) && have[i].off == c.off {
			i++
		}
		out = append(out, c)
	}
	return append(out, have[i:]...)
}

// Restore restores the Aggregator from the base and the changes applied:
// the snapshot the last of them stands for. Its next changes are
// relative to that one.
func (p *Parts) Restore() error {
	if !p.applied {
		return errors.New("windows: restoring from parts needs the changes after the base")
	}
	w := wire.Writer{}
	w.String(snapshotMagic)
	w.B = append(w.B, p.head...)
	w.Uint(uint64(len(p.meta)))
	for si, m := range p.meta {
		w.Uint(uint64(m.gen))
		w.Int(m.last)
		w.Uint(uint64(len(p.panes[si])))
		for _, pr := range p.panes[si] {
			w.B = append(w.B, pr.rec...)
		}
	}
	w.B = append(w.B, p.tail...)
	a := p.a
	rest, err := a.Restore(w.B)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("windows: restore from parts: %d bytes after the snapshot", len(rest))
	}
	a.settle()
	// Restored under other window options (windows/respec.go) the panes
	// are not the parts' any more: the next snapshot needs a base.
	a.based = string(a.AppendSnapshot(nil)) == string(w.B)
	a.baseBytes, a.written = p.baseBytes, int(min(p.written, 1<<40))
	return nil
}
