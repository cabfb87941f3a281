package model

import (
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"sync"

	"github.com/tuneinsight/lattigo/v5/utils/bignum"
)

// Activations are approximated by Chebyshev interpolation
// (bignum.ChebyshevApproximation: interpolation at the degree+1 Chebyshev
// nodes of the declared interval), which is within a small factor of the
// best polynomial approximation for smooth functions. Degrees are of the form
// 2^k-1, the largest degree that lattigo evaluates in k levels.
//
// Maximum absolute error of the interpolant on its interval (measured by
// TestApproximationTable, 4001 points):
//
//	activation  interval   degree  depth  max error
//	sigmoid     [-8, 8]     7      3      3.0e-02
//	sigmoid     [-8, 8]    15      4      1.4e-03
//	sigmoid     [-8, 8]    31      5      3.0e-06
//	sigmoid     [-8, 8]    63      6      1.4e-11
//	sigmoid     [-12, 12]  63      6      4.0e-08
//	tanh        [-4, 4]    31      5      6.0e-06
//	tanh        [-6, 6]    31      5      3.2e-04
//	tanh        [-6, 6]    63      6      8.1e-08
//	tanh        [-8, 8]    63      6      4.8e-06
//	relu        [-8, 8]    63      6      6.3e-02
//	relu        [-1, 1]    63      6      7.8e-03
//
// ReLU is not smooth: the error at the kink decreases only like
// (b-a)/degree, so ReLU layers should declare a tight interval. The errors of
// sigmoid and tanh fall geometrically with the degree, faster the narrower
// the interval relative to the poles of the function (±iπ for sigmoid, ±iπ/2
// for tanh).

// TargetApproxError is the maximum interpolation error on the interval that
// automatic degree selection aims for.
const TargetApproxError = 1e-4

// AutoMaxDegree is the largest degree automatic selection picks (6 levels);
// when even it misses TargetApproxError (ReLU), it is used and its error
// reported by the plan.
const AutoMaxDegree = 63

// approx is the polynomial standing in for one activation.
type approx struct {
	act      Activation
	a, b     float64
	degree   int
	depth    int
	maxError float64
	// poly is the Chebyshev interpolant on [a, b]. When the activation
	// minus its value at the centre is odd on a symmetric interval
	// (sigmoid, tanh), the even coefficients are dropped, the constant is
	// kept apart in c0 and poly is marked odd, which halves the powers
	// lattigo computes.
	poly   bignum.Polynomial
	coeffs []float64 // float64 copy of poly's coefficients (c0 excluded when odd)
	c0     float64
	odd    bool
}

// depthOf is the number of levels lattigo uses to evaluate a degree-d
// polynomial.
func depthOf(d int) int { return bits.Len(uint(d)) }

var approxCache sync.Map // approxKey -> *approx

type approxKey struct {
	act    Activation
	a, b   float64
	degree int
}

// approximation returns the polynomial of a layer's activation (computing it
// once per activation, interval and degree).
func approximation(l Layer) (*approx, error) {
	if l.Degree > 0 {
		return newApprox(l.Activation, l.Interval[0], l.Interval[1], l.Degree)
	}
	var best *approx
	for d := 3; d <= AutoMaxDegree; d = 2*d + 1 {
		ap, err := newApprox(l.Activation, l.Interval[0], l.Interval[1], d)
		if err != nil {
			return nil, err
		}
		best = ap
		if ap.maxError <= TargetApproxError {
			break
		}
	}
	return best, nil
}

func newApprox(act Activation, a, b float64, degree int) (*approx, error) {
	key := approxKey{act, a, b, degree}
	if ap, ok := approxCache.Load(key); ok {
		return ap.(*approx), nil
	}
	if degree < 1 || degree > MaxApproxDegree {
		return nil, fmt.Errorf("model: degree %d outside [1, %d]", degree, MaxApproxDegree)
	}
	f := activationFunc(act)
	const prec = 128
	interval := bignum.Interval{A: *bignum.NewFloat(a, prec), B: *bignum.NewFloat(b, prec), Nodes: degree}
	poly := bignum.ChebyshevApproximation(func(x *big.Float) *big.Float {
		xf, _ := x.Float64()
		return new(big.Float).SetPrec(prec).SetFloat64(f(xf))
	}, interval)

	ap := &approx{act: act, a: a, b: b, degree: degree, depth: depthOf(degree)}
	ap.coeffs = make([]float64, len(poly.Coeffs))
	for i, c := range poly.Coeffs {
		ap.coeffs[i], _ = c[0].Float64()
	}
	if a == -b && (act == Sigmoid || act == Tanh) {
		ap.odd = true
		ap.c0 = ap.coeffs[0]
		for i := 0; i < len(poly.Coeffs); i += 2 {
			ap.coeffs[i] = 0
			poly.Coeffs[i] = bignum.NewComplex().SetPrec(prec)
		}
		poly.IsOdd, poly.IsEven = true, false
	} else {
		// lattigo v5 reads IsOdd && IsEven as "no parity" (the default of
		// bignum.NewPolynomial); both false drops every coefficient in
		// its Paterson-Stockmeyer split.
		poly.IsOdd, poly.IsEven = true, true
	}
	ap.poly = poly

	// 4000 samples (16 per oscillation of the error at degree 255; more
	// for the higher degrees of Approximate) underestimate the maximum by
	// at most 1-cos(pi/16), 2%.
	samples := max(4000, 16*(degree+1))
	for s := 0; s <= samples; s++ {
		x := a + (b-a)*float64(s)/float64(samples)
		ap.maxError = math.Max(ap.maxError, math.Abs(ap.eval(x)-f(x)))
	}
	approxCache.Store(key, ap)
	return ap, nil
}

