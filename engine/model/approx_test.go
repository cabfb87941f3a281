package model

import (
	"math"
	"testing"
)

// TestApproximationTable measures the interpolation errors documented in
// approx.go.
func TestApproximationTable(t *testing.T) {
	for _, c := range []struct {
		act    Activation
		a, b   float64
		degree int
		max    float64 // documented error, with margin
	}{
		{Sigmoid, -8, 8, 7, 4e-2},
		{Sigmoid, -8, 8, 15, 3e-3},
		{Sigmoid, -8, 8, 31, 1e-5},
		{Sigmoid, -8, 8, 63, 1e-10},
		{Sigmoid, -12, 12, 63, 1e-7},
		{Tanh, -4, 4, 31, 2e-5},
		{Tanh, -6, 6, 31, 1e-3},
		{Tanh, -6, 6, 63, 3e-7},
		{Tanh, -8, 8, 63, 1e-5},
		{ReLU, -8, 8, 63, 0.1},
		{ReLU, -1, 1, 63, 0.01},
	} {
		ap, err := newApprox(c.act, c.a, c.b, c.degree)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%-8s [%g, %g]  degree %3d  depth %d  max error %.1e", c.act, c.a, c.b, c.degree, ap.depth, ap.maxError)
		if ap.maxError > c.max || math.IsNaN(ap.maxError) {
			t.Errorf("%s [%g, %g] degree %d: max error %.2e above %.0e", c.act, c.a, c.b, c.degree, ap.maxError, c.max)
		}
	}
}

func TestAutomaticDegree(t *testing.T) {
	ap, err := approximation(Layer{Activation: Sigmoid, Interval: [2]float64{-8, 8}})
	if err != nil {
		t.Fatal(err)
	}
	if ap.degree != 31 || ap.maxError > TargetApproxError {
		t.Errorf("sigmoid on [-8, 8]: automatic degree %d (error %.1e), expected 31 within %.0e", ap.degree, ap.maxError, TargetApproxError)
	}
}
