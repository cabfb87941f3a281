package glm

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/synod-mpc/synod/engine/model"
)

// dataset is synthetic data in declared ranges: d features with ranges of
// various centers and widths, a linear label and a binary one.
type dataset struct {
	cols       [][]float64
	yLin, yLog []float64
	s          Scaling
}

func makeData(seed uint64, n, d int) *dataset {
	rng := rand.New(rand.NewPCG(seed, 7))
	ds := &dataset{cols: make([][]float64, d), yLin: make([]float64, n), yLog: make([]float64, n)}
	ds.s.Label = Column{Name: "outcome", Min: -50, Max: 250}
	beta, gamma := make([]float64, d), make([]float64, d)
	for c := range d {
		lo := rng.Float64()*200 - 100
		ds.s.Features = append(ds.s.Features, Column{Name: fmt.Sprintf("f%d", c), Min: lo, Max: lo + 0.5 + rng.Float64()*100})
		beta[c] = rng.NormFloat64() * 0.5 / math.Sqrt(float64(d))
		gamma[c] = rng.NormFloat64() * 1.5 / math.Sqrt(float64(d))
		ds.cols[c] = make([]float64, n)
	}
	for r := range n {
		lin, logit := 0.1, 0.3
		for c, f := range ds.s.Features {
			x := rng.Float64()*2 - 1
			ds.cols[c][r] = f.Min + (x+1)/2*(f.Max-f.Min)
			lin += beta[c] * x
			logit += gamma[c] * x
		}
		yp := min(max(lin+0.1*rng.NormFloat64(), -1), 1)
		ds.yLin[r] = 100 + 150*yp
		if rng.Float64() < 1/(1+math.Exp(-logit)) {
			ds.yLog[r] = 1
		}
	}
	return ds
}

// split cuts the rows into parties of the given sizes, in order.
func (ds *dataset) split(sizes ...int) []*dataset {
	var out []*dataset
	lo := 0
	for _, m := range sizes {
		part := &dataset{s: ds.s, yLin: ds.yLin[lo : lo+m], yLog: ds.yLog[lo : lo+m]}
		for _, col := range ds.cols {
			part.cols = append(part.cols, col[lo:lo+m])
		}
		out = append(out, part)
		lo += m
	}
	return out
}

// scaled is the test's own scaling: (v - center)/half, no clamp.
func scaled(f Column, v float64) float64 { return (v - (f.Min+f.Max)/2) / ((f.Max - f.Min) / 2) }

func (ds *dataset) row(r int) []float64 {
	z := []float64{1}
	for c, f := range ds.s.Features {
		z = append(z, scaled(f, ds.cols[c][r]))
	}
	return z
}

// gradient is ∇F(b) summed a row at a time, independently of the package.
func (ds *dataset) gradient(kind Kind, b []float64, lambda float64) []float64 {
	n := len(ds.yLin)
	g := make([]float64, len(b))
	for r := range n {
		z, eta := ds.row(r), 0.0
		for i := range z {
			eta += z[i] * b[i]
		}
		var res float64 // d loss / d eta
		if kind == Linear {
			res = eta - scaled(ds.s.Label, ds.yLin[r])
		} else {
			res = 1/(1+math.Exp(-eta)) - ds.yLog[r]
		}
		for i := range z {
			g[i] += z[i] * res / float64(n)
		}
	}
	for c := 1; c < len(b); c++ {
		g[c] += lambda * b[c]
	}
	return g
}

func norm(v []float64) float64 { return math.Sqrt(dot(v, v)) }

func relDiff(a, b []float64) float64 {
	d := make([]float64, len(a))
	for i := range a {
		d[i] = a[i] - b[i]
	}
	return norm(d) / norm(b)
}

func sumStats(t *testing.T, parts []*dataset, stats func(*dataset) ([]float64, error)) []float64 {
	t.Helper()
	var sum []float64
	for i, part := range parts {
		v, err := stats(part)
		if err != nil {
			t.Fatalf("party %d: %v", i, err)
		}
		if sum == nil {
			sum = make([]float64, len(v))
		}
		for k := range v {
			sum[k] += v[k]
		}
	}
	return sum
}

