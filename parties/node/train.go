package node

import (
	"context"
	"fmt"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/engine/glm"
	"github.com/synod-mpc/synod/parties/datasource"
	"github.com/synod-mpc/synod/parties/query"
	"github.com/synod-mpc/synod/protocols/session"
)

// Training ("mpcctl train"). Exact mode is a session of cells: each round
// every party computes the sufficient statistics of its selected rows
// (engine/glm) at the round's coefficients, encrypts them under the
// collective key; their sum is key-switched to the analyst, who solves
// (one round for linear regression; one per Newton iteration for logistic
// regression, the analyst sending the next coefficients). Encrypted mode
// keeps the model under the collective key (trainenc.go).

// runTraining coordinates one training for analyst.
func (n *Node) runTraining(ctx context.Context, analyst string, spec *synodv1.QuerySpec, analystKey []byte) (*driver, error) {
	st := n.keyState()
	if st == nil {
		return nil, fmt.Errorf("the consortium is not set up; run mpcctl setup")
	}
	t, err := query.ValidateTraining(spec)
	if err != nil {
		return nil, err
	}
	target, err := engine.DecodePublicKey(st.Params, analystKey)
	if err != nil {
		return nil, fmt.Errorf("analyst public key: %w", err)
	}
	if t.Spec.GetMode() == synodv1.Training_ENCRYPTED {
		return n.runEncryptedTraining(ctx, analyst, spec, t, st, target)
	}
	scales, err := t.NoiseScales(spec)
	if err != nil {
		return nil, err
	}
	labels := t.Labels()
	if len(labels) > st.Params.MaxSlots() {
		return nil, fmt.Errorf("training: %d statistics exceed the %d slots of one %s ciphertext", len(labels), st.Params.MaxSlots(), st.Params.Name)
	}
	return n.startApproved(ctx, analyst, spec, st, func(string) (session.Job, error) {
		return &session.CellsJob{Target: target, Spec: spec, Labels: labels, NoiseScales: scales, Rounds: t.Rounds, What: "training",
			Intro: fmt.Sprintf("exact %s regression on %s: %d features, label %s, %d statistics per party per round, at most %d rounds",
				t.Kind, spec.GetDataset(), len(t.Spec.GetFeatures()), t.Spec.GetLabel(), len(labels), t.Rounds)}, nil
	})
}

// reviewTraining is Review for a training: the spec, the schema's ranges,
// the policy, the dataset and its columns.
func (n *Node) reviewTraining(sessionID string, spec *synodv1.QuerySpec, analyst string) error {
	t, err := query.ValidateTraining(spec)
	if err != nil {
		return err
	}
	table, ok := n.datasets[spec.GetDataset()]
	if !ok {
		return fmt.Errorf("dataset %q is not declared by %s", spec.GetDataset(), n.cfg.ID)
	}
	// The ranges scale every party's rows alike: they must be the
	// consortium schema's, or the parties' statistics would not add up.
	bounds := n.columnBounds(spec.GetDataset())
	cols := append([]glm.Column(nil), t.Scaling.Features...)
	if t.Kind == glm.Linear {
		cols = append(cols, t.Scaling.Label)
	}
	for _, c := range cols {
		lo, hi, ok := bounds(c.Name)
		switch {
		case !ok:
			return fmt.Errorf("training: the consortium schema declares no range for column %s of %s", c.Name, spec.GetDataset())
		case lo != c.Min || hi != c.Max:
			return fmt.Errorf("training: the spec scales column %s by [%g, %g], the consortium schema declares [%g, %g]", c.Name, c.Min, c.Max, lo, hi)
		}
	}
	if err := n.policyCheck(context.Background(), spec, analyst, sessionID); err != nil {
		return err
	}
	for _, c := range t.Columns(spec) {
		if _, err := table.Column(c); err != nil {
			return fmt.Errorf("training: %w", err)
		}
	}
	return nil
}

// trainingCells computes this party's statistics for a round of exact
// training at the given coefficients (zero for the first round), with its
// share of the differential privacy noise.
func (n *Node) trainingCells(table *datasource.Table, spec *synodv1.QuerySpec, round int, coefficients []float64) (*session.Cells, error) {
	t, err := query.ValidateTraining(spec)
	if err != nil {
		return nil, err
	}
	if t.Spec.GetMode() != synodv1.Training_EXACT {
		return nil, fmt.Errorf("training: encrypted mode has no plaintext cells")
	}
	if round < 1 || round > t.Rounds {
		return nil, fmt.Errorf("training: round %d outside [1, %d]", round, t.Rounds)
	}
	names := append(append([]string(nil), t.Spec.GetFeatures()...), t.Spec.GetLabel())
	cols, err := query.Select(table, spec, names)
	if err != nil {
		return nil, err
	}
	d := len(t.Spec.GetFeatures())
	rows := 0
	if len(cols) > 0 {
		rows = len(cols[0])
	}
	if mc := n.cfg.Policy.MinCohort; mc > 0 && rows < mc {
		return nil, fmt.Errorf("policy rule min_cohort: the training selects fewer rows here than the minimum cohort of %d", mc)
	}
	var values []float64
	switch t.Kind {
	case glm.Linear:
		values, err = glm.LinearStats(cols[:d], cols[d], t.Scaling)
	case glm.Logistic:
		b := coefficients
		if b == nil {
			b = make([]float64, t.Scaling.P())
		}
		values, err = glm.LogisticStats(cols[:d], cols[d], t.Scaling, b)
	}
	if err != nil {
		return nil, fmt.Errorf("training on %s: %w", spec.GetDataset(), err)
	}
	if _, err := n.addNoiseShares(spec, values); err != nil {
		return nil, err
	}
	return &session.Cells{Values: values}, nil
}
