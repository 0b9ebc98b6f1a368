package detect

import (
	"math"
	"math/rand/v2"
	"unsafe"

	"github.com/tapline/tapline/windows/wire"
)

// Forest is a streaming Random Cut Forest (Guha, Mishra, Roy & Schrijvers,
// "Robust random cut forest based anomaly detection on streams", ICML
// 2016), the detector Kinesis Data Analytics SQL offered as
// RANDOM_CUT_FOREST(_WITH_EXPLANATION).
//
// A point is a shingle: the last Shingle windows of each of Dims metrics,
// so the forest sees shapes (a spike, a step, two metrics that stop
// moving together), not single values. Every tree holds the same sliding
// sample of the last Sample points and differs from the others only in
// its random cuts; a new point is inserted into each tree (Algorithm
// "InsertPoint": a random cut of the bounding box with the point either
// separates it at this node or sends it down) and the oldest deleted.
//
// Its score is the collusive displacement (CoDisp, section 4 of the
// paper): the most any subtree containing the point would change the
// tree's size were it removed, relative to the subtree's size, averaged
// over the trees. An outlier is isolated high in a tree and displaces
// much. The score is reported relative to the series' own running mean
// CoDisp (weight alpha), so z 3 means "three times the usual".
// Attribution: each tree credits its CoDisp to the metric of the cut
// that isolated the point, as RANDOM_CUT_FOREST_WITH_EXPLANATION's
// per-attribute scores do; Attribution returns the shares.
//
// Memory is what makes it an opt-in detector: the sample (Sample × Dims ×
// Shingle floats) plus, per tree, 2·Sample-1 nodes each holding a
// bounding box of 2 × Dims × Shingle floats. Size reports it; with 20
// trees of 64 points over 4-window shingles of one metric, about 250 KiB
// a series. Cost per window: O(trees × depth × Dims × Shingle).
type Forest struct {
	dims, shingle, sample int
	alpha                 float64
	warmup                int

	rng   *rand.PCG
	src   *rand.Rand
	trees []tree

	recent []float64 // the last shingle windows, dims values each, oldest first
	filled int       // windows in recent
	points []float64 // the sample: ring of points, dim() values each
	count  int       // points in the sample
	next   int       // ring slot of the next point
	mean   float64   // running mean CoDisp
	seen   int       // points scored

	attrib []float64 // per metric, of the last score
}

// tree is one random cut tree over the forest's sample. Nodes live in a
// slice (freed slots are reused) so a tree is a few allocations, not one
// per node.
type tree struct {
	nodes  []node
	boxes  []float64 // per node: min then max, dim() values each
	free   []int32
	root   int32
	leafOf []int32 // sample slot → leaf
}

type node struct {
	parent, left, right int32 // -1: none; a leaf has left == -1
	dim                 int32
	cut                 float64
	mass                int32 // points below (a leaf: copies of its point)
}

const none = -1

// NewForest returns a forest over points of dims metrics × shingle
// windows, with the given trees and sample size, scoring once warmup
// points are in the sample. seed makes its cuts (the rules engine
// derives it from the rule and the series, so a replay cuts the same).
func NewForest(dims, shingle, trees, sample int, alpha float64, warmup int, seed uint64) *Forest {
	f := &Forest{dims: dims, shingle: shingle, sample: sample, alpha: alpha, warmup: max(warmup, 2)}
	f.rng = rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)
	f.src = rand.New(f.rng)
	f.trees = make([]tree, trees)
	for i := range f.trees {
		f.trees[i] = tree{root: none, leafOf: make([]int32, sample)}
	}
	return f
}

func (f *Forest) dim() int { return f.dims * f.shingle }

// Observe implements Detector for a forest of one metric.
func (f *Forest) Observe(t int64, v float64) (float64, bool) {
	return f.ObserveVector(t, []float64{v})
}