// closeSlots compares statistics slot by slot, relative to the slot's
// magnitude, or absolutely for slots below 1: every term of a sum is at most
// 1, so for a few thousand rows rounding stays far below 1e-9 either way.
func closeSlots(t *testing.T, kind Kind, p int, got, want []float64, tol float64) {
	t.Helper()
	labels := Labels(kind, p)
	for k := range want {
		if d := math.Abs(got[k] - want[k]); !(d <= tol*max(math.Abs(want[k]), 1)) {
			t.Errorf("%s: %v, want %v (difference %.3g)", labels[k], got[k], want[k], d)
		}
	}
}

// naiveStats sums the statistics a row at a time in the layout the package
// doc describes, with the test's own scaling.
func naiveStats(kind Kind, ds *dataset, b []float64) []float64 {
	p := ds.s.P()
	out := make([]float64, StatsLen(kind, p))
	for r := range ds.yLin {
		z, eta := ds.row(r), 0.0
		for i := range z {
			eta += z[i] * b[i]
		}
		w, v := 1.0, scaled(ds.s.Label, ds.yLin[r])
		if kind == Logistic {
			mu := 1 / (1 + math.Exp(-eta))
			w, v = mu*(1-mu), ds.yLog[r]-mu
			loss := -math.Log(mu)
			if ds.yLog[r] == 0 {
				loss = -math.Log(1 - mu)
			}
			out[len(out)-2] -= loss
			out[len(out)-1]++
		} else {
			out[len(out)-1] += v * v
		}
		k := 0
		for i := range p {
			for j := i; j < p; j++ {
				out[k] += w * z[i] * z[j]
				k++
			}
		}
		for i := range p {
			out[k+i] += z[i] * v
		}
	}
	return out
}

func TestStatsMatchRowByRowSums(t *testing.T) {
	ds := makeData(1, 1000, 5)
	p := ds.s.P()
	lin, err := LinearStats(ds.cols, ds.yLin, ds.s)
	if err != nil {
		t.Fatal(err)
	}
	closeSlots(t, Linear, p, lin, naiveStats(Linear, ds, make([]float64, p)), 1e-9)
	b := []float64{0.2, -0.5, 0.3, 1, -1.2, 0.05}
	logi, err := LogisticStats(ds.cols, ds.yLog, ds.s, b)
	if err != nil {
		t.Fatal(err)
	}
	closeSlots(t, Logistic, p, logi, naiveStats(Logistic, ds, b), 1e-9)
	if lin[0] != 1000 || logi[len(logi)-1] != 1000 {
		t.Errorf("row counts zz[0,0] = %v, n = %v, want 1000", lin[0], logi[len(logi)-1])
	}
}

func TestPartySumsEqualPooled(t *testing.T) {
	ds := makeData(2, 3000, 8)
	p := ds.s.P()
	// Uneven parties: one smaller than a block, one empty, block
	// boundaries falling anywhere.
	parts := ds.split(1700, 3, 0, 1297)
	b := make([]float64, p)
	for i := range b {
		b[i] = 0.1 * float64(i%3-1)
	}
	pooledLin, err := LinearStats(ds.cols, ds.yLin, ds.s)
	if err != nil {
		t.Fatal(err)
	}
	sumLin := sumStats(t, parts, func(d *dataset) ([]float64, error) { return LinearStats(d.cols, d.yLin, d.s) })
	closeSlots(t, Linear, p, sumLin, pooledLin, 1e-9)
	pooledLog, err := LogisticStats(ds.cols, ds.yLog, ds.s, b)
	if err != nil {
		t.Fatal(err)
	}
	sumLog := sumStats(t, parts, func(d *dataset) ([]float64, error) { return LogisticStats(d.cols, d.yLog, d.s, b) })
	closeSlots(t, Logistic, p, sumLog, pooledLog, 1e-9)
}

