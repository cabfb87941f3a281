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

// TestApproximate checks the exported interpolant: its float64 evaluation
// against the sigmoid within MaxError, and Scaled's polynomial (odd part
// plus constant) against factor times the interpolant, in the variable u.
func TestApproximate(t *testing.T) {
	for _, degree := range []int{15, 127, 511} {
		ap, err := Approximate(Sigmoid, -40, 40, degree)
		if err != nil {
			t.Fatal(err)
		}
		if ap.Degree() != degree || ap.Depth() != depthOf(degree) {
			t.Errorf("degree %d: got degree %d depth %d", degree, ap.Degree(), ap.Depth())
		}
		f := activationFunc(Sigmoid)
		var worst float64
		for i := 0; i <= 1000; i++ {
			x := -40 + 80*float64(i)/1000
			worst = math.Max(worst, math.Abs(ap.Eval(x)-f(x)))
		}
		if worst > ap.MaxError()*1.0001 {
			t.Errorf("degree %d: error %.3e on a coarser grid exceeds MaxError %.3e", degree, worst, ap.MaxError())
		}
		const factor = -2.5
		poly, c0 := ap.Scaled(factor)
		alpha, beta := ap.ChangeOfBasis()
		for _, x := range []float64{-40, -7.3, 0, 0.2, 13, 40} {
			u := alpha*x + beta
			// Clenshaw on poly's coefficients (Chebyshev basis in u).
			var b1, b2 float64
			for k := len(poly.Coeffs) - 1; k >= 1; k-- {
				ck, _ := poly.Coeffs[k][0].Float64()
				b1, b2 = 2*u*b1-b2+ck, b1
			}
			c, _ := poly.Coeffs[0][0].Float64()
			got := u*b1 - b2 + c + c0
			if want := factor * ap.Eval(x); math.Abs(got-want) > 1e-9 {
				t.Errorf("degree %d: Scaled(%g) at %g = %.12g, want %.12g", degree, factor, x, got, want)
			}
		}
	}
	if _, err := Approximate(Sigmoid, -1, 1, MaxApproxDegree+2); err == nil {
		t.Error("degree above MaxApproxDegree accepted")
	}
	if _, err := Approximate(Identity, -1, 1, 7); err == nil {
		t.Error("identity accepted")
	}
	if _, err := Approximate(Sigmoid, 1, -1, 7); err == nil {
		t.Error("decreasing interval accepted")
	}
}
