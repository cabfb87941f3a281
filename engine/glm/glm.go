// Package glm is the float64 mathematics of training generalized linear
// models (linear and logistic regression) from sufficient statistics: each
// party computes a vector of sums over its own rows (LinearStats,
// LogisticStats), the vectors are summed (under encryption, elsewhere), and
// the analyst solves on the sum (SolveLinear, NewtonStep) and exports the
// model (ToModel). FitLinear and FitLogistic fit the pooled rows directly:
// they are the references tests compare against.
//
// # Scaling
//
// Every feature c has a declared range [min_c, max_c] from the consortium
// schema. With center_c = (min_c+max_c)/2 and half_c = (max_c-min_c)/2 > 0,
// the scaled feature is x'_c = (x_c - center_c)/half_c, clamped to [-1, 1]
// to absorb rounding (an in-range value moves by a few ulps at most), so
// |x'_c| <= 1 exactly. A value outside its declared range (or NaN) is
// refused with an error naming the column and the row (counted from 1 in
// the table's order), never the value. The design row is
// z = (1, x'_1, ..., x'_d), of p = d+1 entries; b is indexed alike (b_0 is
// the intercept). Bounded design rows make every term of every sum bounded,
// which is what makes the sensitivities of Sensitivities finite and the
// floating-point error of a sum a function of the row count only.
//
// # Linear regression
//
// The label is scaled like a feature by its declared range: y'. In scaled
// space the objective is
//
//	F(b) = (1/(2n)) Σ_rows (y' - z·b)² + (λ/2) Σ_{c>=1} b_c²
//
// (the intercept is not penalized): scikit-learn's Ridge(alpha = n·λ) on
// x' and y'. Its statistics vector, of StatsLen(Linear, p) slots, is the
// upper triangle of ZᵀZ row by row ("zz[i,j]", i <= j), then Zᵀy' ("zy[i]"),
// then y'ᵀy' ("yy"). The row count n is zz[0,0].
//
// # Logistic regression
//
// Labels are 0 or 1 (others are refused, with their count). The objective
//
//	F(b) = (1/n) Σ_rows logloss(y, σ(z·b)) + (λ/2) Σ_{c>=1} b_c²
//
// is scikit-learn's LogisticRegression(C = 1/(n·λ)) on x' with an
// unpenalized intercept (penalty l2 with the lbfgs, newton-cg or
// newton-cholesky solvers; liblinear penalizes the intercept). Newton's
// method needs, at each iterate b, with μ = σ(z·b) and w = μ(1-μ): the upper
// triangle of ZᵀWZ ("zwz[i,j]"), Zᵀ(y-μ) ("zr[i]"), the log-likelihood
// Σ -min(logloss, LogLossClip) ("loglik") and the row count ("n").
//
// # Floating-point order
//
// A party's statistics are sums over its rows in table order, blockRows
// rows at a time: within a block, each slot's sum adds the block's products
// one at a time in row order, without fused multiply-add (so the result is
// the same on every architecture); each block's sum is then added to the
// slot's running total, in block order. The pooled computation is the same
// function on the concatenated rows, so the sum of the parties' vectors
// equals it in exact arithmetic and differs in floating point by
// reassociation only. Every term is at most 1 in magnitude (|z_i z_j| <= 1,
// w <= 1/4, |y-μ| < 1, |y'| <= 1), so a slot's rounding error is at most
// about (blockRows + n/blockRows + parties)·2⁻⁵³·n, whatever the data's
// units. Counts (zz[0,0], n) are integers, exact below 2⁵³ rows.
package glm

import (
	"errors"
	"fmt"
	"math"
)

// Kind is the model a statistics vector serves.
type Kind int

// Model kinds.
const (
	Linear Kind = iota + 1
	Logistic
)

