package node

import (
	"context"
	"errors"
	"fmt"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/parties/query"
	"github.com/synod-mpc/synod/protocols/session"
)

// host is what this node's party machines ask of it (session.Host): its
// policy's decisions and its own data.
type host struct{ n *Node }

var _ session.Host = host{}

// Review applies this party's policy to a spec: the analyst must be a
// consortium analyst, the dataset declared here, every column present,
// and the policy rules (analysts, columns, differential privacy, minimum
// cohort) met. It reads no rows: Cells does.
func (h host) Review(sessionID string, spec *synodv1.QuerySpec, analyst string) (session.Terms, error) {
	n := h.n
	terms := session.Terms{MinCohort: n.cfg.Policy.MinCohort}
	if m, ok := n.cons.Member(analyst); !ok || m.Role != "analyst" {
		return terms, fmt.Errorf("%s is not an analyst of the consortium", analyst)
	}
	switch {
	case spec.GetInference() != nil:
		return terms, n.reviewInference(spec, analyst) // infer.go
	case spec.GetTraining() != nil:
		return terms, n.reviewTraining(sessionID, spec, analyst) // train.go
	}
	if err := query.Validate(spec); err != nil {
		return terms, err
	}
	table, ok := n.datasets[spec.GetDataset()]
	if !ok {
		return terms, fmt.Errorf("dataset %q is not declared by %s", spec.GetDataset(), n.cfg.ID)
	}
	if err := n.policyCheck(context.Background(), spec, analyst, sessionID); err != nil {
		return terms, err
	}
	if _, err := query.NoiseScales(spec, n.columnBounds(spec.GetDataset())); err != nil {
		return terms, err
	}
	if err := query.CheckColumns(table, spec); err != nil {
		return terms, err
	}
	return terms, nil
}

// Cells filters and encodes this party's rows for a spec Review accepted,
// with its share of the differential privacy noise: a query's partial
// sums, a validation's binned scores, exact training's statistics.
func (h host) Cells(spec *synodv1.QuerySpec, round int, coefficients []float64) (*session.Cells, error) {
	n := h.n
	table, ok := n.datasets[spec.GetDataset()]
	if !ok {
		return nil, fmt.Errorf("dataset %q is not declared by %s", spec.GetDataset(), n.cfg.ID)
	}
	switch {
	case spec.GetInference() != nil:
		m, bins, err := ValidateInference(spec)
		if err != nil {
			return nil, err
		}
		inf := spec.GetInference()
		values, err := inferenceCells(table, m, bins, inf.GetFeatures(), inf.GetLabel())
		if err != nil {
			return nil, err
		}
		return &session.Cells{Values: values}, nil
	case spec.GetTraining() != nil:
		return n.trainingCells(table, spec, round, coefficients) // train.go
	}
	if round != 1 {
		return nil, errors.New("a query has one round")
	}
	values, err := query.Local(table, spec)
	if err != nil {
		return nil, err
	}
	if _, err := n.addNoiseShares(spec, values); err != nil {
		return nil, err
	}
	groups, per := query.GroupShape(spec)
	return &session.Cells{Values: values, Groups: groups, PerGroup: per}, nil
}
