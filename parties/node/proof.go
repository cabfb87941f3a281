package node

import (
	"context"
	"fmt"
	"time"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/ledger"
)

// InclusionProof passes a proof request through the shutdown fence.
func (g *guardedChain) InclusionProof(ctx context.Context, txHash []byte) (*ledger.Proof, error) {
	ctx, leave, err := g.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer leave()
	return ledger.InclusionProof(ctx, g.c, txHash)
}

// inclusionProof fetches the Merkle proof of a tx this node just committed,
// for a receipt. The node's own validator may index the block a moment
// after the commit returned, so it retries briefly.
func (n *Node) inclusionProof(ctx context.Context, txHash []byte) (*synodv1.InclusionProof, error) {
	if n.chain == nil {
		return nil, fmt.Errorf("ledger: not connected")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*n.cfg.Timeouts.Peer)
	defer cancel()
	for {
		p, err := ledger.InclusionProof(ctx, n.chain, txHash)
		if err == nil {
			return proofToProto(p), nil
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func proofToProto(p *ledger.Proof) *synodv1.InclusionProof {
	return &synodv1.InclusionProof{RootHash: p.RootHash, Data: p.Data, Total: p.Total, Index: p.Index,
		LeafHash: p.LeafHash, Aunts: p.Aunts}
}
