package glm

import (
	"fmt"
	"math"
)

// blockRows is the number of rows scaled and summed at a time: a block of
// 32 scaled columns (30 features, the intercept and the label) is 64 KiB,
// which stays in a core's L2 cache while its 528 column pairs are
// multiplied.
const blockRows = 256

// pad is the number of zero columns after a block's columns, so that the
// 2x4 tiles of addGram never need a narrower case.
const pad = 4

// columnsOf returns n zeroed columns of blockRows rows in one allocation,
// plus pad zero columns that are never written.
func columnsOf(n int) [][]float64 {
	buf := make([]float64, (n+pad)*blockRows)
	cols := make([][]float64, n+pad)
	for c := range cols {
		cols[c] = buf[c*blockRows : (c+1)*blockRows : (c+1)*blockRows]
	}
	return cols
}

// designBlock returns the columns of a block of the scaled design: z[0]
// the intercept's ones, then n-1 columns to load, then pad zero columns.
func designBlock(n int) [][]float64 {
	z := columnsOf(n)
	for k := range z[0] {
		z[0][k] = 1
	}
	return z
}

// scaleInto scales column into dst, refusing out-of-range values by the
// row number of their table, firstRow+1 for column[0].
func scaleInto(dst []float64, f Column, column []float64, firstRow int) error {
	center, half := f.center(), f.half()
	dst = dst[:len(column)]
	for k, v := range column {
		if !(v >= f.Min && v <= f.Max) {
			return rangeError(f, firstRow+k+1)
		}
		x := (v - center) / half
		if x > 1 {
			x = 1
		} else if x < -1 {
			x = -1
		}
		dst[k] = x
	}
	return nil
}

// loadFeatures scales rows [lo, hi) of the feature columns into z[1:].
func loadFeatures(z [][]float64, features []Column, columns [][]float64, lo, hi int) error {
	for c, col := range columns {
		if err := scaleInto(z[c+1], features[c], col[lo:hi], lo); err != nil {
			return err
		}
	}
	return nil
}

// LinearStats is one party's linear-regression statistics over its rows
// (see the package doc for the layout): columns holds the d feature
// columns in s.Features order, y the labels.
func LinearStats(columns [][]float64, y []float64, s Scaling) ([]float64, error) {
	if err := s.checkData(Linear, columns, y); err != nil {
		return nil, err
	}
	p := s.P()
	// The Gram matrix of the augmented design [Z | y'] holds ZᵀZ, Zᵀy' and
	// y'ᵀy' at once; its triangle is rearranged into the layout at the end.
	aug := make([]float64, tri(p+1))
	z := designBlock(p + 1)
	for lo := 0; lo < len(y); lo += blockRows {
		hi := min(lo+blockRows, len(y))
		if err := loadFeatures(z, s.Features, columns, lo, hi); err != nil {
			return nil, err
		}
		if err := scaleInto(z[p], s.Label, y[lo:hi], lo); err != nil {
			return nil, err
		}
		addGram(aug, p+1, z, z, hi-lo)
	}
	out := make([]float64, 0, StatsLen(Linear, p))
	for i := range p { // row i of the augmented triangle: zz[i, i..p-1], zy[i]
		out = append(out, aug[triRow(p+1, i)+i:triRow(p+1, i)+p]...)
	}
	for i := range p {
		out = append(out, aug[triRow(p+1, i)+p])
	}
	return append(out, aug[len(aug)-1]), nil
}