func TestSolveLinearMatchesPooledFitAndKKT(t *testing.T) {
	ds := makeData(3, 2500, 6)
	p := ds.s.P()
	parts := ds.split(1000, 900, 600)
	stats := sumStats(t, parts, func(d *dataset) ([]float64, error) { return LinearStats(d.cols, d.yLin, d.s) })
	for _, lambda := range []float64{0, 1e-3, 0.5} {
		sol, err := SolveLinear(stats, p, lambda)
		if err != nil {
			t.Fatalf("lambda %g: %v", lambda, err)
		}
		ref, err := FitLinear(ds.cols, ds.yLin, ds.s, lambda)
		if err != nil {
			t.Fatalf("lambda %g: %v", lambda, err)
		}
		if d := relDiff(sol.B, ref); d > 1e-9 {
			t.Errorf("lambda %g: solution %v differs from the pooled QR fit %v by %.3g relative", lambda, sol.B, ref, d)
		}
		if g := norm(ds.gradient(Linear, sol.B, lambda)); g > 1e-9 {
			t.Errorf("lambda %g: gradient norm %.3g at the solution", lambda, g)
		}
		f, err := Objective(Linear, ds.cols, ds.yLin, ds.s, sol.B, lambda)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(sol.Objective-f) > 1e-12 {
			t.Errorf("lambda %g: objective from statistics %v, on rows %v", lambda, sol.Objective, f)
		}
		if !(sol.Condition >= 1 && sol.Condition < 10) {
			t.Errorf("lambda %g: condition estimate %v for independent uniform features, expected about 3", lambda, sol.Condition)
		}
	}
}

// TestRidgeByHand: x = (0, 2, 2) declared in [0, 2] scales to x' = (-1, 1,
// 1); y = (0, 10, 5) declared in [0, 10] to y' = (-1, 1, 0). So ZᵀZ =
// [[3, 1], [1, 3]], Zᵀy' = (0, 2), y'ᵀy' = 2, and with λ = 1/3 (nλ = 1) the
// system [[3, 1], [1, 4]] b = (0, 2) has determinant 11 and solution
// b = (-2/11, 6/11) by Cramer's rule. The residuals y' - Zb are
// (-3, 7, -4)/11, so F = (74/121)/6 + (1/6)(36/121) = 5/33, and the model
// predicts 5 + 5·(-2/11) = 45/11 at x = 1.
func TestRidgeByHand(t *testing.T) {
	s := Scaling{Features: []Column{{Name: "x", Min: 0, Max: 2}}, Label: Column{Name: "y", Min: 0, Max: 10}}
	cols, y := [][]float64{{0, 2, 2}}, []float64{0, 10, 5}
	stats, err := LinearStats(cols, y, s)
	if err != nil {
		t.Fatal(err)
	}
	wantStats := []float64{3, 1, 3, 0, 2, 2}
	closeSlots(t, Linear, 2, stats, wantStats, 1e-15)
	sol, err := SolveLinear(stats, 2, 1.0/3)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{-2.0 / 11, 6.0 / 11}
	ref, err := FitLinear(cols, y, s, 1.0/3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if math.Abs(sol.B[i]-want[i]) > 1e-15 || math.Abs(ref[i]-want[i]) > 1e-15 {
			t.Errorf("b[%d]: SolveLinear %v, FitLinear %v, want %v", i, sol.B[i], ref[i], want[i])
		}
	}
	if math.Abs(sol.Objective-5.0/33) > 1e-15 {
		t.Errorf("objective %v, want 5/33", sol.Objective)
	}
	m, err := ToModel(Linear, s, sol.B, "ridge")
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Predict([]float64{1})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got[0]-45.0/11) > 1e-13 {
		t.Errorf("prediction at x=1: %v, want 45/11", got[0])
	}
}

