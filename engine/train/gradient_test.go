package train

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// gradientSums is the float64 computation of what a party's G_c carry: per
// coefficient, k * sum_j (s_j - y_j) z_{j,c} over the rows, with s = f(z.w).
func gradientSums(d dataset, w []float64, k float64, f func(float64) float64) []float64 {
	out := make([]float64, len(w))
	for j := range d.y {
		r := f(d.logit(w, j)) - d.y[j]
		out[0] += k * r
		for c := range d.x {
			out[c+1] += k * r * d.x[c][j]
		}
	}
	return out
}

func TestGradientMatchesPlaintext(t *testing.T) {
	for _, c := range []struct {
		name, params string
		spec         Spec
		rows         int
		w            []float64
	}{
		// Two batches, the second partial (padding).
		{"logistic-n14", "ckks-n14", Spec{Model: Logistic, Features: 3, Lambda: 1, Iterations: 10, Parties: 3}, 8192 + 3000, []float64{0.3, -0.5, 0.2, 0.4}},
		{"linear-n14", "ckks-n14", Spec{Model: Linear, Features: 3, Lambda: 0.1, Iterations: 10, Parties: 3}, 8192 + 3000, []float64{0.1, -0.5, 0.7, 0.2}},
		{"logistic-n15", "ckks-n15", Spec{Model: Logistic, Features: 4, Lambda: 0.01, Iterations: 30, Parties: 3}, 5000, []float64{1.5, -4, 3, 2, -1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := testParams(t, c.params)
			keys := testKeys(t, p)
			rng := rand.New(rand.NewPCG(1, 2))
			d := logisticData(rng, c.rows, c.w)
			if c.spec.Model == Linear {
				for j := range d.y {
					d.y[j] = math.Max(-1, math.Min(1, d.logit(c.w, j)+0.1*rng.NormFloat64()))
				}
			}
			c.spec.Rows = 3 * c.rows
			pl, err := NewPlan(p, c.spec)
			if err != nil {
				t.Fatal(err)
			}
			t.Log(pl.Explain())
			point := encryptModel(t, p, keys.sk, c.w, pl.PointLevel)
			start := time.Now()
			g, err := pl.Gradient(p, keys.evk, point, d.x, d.y)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("gradient of %d rows: %v", c.rows, time.Since(start))
			for i, ct := range g {
				if ct.Level() != pl.RefreshLevel {
					t.Fatalf("G_%d at level %d, want the refresh level %d", i, ct.Level(), pl.RefreshLevel)
				}
			}
			f := func(z float64) float64 { return z }
			exact := f
			if pl.Sigmoid != nil {
				f, exact = pl.Sigmoid.Eval, sigmoid
			}
			k := pl.GradientFactor
			approx := gradientSums(d, c.w, k, f)
			truth := gradientSums(d, c.w, k, exact)
			for i, ct := range g {
				slots := decryptSlots(t, p, keys.sk, ct)
				var sum float64
				for _, v := range slots {
					sum += v
				}
				// Against the same polynomial in float64, only the
				// encryption's error, relative to |k| * rows (the
				// sum of the terms' bounds): measured below 3e-10,
				// asserted below 1e-8.
				scale := math.Abs(k) * float64(c.rows)
				if e := math.Abs(sum - approx[i]); e > 1e-8*scale {
					t.Errorf("G_%d: slot sum %.10g, float64 with the polynomial %.10g (error %.2e > %.2e)", i, sum, approx[i], e, 1e-8*scale)
				}
				// Against the exact sigmoid: plus the approximation
				// error, at most ApproxError per row.
				if e := math.Abs(sum - truth[i]); e > (pl.ApproxError+1e-6)*scale {
					t.Errorf("G_%d: slot sum %.10g, exact float64 %.10g (error %.2e > %.2e)", i, sum, truth[i], e, (pl.ApproxError+1e-6)*scale)
				}
				t.Logf("G_%d: error %.2e (relative to |k| rows: %.2e); vs exact %.2e", i, sum-approx[i], (sum-approx[i])/scale, (sum-truth[i])/scale)
			}
		})
	}
}
