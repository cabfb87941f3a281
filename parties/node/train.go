package node

import (
	"context"
	"errors"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/parties/datasource"
	"github.com/synod-mpc/synod/protocols/session"
)

func (n *Node) runTraining(ctx context.Context, analyst string, spec *synodv1.QuerySpec, analystKey []byte) (*driver, error) {
	return nil, errors.New("training: not implemented")
}

func (n *Node) reviewTraining(sessionID string, spec *synodv1.QuerySpec, analyst string) error {
	return errors.New("training: not implemented")
}

func (n *Node) trainingCells(t *datasource.Table, spec *synodv1.QuerySpec, round int, coefficients []float64) (*session.Cells, error) {
	return nil, errors.New("training: not implemented")
}
