package glm

import (
	"fmt"
	"math"
)

// blockRows is the number of rows scaled and summed at a time: a block of
// 31 scaled columns (30 features and the intercept) is 62 KiB, which stays
// in a core's L2 cache while its 496 column pairs are multiplied.
const blockRows = 256

// block holds the scaled design of up to blockRows rows, column-major:
// z[0] is the intercept's column of ones, z[c+1] feature c.
type block struct {
	z            [][]float64
	y            []float64
	center, half []float64
	rows         int
}

func newBlock(features []Column) *block {
	p := len(features) + 1
	b := &block{z: make([][]float64, p), y: make([]float64, blockRows)}
	buf := make([]float64, p*blockRows)
	for c := range b.z {
		b.z[c] = buf[c*blockRows : (c+1)*blockRows]
	}
	for k := range b.z[0] {
		b.z[0][k] = 1
	}
	for _, f := range features {
		b.center = append(b.center, f.center())
		b.half = append(b.half, f.half())
	}
	return b
}

// load scales rows [lo, hi) of the feature columns into the block.
func (b *block) load(features []Column, columns [][]float64, lo, hi int) error {
	b.rows = hi - lo
	for c, col := range columns {
		f, center, half, dst := features[c], b.center[c], b.half[c], b.z[c+1][:b.rows]
		for k, v := range col[lo:hi] {
			if !(v >= f.Min && v <= f.Max) {
				return rangeError(f, lo+k+1)
			}
			dst[k] = min(max((v-center)/half, -1), 1)
		}
	}
	return nil
}

// cols is the block's design, truncated to its rows.
func (b *block) cols(dst [][]float64) [][]float64 {
	for c := range b.z {
		dst[c] = b.z[c][:b.rows]
	}
	return dst
}

// LinearStats is one party's linear-regression statistics over its rows
// (see the package doc for the layout): columns holds the d feature
// columns in s.Features order, y the labels.
func LinearStats(columns [][]float64, y []float64, s Scaling) ([]float64, error) {
	if err := s.checkData(Linear, columns, y); err != nil {
		return nil, err
	}
	p := s.P()
	out := make([]float64, StatsLen(Linear, p))
	gram, zy := out[:tri(p)], out[tri(p):tri(p)+p]
	b := newBlock(s.Features)
	z := make([][]float64, p)
	for lo := 0; lo < len(y); lo += blockRows {
		hi := min(lo+blockRows, len(y))
		if err := b.load(s.Features, columns, lo, hi); err != nil {
			return nil, err
		}
		yb := b.y[:hi-lo]
		for k, v := range y[lo:hi] {
			x, ok := s.Label.scale(v)
			if !ok {
				return nil, rangeError(s.Label, lo+k+1)
			}
			yb[k] = x
		}
		z = b.cols(z)
		addGram(gram, z, z)
		addDots(zy, z, yb)
		out[len(out)-1] += dot(yb, yb)
	}
	return out, nil
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
	blk := newBlock(s.Features)
	// wzBuf holds the block's W-weighted design (column 0 is w itself), then
	// the linear predictor z·b and the residual y-μ.
	wzBuf := make([]float64, (p+2)*blockRows)
	z, wz := make([][]float64, p), make([][]float64, p)
	eta, r := wzBuf[p*blockRows:(p+1)*blockRows], wzBuf[(p+1)*blockRows:]
	for lo := 0; lo < len(y); lo += blockRows {
		hi := min(lo+blockRows, len(y))
		if err := blk.load(s.Features, columns, lo, hi); err != nil {
			return nil, err
		}
		m := hi - lo
		z = blk.cols(z)
		for c := range wz {
			wz[c] = wzBuf[c*blockRows : c*blockRows+m]
		}
		e := eta[:m]
		for k := range e {
			e[k] = b[0]
		}
		for c := 1; c < p; c++ {
			bc, zc := b[c], z[c]
			for k := range e {
				e[k] += bc * zc[k]
			}
		}
		w, res, loglik := wz[0], r[:m], 0.0
		for k, t := range e {
			mu, loss := sigmoidLoss(t, y[lo+k])
			w[k], res[k] = mu*(1-mu), y[lo+k]-mu
			loglik -= min(loss, LogLossClip)
		}
		for c := 1; c < p; c++ {
			dst, zc := wz[c], z[c]
			for k, v := range w {
				dst[k] = v * zc[k]
			}
		}
		addGram(gram, wz, z)
		addDots(zr, z, res)
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

// addGram adds a[i]·b[j] to gram's entry (i, j) for every j >= i, gram being
// the row-major upper triangle of a len(a) x len(a) matrix.
func addGram(gram []float64, a, b [][]float64) {
	idx := 0
	for i, ai := range a {
		row := gram[idx : idx+len(a)-i]
		for j := range row {
			row[j] += dot(ai, b[i+j])
		}
		idx += len(row)
	}
}

// addDots adds a[i]·v to out[i].
func addDots(out []float64, a [][]float64, v []float64) {
	for i, ai := range a {
		out[i] += dot(ai, v)
	}
}

// dot is Σ_k a[k]·b[k] with four interleaved partial sums (rows k ≡ 0, 1,
// 2, 3 mod 4, then the tail into the first), combined as (s0+s1)+(s2+s3):
// independent additions keep the floating-point pipeline busy.
func dot(a, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	k := 0
	for ; k+4 <= len(a); k += 4 {
		s0 += a[k] * b[k]
		s1 += a[k+1] * b[k+1]
		s2 += a[k+2] * b[k+2]
		s3 += a[k+3] * b[k+3]
	}
	for ; k < len(a); k++ {
		s0 += a[k] * b[k]
	}
	return (s0 + s1) + (s2 + s3)
}