// LogisticStats is one party's logistic-regression statistics at the
// coefficients b (scaled space, intercept first); see the package doc for
// the layout.
func LogisticStats(columns [][]float64, y []float64, s Scaling, b []float64) ([]float64, error) {
	if err := s.checkData(Logistic, columns, y); err != nil {
		return nil, err
	}
	p := s.P()
	if err := checkCoefficients(b, p); err != nil {
		return nil, err
	}
	out := make([]float64, StatsLen(Logistic, p))
	gram, zr := out[:tri(p)], out[tri(p):tri(p)+p]
	z := designBlock(p)
	wz := columnsOf(p) // the W-weighted design: wz[0] is w itself
	eta, r := make([]float64, blockRows), make([]float64, blockRows)
	for lo := 0; lo < len(y); lo += blockRows {
		hi := min(lo+blockRows, len(y))
		if err := loadFeatures(z, s.Features, columns, lo, hi); err != nil {
			return nil, err
		}
		m := hi - lo
		e := eta[:m]
		for k := range e {
			e[k] = b[0]
		}
		for c := 1; c < p; c++ {
			bc, zc := b[c], z[c][:m]
			for k := range e {
				e[k] += float64(bc * zc[k])
			}
		}
		w, res, loglik := wz[0][:m], r[:m], 0.0
		for k, t := range e {
			mu, loss := sigmoidLoss(t, y[lo+k])
			w[k], res[k] = mu*(1-mu), y[lo+k]-mu
			loglik -= min(loss, LogLossClip)
		}
		for c := 1; c < p; c++ {
			dst, zc := wz[c][:m], z[c][:m]
			for k, v := range w {
				dst[k] = v * zc[k]
			}
		}
		addGram(gram, p, wz, z, m)
		for j := 0; j < p; j += 4 {
			t := tile(res, res, z[j:j+4], m)
			for u := range min(4, p-j) {
				zr[j+u] += t[u]
			}
		}
		out[len(out)-2] += loglik
		out[len(out)-1] += float64(m)
	}
	return out, nil
}

// sigmoidLoss is μ = σ(t) and the row's loss -log P(y | t), computed from
// one exponential without overflow: with e = exp(-|t|),
// loss = max(s, 0) + log1p(e) for s = (1-2y)·t.
func sigmoidLoss(t, y float64) (mu, loss float64) {
	e := math.Exp(-math.Abs(t))
	if t >= 0 {
		mu = 1 / (1 + e)
	} else {
		mu = e / (1 + e)
	}
	s := t
	if y == 1 {
		s = -t
	}
	return mu, max(s, 0) + math.Log1p(e)
}

func checkCoefficients(b []float64, p int) error {
	if len(b) != p {
		return fmt.Errorf("glm: %d coefficients, expected %d (the intercept and %d features)", len(b), p, p-1)
	}
	for i, v := range b {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("glm: coefficient %d is not finite", i)
		}
	}
	return nil
}

// triRow is the index of entry (i, 0) in the row-major upper triangle of a
// q x q matrix, were it stored: entry (i, j), j >= i, is at triRow(q, i)+j.
func triRow(q, i int) int { return i*q - i*(i+1)/2 }

// addGram adds Σ_k a[i][k]·b[j][k] over the first m rows to entry (i, j),
// j >= i, of gram, the row-major upper triangle of a q x q matrix. Pairs
// are computed in 2x4 tiles (rows i, i+1 against columns j..j+3), reading
// each column once per tile; a and b have pad zero columns after their q,
// and entries outside the triangle are discarded.
func addGram(gram []float64, q int, a, b [][]float64, m int) {
	for i := 0; i < q; i += 2 {
		row0, row1 := triRow(q, i), triRow(q, i+1)
		for j := i; j < q; j += 4 {
			t := tile(a[i], a[i+1], b[j:j+4], m)
			for u := range min(4, q-j) {
				gram[row0+j+u] += t[u]
				if j+u > i && i+1 < q {
					gram[row1+j+u] += t[4+u]
				}
			}
		}
	}
}

// tile is the eight sums Σ_k x[k]·y[j][k] for x in (a0, a1) and j < 4 over
// the first m rows. Each is added up in row order, one product at a time;
// the conversion float64(·) forbids fusing the multiply and the add (which
// the Go compiler does on arm64), so the sums are the same on every
// architecture.
func tile(a0, a1 []float64, y [][]float64, m int) (t [8]float64) {
	a0, a1 = a0[:m], a1[:m]
	y0, y1, y2, y3 := y[0][:m], y[1][:m], y[2][:m], y[3][:m]
	var s00, s01, s02, s03, s10, s11, s12, s13 float64
	for k := range a0 {
		x0, x1 := a0[k], a1[k]
		s00 += float64(x0 * y0[k])
		s01 += float64(x0 * y1[k])
		s02 += float64(x0 * y2[k])
		s03 += float64(x0 * y3[k])
		s10 += float64(x1 * y0[k])
		s11 += float64(x1 * y1[k])
		s12 += float64(x1 * y2[k])
		s13 += float64(x1 * y3[k])
	}
	return [8]float64{s00, s01, s02, s03, s10, s11, s12, s13}
}

// dot is Σ_k a[k]·b[k], for the solvers' small vectors.
func dot(a, b []float64) float64 {
	b = b[:len(a)]
	s := 0.0
	for k := range a {
		s += a[k] * b[k]
	}
	return s
}
