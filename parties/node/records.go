package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/ledger"
	"github.com/synod-mpc/synod/ledger/records"
	"github.com/synod-mpc/synod/protocols/session"
)

// The bodies of the ledger records a node writes are package records'.

func digest(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

func strs[T ~string](ids []T) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = string(id)
	}
	return out
}

// commit turns a machine's record into its chain body — with the
// transcript's message digests and the times, which only the driver knows —
// and commits it.
func (d *driver) commit(c session.Commit) session.Committed {
	body, err := d.recordBody(c)
	if err != nil {
		return session.Committed{Ref: c.Ref, Err: err}
	}
	began := time.Now()
	r, err := d.n.record(d.ctx, c.Kind, d.id, body)
	if d.role == session.ToCoordinator {
		d.mu.Lock()
		d.ledgerTime += time.Since(began)
		d.mu.Unlock()
	}
	if err != nil {
		return session.Committed{Ref: c.Ref, Err: err}
	}
	if c.Kind == records.KindApproval && d.role == session.ToCoordinator {
		d.mu.Lock()
		d.approved = true
		d.mu.Unlock()
	}
	return session.Committed{Ref: c.Ref, Receipt: session.Receipt{Height: r.Height, TxHash: r.TxHash}}
}

// recordOutcome commits, for a session whose approval is on the chain and
// that failed, how it ended: the approval then never stands on the chain
// without an end, and auditors tell an aborted session from a missing
// transcript. Best effort: the chain may be what failed.
func (d *driver) recordOutcome(cause error) {
	d.mu.Lock()
	rounds := len(d.releases)
	d.mu.Unlock()
	body := records.Outcome{Analyst: d.analyst, Outcome: records.OutcomeAborted, Reason: cause.Error(),
		Offender: string(session.Offender(cause)), Released: rounds, Finished: time.Now().UTC()}
	if _, err := d.n.record(context.Background(), records.KindOutcome, d.id, body); err != nil {
		d.n.log.Warn("could not record the session's outcome", "session", d.id, "error", err)
	}
}

func (d *driver) recordBody(c session.Commit) (any, error) {
	switch r := c.Record.(type) {
	case session.SetupRecord:
		return records.Setup{Parameters: r.Parameters, Parties: strs(r.Parties), Threshold: r.Threshold,
			KeyDigest: hex.EncodeToString(r.KeyDigest), GroupKey: hex.EncodeToString(r.GroupKey), CRSSeed: hex.EncodeToString(r.CRSSeed)}, nil
	case session.ApprovalRecord:
		spec := &synodv1.QuerySpec{}
		if err := proto.Unmarshal(r.Spec, spec); err != nil {
			return nil, fmt.Errorf("approval record: spec: %w", err)
		}
		return records.Approval{Analyst: r.Analyst, Spec: hex.EncodeToString(r.Spec), SpecDigest: hex.EncodeToString(digest(r.Spec)),
			Certificate: hex.EncodeToString(r.Certificate), Signers: r.Signers, SetupID: r.SetupSession,
			Epsilon: spec.GetPrivacy().GetEpsilon(), MinCohort: r.MinCohort}, nil
	case session.TranscriptRecord:
		rec := records.Transcript{Analyst: r.Analyst, Parameters: r.Parameters, SpecDigest: hex.EncodeToString(r.SpecDigest),
			ApprovalTx: hex.EncodeToString(r.ApprovalTx), SetupID: r.SetupSession, Participants: strs(r.Participants),
			Contributors: strs(r.Contributors), KeySwitchers: strs(r.KeySwitchers), Refreshers: strs(r.Refreshers),
			ResultDigest: hex.EncodeToString(r.ResultDigest), MinCohort: r.MinCohort, Suppressed: r.Suppressed,
			Round: r.Round, Rounds: r.Rounds, Outcome: r.Outcome, Started: d.started, Finished: time.Now().UTC()}
		if c.Transcript {
			for _, h := range d.transcriptDigests() {
				rec.Messages = append(rec.Messages, hex.EncodeToString(h))
			}
		}
		if r.Model == "" {
			return rec, nil
		}
		return records.Model{Transcript: rec, Model: r.Model, ModelDigest: hex.EncodeToString(r.ModelDigest)}, nil
	}
	return nil, fmt.Errorf("record of unknown type %T", c.Record)
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