func (k Kind) String() string {
	switch k {
	case Linear:
		return "linear"
	case Logistic:
		return "logistic"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// LogLossClip bounds each row's contribution to the log-likelihood slot:
// a row whose loss exceeds it (its label has predicted probability below
// e^-16, about 1e-7) counts as LogLossClip. It bounds the slot's
// sensitivity; the gradient and Hessian slots are not clipped.
const LogLossClip = 16

// maxFeatures is model.MaxInputs: ToModel could not export more.
const maxFeatures = 1024

// Column is a column's name and declared range.
type Column struct {
	Name     string
	Min, Max float64
}

func (c Column) center() float64 { return c.Min/2 + c.Max/2 }
func (c Column) half() float64   { return c.Max/2 - c.Min/2 }

func (c Column) check() error {
	if math.IsNaN(c.Min) || math.IsInf(c.Min, 0) || math.IsNaN(c.Max) || math.IsInf(c.Max, 0) {
		return fmt.Errorf("column %q: declared range [%g, %g] is not finite", c.Name, c.Min, c.Max)
	}
	if !(c.half() > 0) {
		return fmt.Errorf("column %q: declared range [%g, %g] has no width", c.Name, c.Min, c.Max)
	}
	return nil
}

// Scaling is the declared ranges of a model's feature columns, in design
// order, and of its label (whose range serves linear regression only).
type Scaling struct {
	Features []Column
	Label    Column
}

// P is the number of coefficients: the features and the intercept.
func (s Scaling) P() int { return len(s.Features) + 1 }

// Validate checks the declared ranges that kind uses.
func (s Scaling) Validate(kind Kind) error {
	if kind != Linear && kind != Logistic {
		return fmt.Errorf("glm: unknown model kind %v", kind)
	}
	if len(s.Features) > maxFeatures {
		return fmt.Errorf("glm: %d features exceed %d", len(s.Features), maxFeatures)
	}
	for _, c := range s.Features {
		if err := c.check(); err != nil {
			return fmt.Errorf("glm: feature %w", err)
		}
	}
	if kind == Linear {
		if err := s.Label.check(); err != nil {
			return fmt.Errorf("glm: label %w", err)
		}
	}
	return nil
}

// checkData checks the scaling and the shape of the data; values are
// checked as they are scaled.
func (s Scaling) checkData(kind Kind, columns [][]float64, y []float64) error {
	if err := s.Validate(kind); err != nil {
		return err
	}
	if len(columns) != len(s.Features) {
		return fmt.Errorf("glm: %d feature columns for %d declared features", len(columns), len(s.Features))
	}
	for c, col := range columns {
		if len(col) != len(y) {
			return fmt.Errorf("glm: column %q has %d rows, label column %q has %d", s.Features[c].Name, len(col), s.Label.Name, len(y))
		}
	}
	if kind == Logistic {
		return checkBinary(s.Label.Name, y)
	}
	return nil
}

func checkBinary(name string, y []float64) error {
	bad, first := 0, 0
	for r, v := range y {
		if v != 0 && v != 1 {
			if bad == 0 {
				first = r + 1
			}
			bad++
		}
	}
	if bad > 0 {
		return fmt.Errorf("glm: label column %q: %d rows are neither 0 nor 1 (the first is row %d)", name, bad, first)
	}
	return nil
}

func rangeError(c Column, row int) error {
	return fmt.Errorf("glm: column %q row %d: value outside the declared range [%g, %g]", c.Name, row, c.Min, c.Max)
}

// tri is the number of entries of the upper triangle of a p x p matrix.
func tri(p int) int { return p * (p + 1) / 2 }

// StatsLen is the number of slots of a statistics vector for p
// coefficients.
func StatsLen(kind Kind, p int) int {
	switch kind {
	case Linear:
		return tri(p) + p + 1
	case Logistic:
		return tri(p) + p + 2
	}
	return 0
}

// Labels names every slot of a statistics vector, in order.
func Labels(kind Kind, p int) []string {
	if StatsLen(kind, p) == 0 {
		return nil
	}
	gram, vec, scalars := "zz", "zy", []string{"yy"}
	if kind == Logistic {
		gram, vec, scalars = "zwz", "zr", []string{"loglik", "n"}
	}
	out := make([]string, 0, StatsLen(kind, p))
	for i := range p {
		for j := i; j < p; j++ {
			out = append(out, fmt.Sprintf("%s[%d,%d]", gram, i, j))
		}
	}
	for i := range p {
		out = append(out, fmt.Sprintf("%s[%d]", vec, i))
	}
	return append(out, scalars...)
}

// Sensitivities is each slot's L1 sensitivity (the most one row can change
// it by, when it is added or removed), given |x'_c| <= 1 and |y'| <= 1:
// linear: 1 for zz (|z_i z_j| <= 1), zy and yy; logistic: 1/4 for zwz
// (w = μ(1-μ) <= 1/4), 1 for zr (|y-μ| < 1), LogLossClip for loglik, 1 for
// n. The vector's L1 sensitivity is their sum; splitting a privacy budget
// over the slots is the caller's.
func Sensitivities(kind Kind, p int) []float64 {
	out := make([]float64, StatsLen(kind, p))
	for i := range out {
		out[i] = 1
	}
	if kind == Logistic {
		for i := range tri(p) {
			out[i] = 0.25
		}
		out[len(out)-2] = LogLossClip
	}
	return out
}

// checkStats checks a statistics vector's length and values.
func checkStats(kind Kind, stats []float64, p int, lambda float64) error {
	if p < 1 || p > maxFeatures+1 {
		return fmt.Errorf("glm: %d coefficients outside [1, %d]", p, maxFeatures+1)
	}
	if len(stats) != StatsLen(kind, p) {
		return fmt.Errorf("glm: %s statistics have %d slots, expected %d for %d coefficients", kind, len(stats), StatsLen(kind, p), p)
	}
	for i, v := range stats {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("glm: statistic %s is not finite", Labels(kind, p)[i])
		}
	}
	return checkLambda(lambda)
}

func checkLambda(lambda float64) error {
	if math.IsNaN(lambda) || math.IsInf(lambda, 0) || lambda < 0 {
		return errors.New("glm: the L2 penalty must be a finite non-negative number")
	}
	return nil
}

// Scale returns the scaled feature columns x' and the labels (scaled like a
// feature for linear regression, 0 or 1 for logistic regression), refusing
// out-of-range values and bad labels as the statistics do: what encrypted
// training's parties compute on (engine/train).
func (s Scaling) Scale(kind Kind, columns [][]float64, y []float64) (features [][]float64, labels []float64, err error) {
	if err := s.checkData(kind, columns, y); err != nil {
		return nil, nil, err
	}
	features = make([][]float64, len(columns))
	for c, col := range columns {
		features[c] = make([]float64, len(col))
		if err := scaleInto(features[c], s.Features[c], col, 0); err != nil {
			return nil, nil, err
		}
	}
	labels = append([]float64(nil), y...)
	if kind == Linear {
		if err := scaleInto(labels, s.Label, y, 0); err != nil {
			return nil, nil, err
		}
	}
	return features, labels, nil
}
