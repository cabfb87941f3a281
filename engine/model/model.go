// Package model evaluates machine-learning models (linear and logistic
// regression, small multilayer perceptrons) on encrypted records.
//
// Records are column-packed: slot j of ciphertext i holds feature i of record
// j, so a ciphertext set of Inputs ciphertexts carries 2^(LogN-1) records. A
// dense layer with plaintext weights is then sum_i w_i*ct_i + b, computed
// slot-wise with no rotation (and so no Galois key), at the cost of one level
// (the constant multiplication and its rescale). Activations (sigmoid, tanh,
// ReLU) are Chebyshev interpolants over a declared input interval, evaluated
// with lattigo's polynomial evaluator in ceil(log2(degree+1)) levels; the
// affine change of variable into [-1, 1] that Chebyshev evaluation needs is
// folded into the weights of the preceding dense layer, as is the input
// standardization (x-mean)/std into the first layer: neither costs a level.
//
// Models come from the JSON format of json.go or from ONNX graphs (onnx.go);
// NewPlan checks that a model fits a parameter set before any data moves, and
// Evaluate runs it on ciphertexts. Values outside an activation's declared
// interval are not detected under encryption (the polynomial diverges there):
// data parties check their own records in the clear with CheckRecord.
//
// Two modes: plaintext weights (Evaluate; the coordinator knows the model)
// and encrypted weights (EncryptModel, EvaluateEncrypted; see encrypted.go),
// where each weight is a ciphertext holding it in every slot, so that column
// packing still needs no rotation and no Galois key, only the
// relinearization key.
//
// Next steps (not implemented): row packing (several features of a record
// per ciphertext, for models with many inputs, which needs the rotations of
// engine.SumSlots and so Galois keys), and the wiring of both modes into the
// nodes (collective keys, key switching of the outputs to the analyst).
package model

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// Activation names a layer's nonlinearity.
type Activation string

// Supported activations.
const (
	Identity Activation = "identity"
	Sigmoid  Activation = "sigmoid"
	Tanh     Activation = "tanh"
	ReLU     Activation = "relu"
)

// Limits on model size: Synod evaluates small models, and loaders fed
// arbitrary bytes must not be made to allocate without bound.
const (
	MaxInputs  = 1024 // features per record
	MaxWidth   = 1024 // neurons per layer
	MaxLayers  = 32
	MaxWeights = 1 << 20 // weights in the whole model
	MaxDegree  = 255     // Chebyshev degree of an activation
	// maxMagnitude bounds weights, biases, means, interval ends.
	maxMagnitude = 1e9
)

// Layer is a dense layer followed by an activation: y = f(W x + b).
type Layer struct {
	// Weights is out x in: Weights[k][i] multiplies input i into output k.
	Weights [][]float64
	// Bias has one entry per output.
	Bias []float64
	// Activation is applied to each output; "" means Identity.
	Activation Activation
	// Interval [a, b] is where the activation's input (W x + b) is declared to
	// lie; the polynomial approximates the activation there only. Ignored
	// for Identity.
	Interval [2]float64
	// Degree of the Chebyshev interpolant; 0 chooses the smallest degree
	// 2^k-1 whose maximum error on the interval is at most
	// TargetApproxError, up to AutoMaxDegree.
	Degree int
}

// Model is a feed-forward network of dense layers.
type Model struct {
	Name string
	// Inputs is the number of features per record.
	Inputs int
	// Mean and Std, if set, standardize the features first:
	// x'_i = (x_i - Mean[i]) / Std[i]. They are folded into the first layer.
	Mean, Std []float64
	Layers    []Layer
}

// Outputs is the width of the last layer.
func (m *Model) Outputs() int {
	if len(m.Layers) == 0 {
		return 0
	}
	return len(m.Layers[len(m.Layers)-1].Bias)
}

func finite(v float64) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0) && math.Abs(v) <= maxMagnitude
}

