package node

import (
	"context"
	"errors"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/parties/query"
)

func (n *Node) runEncryptedTraining(ctx context.Context, analyst string, spec *synodv1.QuerySpec, t *query.Training, st *keyState, target *engine.PublicKey) (*driver, error) {
	return nil, errors.New("training: encrypted mode is not wired yet")
}
