package policy

import (
	"errors"
	"math"
	"slices"
	"testing"
)

func TestCheckNamesTheRule(t *testing.T) {
	p := &Policy{Analysts: []string{"alice"}, Columns: map[string][]string{"patients": {"age", "bmi"}},
		DP: DP{Require: true, MaxEpsilon: 1, Budget: 3}}
	ok := Request{Analyst: "alice", Dataset: "patients", Columns: []string{"age"}, Epsilon: 0.5, Spent: 1}
	if err := p.Check(ok); err != nil {
		t.Fatalf("allowed request refused: %v", err)
	}
	for rule, r := range map[string]Request{
		"analysts":       {Analyst: "mallory", Dataset: "patients", Epsilon: 0.5},
		"columns":        {Analyst: "alice", Dataset: "patients", Columns: []string{"age", "hiv_status"}, Epsilon: 0.5},
		"dp.require":     {Analyst: "alice", Dataset: "patients", Columns: []string{"age"}},
		"dp.max_epsilon": {Analyst: "alice", Dataset: "patients", Epsilon: 2},
		"dp.budget":      {Analyst: "alice", Dataset: "patients", Epsilon: 0.5, Spent: 2.75},
	} {
		var ref *Refusal
		if err := p.Check(r); !errors.As(err, &ref) || ref.Rule != rule {
			t.Errorf("want refusal by rule %s, got %v", rule, err)
		}
	}
	if err := (&Policy{}).Check(Request{Analyst: "x", Dataset: "d", Columns: []string{"c"}}); err != nil {
		t.Fatalf("the zero policy refused: %v", err)
	}
}

// The sum of n Laplace shares is Laplace(0, b): variance 2b^2, excess
// kurtosis 3, and its CDF matches (Kolmogorov-Smirnov, seeded).
func TestLaplaceSharesSumToLaplace(t *testing.T) {
	rng := NewSeededNoiseSource(42)
	const b, parties, runs = 2.5, 4, 20000
	sums := make([]float64, runs)
	for i := range sums {
		for range parties {
			sums[i] += LaplaceShare(rng, b, parties)
		}
	}
	mean, variance, kurt := moments(sums)
	if math.Abs(mean) > 0.1 || math.Abs(variance-2*b*b)/(2*b*b) > 0.05 || math.Abs(kurt-3) > 0.6 {
		t.Fatalf("mean %g, variance %g (want %g), excess kurtosis %g (want 3)", mean, variance, 2*b*b, kurt)
	}
	cdf := func(x float64) float64 {
		if x < 0 {
			return 0.5 * math.Exp(x/b)
		}
		return 1 - 0.5*math.Exp(-x/b)
	}
	if d := ks(sums, cdf); d > 1.36/math.Sqrt(runs) { // 95% critical value
		t.Fatalf("Kolmogorov-Smirnov distance %g to Laplace(0, %g)", d, b)
	}
}

func TestGaussianSharesSumToGaussian(t *testing.T) {
	rng := NewSeededNoiseSource(7)
	const sigma, parties, runs = 3.0, 3, 20000
	sums := make([]float64, runs)
	for i := range sums {
		for range parties {
			sums[i] += GaussianShare(rng, sigma, parties)
		}
	}
	_, variance, kurt := moments(sums)
	if math.Abs(variance-sigma*sigma)/(sigma*sigma) > 0.05 || math.Abs(kurt) > 0.3 {
		t.Fatalf("variance %g (want %g), excess kurtosis %g (want 0)", variance, sigma*sigma, kurt)
	}
	cdf := func(x float64) float64 { return 0.5 * math.Erfc(-x/(sigma*math.Sqrt2)) }
	if d := ks(sums, cdf); d > 1.36/math.Sqrt(runs) {
		t.Fatalf("Kolmogorov-Smirnov distance %g to N(0, %g^2)", d, sigma)
	}
}

func moments(xs []float64) (mean, variance, excessKurtosis float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	var m2, m4 float64
	for _, x := range xs {
		d := (x - mean) * (x - mean)
		m2 += d
		m4 += d * d
	}
	m2 /= float64(len(xs))
	m4 /= float64(len(xs))
	return mean, m2, m4/(m2*m2) - 3
}

func ks(xs []float64, cdf func(float64) float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	d := 0.0
	for i, x := range s {
		f := cdf(x)
		d = math.Max(d, math.Max(math.Abs(f-float64(i)/float64(len(s))), math.Abs(float64(i+1)/float64(len(s))-f)))
	}
	return d
}