// ObserveVector scores the window whose metrics' aggregates are x
// (len Dims) and learns it.
func (f *Forest) ObserveVector(_ int64, x []float64) (float64, bool) {
	d := f.dim()
	if f.recent == nil {
		f.recent = make([]float64, 0, d)
		f.points = make([]float64, f.sample*d)
		f.attrib = make([]float64, f.dims)
	}
	if f.filled == f.shingle {
		copy(f.recent, f.recent[f.dims:])
		f.recent = f.recent[:d-f.dims]
		f.filled--
	}
	f.recent = append(f.recent, x...)
	f.filled++
	if f.filled < f.shingle {
		return 0, false
	}
	slot := f.next
	if f.count == f.sample {
		for i := range f.trees {
			f.trees[i].remove(f, slot)
		}
	} else {
		f.count++
	}
	p := f.points[slot*d : (slot+1)*d]
	copy(p, f.recent)
	f.next = (f.next + 1) % f.sample
	clear(f.attrib)
	var sum float64
	for i := range f.trees {
		leaf := f.trees[i].insert(f, slot, p)
		c, dim := f.trees[i].codisp(leaf)
		sum += c
		f.attrib[dim%f.dims] += c // point layout: window-major, metric-minor
	}
	codisp := sum / float64(len(f.trees))
	if sum > 0 {
		for i := range f.attrib {
			f.attrib[i] /= sum
		}
	}
	ready := f.count >= f.warmup
	score := 0.0
	if ready && f.seen > 0 {
		score = finite(ratio(codisp, f.mean, 1))
	}
	if ready {
		f.seen++
		w := math.Max(f.alpha, 1/float64(f.seen))
		f.mean += w * (codisp - f.mean)
	}
	return score, ready && f.seen > 1
}

// Attribution returns each metric's share of the last score (summing to
// 1), valid until the next Observe.
func (f *Forest) Attribution() []float64 { return f.attrib }

// newNode takes a free slot.
func (t *tree) newNode(f *Forest) int32 {
	d := f.dim()
	if n := len(t.free); n > 0 {
		i := t.free[n-1]
		t.free = t.free[:n-1]
		return i
	}
	t.nodes = append(t.nodes, node{})
	t.boxes = append(t.boxes, make([]float64, 2*d)...)
	return int32(len(t.nodes) - 1)
}

func (t *tree) box(f *Forest, n int32) (lo, hi []float64) {
	d := f.dim()
	b := t.boxes[int(n)*2*d : (int(n)+1)*2*d]
	return b[:d], b[d:]
}

// insert adds point p (sample slot) and returns its leaf.
func (t *tree) insert(f *Forest, slot int, p []float64) int32 {
	if t.root == none {
		leaf := t.leaf(f, p, none)
		t.root = leaf
		t.leafOf[slot] = leaf
		return leaf
	}
	n := t.root
	for {
		lo, hi := t.box(f, n)
		// A random cut of the box grown to hold p: a dimension with
		// probability proportional to its span, a value uniform in it.
		var total float64
		for i := range p {
			total += max(hi[i], p[i]) - min(lo[i], p[i])
		}
		if total == 0 { // p equals this leaf's point
			if t.nodes[n].left == none {
				t.leafOf[slot] = n
				t.addMass(n, 1)
				return n
			}
		}
		r := f.src.Float64() * total
		dim, cut := 0, 0.0
		for i := range p {
			a, b := min(lo[i], p[i]), max(hi[i], p[i])
			if r < b-a || i == len(p)-1 {
				dim, cut = i, a+min(r, b-a)
				break
			}
			r -= b - a
		}
		separated := total > 0 && (cut < lo[dim] || cut >= hi[dim])
		if separated {
			parent := t.nodes[n].parent
			leaf := t.leaf(f, p, none)
			b := t.newNode(f)
			t.nodes[b] = node{parent: parent, dim: int32(dim), cut: cut, mass: t.nodes[n].mass + 1}
			if p[dim] <= cut {
				t.nodes[b].left, t.nodes[b].right = leaf, n
			} else {
				t.nodes[b].left, t.nodes[b].right = n, leaf
			}
			t.nodes[leaf].parent, t.nodes[n].parent = b, b
			blo, bhi := t.box(f, b)
			for i := range p {
				blo[i], bhi[i] = min(lo[i], p[i]), max(hi[i], p[i])
			}
			if parent == none {
				t.root = b
			} else {
				if t.nodes[parent].left == n {
					t.nodes[parent].left = b
				} else {
					t.nodes[parent].right = b
				}
				t.grow(f, parent, p)
			}
			t.leafOf[slot] = leaf
			return leaf
		}
		if t.nodes[n].left == none {
			// A leaf the cut did not separate can only be equal to p.
			t.leafOf[slot] = n
			t.addMass(n, 1)
			return n
		}
		nd := &t.nodes[n]
		if p[nd.dim] <= nd.cut {
			n = nd.left
		} else {
			n = nd.right
		}
	}
}

