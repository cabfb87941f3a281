package glm

import (
	"errors"
	"fmt"
	"math"
)

// The pooled fits below work on all the rows at once and share nothing
// with the statistics path but the scaling, the sigmoid and (FitLogistic)
// the Cholesky solver: they are what the distributed fit is checked
// against, here and in other packages' tests.

// pooled checks the data and returns the scaled design and the labels,
// scaled for linear regression.
func pooled(kind Kind, columns [][]float64, y []float64, s Scaling) (z [][]float64, labels []float64, err error) {
	if err := s.checkData(kind, columns, y); err != nil {
		return nil, nil, err
	}
	if len(y) == 0 {
		return nil, nil, errors.New("glm: no rows")
	}
	if z, err = scaledDesign(columns, s.Features, len(y)); err != nil || kind == Logistic {
		return z, y, err
	}
	labels = make([]float64, len(y))
	return z, labels, scaleInto(labels, s.Label, y, 0)
}

// scaledDesign is the design of n rows, column-major: z[0] the ones, z[c+1]
// feature c scaled.
func scaledDesign(columns [][]float64, features []Column, n int) ([][]float64, error) {
	z := make([][]float64, len(columns)+1)
	z[0] = make([]float64, n)
	for r := range z[0] {
		z[0][r] = 1
	}
	for c, col := range columns {
		if len(col) != n {
			return nil, fmt.Errorf("glm: column %q has %d rows, expected %d", features[c].Name, len(col), n)
		}
		z[c+1] = make([]float64, n)
		if err := scaleInto(z[c+1], features[c], col, 0); err != nil {
			return nil, err
		}
	}
	return z, nil
}

// linearPredictor is z·b for every row of a column-major design.
func linearPredictor(z [][]float64, b []float64) []float64 {
	eta := make([]float64, len(z[0]))
	for c, col := range z {
		for r, v := range col {
			eta[r] += b[c] * v
		}
	}
	return eta
}

// FitLinear minimizes the linear-regression objective on pooled rows by a
// Householder QR factorization of the stacked least-squares problem
// [Z; sqrt(nλ)·P] b ≈ [y'; 0], which never forms ZᵀZ.
func FitLinear(columns [][]float64, y []float64, s Scaling, lambda float64) ([]float64, error) {
	if err := checkLambda(lambda); err != nil {
		return nil, err
	}
	z, yp, err := pooled(Linear, columns, y, s)
	if err != nil {
		return nil, err
	}
	n, p := len(yp), s.P()
	a := make([][]float64, p) // column-major
	for c := range a {
		a[c] = append(z[c], make([]float64, p-1)...)
		if c > 0 {
			a[c][n+c-1] = math.Sqrt(float64(n) * lambda)
		}
	}
	rhs := append(yp, make([]float64, p-1)...)
	for k := range p {
		colNorm := math.Sqrt(dot(a[k], a[k]))
		x := a[k][k:]
		norm := math.Sqrt(dot(x, x))
		if !(norm > math.Sqrt(pivotTolerance)*colNorm) {
			ratio := 0.0
			if colNorm > 0 {
				ratio = (norm / colNorm) * (norm / colNorm)
			}
			return nil, &PivotError{Coefficient: k, Ratio: ratio}
		}
		alpha := -math.Copysign(norm, x[0])
		x[0] -= alpha // x is now the Householder vector v
		vv := dot(x, x)
		for j := k + 1; j < p; j++ {
			t := a[j][k:]
			f := 2 * dot(x, t) / vv
			for i := range t {
				t[i] -= f * x[i]
			}
		}
		t := rhs[k:]
		f := 2 * dot(x, t) / vv
		for i := range t {
			t[i] -= f * x[i]
		}
		x[0] = alpha // R_kk
	}
	b := make([]float64, p)
	for i := p - 1; i >= 0; i-- {
		v := rhs[i]
		for j := i + 1; j < p; j++ {
			v -= a[j][i] * b[j]
		}
		b[i] = v / a[i][i]
	}
	return b, nil
}

