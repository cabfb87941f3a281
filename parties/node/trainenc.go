package node

import (
	"context"
	"fmt"
	"strings"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/engine/train"
	"github.com/synod-mpc/synod/parties/query"
	"github.com/synod-mpc/synod/protocols/session"
)

// runEncryptedTraining coordinates an encrypted-mode training: the plan
// (the sigmoid's interval and degree the parties approve) must fit the
// consortium's parameter set before any party hears of it.
func (n *Node) runEncryptedTraining(ctx context.Context, analyst string, spec *synodv1.QuerySpec, t *query.Training, st *keyState, target *engine.PublicKey) (*driver, error) {
	tr := t.Spec
	if tr.GetKeepEncrypted() {
		return nil, fmt.Errorf("training: --keep-encrypted is not available yet; the trained model is released to the analyst")
	}
	pl, err := train.NewPlan(st.Params, session.TrainSpec(tr, len(n.parties), 0))
	if err != nil {
		return nil, fmt.Errorf("training: %w", err)
	}
	if err := session.CheckTrainPlan(tr, pl); err != nil {
		return nil, err
	}
	return n.startApproved(ctx, analyst, spec, st, func(string) (session.Job, error) {
		return &session.EncryptedTrainJob{Spec: spec, Target: target}, nil
	})
}

// Design is this party's selected rows of an encrypted training, scaled by
// the spec's ranges (session.TrainHost).
func (h host) Design(spec *synodv1.QuerySpec) ([][]float64, []float64, error) {
	n := h.n
	t, err := query.ValidateTraining(spec)
	if err != nil {
		return nil, nil, err
	}
	table, ok := n.datasets[spec.GetDataset()]
	if !ok {
		return nil, nil, fmt.Errorf("dataset %q is not declared by %s", spec.GetDataset(), n.cfg.ID)
	}
	names := append(append([]string(nil), t.Spec.GetFeatures()...), t.Spec.GetLabel())
	cols, err := query.Select(table, spec, names)
	if err != nil {
		return nil, nil, err
	}
	d := len(t.Spec.GetFeatures())
	if mc := n.cfg.Policy.MinCohort; mc > 0 && len(cols[d]) < mc {
		return nil, nil, fmt.Errorf("policy rule min_cohort: the training selects fewer rows here than the minimum cohort of %d", mc)
	}
	f, y, err := t.Scaling.Scale(t.Kind, cols[:d], cols[d])
	if err != nil {
		return nil, nil, fmt.Errorf("training on %s: %s", spec.GetDataset(), strings.TrimPrefix(err.Error(), "glm: "))
	}
	return f, y, nil
}