func (t *tree) leaf(f *Forest, p []float64, parent int32) int32 {
	n := t.newNode(f)
	t.nodes[n] = node{parent: parent, left: none, right: none, mass: 1}
	lo, hi := t.box(f, n)
	copy(lo, p)
	copy(hi, p)
	return n
}

// grow adds one point p to the mass and boxes from n up to the root.
func (t *tree) grow(f *Forest, n int32, p []float64) {
	for ; n != none; n = t.nodes[n].parent {
		t.nodes[n].mass++
		lo, hi := t.box(f, n)
		for i := range p {
			lo[i], hi[i] = min(lo[i], p[i]), max(hi[i], p[i])
		}
	}
}

func (t *tree) addMass(n int32, d int32) {
	for ; n != none; n = t.nodes[n].parent {
		t.nodes[n].mass += d
	}
}

// remove deletes the point in sample slot from the tree.
func (t *tree) remove(f *Forest, slot int) {
	leaf := t.leafOf[slot]
	if t.nodes[leaf].mass > 1 {
		t.addMass(leaf, -1)
		return
	}
	parent := t.nodes[leaf].parent
	t.free = append(t.free, leaf)
	if parent == none {
		t.root = none
		return
	}
	sibling := t.nodes[parent].left
	if sibling == leaf {
		sibling = t.nodes[parent].right
	}
	grand := t.nodes[parent].parent
	t.free = append(t.free, parent)
	t.nodes[sibling].parent = grand
	if grand == none {
		t.root = sibling
		return
	}
	if t.nodes[grand].left == parent {
		t.nodes[grand].left = sibling
	} else {
		t.nodes[grand].right = sibling
	}
	// Masses drop by one and boxes shrink to their children's union.
	for n := grand; n != none; n = t.nodes[n].parent {
		t.nodes[n].mass--
		lo, hi := t.box(f, n)
		llo, lhi := t.box(f, t.nodes[n].left)
		rlo, rhi := t.box(f, t.nodes[n].right)
		for i := range lo {
			lo[i], hi[i] = min(llo[i], rlo[i]), max(lhi[i], rhi[i])
		}
	}
}

// codisp returns the collusive displacement of a leaf and the cut
// dimension of the subtree that attains it.
func (t *tree) codisp(leaf int32) (float64, int) {
	best, dim := 0.0, 0
	for n := leaf; t.nodes[n].parent != none; n = t.nodes[n].parent {
		parent := t.nodes[n].parent
		sibling := t.nodes[parent].left
		if sibling == n {
			sibling = t.nodes[parent].right
		}
		if c := float64(t.nodes[sibling].mass) / float64(t.nodes[n].mass); c > best {
			best, dim = c, int(t.nodes[parent].dim)
		}
	}
	return best, dim
}

// Append implements Detector: the random source, the shingle, the
// sample and every tree's nodes (boxes are rebuilt from the points).
func (f *Forest) Append(w *wire.Writer) {
	state, _ := f.rng.MarshalBinary()
	w.Bytes(state)
	w.Uint(uint64(f.filled))
	w.Uint(uint64(len(f.recent)))
	for _, v := range f.recent {
		w.Float(v)
	}
	w.Uint(uint64(f.count))
	w.Uint(uint64(f.next))
	for _, v := range f.points[:min(len(f.points), f.count*f.dim())] {
		w.Float(v)
	}
	w.Float(f.mean)
	w.Uint(uint64(f.seen))
	for i := range f.trees {
		t := &f.trees[i]
		w.Int(int64(t.root))
		w.Uint(uint64(len(t.nodes)))
		for _, n := range t.nodes {
			w.Int(int64(n.parent))
			w.Int(int64(n.left))
			w.Int(int64(n.right))
			w.Uint(uint64(n.dim))
			w.Float(n.cut)
			w.Int(int64(n.mass))
		}
		w.Uint(uint64(len(t.free)))
		for _, n := range t.free {
			w.Uint(uint64(n))
		}
		for _, l := range t.leafOf[:f.count] {
			w.Int(int64(l))
		}
	}
}