// FitLogistic minimizes the logistic-regression objective on pooled rows
// by Newton's method from b = 0, with the gradient and Hessian summed a row
// at a time, until ‖∇F‖₂ < 1e-12 or after maxIter steps. It returns the
// coefficients and the gradient norm there, which callers compare with
// their tolerance.
func FitLogistic(columns [][]float64, y []float64, s Scaling, lambda float64, maxIter int) (b []float64, gradNorm float64, err error) {
	if err := checkLambda(lambda); err != nil {
		return nil, 0, err
	}
	z, _, err := pooled(Logistic, columns, y, s)
	if err != nil {
		return nil, 0, err
	}
	n, p := float64(len(y)), s.P()
	b = make([]float64, p)
	hess := make([]float64, tri(p))
	for iter := 0; ; iter++ {
		clear(hess)
		g := make([]float64, p)
		for r, t := range linearPredictor(z, b) {
			mu, _ := sigmoidLoss(t, 0)
			w, res := mu*(1-mu), y[r]-mu
			idx := 0
			for i := range p {
				g[i] += z[i][r] * res
				for j := i; j < p; j++ {
					hess[idx] += w * z[i][r] * z[j][r]
					idx++
				}
			}
		}
		for c := 1; c < p; c++ {
			g[c] -= n * lambda * b[c]
		}
		gradNorm = math.Sqrt(dot(g, g)) / n
		if gradNorm < 1e-12 || iter >= maxIter {
			return b, gradNorm, nil
		}
		delta, _, err := solveSPD(hess, p, n*lambda, g)
		if err != nil {
			return nil, 0, err
		}
		for i := range b {
			b[i] += delta[i]
		}
	}
}

// Objective is F(b) on pooled rows (see the package doc), with the exact,
// unclipped loss; for linear regression in scaled label units.
func Objective(kind Kind, columns [][]float64, y []float64, s Scaling, b []float64, lambda float64) (float64, error) {
	if err := checkLambda(lambda); err != nil {
		return 0, err
	}
	z, labels, err := pooled(kind, columns, y, s)
	if err != nil {
		return 0, err
	}
	if err := checkCoefficients(b, s.P()); err != nil {
		return 0, err
	}
	sum := 0.0
	for r, t := range linearPredictor(z, b) {
		if kind == Linear {
			sum += (labels[r] - t) * (labels[r] - t) / 2
		} else {
			_, loss := sigmoidLoss(t, labels[r])
			sum += loss
		}
	}
	return sum/float64(len(y)) + lambda/2*dot(b[1:], b[1:]), nil
}

// probClip keeps log(0) out of LogLoss, as scikit-learn's log_loss did.
const probClip = 1e-15

// LogLoss is the mean log-loss of predicted probabilities prob for labels
// y in {0, 1}, each probability clipped to [1e-15, 1-1e-15].
func LogLoss(y, prob []float64) (float64, error) {
	if err := checkPredictions(y, prob); err != nil {
		return 0, err
	}
	sum := 0.0
	for r, v := range prob {
		v = min(max(v, probClip), 1-probClip)
		if y[r] == 1 {
			sum -= math.Log(v)
		} else {
			sum -= math.Log1p(-v)
		}
	}
	return sum / float64(len(y)), nil
}

// Accuracy is the fraction of labels y in {0, 1} that prob predicts, a
// probability of at least 1/2 predicting 1.
func Accuracy(y, prob []float64) (float64, error) {
	if err := checkPredictions(y, prob); err != nil {
		return 0, err
	}
	right := 0
	for r, v := range prob {
		if (v >= 0.5) == (y[r] == 1) {
			right++
		}
	}
	return float64(right) / float64(len(y)), nil
}

func checkPredictions(y, prob []float64) error {
	if len(y) != len(prob) || len(y) == 0 {
		return fmt.Errorf("glm: %d labels and %d predictions", len(y), len(prob))
	}
	for r, v := range prob {
		if !(v >= 0 && v <= 1) {
			return fmt.Errorf("glm: prediction %d is not a probability", r+1)
		}
	}
	return checkBinary("y", y)
}
