package detect

// Moments is an exponentially weighted mean and variance in West's
// (1979) incremental form: the reference of CUSUM here and the baseline
// of the rules' z-score kind.
type Moments struct {
	N         int // values learnt
	Mean, Var float64
}

// Learn folds v in with weight w: the first value sets the mean; a weight
// of 1/N makes them the plain mean and (population) variance.
func (m *Moments) Learn(v, w float64) {
	m.N++
	if m.N == 1 {
		m.Mean, m.Var = v, 0
		return
	}
	d := v - m.Mean
	inc := w * d
	m.Mean += inc
	m.Var = (1 - w) * (m.Var + d*inc)
}
