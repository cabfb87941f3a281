package model

import (
	"errors"
	"fmt"
	"slices"
)

// MaxInferenceModelSize bounds the JSON model a validation request carries:
// the request is approved, signed and recorded on the consortium chain
// whole.
const MaxInferenceModelSize = 256 << 10

// CheckInference checks a validation request before any data moves (mpcctl
// and every party run it): the model parses and validates (supported
// activations, shapes, limits), has one output (a score, clamped into [0,
// 1]), the feature columns match its inputs one to one and are distinct,
// the label is not a feature, and the binning is valid.
//
// Scores are computed in the clear by each party on its own records, with
// the exact activations: the model's depth does not limit validation (it
// does limit private prediction, see NewPredictionPlan).
func CheckInference(modelJSON []byte, features []string, label string, bins Bins) (*Model, error) {
	if len(modelJSON) == 0 {
		return nil, errors.New("inference: no model")
	}
	if len(modelJSON) > MaxInferenceModelSize {
		return nil, fmt.Errorf("inference: model of %d bytes exceeds the %d a validation request may carry", len(modelJSON), MaxInferenceModelSize)
	}
	m, err := ParseJSON(modelJSON)
	if err != nil {
		return nil, fmt.Errorf("inference: %w", err)
	}
	if m.Outputs() != 1 {
		return nil, fmt.Errorf("inference: model %q has %d outputs; validation needs a binary classifier with one score output", m.Name, m.Outputs())
	}
	if len(features) != m.Inputs {
		return nil, fmt.Errorf("inference: %d feature columns for the %d inputs of model %q", len(features), m.Inputs, m.Name)
	}
	for i, f := range features {
		if f == "" {
			return nil, fmt.Errorf("inference: feature %d has no column name", i+1)
		}
		if slices.Index(features, f) != i {
			return nil, fmt.Errorf("inference: feature column %q appears twice", f)
		}
	}
	if label == "" {
		return nil, errors.New("inference: no label column")
	}
	if slices.Contains(features, label) {
		return nil, fmt.Errorf("inference: label column %q is also a feature", label)
	}
	if err := bins.Validate(); err != nil {
		return nil, fmt.Errorf("inference: %w", err)
	}
	return m, nil
}

// Scores computes the model's score of each record in float64 with the
// exact activations (what a party computes on its own records in a
// validation).
func (m *Model) Scores(records [][]float64) ([]float64, error) {
	out := make([]float64, len(records))
	for j, r := range records {
		y, err := m.Predict(r)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", j, err)
		}
		out[j] = y[0]
	}
	return out, nil
}
