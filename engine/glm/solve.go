package glm

import (
	"fmt"
	"math"
)

// pivotTolerance is the smallest admissible ratio of a Cholesky pivot to its
// diagonal entry. The ratio is the part of coefficient k's column not
// explained by the columns before it (1 - R² of a regression on them);
// below 1e-10 the coefficient is determined by rounding, not by the data.
const pivotTolerance = 1e-10

// PivotError is the refusal of a system that is not (numerically) positive
// definite: the Cholesky factorization failed at Coefficient (0 is the
// intercept, c >= 1 the feature in column c-1 of the design).
type PivotError struct {
	Coefficient int
	// Ratio is the pivot over its diagonal entry: negative, zero or below
	// pivotTolerance.
	Ratio float64
}

func (e *PivotError) Error() string {
	what := "the intercept"
	if e.Coefficient > 0 {
		what = fmt.Sprintf("feature %d", e.Coefficient-1)
	}
	return fmt.Sprintf("glm: the system is not positive definite at coefficient %d (%s, relative pivot %.3g): "+
		"a feature is constant or collinear with the intercept and earlier features; drop it or add an L2 penalty (--l2)",
		e.Coefficient, what, e.Ratio)
}

// solveSPD solves A x = rhs for a symmetric positive definite A given by
// its row-major upper triangle, plus ridge on every diagonal entry but the
// first, by a Cholesky factorization A = L Lᵀ. cond is max/min of the
// squared pivots L_kk², a lower bound on A's 2-norm condition number (each
// is a Schur complement, between λ_min and λ_max), cheap and usually within
// a small factor of it.
func solveSPD(upper []float64, p int, ridge float64, rhs []float64) (x []float64, cond float64, err error) {
	l := make([]float64, p*p) // row-major, lower triangle used
	idx := 0
	for i := range p {
		for j := i; j < p; j++ {
			l[j*p+i] = upper[idx]
			idx++
		}
		if i > 0 {
			l[i*p+i] += ridge
		}
	}
	lo, hi := math.Inf(1), 0.0
	for k := range p {
		rowK := l[k*p : k*p+k]
		diag := l[k*p+k]
		d := diag - dot(rowK, rowK)
		if !(d > pivotTolerance*diag) {
			ratio := 0.0
			if diag != 0 {
				ratio = d / diag
			}
			return nil, 0, &PivotError{Coefficient: k, Ratio: ratio}
		}
		lo, hi = min(lo, d), max(hi, d)
		lkk := math.Sqrt(d)
		l[k*p+k] = lkk
		for i := k + 1; i < p; i++ {
			l[i*p+k] = (l[i*p+k] - dot(l[i*p:i*p+k], rowK)) / lkk
		}
	}
	x = append([]float64(nil), rhs...)
	for i := range p { // L u = rhs
		x[i] = (x[i] - dot(l[i*p:i*p+i], x[:i])) / l[i*p+i]
	}
	for i := p - 1; i >= 0; i-- { // Lᵀ x = u
		s := x[i]
		for j := i + 1; j < p; j++ {
			s -= l[j*p+i] * x[j]
		}
		x[i] = s / l[i*p+i]
	}
	return x, hi / lo, nil
}

// LinearSolution is the minimizer of the linear-regression objective.
type LinearSolution struct {
	// B are the coefficients in scaled space, intercept first.
	B []float64
	// Objective is F(B), from the statistics: its absolute precision is
	// about 2⁻⁵³·yy/n, as it is a difference of sums of that size.
	Objective float64
	// Condition is the estimate of the normal matrix's condition number
	// (see solveSPD); callers warn when it is large.
	Condition float64
}

