package train

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/synod-mpc/synod/engine/model"
)

// A 30-feature logistic regression with lambda = 0.01: R = 11.8, the
// sigmoid on [-66, 66] needs degree 127 (7 levels), 12 levels in all with
// the refresh minimum of 3 — more than the 7 of ckks-n14, within the 15 of
// ckks-n15.
var wideSpec = Spec{Model: Logistic, Features: 30, Lambda: 0.01, Iterations: 20, Parties: 3, Rows: 30000}

func TestPlanRefusesTooDeep(t *testing.T) {
	_, err := NewPlan(testParams(t, "ckks-n14"), wideSpec)
	if !errors.Is(err, ErrTooDeep) {
		t.Fatalf("ckks-n14: got %v, want ErrTooDeep", err)
	}
	for _, want := range []string{"needs 12 levels", "degree 127", "ckks-n14 has 7", "it fits ckks-n15"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	pl, err := NewPlan(testParams(t, "ckks-n15"), wideSpec)
	if err != nil {
		t.Fatalf("ckks-n15: %v", err)
	}
	if pl.Degree != 127 || pl.GradientLevel != 12 || pl.LevelsNeeded != 12 || pl.PointLevel != 15 {
		t.Errorf("ckks-n15: degree %d, gradient level %d, levels %d, point level %d; want 127, 12, 12, 15", pl.Degree, pl.GradientLevel, pl.LevelsNeeded, pl.PointLevel)
	}
}

func TestPlanRefusesBeyondEveryParameterSet(t *testing.T) {
	spec := wideSpec
	spec.Lambda = 1e-6 // R = 1177, B = 6500: beyond degree 1023
	_, err := NewPlan(testParams(t, "ckks-n15"), spec)
	if !errors.Is(err, ErrTooDeep) || !strings.Contains(err.Error(), "no registered parameter set fits") {
		t.Fatalf("got %v, want ErrTooDeep naming no parameter set", err)
	}
}

func TestPlanInterval(t *testing.T) {
	p := testParams(t, "ckks-n15")
	pl, err := NewPlan(p, wideSpec)
	if err != nil {
		t.Fatal(err)
	}
	coeffs := float64(wideSpec.Features + 1)
	L := coeffs/4 + wideSpec.Lambda
	if math.Abs(pl.Smoothness-L) > 1e-12 || math.Abs(pl.StepSize-1/L) > 1e-12 {
		t.Errorf("smoothness %g step %g, want %g and %g", pl.Smoothness, pl.StepSize, L, 1/L)
	}
	eps := wideSpec.MaxApproxError + noiseAllowance
	if wideSpec.MaxApproxError == 0 {
		eps = DefaultMaxApproxError + noiseAllowance
	}
	r := math.Sqrt(2 * (math.Ln2 + float64(wideSpec.Iterations)*pl.StepSize*eps*eps*coeffs/2) / wideSpec.Lambda)
	if math.Abs(pl.Radius-r) > 1e-9*r || !pl.RadiusDerived || pl.RuntimeNormCheck {
		t.Errorf("radius %g (derived %v, runtime check %v), want %g derived without check", pl.Radius, pl.RadiusDerived, pl.RuntimeNormCheck, r)
	}
	if math.Abs(pl.Bound-r*math.Sqrt(coeffs)) > 1e-9 {
		t.Errorf("bound %g, want R*sqrt(p) = %g", pl.Bound, r*math.Sqrt(coeffs))
	}
	// The degree is the smallest 2^k-1 meeting the error.
	if pl.ApproxError > DefaultMaxApproxError {
		t.Errorf("approximation error %g above the target", pl.ApproxError)
	}
	lower, err := model.Approximate(model.Sigmoid, -pl.Bound, pl.Bound, (pl.Degree-1)/2)
	if err != nil {
		t.Fatal(err)
	}
	if lower.MaxError() <= DefaultMaxApproxError {
		t.Errorf("degree %d chosen, but degree %d already has error %g", pl.Degree, lower.Degree(), lower.MaxError())
	}
	if want := -pl.StepSize * float64(p.MaxSlots()) / float64(wideSpec.Rows); pl.GradientFactor != want {
		t.Errorf("gradient factor %g, want %g", pl.GradientFactor, want)
	}
}

func TestPlanRuntimeCheck(t *testing.T) {
	p := testParams(t, "ckks-n15")
	base := Spec{Model: Logistic, Features: 3, Lambda: 0.1, Iterations: 20, Parties: 3, Rows: 12000}
	derived, err := NewPlan(p, base)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		edit  func(*Spec)
		check bool
	}{
		{"gradient descent, derived radius", func(*Spec) {}, false},
		{"momentum", func(s *Spec) { s.Momentum = true }, true},
		{"explicit radius below the derived one", func(s *Spec) { s.Radius = derived.Radius / 2 }, true},
		{"explicit radius above the derived one", func(s *Spec) { s.Radius = derived.Radius * 2 }, false},
		{"no penalty, explicit radius", func(s *Spec) { s.Lambda, s.Radius = 0, 3 }, true},
		{"step above 1/L, explicit radius", func(s *Spec) { s.StepSize, s.Radius = 2/derived.Smoothness, 3 }, true},
		{"linear with momentum", func(s *Spec) { s.Model, s.Momentum = Linear, true }, false},
	} {
		s := base
		c.edit(&s)
		pl, err := NewPlan(p, s)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if pl.RuntimeNormCheck != c.check {
			t.Errorf("%s: runtime check %v, want %v (%s)", c.name, pl.RuntimeNormCheck, c.check, pl.RadiusReason)
		}
		if strings.Contains(pl.Explain(), "RUNTIME CHECK REQUIRED") != c.check {
			t.Errorf("%s: Explain does not say whether the runtime check is required:\n%s", c.name, pl.Explain())
		}
	}
}

