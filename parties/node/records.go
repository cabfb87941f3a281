package node

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/synod-mpc/synod/ledger"
	"github.com/synod-mpc/synod/ledger/records"
)

// The bodies of the ledger records a node writes are defined, with their
// kinds and decoders, in package records; these are the node's names for
// them.
type (
	setupRecord      = records.Setup
	approvalRecord   = records.Approval
	transcriptRecord = records.Transcript
	receiptRecord    = records.Receipt
)

func digest(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

// record signs and commits one record to the chain.
func (n *Node) record(ctx context.Context, kind, session string, body any) (*ledger.Receipt, error) {
	if n.chain == nil {
		return nil, fmt.Errorf("ledger: not connected")
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	tx := &ledger.Tx{Kind: kind, Session: session, Sender: n.cfg.ID, Body: b, Nonce: n.seq.Add(1)}
	if err := tx.Sign(ledger.KeySigner{Private: n.id.Secret}); err != nil {
		return nil, fmt.Errorf("ledger: sign %s record: %w", kind, err)
	}
	timeout := 3 * n.cfg.Timeouts.Peer
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r, err := n.chain.Commit(cctx, tx)
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		// The chain commits only with more than 2/3 of its voting power up:
		// a stalled chain looks like a timeout from here.
		return nil, fmt.Errorf("ledger: the chain did not commit the %s record of session %s within %s: is more than 2/3 of the validator set up? (%w)", kind, session, timeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: record %s of session %s: %w", kind, session, err)
	}
	return r, nil
}
