package node

import (
	"fmt"
	"math"
	"slices"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine/model"
	"github.com/synod-mpc/synod/parties/datasource"
	"github.com/synod-mpc/synod/parties/policy"
)

// Model validation ("mpcctl infer"). A validation is a query whose spec
// carries an Inference instead of aggregates: it is proposed, approved
// (threshold-BLS certificate on the chain before any data moves), answered,
// summed, key-switched to the analyst and recorded exactly like an
// aggregate query, reusing the query session's messages and the
// coordinator's approve, keySwitch and record. Only the cells differ: each
// party scores its own records with the analyst's model in the clear (the
// model is the analyst's, the records the party's own: homomorphic
// evaluation there would hide nothing from anyone) and contributes, encrypted
// under the collective key, only the binned counts and sums of
// engine/model.Bins; the sum over parties is what must stay encrypted, and
// only the analyst decrypts it. No per-record score leaves a party.

// inferenceBins returns the binning a spec asks for (defaults for zeros).
func inferenceBins(inf *synodv1.Inference) model.Bins {
	b := model.Bins{ROC: int(inf.GetRocBins()), Calibration: int(inf.GetCalibrationBins())}
	if inf.GetRocBins() > model.MaxROCBins {
		b.ROC = model.MaxROCBins + 1 // refused by Validate, without overflowing int
	}
	if b.ROC == 0 {
		b.ROC = model.DefaultROCBins
	}
	if b.Calibration == 0 {
		b.Calibration = min(model.DefaultCalibrationBins, b.ROC)
	}
	if inf.GetCalibrationBins() > model.MaxROCBins {
		b.Calibration = model.MaxROCBins + 1
	}
	return b
}

// ValidateInference checks a validation spec before any data moves: the
// spec's shape (an inference and nothing an aggregate query would use), the
// model (model.CheckInference) and the binning. mpcctl, the coordinator and
// every party run it. It returns the parsed model and the binning.
func ValidateInference(spec *synodv1.QuerySpec) (*model.Model, model.Bins, error) {
	inf := spec.GetInference()
	switch {
	case inf == nil:
		return nil, model.Bins{}, fmt.Errorf("inference: the spec carries no inference")
	case spec.GetDataset() == "":
		return nil, model.Bins{}, fmt.Errorf("inference: missing dataset")
	case len(spec.GetAggregates()) > 0:
		return nil, model.Bins{}, fmt.Errorf("inference: a validation takes no aggregates")
	case len(spec.GetFilters()) > 0 || spec.GetWhere() != nil:
		return nil, model.Bins{}, fmt.Errorf("inference: filters are not supported with a validation yet")
	case len(spec.GetGroupBy()) > 0:
		return nil, model.Bins{}, fmt.Errorf("inference: GROUP BY is not supported with a validation")
	case spec.GetPrivacy().GetEpsilon() != 0:
		return nil, model.Bins{}, fmt.Errorf("inference: differential privacy is not supported with a validation yet")
	}
	bins := inferenceBins(inf)
	m, err := model.CheckInference(inf.GetModel(), inf.GetFeatures(), inf.GetLabel(), bins)
	if err != nil {
		return nil, model.Bins{}, err
	}
	return m, bins, nil
}

// reviewInference is Review for a validation: the spec, the policy, the
// dataset, its columns and a binary label. Cells scores the records.
func (n *Node) reviewInference(spec *synodv1.QuerySpec, analyst string) error {
	if _, _, err := ValidateInference(spec); err != nil {
		return err
	}
	inf := spec.GetInference()
	cols := append(slices.Clone(inf.GetFeatures()), inf.GetLabel())
	if err := n.cfg.Policy.Check(policy.Request{Analyst: analyst, Dataset: spec.GetDataset(), Columns: cols}); err != nil {
		return err
	}
	table, ok := n.datasets[spec.GetDataset()]
	if !ok {
		return fmt.Errorf("dataset %q is not declared by %s", spec.GetDataset(), n.cfg.ID)
	}
	if mc := n.cfg.Policy.MinCohort; mc > 0 {
		return fmt.Errorf("policy rule min_cohort: this party requires a minimum cohort of %d, which model validation does not apply to its score bins yet", mc)
	}
	for _, c := range cols {
		if _, err := table.Column(c); err != nil {
			return fmt.Errorf("inference: %w", err)
		}
	}
	return checkLabel(table, inf.GetLabel())
}

// inferenceCells scores every record of t with m and bins the scores with
// the labels. Errors name columns and counts, never a record's values.
func inferenceCells(t *datasource.Table, m *model.Model, bins model.Bins, features []string, label string) ([]float64, error) {
	fcols := make([][]float64, len(features))
	for i, f := range features {
		c, err := t.Column(f)
		if err != nil {
			return nil, fmt.Errorf("inference: feature %d: %w", i+1, err)
		}
		fcols[i] = c
	}
	if err := checkLabel(t, label); err != nil {
		return nil, err
	}
	ycol, err := t.Column(label)
	if err != nil {
		return nil, fmt.Errorf("inference: label: %w", err)
	}
	cells := make([]float64, bins.Cells())
	const batch = 4096
	rec := make([][]float64, 0, batch)
	scores := make([]float64, 0, batch)
	for start := 0; start < t.Rows; start += batch {
		end := min(start+batch, t.Rows)
		rec, scores = rec[:0], scores[:0]
		for r := start; r < end; r++ {
			x := make([]float64, len(fcols))
			for i, c := range fcols {
				x[i] = c[r]
			}
			rec = append(rec, x)
		}
		for j, x := range rec {
			y, err := m.Predict(x)
			if err != nil {
				return nil, fmt.Errorf("inference: record %d: %w", start+j+1, err)
			}
			if math.IsNaN(y[0]) || math.IsInf(y[0], 0) {
				return nil, fmt.Errorf("inference: the model's score of record %d is not finite", start+j+1)
			}
			scores = append(scores, y[0])
		}
		if err := bins.BinScores(cells, scores, ycol[start:end]); err != nil {
			return nil, fmt.Errorf("inference: %w", err)
		}
	}
	return cells, nil
}

// checkLabel checks that the label column holds only 0 and 1.
func checkLabel(t *datasource.Table, label string) error {
	ycol, err := t.Column(label)
	if err != nil {
		return fmt.Errorf("inference: label: %w", err)
	}
	bad := 0
	for _, y := range ycol {
		if y != 0 && y != 1 {
			bad++
		}
	}
	if bad > 0 {
		return fmt.Errorf("inference: label column %q of dataset %s must hold 0 or 1; %d of its %d rows do not", label, t.Name, bad, t.Rows)
	}
	return nil
}