func TestPlanRefusesSpecs(t *testing.T) {
	p := testParams(t, "ckks-n15")
	base := Spec{Model: Logistic, Features: 3, Lambda: 0.1, Iterations: 20, Parties: 3, Rows: 12000}
	for _, c := range []struct {
		name string
		edit func(*Spec)
		want string
	}{
		{"unknown model", func(s *Spec) { s.Model = "poisson" }, "unknown model"},
		{"no features", func(s *Spec) { s.Features = 0 }, "features"},
		{"negative lambda", func(s *Spec) { s.Lambda = -1 }, "lambda"},
		{"NaN lambda", func(s *Spec) { s.Lambda = math.NaN() }, "lambda"},
		{"no iterations", func(s *Spec) { s.Iterations = 0 }, "iterations"},
		{"no parties", func(s *Spec) { s.Parties = 0 }, "parties"},
		{"no rows", func(s *Spec) { s.Rows = 0 }, "rows"},
		{"batch beyond the slots", func(s *Spec) { s.Slots = p.MaxSlots() + 1 }, "rows per batch"},
		{"approximation error", func(s *Spec) { s.MaxApproxError = 0.9 }, "approximation error"},
		{"no penalty, no radius", func(s *Spec) { s.Lambda = 0 }, "lambda = 0"},
		{"step above 1/L", func(s *Spec) { s.StepSize = 10 }, "exceeds 1/L"},
		{"momentum without penalty", func(s *Spec) { s.Lambda, s.Momentum, s.Radius = 0, true, 3 }, "momentum needs lambda"},
	} {
		s := base
		c.edit(&s)
		_, err := NewPlan(p, s)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error saying %q", c.name, err, c.want)
		}
	}
}

func TestPlanExplain(t *testing.T) {
	pl, err := NewPlan(testParams(t, "ckks-n15"), wideSpec)
	if err != nil {
		t.Fatal(err)
	}
	pl.Costs = &Costs{Encode: time.Millisecond, PlainMul: time.Millisecond, Sigmoid: time.Second, Refresh: 100 * time.Millisecond}
	text := pl.Explain()
	t.Log(text)
	// One batch per party (10000 rows): 31 encodings, 62 products, one
	// sigmoid; 31 encodings of the label term; then 31 refreshes.
	wantBatch := 31*time.Millisecond + 62*time.Millisecond + time.Second
	if got := pl.BatchTime(*pl.Costs); got != wantBatch {
		t.Errorf("batch time %v, want %v", got, wantBatch)
	}
	if got, want := pl.IterationTime(*pl.Costs), wantBatch+31*time.Millisecond+31*100*time.Millisecond; got != want {
		t.Errorf("iteration time %v, want %v", got, want)
	}
	for _, want := range []string{"sigmoid on [-", "degree 127", "R = 11.", "intercept penalized", "31 collective refreshes", "sends 31 ciphertexts at level 3", "estimated time"} {
		if !strings.Contains(text, want) {
			t.Errorf("Explain does not say %q", want)
		}
	}
}