// eval evaluates the interpolant at x in float64 (Clenshaw's recurrence).
func (ap *approx) eval(x float64) float64 {
	u := (2*x - ap.a - ap.b) / (ap.b - ap.a)
	var b1, b2 float64
	for k := len(ap.coeffs) - 1; k >= 1; k-- {
		b1, b2 = 2*u*b1-b2+ap.coeffs[k], b1
	}
	return u*b1 - b2 + ap.coeffs[0] + ap.c0
}

// changeOfBasis is (alpha, beta) with u = alpha*x + beta mapping [a, b] to
// [-1, 1].
func (ap *approx) changeOfBasis() (alpha, beta float64) {
	return 2 / (ap.b - ap.a), (-ap.a - ap.b) / (ap.b - ap.a)
}

// MaxApproxDegree is the largest degree Approximate accepts (10 levels).
// Models loaded from files stay limited to MaxDegree; circuits built in
// code (engine/train) may need the higher degrees that wide intervals ask
// for.
const MaxApproxDegree = 1023

// Approximation is the Chebyshev interpolant of an activation on an
// interval, as this package evaluates it under encryption; exported for
// circuits outside the package (engine/train) that evaluate activations
// with lattigo's polynomial evaluator.
type Approximation struct{ ap *approx }

// Approximate interpolates act (Sigmoid, Tanh or ReLU) at the degree+1
// Chebyshev nodes of [a, b] (computed once per activation, interval and
// degree).
func Approximate(act Activation, a, b float64, degree int) (*Approximation, error) {
	switch act {
	case Sigmoid, Tanh, ReLU:
	default:
		return nil, fmt.Errorf("model: no approximation of activation %q", string(act))
	}
	if !finite(a) || !finite(b) || !(a < b) {
		return nil, fmt.Errorf("model: interval [%g, %g] must be finite and increasing", a, b)
	}
	ap, err := newApprox(act, a, b, degree)
	if err != nil {
		return nil, err
	}
	return &Approximation{ap}, nil
}

// Degree of the interpolant.
func (a *Approximation) Degree() int { return a.ap.degree }

// Depth is the number of levels lattigo's polynomial evaluator consumes.
func (a *Approximation) Depth() int { return a.ap.depth }

// MaxError is the maximum absolute error on the interval, measured on a grid
// of max(4000, 16*(degree+1)) points.
func (a *Approximation) MaxError() float64 { return a.ap.maxError }

// Interval is [a, b].
func (a *Approximation) Interval() (lo, hi float64) { return a.ap.a, a.ap.b }

// Eval is the interpolant at x in float64: what the encrypted evaluation
// computes, up to the encryption noise.
func (a *Approximation) Eval(x float64) float64 { return a.ap.eval(x) }

// Scaled returns factor times the interpolant as a polynomial in
// u = alpha*x + beta (ChangeOfBasis), the variable lattigo's evaluator
// expects, and a constant to add to the evaluator's output. The constant is
// non-zero when the interpolant minus its value at the centre is odd
// (sigmoid and tanh on a symmetric interval): the polynomial then holds the
// odd coefficients only, which halves the powers lattigo computes.
func (a *Approximation) Scaled(factor float64) (poly bignum.Polynomial, constant float64) {
	poly = a.ap.poly.Clone()
	f := new(big.Float).SetPrec(a.ap.poly.Coeffs[0][0].Prec()).SetFloat64(factor)
	for _, c := range poly.Coeffs {
		c[0].Mul(c[0], f)
		c[1].Mul(c[1], f)
	}
	return poly, factor * a.ap.c0
}

// ChangeOfBasis is (alpha, beta) with u = alpha*x + beta mapping the
// interval onto [-1, 1].
func (a *Approximation) ChangeOfBasis() (alpha, beta float64) { return a.ap.changeOfBasis() }

// Products estimates the ciphertext-by-ciphertext products (each with a
// relinearization and a rescale) lattigo spends on one evaluation.
func (a *Approximation) Products() int { return ctMulEstimate(a.ap) }
