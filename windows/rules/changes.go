package rules

import (
	"errors"
	"fmt"
	"math"

	"github.com/tapline/tapline/windows/wire"
)

// Rule states in parts. A detector's state is kilobytes a series (the
// default set's, 4 KiB) and changes only when a window of its spec
// closes: an hourly rule's, once an hour. Written in full with every
// batch's snapshot, it was most of the snapshot and of its cost
// (benchmarks/CAPACITY.md). So the engine can write its rule states as a
// base (AppendBase: every series' and device's states) and, for each
// snapshot after it, the changes (AppendChanges: the counters, rules and
// incidents, and the states of only the series and devices changed since
// the snapshot before). Parts puts a base and the changes after it, in
// order, back together into what AppendSnapshot would have written with
// the last of them, and restores that: restoring from the parts is
// restoring from the whole.
//
// "Changed" is marked where the engine writes a state: a series bound or
// rebound, a window its rules evaluate, a missing-data transition. A
// state written without the mark would restore stale; the golden tests
// restore from the parts after every record to catch one.

const (
	baseMagic    = "tapline.rules-base/1"
	changesMagic = "tapline.rules-changes/1"
)

// AppendBase appends every rule state, each series' and device's apart,
// and makes the engine's changes relative to it from now on.
func (e *Engine) AppendBase(b []byte) []byte {
	start := len(b)
	w := wire.Writer{B: b}
	w.String(baseMagic)
	for _, list := range [][]seriesRules{e.series, e.devices} {
		w.Uint(uint64(len(list)))
		for i := range list {
			mark := w.Open()
			e.appendEntry(&w, &list[i])
			w.Close(mark)
			list[i].changed = false
		}
	}
	e.based, e.baseBytes, e.written = true, len(w.B)-start, 0
	return w.B
}

// AppendChanges appends the engine's state but the rule states of the
// series and devices unchanged since the last AppendChanges or
// AppendBase. It counts what it writes toward BaseCost and starts the
// next changes: call it once for each snapshot stored.
func (e *Engine) AppendChanges(b []byte) []byte {
	w := wire.Writer{B: b}
	w.String(changesMagic)
	mark := w.Open()
	e.appendHeader(&w)
	w.Close(mark)
	for _, list := range [][]seriesRules{e.series, e.devices} {
		w.Uint(uint64(len(list)))
		n := 0
		for i := range list {
			if list[i].changed {
				n++
			}
		}
		w.Uint(uint64(n))
		for i := range list {
			if !list[i].changed {
				continue
			}
			w.Uint(uint64(i))
			mark := w.Open()
			e.appendEntry(&w, &list[i])
			w.Close(mark)
			e.written += len(w.B) - mark
			list[i].changed = false
		}
	}
	w.Uint(uint64(e.written))
	return w.B
}

// BaseCost says whether there is a base the engine's changes build on
// (none after NewEngine or Restore), and the bytes of rule states its
// changes have written since it against the base's size: the pipeline
// writes a new base when the changes add up to about the base
// (pipeline.Processor.BaseDue).
func (e *Engine) BaseCost() (based bool, written, base int) { return e.based, e.written, e.baseBytes }

// Parts joins a base (AppendBase) and the changes written after it
// (AppendChanges), applied in order, into a new Engine.
type Parts struct {
	e         *Engine
	baseBytes int
	header    []byte
	lists     [2][][]byte // each entry's bytes, by index
	written   uint64
	applied   bool
}

// Parts starts restoring a new Engine from base.
func (e *Engine) Parts(base []byte) (*Parts, error) {
	if len(e.series) > 0 || len(e.devices) > 0 {
		return nil, errors.New("rules: restoring from parts needs a new Engine")
	}
	r := wire.Reader{B: base}
	if m := r.String(); m != baseMagic {
		return nil, fmt.Errorf("rules: not a rules base (%q)", m)
	}
	p := &Parts{e: e, baseBytes: len(base)}
	for k := range p.lists {
		p.lists[k] = make([][]byte, r.Len(5))
		for i := range p.lists[k] {
			s := r.Section()
			p.lists[k][i] = s.B
		}
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("rules: base: %w", err)
	}
	if len(r.B) != 0 {
		return nil, fmt.Errorf("rules: base: %d bytes after it", len(r.B))
	}
	return p, nil
}

// Apply reads the next changes and returns the bytes after them.
func (p *Parts) Apply(changes []byte) ([]byte, error) {
	r := wire.Reader{B: changes}
	if m := r.String(); m != changesMagic {
		return nil, fmt.Errorf("rules: not a rules changes snapshot (%q)", m)
	}
	head := r.Section()
	for k := range p.lists {
		// The list's length is checked below: its entries are the ones
		// held or among the changed.
		n := r.Uint()
		m := r.Len(5)
		if n > uint64(len(p.lists[k])+m) {
			r.Fail("%d entries, %d held and %d changed", n, len(p.lists[k]), m)
			break
		}
		list := p.lists[k]
		for len(list) < int(n) {
			list = append(list, nil) // each must be among the changed
		}
		list = list[:n]
		prev := -1
		for range m {
			i, s := r.Uint(), r.Section()
			if i >= n || int(i) <= prev {
				r.Fail("changed entry %d out of order or past %d", i, n)
				break
			}
			prev = int(i)
			list[i] = s.B
		}
		if r.Err() != nil {
			break
		}
		for i, b := range list {
			if b == nil {
				r.Fail("entry %d is neither held nor changed", i)
				break
			}
		}
		p.lists[k] = list
	}
	written := r.Uint()
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("rules: changes: %w", err)
	}
	p.header, p.written, p.applied = head.B, written, true
	return r.B, nil
}

// Restore restores the Engine from the base and the changes applied: the
// snapshot the last of them stands for. Its next changes are relative to
// that one.
func (p *Parts) Restore() error {
	if !p.applied {
		return errors.New("rules: restoring from parts needs the changes after the base")
	}
	full := wire.Writer{B: append([]byte(nil), p.header...)}
	for _, list := range p.lists {
		full.Uint(uint64(len(list)))
		for _, b := range list {
			full.B = append(full.B, b...)
		}
	}
	e := p.e
	rest, err := e.Restore(full.B)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("rules: restore from parts: %d bytes after the states", len(rest))
	}
	// Restored under other rules (a state dropped, a series to rebind),
	// the states are not the parts' any more: the next snapshot needs a
	// base.
	e.based = string(e.AppendSnapshot(nil)) == string(full.B)
	e.baseBytes, e.written = p.baseBytes, int(min(p.written, math.MaxInt32))
	return nil
}