func TestNewtonOnPartyStatsMatchesPooledFit(t *testing.T) {
	ds := makeData(4, 3000, 6)
	p := ds.s.P()
	parts := ds.split(1200, 1100, 700)
	for _, lambda := range []float64{1e-4, 0.01} {
		b := make([]float64, p)
		iters, converged := 0, false
		for iters < 25 && !converged {
			stats := sumStats(t, parts, func(d *dataset) ([]float64, error) { return LogisticStats(d.cols, d.yLog, d.s, b) })
			step, err := NewtonStep(stats, p, b, lambda)
			if err != nil {
				t.Fatalf("lambda %g, iteration %d: %v", lambda, iters, err)
			}
			f, err := Objective(Logistic, ds.cols, ds.yLog, ds.s, b, lambda)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(step.Objective-f) > 1e-12 {
				t.Errorf("lambda %g, iteration %d: objective from statistics %v, on rows %v", lambda, iters, step.Objective, f)
			}
			if g := norm(ds.gradient(Logistic, b, lambda)); math.Abs(g-step.GradNorm) > 1e-12 {
				t.Errorf("lambda %g, iteration %d: gradient norm %v, on rows %v", lambda, iters, step.GradNorm, g)
			}
			converged = Converged(step, 1e-10)
			b = step.Next
			iters++
		}
		if !converged {
			t.Fatalf("lambda %g: not converged after %d Newton steps", lambda, iters)
		}
		ref, gn, err := FitLogistic(ds.cols, ds.yLog, ds.s, lambda, 50)
		if err != nil {
			t.Fatal(err)
		}
		if gn >= 1e-12 {
			t.Fatalf("lambda %g: the pooled fit stopped at gradient norm %.3g", lambda, gn)
		}
		if d := relDiff(b, ref); d > 1e-6 {
			t.Errorf("lambda %g: distributed fit %v differs from the pooled fit %v by %.3g relative", lambda, b, ref, d)
		}
		if g := norm(ds.gradient(Logistic, b, lambda)); g > 1e-9 {
			t.Errorf("lambda %g: gradient norm %.3g after %d steps", lambda, g, iters)
		}
		t.Logf("lambda %g: converged in %d Newton steps", lambda, iters)
	}
}

// valueFree checks that an error names what it should and not the value.
func valueFree(t *testing.T, err error, value string, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if strings.Contains(err.Error(), value) {
		t.Errorf("error %q reveals the value %s", err, value)
	}
}

func TestOutOfRangeValuesRefusedWithoutTheValue(t *testing.T) {
	ds := makeData(5, 600, 3)
	b := make([]float64, ds.s.P())
	for _, bad := range []float64{ds.s.Features[1].Max + 123.456, math.NaN()} {
		cols := append([][]float64(nil), ds.cols...)
		cols[1] = append([]float64(nil), cols[1]...)
		cols[1][299] = bad // row 300, in the second block
		value := fmt.Sprintf("%.4g", bad)
		_, err := LinearStats(cols, ds.yLin, ds.s)
		valueFree(t, err, value, `"f1"`, "row 300")
		_, err = LogisticStats(cols, ds.yLog, ds.s, b)
		valueFree(t, err, value, `"f1"`, "row 300")
		_, err = FitLinear(cols, ds.yLin, ds.s, 0)
		valueFree(t, err, value, `"f1"`, "row 300")
		_, err = Predict(Logistic, cols, ds.s, b)
		valueFree(t, err, value, `"f1"`, "row 300")
	}
	y := append([]float64(nil), ds.yLin...)
	y[41] = -987.25
	_, err := LinearStats(ds.cols, y, ds.s)
	valueFree(t, err, "987", `"outcome"`, "row 42")
	labels := append([]float64(nil), ds.yLog...)
	labels[2], labels[8], labels[500] = 2, -1, 0.5
	_, err = LogisticStats(ds.cols, labels, ds.s, b)
	valueFree(t, err, "0.5", `"outcome"`, "3 rows", "row 3")
	_, _, err = FitLogistic(ds.cols, labels, ds.s, 0.1, 10)
	valueFree(t, err, "0.5", "3 rows")
}

