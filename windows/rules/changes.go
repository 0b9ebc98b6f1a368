package rules

import (
	"errors"
	"fmt"
	"math"

	"github.com/tapline/tapline/windows/wire"
)

// Rule states in two parts. A detector's state is kilobytes a series
// (the default set's, 4 KiB) and changes only when a window of its spec
// closes: an hourly rule's, once an hour. Written in full with every
// batch's snapshot, it was most of the snapshot and of its cost
// (benchmarks/CAPACITY.md). So the engine can write its rule states as a
// base (AppendBase: every series' and device's states) and, for each
// snapshot after it, the changes (AppendChanges: the counters, rules and
// incidents, and the states of only the series and devices changed since
// the base). RestoreChanges puts the two together into what
// AppendSnapshot would have written and restores that, so a restore
// from the parts is a restore from the whole.
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
// series and devices unchanged since the last AppendBase, which
// RestoreChanges takes from that base. It counts what it writes toward
// BaseDue: call it once for each snapshot stored.
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
		}
	}
	w.Uint(uint64(e.written))
	return w.B
}

// BaseDue reports whether the next snapshot should come with a new base
// rather than changes against the last: when there is no base the
// changes are relative to (after NewEngine or Restore), or once the
// rule states AppendChanges wrote since the base add up to half its
// size. Rules whose states all change every snapshot then store a base
// every other snapshot, about what whole snapshots stored; hourly rules,
// whose states change in the few batches that close an hour, store a
// base or two an hour and small changes between (BenchmarkStatesDefault
// Rules: half of the base was 152 bytes a series a batch, the whole
// base 183, twice it 172, a quarter 152).
func (e *Engine) BaseDue() bool { return !e.based || 2*e.written >= e.baseBytes }

// RestoreChanges restores a new Engine from changes (AppendChanges) and
// the base they were written against (AppendBase), as Restore restores
// the snapshot AppendSnapshot would have written at the time, and
// returns the bytes after changes. The restored engine's changes are
// relative to the same base.
func (e *Engine) RestoreChanges(changes, base []byte) ([]byte, error) {
	r := wire.Reader{B: changes}
	if m := r.String(); m != changesMagic {
		return nil, fmt.Errorf("rules: not a rules changes snapshot (%q)", m)
	}
	head := r.Section()
	br := wire.Reader{B: base}
	if m := br.String(); m != baseMagic {
		return nil, fmt.Errorf("rules: not a rules base (%q)", m)
	}
	full := wire.Writer{B: append([]byte(nil), head.B...)}
	type entry struct {
		i int
		b []byte
	}
	var marked [2][]int
	for k := range marked {
		// The list's length is checked below: its entries are in the
		// base or among the changed.
		n, nb := r.Uint(), br.Len(1)
		inBase := make([][]byte, nb)
		for i := range inBase {
			s := br.Section()
			inBase[i] = s.B
		}
		changed := make([]entry, 0, r.Len(5))
		if n > uint64(nb+cap(changed)) {
			r.Fail("%d entries, %d in the base and %d changed", n, nb, cap(changed))
			break
		}
		for range cap(changed) {
			i, s := r.Uint(), r.Section()
			if i >= uint64(n) || len(changed) > 0 && int(i) <= changed[len(changed)-1].i {
				r.Fail("changed entry %d out of order or past %d", i, n)
				break
			}
			changed = append(changed, entry{int(i), s.B})
		}
		if r.Err() != nil || br.Err() != nil {
			break
		}
		full.Uint(n)
		for i := range int(n) {
			switch {
			case len(changed) > 0 && changed[0].i == i:
				full.B = append(full.B, changed[0].b...)
				changed = changed[1:]
				marked[k] = append(marked[k], i)
			case i < nb:
				full.B = append(full.B, inBase[i]...)
			default:
				r.Fail("entry %d is neither changed nor in the base", i)
			}
		}
	}
	if err := errors.Join(r.Err(), br.Err()); err != nil {
		return nil, fmt.Errorf("rules: restore from changes: %w", err)
	}
	rest, err := e.Restore(full.B)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("rules: restore from changes: %d bytes after the states", len(rest))
	}
	written := r.Uint()
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("rules: restore from changes: %w", err)
	}
	for k, list := range []*[]seriesRules{&e.series, &e.devices} {
		for _, i := range marked[k] {
			(*list)[i].changed = true
		}
	}
	e.based, e.baseBytes, e.written = true, len(base), int(min(written, math.MaxInt32))
	return r.B, nil
}
