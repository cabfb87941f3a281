package train

import (
	"math"
	"math/rand/v2"
	"strings"
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

// TestGradientPadding: a single partial batch leaves every slot past the
// last row at zero (up to the encryption's noise): padding rows have
// x' = 0 and a zero intercept column, so they add nothing, whatever the
// sigmoid gives at z = 0.
func TestGradientPadding(t *testing.T) {
	p := testParams(t, "ckks-n14")
	keys := testKeys(t, p)
	const rows = 1000
	d := logisticData(rand.New(rand.NewPCG(5, 6)), rows, []float64{0.3, -0.5, 0.2, 0.4})
	pl, err := NewPlan(p, Spec{Model: Logistic, Features: 3, Lambda: 1, Iterations: 10, Parties: 3, Rows: 3 * rows})
	if err != nil {
		t.Fatal(err)
	}
	w := []float64{0.3, -0.5, 0.2, 0.4}
	g, err := pl.Gradient(p, keys.evk, encryptModel(t, p, keys.sk, w, pl.PointLevel), d.x, d.y)
	if err != nil {
		t.Fatal(err)
	}
	k := math.Abs(pl.GradientFactor)
	for c, ct := range g {
		slots := decryptSlots(t, p, keys.sk, ct)
		var pad, rowMax float64
		for j, v := range slots {
			if j < rows {
				rowMax = math.Max(rowMax, math.Abs(v))
			} else {
				pad = math.Max(pad, math.Abs(v))
			}
		}
		// A row's slot is k*(s - y)*x', up to |k|; an intercept column
		// not zeroed would leave k*sigma(w_0) ~ 0.8 in every padding
		// slot of G_0. Padding is noise: measured below 2e-8 (1.5e-8*k).
		if pad > 1e-7*k {
			t.Errorf("G_%d: padding slots up to %.2e (rows up to %.2e)", c, pad, rowMax)
		}
		t.Logf("G_%d: padding slots up to %.2e, row slots up to %.2e", c, pad, rowMax)
	}
}

func TestGradientRefusesInputs(t *testing.T) {
	p := testParams(t, "ckks-n14")
	keys := testKeys(t, p)
	d := logisticData(rand.New(rand.NewPCG(5, 6)), 100, []float64{0.3, -0.5, 0.2, 0.4})
	pl, err := NewPlan(p, Spec{Model: Logistic, Features: 3, Lambda: 1, Iterations: 10, Parties: 3, Rows: 300})
	if err != nil {
		t.Fatal(err)
	}
	point := encryptModel(t, p, keys.sk, []float64{0, 0, 0, 0}, pl.PointLevel)
	clone := func() dataset {
		c := dataset{x: make([][]float64, len(d.x)), y: append([]float64(nil), d.y...)}
		for i := range d.x {
			c.x[i] = append([]float64(nil), d.x[i]...)
		}
		return c
	}
	const secret = 1.734521
	for _, c := range []struct {
		name string
		edit func(*dataset)
		want string
	}{
		{"feature above 1", func(d *dataset) { d.x[1][17] = secret }, "row 17: scaled feature 2 is outside [-1, 1]"},
		{"feature below -1", func(d *dataset) { d.x[0][3] = -secret }, "row 3: scaled feature 1 is outside"},
		{"NaN feature", func(d *dataset) { d.x[2][0] = math.NaN() }, "row 0: scaled feature 3"},
		{"label not 0/1", func(d *dataset) { d.y[5] = secret }, "row 5: the label is not 0 or 1"},
		{"short column", func(d *dataset) { d.x[1] = d.x[1][:50] }, "feature 2 has 50 rows"},
		{"missing feature", func(d *dataset) { d.x = d.x[:2] }, "2 feature columns"},
	} {
		in := clone()
		c.edit(&in)
		_, err := pl.Gradient(p, keys.evk, point, in.x, in.y)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error saying %q", c.name, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "1.73") {
			t.Errorf("%s: the error %q shows the value", c.name, err)
		}
	}
	// A feature at 1 + 1e-12 (rounding of the scaling) is accepted.
	in := clone()
	in.x[0][0] = 1 + 1e-12
	if _, err := pl.Gradient(p, keys.evk, point, in.x, in.y); err != nil {
		t.Errorf("feature at 1+1e-12: %v", err)
	}
	// Points the plan cannot use.
	low := encryptModel(t, p, keys.sk, []float64{0, 0, 0, 0}, pl.GradientLevel-1)
	if _, err := pl.Gradient(p, keys.evk, low, d.x, d.y); err == nil || !strings.Contains(err.Error(), "level") {
		t.Errorf("point below the gradient level: got %v", err)
	}
	if _, err := pl.Gradient(p, keys.evk, point[:3], d.x, d.y); err == nil {
		t.Error("3 coefficients for 4 accepted")
	}
	if _, err := pl.Gradient(p, nil, point, d.x, d.y); err == nil || !strings.Contains(err.Error(), "relinearization") {
		t.Errorf("no keys: got %v", err)
	}
	if _, err := pl.Gradient(testParams(t, "ckks-n15"), keys.evk, point, d.x, d.y); err == nil {
		t.Error("another parameter set accepted")
	}

	lin, err := NewPlan(p, Spec{Model: Linear, Features: 3, Lambda: 1, Iterations: 10, Parties: 3, Rows: 300})
	if err != nil {
		t.Fatal(err)
	}
	in = clone()
	in.y[9] = -secret
	if _, err := lin.Gradient(p, nil, point, in.x, in.y); err == nil || !strings.Contains(err.Error(), "row 9: the scaled label is outside [-1, 1]") {
		t.Errorf("linear label outside: got %v", err)
	}
}