func TestDeclaredRangesChecked(t *testing.T) {
	for _, c := range []Column{{Name: "w", Min: 3, Max: 3}, {Name: "w", Min: 4, Max: 3}, {Name: "w", Min: 0, Max: math.Inf(1)}, {Name: "w", Min: math.NaN(), Max: 1}} {
		s := Scaling{Features: []Column{c}, Label: Column{Name: "y", Min: 0, Max: 1}}
		if err := s.Validate(Linear); err == nil || !strings.Contains(err.Error(), `"w"`) {
			t.Errorf("range [%v, %v]: %v", c.Min, c.Max, err)
		}
		if _, err := LinearStats([][]float64{{3}}, []float64{0}, s); err == nil {
			t.Errorf("range [%v, %v]: statistics computed", c.Min, c.Max)
		}
	}
	s := Scaling{Features: []Column{{Name: "x", Min: 0, Max: 1}}, Label: Column{Name: "y", Min: 2, Max: 2}}
	if err := s.Validate(Linear); err == nil {
		t.Error("a zero-width label range accepted for linear regression")
	}
	if err := s.Validate(Logistic); err != nil {
		t.Errorf("logistic regression ignores the label range: %v", err)
	}
}

func TestToModelRoundTrip(t *testing.T) {
	ds := makeData(6, 800, 5)
	lin, err := FitLinear(ds.cols, ds.yLin, ds.s, 0.01)
	if err != nil {
		t.Fatal(err)
	}
	logi, _, err := FitLogistic(ds.cols, ds.yLog, ds.s, 0.01, 30)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		kind Kind
		b    []float64
	}{{Linear, lin}, {Logistic, logi}} {
		m, err := ToModel(tc.kind, ds.s, tc.b, tc.kind.String())
		if err != nil {
			t.Fatal(err)
		}
		js, err := m.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		back, err := model.ParseJSON(js)
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.kind, err, js)
		}
		want, err := Predict(tc.kind, ds.cols, ds.s, tc.b)
		if err != nil {
			t.Fatal(err)
		}
		for r := range want {
			record := make([]float64, len(ds.cols))
			for c := range record {
				record[c] = ds.cols[c][r]
			}
			got, err := back.Predict(record)
			if err != nil {
				t.Fatal(err)
			}
			// The raw coefficients, scaled by the test's own arithmetic.
			z, eta := ds.row(r), 0.0
			for i := range z {
				eta += z[i] * tc.b[i]
			}
			raw := 1 / (1 + math.Exp(-eta))
			if tc.kind == Linear {
				raw = 100 + 150*eta
			}
			if math.Abs(got[0]-raw) > 1e-9*max(1, math.Abs(raw)) || math.Abs(want[r]-raw) > 1e-9*max(1, math.Abs(raw)) {
				t.Fatalf("%s row %d: model %v, Predict %v, raw coefficients %v", tc.kind, r+1, got[0], want[r], raw)
			}
		}
		if tc.kind == Logistic {
			// The records that push the logit furthest either way, every
			// feature at the end of its range that b's sign favours, lie
			// inside the declared interval.
			for _, sign := range []float64{1, -1} {
				record := make([]float64, len(ds.s.Features))
				for c, f := range ds.s.Features {
					record[c] = f.Min
					if sign*tc.b[c+1] > 0 {
						record[c] = f.Max
					}
				}
				if err := back.CheckRecord(record); err != nil {
					t.Errorf("extreme in-range record: %v", err)
				}
			}
		}
	}
}

