package train

import (
	"fmt"
	"math"
)

// Reference fits in float64 for the tests: the pooled optimum of the
// objective the encrypted training minimizes, and a float64 mirror of the
// encrypted algorithm (same plan, same polynomial, same steps).

// objective is J(w) = mean log-loss + (lambda/2)||w||^2 (every coefficient
// penalized, as in encrypted mode).
func objective(d dataset, w []float64, lambda float64) float64 {
	j := logLoss(d, w)
	for _, v := range w {
		j += lambda / 2 * v * v
	}
	return j
}

// logLoss is the mean log-loss, computed stably.
func logLoss(d dataset, w []float64) float64 {
	var s float64
	for j := range d.y {
		z := d.logit(w, j)
		// log(1+e^z) - y*z
		s += softplus(z) - d.y[j]*z
	}
	return s / float64(d.rows())
}

func softplus(z float64) float64 {
	if z > 0 {
		return z + math.Log1p(math.Exp(-z))
	}
	return math.Log1p(math.Exp(z))
}

// accuracy is the share of rows whose label is predicted at threshold 1/2.
func accuracy(d dataset, w []float64) float64 {
	ok := 0
	for j := range d.y {
		if (d.logit(w, j) > 0) == (d.y[j] == 1) {
			ok++
		}
	}
	return float64(ok) / float64(d.rows())
}

// newtonFit minimizes the penalized logistic objective by Newton's method
// with backtracking, until the gradient's norm is below 1e-10 (or the
// Newton step below 1e-12: float64 rounding of the sums).
func newtonFit(d dataset, lambda float64) ([]float64, error) {
	p := len(d.x) + 1
	w := make([]float64, p)
	n := float64(d.rows())
	z := func(j, c int) float64 {
		if c == 0 {
			return 1
		}
		return d.x[c-1][j]
	}
	for iter := 0; iter < 200; iter++ {
		g := make([]float64, p)
		h := make([][]float64, p)
		for a := range h {
			h[a] = make([]float64, p)
		}
		for j := range d.y {
			s := sigmoid(d.logit(w, j))
			r, c := s-d.y[j], s*(1-s)
			for a := range p {
				g[a] += r * z(j, a) / n
				for b := range p {
					h[a][b] += c * z(j, a) * z(j, b) / n
				}
			}
		}
		var norm float64
		for a := range p {
			g[a] += lambda * w[a]
			h[a][a] += lambda
			norm += g[a] * g[a]
		}
		if math.Sqrt(norm) < 1e-10 {
			return w, nil
		}
		step, err := solve(h, g)
		if err != nil {
			return nil, err
		}
		var stepNorm float64
		for _, s := range step {
			stepNorm += s * s
		}
		if math.Sqrt(stepNorm) < 1e-12 {
			return w, nil
		}
		j0 := objective(d, w, lambda)
		for t := 1.0; ; t /= 2 {
			cand := make([]float64, p)
			for a := range cand {
				cand[a] = w[a] - t*step[a]
			}
			if objective(d, cand, lambda) <= j0 || t < 1e-12 {
				w = cand
				break
			}
		}
	}
	return nil, fmt.Errorf("newton: no convergence in 200 iterations")
}

// solve solves h x = g by Gaussian elimination with partial pivoting.
func solve(h [][]float64, g []float64) ([]float64, error) {
	p := len(g)
	a := make([][]float64, p)
	for i := range a {
		a[i] = append(append([]float64(nil), h[i]...), g[i])
	}
	for col := range p {
		piv := col
		for r := col + 1; r < p; r++ {
			if math.Abs(a[r][col]) > math.Abs(a[piv][col]) {
				piv = r
			}
		}
		if math.Abs(a[piv][col]) < 1e-300 {
			return nil, fmt.Errorf("singular Hessian")
		}
		a[col], a[piv] = a[piv], a[col]
		for r := range p {
			if r == col {
				continue
			}
			f := a[r][col] / a[col][col]
			for c := col; c <= p; c++ {
				a[r][c] -= f * a[col][c]
			}
		}
	}
	x := make([]float64, p)
	for i := range x {
		x[i] = a[i][p] / a[i][i]
	}
	return x, nil
}

// mirrorRun is the plan's algorithm in float64 on the pooled rows: the
// gradient with the plan's polynomial (pl.Sigmoid.Eval; the identity for
// linear regression), the same step,
// penalty and momentum, one iteration per step call.
type mirrorRun struct {
	pl      *Plan
	d       dataset
	w, v, y []float64
	// maxNorm is the largest norm of a point where a gradient was
	// evaluated; outside is set when a logit left the sigmoid's interval.
	maxNorm float64
	outside bool
}

func newMirror(pl *Plan, d dataset) *mirrorRun {
	p := pl.Coefficients
	return &mirrorRun{pl: pl, d: d, w: make([]float64, p), v: make([]float64, p), y: make([]float64, p)}
}

func (m *mirrorRun) step() {
	pl, d := m.pl, m.d
	p := pl.Coefficients
	n := float64(d.rows())
	var norm float64
	for _, c := range m.y {
		norm += c * c
	}
	m.maxNorm = math.Max(m.maxNorm, math.Sqrt(norm))
	grad := make([]float64, p)
	for j := range d.y {
		z := d.logit(m.y, j)
		s := z // linear regression
		if pl.Sigmoid != nil {
			if math.Abs(z) > pl.Bound {
				m.outside = true
			}
			s = pl.Sigmoid.Eval(z)
		}
		r := s - d.y[j]
		grad[0] += r / n
		for c := range d.x {
			grad[c+1] += r * d.x[c][j] / n
		}
	}
	for c := range p {
		// v = y - eta*gradJ(y) - w = beta*v + step (beta = 0 without
		// momentum, where y = w).
		m.v[c] = pl.Beta*m.v[c] - pl.StepSize*(grad[c]+pl.Spec.Lambda*m.y[c])
		m.w[c] += m.v[c]
		m.y[c] = m.w[c] + pl.Beta*m.v[c]
	}
}

// ridgeFit solves the penalized least squares (Z^T Z/n + lambda I) w =
// Z^T y/n of linear regression with every coefficient penalized.
func ridgeFit(d dataset, lambda float64) ([]float64, error) {
	p := len(d.x) + 1
	n := float64(d.rows())
	z := func(j, c int) float64 {
		if c == 0 {
			return 1
		}
		return d.x[c-1][j]
	}
	h := make([][]float64, p)
	g := make([]float64, p)
	for a := range h {
		h[a] = make([]float64, p)
		h[a][a] = lambda
	}
	for j := range d.y {
		for a := range p {
			g[a] += z(j, a) * d.y[j] / n
			for b := range p {
				h[a][b] += z(j, a) * z(j, b) / n
			}
		}
	}
	return solve(h, g)
}
