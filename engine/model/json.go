package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// The JSON model format (configs/models/*.json are examples):
//
//	{
//	  "name": "mlp",                      // optional, for plans and logs
//	  "inputs": 4,                        // features per record
//	  "standardize": {                    // optional: x'_i = (x_i - mean_i) / std_i
//	    "mean": [50, 1.5, -3, 10],
//	    "std":  [12, 0.5, 2, 4]
//	  },
//	  "layers": [                         // applied in order
//	    {
//	      "weights": [[...], ...],        // outputs x inputs (torch's Linear.weight)
//	      "bias": [...],                  // one per output
//	      "activation": "tanh",           // identity (default), sigmoid, tanh, relu
//	      "interval": [-6, 6],            // where the activation's input lies
//	      "degree": 0                     // Chebyshev degree, 0 = automatic
//	    },
//	    ...
//	  ]
//	}
//
// Linear regression is one layer with activation identity, logistic
// regression one layer with sigmoid. Unknown fields are refused, as are
// models beyond the limits of Validate. "interval" is required for every
// activation other than identity: the encrypted evaluation approximates the
// activation there only.

// MaxJSONSize bounds the input of ParseJSON.
const MaxJSONSize = 64 << 20

type jsonModel struct {
	Name        string           `json:"name,omitempty"`
	Inputs      int              `json:"inputs"`
	Standardize *jsonStandardize `json:"standardize,omitempty"`
	Layers      []jsonLayer      `json:"layers"`
}

type jsonStandardize struct {
	Mean []float64 `json:"mean"`
	Std  []float64 `json:"std"`
}

type jsonLayer struct {
	Weights    [][]float64 `json:"weights"`
	Bias       []float64   `json:"bias"`
	Activation Activation  `json:"activation,omitempty"`
	Interval   *[2]float64 `json:"interval,omitempty"`
	Degree     int         `json:"degree,omitempty"`
}

// ParseJSON reads and validates a model in the JSON format.
func ParseJSON(b []byte) (*Model, error) {
	if len(b) > MaxJSONSize {
		return nil, fmt.Errorf("model json: %d bytes exceed %d", len(b), MaxJSONSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var jm jsonModel
	if err := dec.Decode(&jm); err != nil {
		return nil, fmt.Errorf("model json: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("model json: trailing data after the model")
	}
	m := &Model{Name: jm.Name, Inputs: jm.Inputs}
	if jm.Standardize != nil {
		m.Mean, m.Std = jm.Standardize.Mean, jm.Standardize.Std
		if m.Mean == nil {
			m.Mean = []float64{}
		}
		if m.Std == nil {
			m.Std = []float64{}
		}
	}
	for i, jl := range jm.Layers {
		l := Layer{Weights: jl.Weights, Bias: jl.Bias, Activation: jl.Activation, Degree: jl.Degree}
		if l.Activation == "" {
			l.Activation = Identity
		}
		if jl.Interval != nil {
			l.Interval = *jl.Interval
		} else if l.Activation != Identity {
			return nil, fmt.Errorf("model json: layer %d: activation %q needs an interval", i, string(l.Activation))
		}
		m.Layers = append(m.Layers, l)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// MarshalJSON writes m in the JSON format.
func (m *Model) MarshalJSON() ([]byte, error) {
	jm := jsonModel{Name: m.Name, Inputs: m.Inputs}
	if m.Mean != nil {
		jm.Standardize = &jsonStandardize{Mean: m.Mean, Std: m.Std}
	}
	for _, l := range m.Layers {
		jl := jsonLayer{Weights: l.Weights, Bias: l.Bias, Activation: l.Activation, Degree: l.Degree}
		if l.Activation != "" && l.Activation != Identity {
			iv := l.Interval
			jl.Interval = &iv
		}
		jm.Layers = append(jm.Layers, jl)
	}
	return json.Marshal(jm)
}