func TestRankDeficientDesignRefused(t *testing.T) {
	ds := makeData(7, 500, 3)
	dup := *ds
	dup.cols = append([][]float64(nil), ds.cols...)
	dup.cols[2] = ds.cols[0] // feature 2 repeats feature 0
	dup.s.Features = append([]Column(nil), ds.s.Features...)
	dup.s.Features[2] = ds.s.Features[0]
	dup.s.Features[2].Name = "copy"
	constant := *ds
	constant.cols = append([][]float64(nil), ds.cols...)
	constant.cols[1] = make([]float64, 500)
	constant.s.Features = append([]Column(nil), ds.s.Features...)
	constant.s.Features[1] = Column{Name: "const", Min: -1, Max: 1}
	for _, tc := range []struct {
		name string
		ds   *dataset
		coef int
	}{{"duplicate", &dup, 3}, {"constant", &constant, 2}} {
		p := tc.ds.s.P()
		stats, err := LinearStats(tc.ds.cols, tc.ds.yLin, tc.ds.s)
		if err != nil {
			t.Fatal(err)
		}
		_, err = SolveLinear(stats, p, 0)
		var pe *PivotError
		if !errors.As(err, &pe) || pe.Coefficient != tc.coef {
			t.Fatalf("%s: %v, want a pivot error at coefficient %d", tc.name, err, tc.coef)
		}
		for _, w := range []string{fmt.Sprintf("coefficient %d", tc.coef), "collinear", "--l2"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tc.name, err, w)
			}
		}
		if _, err := FitLinear(tc.ds.cols, tc.ds.yLin, tc.ds.s, 0); !errors.As(err, &pe) || pe.Coefficient != tc.coef {
			t.Errorf("%s: pooled fit: %v", tc.name, err)
		}
		logStats, err := LogisticStats(tc.ds.cols, tc.ds.yLog, tc.ds.s, make([]float64, p))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := NewtonStep(logStats, p, make([]float64, p), 0); !errors.As(err, &pe) || pe.Coefficient != tc.coef {
			t.Errorf("%s: Newton step: %v", tc.name, err)
		}
		// An L2 penalty makes the system definite again.
		sol, err := SolveLinear(stats, p, 1e-3)
		if err != nil {
			t.Fatalf("%s with --l2: %v", tc.name, err)
		}
		ref, err := FitLinear(tc.ds.cols, tc.ds.yLin, tc.ds.s, 1e-3)
		if err != nil {
			t.Fatal(err)
		}
		if d := relDiff(sol.B, ref); d > 1e-9 {
			t.Errorf("%s with --l2: %v vs pooled %v", tc.name, sol.B, ref)
		}
	}
}