// Restore implements Detector.
func (f *Forest) Restore(r *wire.Reader) {
	if err := f.rng.UnmarshalBinary(r.Bytes()); err != nil {
		r.Fail("forest: random source: %v", err)
		return
	}
	d := f.dim()
	f.recent, f.points = make([]float64, 0, d), make([]float64, f.sample*d)
	f.attrib = make([]float64, f.dims)
	f.filled = int(r.Uint())
	n := r.Len(8)
	if n > d || f.filled > f.shingle {
		r.Fail("forest: shingle of %d values", n)
		return
	}
	for range n {
		f.recent = append(f.recent, r.Float())
	}
	f.count, f.next = int(r.Uint()), int(r.Uint())
	if f.count > f.sample || f.next >= f.sample {
		r.Fail("forest: sample of %d points", f.count)
		return
	}
	for i := range f.points[:f.count*d] {
		f.points[i] = r.Float()
	}
	f.mean, f.seen = r.Float(), int(r.Uint())
	for i := range f.trees {
		t := &f.trees[i]
		t.root = int32(r.Int())
		nn := r.Len(6)
		if nn > 2*f.sample {
			r.Fail("forest: tree of %d nodes", nn)
			return
		}
		t.nodes, t.boxes = make([]node, nn), make([]float64, nn*2*d)
		valid := func(x int64) int32 {
			if x < none || x >= int64(nn) {
				r.Fail("forest: node index %d", x)
				return none
			}
			return int32(x)
		}
		for j := range t.nodes {
			nd := &t.nodes[j]
			nd.parent, nd.left, nd.right = valid(r.Int()), valid(r.Int()), valid(r.Int())
			nd.dim = int32(r.Uint())
			if int(nd.dim) >= d {
				r.Fail("forest: cut dimension %d", nd.dim)
			}
			nd.cut, nd.mass = r.Float(), int32(r.Int())
		}
		t.free = make([]int32, r.Len(1))
		for j := range t.free {
			t.free[j] = valid(int64(r.Uint()))
		}
		t.leafOf = make([]int32, f.sample)
		for j := range t.leafOf[:f.count] {
			if t.leafOf[j] = valid(r.Int()); t.leafOf[j] == none {
				r.Fail("forest: sample point %d has no leaf", j)
			}
		}
		if (t.root == none) != (f.count == 0) {
			r.Fail("forest: root %d with %d points", t.root, f.count)
		}
		if r.Err() != nil {
			return
		}
		// Leaves take their point's coordinates; branches the union of
		// their children's boxes, children first.
		for j := range t.leafOf[:f.count] {
			lo, hi := t.box(f, t.leafOf[j])
			copy(lo, f.points[j*d:(j+1)*d])
			copy(hi, f.points[j*d:(j+1)*d])
		}
		if t.root != none {
			t.rebox(f, t.root, 0)
		}
	}
}

func (t *tree) rebox(f *Forest, n int32, depth int) {
	nd := t.nodes[n]
	if nd.left == none || depth > 2*f.sample {
		return
	}
	t.rebox(f, nd.left, depth+1)
	t.rebox(f, nd.right, depth+1)
	lo, hi := t.box(f, n)
	llo, lhi := t.box(f, nd.left)
	rlo, rhi := t.box(f, nd.right)
	for i := range lo {
		lo[i], hi[i] = min(llo[i], rlo[i]), max(lhi[i], rhi[i])
	}
}

// Size implements Detector: the sample, the shingle and each tree's
// nodes, boxes and slot map at full size.
func (f *Forest) Size() int {
	d := f.dim()
	nodes := 2*f.sample - 1
	perTree := nodes*(int(unsafe.Sizeof(node{}))+2*d*8) + f.sample*4 + 64
	return 256 + (f.sample+1)*d*8 + len(f.trees)*perTree
}