// Validate checks shapes, values and limits.
func (m *Model) Validate() error {
	if m == nil {
		return errors.New("model: nil model")
	}
	if m.Inputs < 1 || m.Inputs > MaxInputs {
		return fmt.Errorf("model: %d inputs outside [1, %d]", m.Inputs, MaxInputs)
	}
	if len(m.Layers) == 0 || len(m.Layers) > MaxLayers {
		return fmt.Errorf("model: %d layers outside [1, %d]", len(m.Layers), MaxLayers)
	}
	if (m.Mean == nil) != (m.Std == nil) {
		return errors.New("model: standardization needs both mean and std")
	}
	if m.Mean != nil {
		if len(m.Mean) != m.Inputs || len(m.Std) != m.Inputs {
			return fmt.Errorf("model: standardization has %d means and %d stds for %d inputs", len(m.Mean), len(m.Std), m.Inputs)
		}
		for i := range m.Mean {
			if !finite(m.Mean[i]) || !finite(m.Std[i]) || m.Std[i] <= 1e-9 {
				return fmt.Errorf("model: standardization of input %d: mean %g, std %g (std must be positive)", i, m.Mean[i], m.Std[i])
			}
		}
	}
	in, total := m.Inputs, 0
	for l, layer := range m.Layers {
		out := len(layer.Bias)
		if out < 1 || out > MaxWidth {
			return fmt.Errorf("model: layer %d: %d outputs outside [1, %d]", l, out, MaxWidth)
		}
		if len(layer.Weights) != out {
			return fmt.Errorf("model: layer %d: %d weight rows for %d outputs", l, len(layer.Weights), out)
		}
		total += in * out
		if total > MaxWeights {
			return fmt.Errorf("model: more than %d weights", MaxWeights)
		}
		for k, row := range layer.Weights {
			if len(row) != in {
				return fmt.Errorf("model: layer %d: weight row %d has %d entries, expected %d inputs", l, k, len(row), in)
			}
			for i, w := range row {
				if !finite(w) {
					return fmt.Errorf("model: layer %d: weight [%d][%d] = %g is not a finite value of magnitude at most %g", l, k, i, w, maxMagnitude)
				}
			}
			if !finite(layer.Bias[k]) {
				return fmt.Errorf("model: layer %d: bias %d = %g is not a finite value of magnitude at most %g", l, k, layer.Bias[k], maxMagnitude)
			}
		}
		switch layer.Activation {
		case "", Identity:
		case Sigmoid, Tanh, ReLU:
			a, b := layer.Interval[0], layer.Interval[1]
			if !finite(a) || !finite(b) || !(a < b) || b-a > 1e4 {
				return fmt.Errorf("model: layer %d: %s interval [%g, %g] must be finite, increasing and at most 1e4 wide", l, layer.Activation, a, b)
			}
			if layer.Degree < 0 || layer.Degree > MaxDegree {
				return fmt.Errorf("model: layer %d: degree %d outside [0, %d]", l, layer.Degree, MaxDegree)
			}
		default:
			return fmt.Errorf("model: layer %d: unsupported activation %q (supported: identity, sigmoid, tanh, relu)", l, string(layer.Activation))
		}
		in = out
	}
	return nil
}

// activationFunc is the exact function of an activation.
func activationFunc(a Activation) func(float64) float64 {
	switch a {
	case Sigmoid:
		return func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	case Tanh:
		return math.Tanh
	case ReLU:
		return func(x float64) float64 { return math.Max(x, 0) }
	}
	return func(x float64) float64 { return x }
}

// Predict evaluates the model in float64 with the exact activations: the
// reference the encrypted evaluation is measured against.
func (m *Model) Predict(record []float64) ([]float64, error) {
	return m.predict(record, false, nil)
}

// PredictApprox evaluates the model in float64 with the same polynomial
// activations as the encrypted evaluation (the error of encryption alone is
// the distance to this).
func (m *Model) PredictApprox(record []float64) ([]float64, error) {
	return m.predict(record, true, nil)
}

// CheckRecord reports whether the record keeps every activation input inside
// its declared interval. A data party runs it on its own records in the
// clear: outside the interval the encrypted polynomial diverges.
func (m *Model) CheckRecord(record []float64) error {
	_, err := m.predict(record, false, func(l, k int, z float64) error {
		iv := m.Layers[l].Interval
		if z < iv[0] || z > iv[1] {
			return fmt.Errorf("layer %d output %d: activation input %.4g outside the declared interval [%g, %g]", l, k, z, iv[0], iv[1])
		}
		return nil
	})
	return err
}

func (m *Model) predict(record []float64, approx bool, check func(l, k int, z float64) error) ([]float64, error) {
	if len(record) != m.Inputs {
		return nil, fmt.Errorf("model: record has %d features, expected %d", len(record), m.Inputs)
	}
	x := append([]float64(nil), record...)
	if m.Mean != nil {
		for i := range x {
			x[i] = (x[i] - m.Mean[i]) / m.Std[i]
		}
	}
	for l, layer := range m.Layers {
		y := make([]float64, len(layer.Bias))
		var f func(float64) float64
		if approx && layer.Activation != "" && layer.Activation != Identity {
			a, err := approximation(layer)
			if err != nil {
				return nil, err
			}
			f = a.eval
		} else {
			f = activationFunc(layer.Activation)
		}
		for k, row := range layer.Weights {
			z := layer.Bias[k]
			for i, w := range row {
				z += w * x[i]
			}
			if check != nil && layer.Activation != "" && layer.Activation != Identity {
				if err := check(l, k, z); err != nil {
					return nil, err
				}
			}
			y[k] = f(z)
		}
		x = y
	}
	return x, nil
}

// String is a one-line summary ("logreg: 30 -> 1 sigmoid[-8,8]").
func (m *Model) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d", m.Name, m.Inputs)
	for _, l := range m.Layers {
		fmt.Fprintf(&b, " -> %d", len(l.Bias))
		if l.Activation != "" && l.Activation != Identity {
			fmt.Fprintf(&b, " %s[%g,%g]", l.Activation, l.Interval[0], l.Interval[1])
		}
	}
	return b.String()
}