func TestConditionEstimateSeesNearCollinearity(t *testing.T) {
	ds := makeData(8, 2000, 2)
	rng := rand.New(rand.NewPCG(8, 8))
	f0, f1 := ds.s.Features[0], ds.s.Features[1]
	for r := range ds.yLin { // feature 1 follows feature 0 up to 1e-3 of its range
		x := scaled(f0, ds.cols[0][r])*0.999 + 0.001*(rng.Float64()*2-1)
		ds.cols[1][r] = f1.Min + (x+1)/2*(f1.Max-f1.Min)
	}
	stats, err := LinearStats(ds.cols, ds.yLin, ds.s)
	if err != nil {
		t.Fatal(err)
	}
	sol, err := SolveLinear(stats, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	if sol.Condition < 1e4 {
		t.Errorf("condition estimate %.3g for features correlated to 1e-3", sol.Condition)
	}
}

func TestSensitivitiesBoundOneRow(t *testing.T) {
	const d = 3
	p := d + 1
	s := Scaling{Label: Column{Name: "y", Min: -2, Max: 6}}
	for c := range d {
		s.Features = append(s.Features, Column{Name: fmt.Sprint(c), Min: float64(c), Max: float64(2*c + 1)})
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for trial := range 200 {
		cols := make([][]float64, d)
		for c, f := range s.Features {
			u := rng.Float64()
			if trial%2 == 0 { // corners
				u = float64(rng.IntN(2))
			}
			cols[c] = []float64{f.Min + u*(f.Max-f.Min)}
		}
		yl := []float64{[]float64{-2, 6}[rng.IntN(2)]}
		if trial%2 == 1 {
			yl[0] = -2 + 8*rng.Float64()
		}
		b := make([]float64, p)
		for i := range b {
			b[i] = rng.NormFloat64() * float64(1+trial%20) // up to huge logits
		}
		lin, err := LinearStats(cols, yl, s)
		if err != nil {
			t.Fatal(err)
		}
		logi, err := LogisticStats(cols, []float64{float64(rng.IntN(2))}, s, b)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			kind  Kind
			stats []float64
		}{{Linear, lin}, {Logistic, logi}} {
			sens := Sensitivities(tc.kind, p)
			for k, v := range tc.stats {
				if math.Abs(v) > sens[k] {
					t.Fatalf("%s slot %s: one row contributes %v, beyond the sensitivity %v", tc.kind, Labels(tc.kind, p)[k], v, sens[k])
				}
			}
		}
		if trial%2 == 0 { // at a corner every linear slot is ±1: the bound is tight
			for k, v := range lin {
				if math.Abs(v) != 1 {
					t.Fatalf("corner row: slot %s is %v, expected ±1", Labels(Linear, p)[k], v)
				}
			}
		}
	}
}

func TestLogLikelihoodClipped(t *testing.T) {
	s := Scaling{Features: []Column{{Name: "x", Min: 0, Max: 1}}, Label: Column{Name: "y"}}
	// x' = 1 and b = (0, 40): the logit is 40 and the label 0, a loss of 40.
	stats, err := LogisticStats([][]float64{{1, 1}}, []float64{0, 1}, s, []float64{0, 40})
	if err != nil {
		t.Fatal(err)
	}
	want := -LogLossClip - math.Log1p(math.Exp(-40))
	if got := stats[len(stats)-2]; math.Abs(got-want) > 1e-15 {
		t.Errorf("loglik %v, want %v (one row clipped at %v)", got, want, LogLossClip)
	}
}

func TestLayoutLabels(t *testing.T) {
	lin, logi := Labels(Linear, 3), Labels(Logistic, 3)
	if len(lin) != StatsLen(Linear, 3) || len(lin) != 10 || len(logi) != StatsLen(Logistic, 3) || len(logi) != 11 {
		t.Fatalf("%d and %d labels", len(lin), len(logi))
	}
	for k, want := range map[int]string{0: "zz[0,0]", 1: "zz[0,1]", 3: "zz[1,1]", 5: "zz[2,2]", 6: "zy[0]", 8: "zy[2]", 9: "yy"} {
		if lin[k] != want {
			t.Errorf("linear slot %d: %q, want %q", k, lin[k], want)
		}
	}
	for k, want := range map[int]string{4: "zwz[1,2]", 6: "zr[0]", 9: "loglik", 10: "n"} {
		if logi[k] != want {
			t.Errorf("logistic slot %d: %q, want %q", k, logi[k], want)
		}
	}
	if len(Sensitivities(Linear, 3)) != 10 || len(Sensitivities(Logistic, 3)) != 11 {
		t.Error("sensitivities and labels differ in length")
	}
}

func TestLogLossAndAccuracy(t *testing.T) {
	y, prob := []float64{1, 0, 1, 0}, []float64{0.9, 0.2, 0.4, 0}
	ll, err := LogLoss(y, prob)
	if err != nil {
		t.Fatal(err)
	}
	want := -(math.Log(0.9) + math.Log(0.8) + math.Log(0.4) + math.Log1p(-1e-15)) / 4
	if math.Abs(ll-want) > 1e-15 {
		t.Errorf("log-loss %v, want %v", ll, want)
	}
	acc, err := Accuracy(y, prob)
	if err != nil || acc != 0.75 {
		t.Errorf("accuracy %v, %v; want 0.75", acc, err)
	}
	if _, err := LogLoss(y, prob[:3]); err == nil {
		t.Error("mismatched lengths accepted")
	}
}

func benchmarkData(n, d int) *dataset { return makeData(10, n, d) }

func BenchmarkLinearStats(b *testing.B) {
	ds := benchmarkData(100_000, 30)
	b.ResetTimer()
	for b.Loop() {
		if _, err := LinearStats(ds.cols, ds.yLin, ds.s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLogisticStats(b *testing.B) {
	ds := benchmarkData(100_000, 30)
	coef := make([]float64, ds.s.P())
	for i := range coef {
		coef[i] = 0.05 * float64(i%5-2)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := LogisticStats(ds.cols, ds.yLog, ds.s, coef); err != nil {
			b.Fatal(err)
		}
	}
}