// SolveLinear minimizes the linear-regression objective from summed
// statistics: (ZᵀZ + nλ·P) b = Zᵀy', where P is the identity without its
// intercept entry.
func SolveLinear(stats []float64, p int, lambda float64) (*LinearSolution, error) {
	if err := checkStats(Linear, stats, p, lambda); err != nil {
		return nil, err
	}
	n := stats[0]
	if !(n >= 1) {
		return nil, fmt.Errorf("glm: row count zz[0,0] = %g: no rows to fit", n)
	}
	gram, zy, yy := stats[:tri(p)], stats[tri(p):tri(p)+p], stats[len(stats)-1]
	b, cond, err := solveSPD(gram, p, n*lambda, zy)
	if err != nil {
		return nil, err
	}
	// 2n·F(b) = yy - 2 b·zy + bᵀ ZᵀZ b + nλ‖Pb‖².
	quad := quadForm(gram, p, b)
	f := (yy-2*dot(b, zy)+quad)/(2*n) + lambda/2*dot(b[1:], b[1:])
	return &LinearSolution{B: b, Objective: f, Condition: cond}, nil
}

// quadForm is bᵀ A b for A given by its row-major upper triangle.
func quadForm(upper []float64, p int, b []float64) float64 {
	s, idx := 0.0, 0
	for i := range p {
		row := upper[idx : idx+p-i]
		s += b[i] * (row[0]*b[i] + 2*dot(row[1:], b[i+1:]))
		idx += len(row)
	}
	return s
}

// Step is one Newton iteration of logistic regression.
type Step struct {
	// Next are the coefficients after the step, in scaled space.
	Next []float64
	// Objective is F at the coefficients the statistics were computed at,
	// from the clipped log-likelihood: F itself when no row's loss exceeded
	// LogLossClip.
	Objective float64
	// GradNorm is ‖∇F‖₂ there, StepNorm ‖Next - b‖₂.
	GradNorm, StepNorm float64
	// Condition estimates the Hessian's condition number (see solveSPD).
	Condition float64
}

// NewtonStep is one Newton iteration from b, given the logistic statistics
// summed over every party at b:
//
//	(ZᵀWZ + nλ·P) Δ = Zᵀ(y-μ) - nλ·P b,   Next = b + Δ,
//
// which is n times H Δ = -∇F. The step is not damped: from b = 0 on data
// that is not nearly separable Newton converges in a few iterations; a
// caller that sees Objective rise from one iteration to the next can halve
// the step it took.
func NewtonStep(stats []float64, p int, b []float64, lambda float64) (*Step, error) {
	if err := checkStats(Logistic, stats, p, lambda); err != nil {
		return nil, err
	}
	if err := checkCoefficients(b, p); err != nil {
		return nil, err
	}
	n := stats[len(stats)-1]
	if !(n >= 1) {
		return nil, fmt.Errorf("glm: row count n = %g: no rows to fit", n)
	}
	gram, zr, loglik := stats[:tri(p)], stats[tri(p):tri(p)+p], stats[len(stats)-2]
	g := append([]float64(nil), zr...) // -n ∇F
	for c := 1; c < p; c++ {
		g[c] -= n * lambda * b[c]
	}
	delta, cond, err := solveSPD(gram, p, n*lambda, g)
	if err != nil {
		return nil, err
	}
	next := make([]float64, p)
	for i := range next {
		next[i] = b[i] + delta[i]
	}
	return &Step{
		Next:      next,
		Objective: -loglik/n + lambda/2*dot(b[1:], b[1:]),
		GradNorm:  math.Sqrt(dot(g, g)) / n,
		StepNorm:  math.Sqrt(dot(delta, delta)),
		Condition: cond,
	}, nil
}

// Converged reports whether Newton's method may stop after s: the gradient
// at the iterate was at most tol, or the step moved the coefficients by at
// most tol relative to their size (with noised statistics the gradient need
// not vanish; callers also cap the iterations). Newton converges
// quadratically near the optimum, so s.Next is then closer still.
func Converged(s *Step, tol float64) bool {
	return s.GradNorm <= tol || s.StepNorm <= tol*(1+math.Sqrt(dot(s.Next, s.Next)))
}
