package windows

// pane is the aggregate of one series over one pane of event time. It is
// exactly one 64-byte cache line: a record touches one line per metric.
// Event times are stored as offsets from the pane start, and the mean is
// derived from the sum, to fit.
type pane struct {
	sum, min, max, m2 float64
	first, last       float64
	count             uint32
	epoch             uint32 // low 32 bits of the pane number; valid when count > 0
	firstAt, lastAt   int32  // ms after the pane start
}

func (p *pane) add(at int32, v float64) {
	if p.count == 0 {
		p.sum, p.min, p.max, p.m2, p.first, p.last = v, v, v, 0, v, v
		p.count, p.firstAt, p.lastAt = 1, at, at
		return
	}
	// Welford's update with the mean derived from the sum:
	// M2 += (v - mean_old)^2 * n_old / n_new.
	n := float64(p.count)
	d := v - p.sum/n
	p.m2 += d * d * n / (n + 1)
	p.sum += v
	p.count++
	if v < p.min {
		p.min = v
	}
	if v > p.max {
		p.max = v
	}
	if at < p.firstAt {
		p.firstAt, p.first = at, v
	}
	if at >= p.lastAt {
		p.lastAt, p.last = at, v
	}
}

// agg converts the pane, which starts at start (Unix ms), to an Agg.
func (p *pane) agg(start int64) Agg {
	return Agg{
		Count: int64(p.count), Sum: p.sum, Min: p.min, Max: p.max,
		Mean: p.sum / float64(p.count), M2: p.m2,
		FirstTS: start + int64(p.firstAt), LastTS: start + int64(p.lastAt),
		First: p.first, Last: p.last,
	}
}

// Panes live in chunks of chunkSize series laid out offset-major: the
// panes of consecutive series at the same ring offset are adjacent, so a
// record of a device whose series were created together touches adjacent
// cache lines, which the hardware prefetches.
const (
	chunkBits = 10
	chunkSize = 1 << chunkBits
	chunkMask = chunkSize - 1
)
