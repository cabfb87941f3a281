package glm

import (
	"fmt"
	"math"

	"github.com/synod-mpc/synod/engine/model"
)

// maxLogit is half the widest activation interval model.Validate accepts.
const maxLogit = 5e3

// ToModel exports scaled-space coefficients b (intercept first) as a
// one-layer model of the engine/model JSON format. Its standardize block is
// (mean, std) = (center_c, half_c), so the layer sees x' and keeps b's
// feature weights. Linear: identity activation, with the label scaling
// undone in the layer (weights half_y·b_c, bias center_y + half_y·b_0), so
// the model predicts y in the label's units. Logistic: sigmoid over
// [-B, B], B = max(1, (|b_0| + Σ|b_c|)·(1+1e-9)): since |x'_c| <= 1 for
// every in-range input, |z·b| <= |b_0| + Σ|b_c|, and the relative margin
// covers the rounding of standardization and of the sum (below 1e-12 for
// up to 1024 features).
func ToModel(kind Kind, s Scaling, b []float64, name string) (*model.Model, error) {
	if err := s.Validate(kind); err != nil {
		return nil, err
	}
	if len(s.Features) == 0 {
		return nil, fmt.Errorf("glm: a model needs at least one feature")
	}
	if err := checkCoefficients(b, s.P()); err != nil {
		return nil, err
	}
	d := len(s.Features)
	m := &model.Model{Name: name, Inputs: d, Mean: make([]float64, d), Std: make([]float64, d)}
	for c, f := range s.Features {
		m.Mean[c], m.Std[c] = f.center(), f.half()
	}
	w := make([]float64, d)
	layer := model.Layer{Weights: [][]float64{w}, Bias: []float64{b[0]}}
	switch kind {
	case Linear:
		cy, hy := s.Label.center(), s.Label.half()
		for c := range w {
			w[c] = hy * b[c+1]
		}
		layer.Bias[0] = cy + hy*b[0]
		layer.Activation = model.Identity
	case Logistic:
		bound := 0.0
		for _, v := range b {
			bound += math.Abs(v)
		}
		if bound > maxLogit {
			return nil, fmt.Errorf("glm: the coefficients bound the logit by %.4g, beyond the %g an encrypted sigmoid supports: refit with a larger L2 penalty", bound, maxLogit)
		}
		bound = max(1, bound*(1+1e-9))
		copy(w, b[1:])
		layer.Activation = model.Sigmoid
		layer.Interval = [2]float64{-bound, bound}
	}
	m.Layers = []model.Layer{layer}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("glm: export: %w", err)
	}
	return m, nil
}

// Predict is the model's prediction for every row, in the label's units:
// center_y + half_y·(z·b) for linear regression, σ(z·b) for logistic.
// Values outside their declared ranges are refused.
func Predict(kind Kind, columns [][]float64, s Scaling, b []float64) ([]float64, error) {
	if err := s.Validate(kind); err != nil {
		return nil, err
	}
	if len(columns) != len(s.Features) || len(columns) == 0 {
		return nil, fmt.Errorf("glm: %d feature columns for %d declared features", len(columns), len(s.Features))
	}
	if err := checkCoefficients(b, s.P()); err != nil {
		return nil, err
	}
	z, err := scaledDesign(columns, s.Features, len(columns[0]))
	if err != nil {
		return nil, err
	}
	out := linearPredictor(z, b)
	for r, t := range out {
		if kind == Linear {
			out[r] = s.Label.center() + s.Label.half()*t
		} else {
			out[r], _ = sigmoidLoss(t, 0)
		}
	}
	return out, nil
}
