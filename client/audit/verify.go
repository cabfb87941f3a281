package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.dedis.ch/kyber/v3"
	"google.golang.org/protobuf/proto"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/ledger"
	"github.com/synod-mpc/synod/ledger/records"
	"github.com/synod-mpc/synod/protocols"
)

// checklist runs checks in order, each unless one it needs did not pass.
type checklist struct {
	checks []Check
}

// run runs the check name unless one of the checks it needs did not pass,
// in which case it is recorded as skipped, naming them. f returns the
// detail of a pass.
func (l *checklist) run(name string, needs []string, f func() (string, error)) bool {
	var missing []string
	for _, n := range needs {
		if st, ran := l.status(n); !ran {
			missing = append(missing, n+" (not run)")
		} else if st != OK {
			missing = append(missing, fmt.Sprintf("%s (%s)", n, st))
		}
	}
	if len(missing) > 0 {
		l.checks = append(l.checks, Check{Name: name, Status: Skip, Needs: needs,
			Detail: "skipped: needs " + strings.Join(missing, ", ")})
		return false
	}
	detail, err := f()
	c := Check{Name: name, Status: OK, Detail: detail, Needs: needs}
	if err != nil {
		c.Status, c.Detail = Fail, err.Error()
	}
	l.checks = append(l.checks, c)
	return err == nil
}

// skip records the check name as skipped for a reason of the caller's
// (not a check that failed), which the checks that need it then name.
func (l *checklist) skip(name, detail string) {
	l.checks = append(l.checks, Check{Name: name, Status: Skip, Detail: detail})
}

// status is the outcome of the check name, and whether it has run.
func (l *checklist) status(name string) (Status, bool) {
	for _, c := range l.checks {
		if c.Name == name {
			return c.Status, true
		}
	}
	return 0, false
}

// Verify checks the result of session that held keeps against the chain:
//   - the transcript's inclusion in a block, with CometBFT's light client,
//     at the receipt's height, and the receipt's Merkle inclusion proof
//     against that block's light-client-verified data hash,
//   - the parties' setup records and the consortium BLS key they agree on,
//   - the approval certificate against that key and the query that was run,
//   - that the result held hashes to what the transcript committed.
//
// It returns every check in the order of the Check* names; the result is
// verified when every check is OK.
func (a *Auditor) Verify(ctx context.Context, session string, held Held) []Check {
	var l checklist
	var (
		meta *synodv1.ResultMetadata
		ct   []byte
	)
	l.run(CheckLocal, nil, func() (string, error) {
		var err error
		if meta, ct, err = held.Load(session); err != nil {
			if o, oerr := a.sessionOutcome(ctx, session); oerr == nil && o != nil {
				return "", fmt.Errorf("the chain records that session %s was %s (%s); nothing was released to verify", session, o.Outcome, o.Reason)
			}
			return "", err
		}
		if meta.GetReceipt() == nil {
			return "", errors.New("the result has no receipt")
		}
		return fmt.Sprintf("result and receipt of session %s", session), nil
	})
	rc := meta.GetReceipt()

	// 1. The transcript the receipt points at is in the chain, at the
	// height it says, and the receipt's inclusion proof leads to the
	// light-client-verified block.
	var (
		ttx *ledger.Tx
		tv  *ledger.Verified
	)
	l.run(CheckTranscript, []string{CheckLocal}, func() (string, error) {
		var err error
		if ttx, tv, err = a.include(ctx, rc.GetTxHash(), records.KindTranscript, session); err != nil {
			return "", err
		}
		return fmt.Sprintf("tx %X in block %d (%s), light-client verified from genesis", rc.GetTxHash(), tv.Height, timeOf(tv)), nil
	})
	l.run(CheckHeight, []string{CheckTranscript}, func() (string, error) {
		if tv.Height != rc.GetHeight() {
			return "", fmt.Errorf("receipt says height %d, the chain has the transcript at %d", rc.GetHeight(), tv.Height)
		}
		return fmt.Sprintf("height %d", tv.Height), nil
	})
	l.run(CheckProof, []string{CheckTranscript}, func() (string, error) {
		p := rc.GetInclusionProof()
		if p == nil {
			return "", errors.New("the receipt carries no inclusion proof")
		}
		err := ledger.VerifyProof(tv, &ledger.Proof{Height: rc.GetHeight(), RootHash: p.GetRootHash(), Data: p.GetData(),
			Total: p.GetTotal(), Index: p.GetIndex(), LeafHash: p.GetLeafHash(), Aunts: p.GetAunts()})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("Merkle proof (tx %d of %d) leads to the verified data hash %X of block %d", p.GetIndex()+1, p.GetTotal(), tv.DataHash, tv.Height), nil
	})

	// 2. The transcript's content. When the receipt does not lead to it,
	// the session's transcript is looked up on the chain by session id
	// (an unverified pointer) and proven like any other record.
	var tr *records.Transcript
	l.run(CheckRecord, []string{CheckLocal}, func() (string, error) {
		how := "reached through the receipt"
		if ttx == nil {
			var err error
			if ttx, _, err = a.sessionRecord(ctx, session, records.KindTranscript); err != nil {
				return "", fmt.Errorf("the receipt does not lead to the transcript, and by session id: %w", err)
			}
			how = "found by session id (light-client verified)"
		}
		var err error
		if tr, err = records.DecodeTranscript(ttx.Body); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s; recorded by %s: %d messages, data from %s", how, ttx.Sender, len(tr.Messages), strings.Join(tr.Contributors, ", ")), nil
	})

	// 3. The setup: every party recorded the same consortium key.
	var groupKey kyber.Point
	setupID := rc.GetSetupSession()
	if st, _ := l.status(CheckRecord); st == OK {
		setupID = tr.SetupID
	}
	l.run(CheckSetup, []string{CheckLocal}, func() (string, error) {
		var err error
		if groupKey, err = a.setupKey(ctx, setupID); err != nil {
			return "", err
		}
		return fmt.Sprintf("all %d parties recorded the same keys (setup %s)", len(a.cons.Parties()), setupID), nil
	})

	// 4. The approval the receipt names is on the chain, it is the one the
	// transcript names, and its certificate verifies.
	var ap *records.Approval
	l.run(CheckApproval, []string{CheckLocal}, func() (string, error) {
		tx, av, err := a.include(ctx, rc.GetApprovalTxHash(), records.KindApproval, session)
		if err != nil {
			return "", err
		}
		if ap, err = records.DecodeApproval(tx.Body); err != nil {
			return "", err
		}
		return fmt.Sprintf("tx %X in block %d", rc.GetApprovalTxHash(), av.Height), nil
	})
	l.run(CheckApprovalRef, []string{CheckRecord, CheckApproval}, func() (string, error) {
		if err := sameApproval(tr, ap, "the receipt", rc.GetApprovalTxHash(), rc.GetSetupSession()); err != nil {
			return "", err
		}
		return "the transcript and the receipt name the same approval, query, analyst and setup", nil
	})
	l.run(CheckCertificate, []string{CheckApproval, CheckSetup}, func() (string, error) {
		if err := checkApproval(session, ap, meta, groupKey); err != nil {
			return "", err
		}
		return "threshold-BLS certificate verifies under the consortium key; same query as held here", nil
	})

	// 5. The result held here is the one the transcript committed.
	l.run(CheckResult, []string{CheckRecord}, func() (string, error) {
		got := sha256.Sum256(ct)
		if hex.EncodeToString(got[:]) != tr.ResultDigest {
			return "", fmt.Errorf("local result hashes to %x, the transcript committed %s", got, tr.ResultDigest)
		}
		return fmt.Sprintf("SHA-256 %x matches the transcript", got), nil
	})
	return l.checks
}

// sessionRecord finds the session's one record of kind on the chain (an
// unverified read) and proves its inclusion.
func (a *Auditor) sessionRecord(ctx context.Context, session, kind string) (*ledger.Tx, *ledger.Verified, error) {
	var recs []ledger.Record
	if err := a.read(func(c ledger.Client) (err error) {
		recs, err = c.Session(ctx, session)
		return err
	}); err != nil {
		return nil, nil, fmt.Errorf("read session records: %w", err)
	}
	var hashes [][]byte
	for _, r := range recs {
		if r.Tx.Kind == kind {
			hashes = append(hashes, r.TxHash)
		}
	}
	if len(hashes) != 1 {
		return nil, nil, fmt.Errorf("the chain has %d %s records of session %s", len(hashes), kind, session)
	}
	return a.include(ctx, hashes[0], kind, session)
}

// sessionOutcome returns the session's outcome record, proven like any
// other, or nil when the chain has none.
func (a *Auditor) sessionOutcome(ctx context.Context, session string) (*records.Outcome, error) {
	var recs []ledger.Record
	if err := a.read(func(c ledger.Client) (err error) {
		recs, err = c.Session(ctx, session)
		return err
	}); err != nil {
		return nil, err
	}
	for _, r := range recs {
		if r.Tx.Kind != records.KindOutcome {
			continue
		}
		tx, _, err := a.include(ctx, r.TxHash, records.KindOutcome, session)
		if err != nil {
			return nil, err
		}
		return records.DecodeOutcome(tx.Body)
	}
	return nil, nil
}

// setupKey proves every setup record of setupSession and returns the
// consortium's BLS key once every party recorded the same keys.
func (a *Auditor) setupKey(ctx context.Context, setupSession string) (kyber.Point, error) {
	var recs []ledger.Record
	err := a.read(func(c ledger.Client) (err error) {
		recs, err = c.Session(ctx, setupSession)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read setup records: %w", err)
	}
	var ref *records.Setup
	signers := map[string]bool{}
	for _, r := range recs {
		if r.Tx.Kind != records.KindSetup {
			continue
		}
		tx, _, err := a.include(ctx, r.TxHash, records.KindSetup, setupSession)
		if err != nil {
			return nil, err
		}
		s, err := records.DecodeSetup(tx.Body)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tx.Sender, err)
		}
		if ref == nil {
			ref = s
		} else if s.GroupKey != ref.GroupKey || s.KeyDigest != ref.KeyDigest {
			return nil, fmt.Errorf("%s recorded other keys than the other parties", tx.Sender)
		}
		signers[tx.Sender] = true
	}
	for _, p := range a.cons.PartyIDs() {
		if !signers[p] {
			return nil, fmt.Errorf("no setup record from %s", p)
		}
	}
	raw, err := hex.DecodeString(ref.GroupKey)
	if err != nil {
		return nil, err
	}
	return protocols.UnmarshalGroupKey(raw)
}

// sameApproval checks that the transcript names the approval whose tx
// hash and setup by (the receipt, the chain) gives, and the approval's
// query and analyst.
func sameApproval(tr *records.Transcript, ap *records.Approval, by string, approvalTx []byte, setupID string) error {
	named, _ := hex.DecodeString(tr.ApprovalTx)
	switch {
	case !bytes.Equal(named, approvalTx):
		return fmt.Errorf("transcript names approval %s, %s %X", tr.ApprovalTx, by, approvalTx)
	case tr.SetupID != setupID:
		return fmt.Errorf("transcript names setup %s, %s %s", tr.SetupID, by, setupID)
	case ap.SpecDigest != tr.SpecDigest:
		return errors.New("the approved query and the transcript's query differ")
	case ap.Analyst != tr.Analyst:
		return fmt.Errorf("approved for %s, transcript names %s", ap.Analyst, tr.Analyst)
	}
	return nil
}

// checkApproval checks the approval record's certificate against the
// consortium key and, unless meta is nil (nothing is held), the query and
// certificate held here.
func checkApproval(session string, ap *records.Approval, meta *synodv1.ResultMetadata, groupKey kyber.Point) error {
	spec, err := hex.DecodeString(ap.Spec)
	if err != nil {
		return fmt.Errorf("approval record: spec: %w", err)
	}
	specDigest := sha256.Sum256(spec)
	if hex.EncodeToString(specDigest[:]) != ap.SpecDigest {
		return fmt.Errorf("the approval record's query does not hash to its digest")
	}
	if meta != nil {
		local, err := proto.MarshalOptions{Deterministic: true}.Marshal(meta.GetSpec())
		if err != nil || !bytes.Equal(local, spec) {
			return fmt.Errorf("the query held here is not the one approved")
		}
	}
	cert, err := hex.DecodeString(ap.Certificate)
	if err != nil {
		return fmt.Errorf("approval record: certificate: %w", err)
	}
	if meta != nil && !bytes.Equal(cert, meta.GetReceipt().GetCertificate()) {
		return fmt.Errorf("the certificate held here differs from the one on the chain")
	}
	if err := protocols.VerifyCertificate(groupKey, protocols.ApprovalMessage(session, ap.Analyst, specDigest[:]), cert); err != nil {
		return fmt.Errorf("certificate does not verify under the consortium key: %w", err)
	}
	return nil
}

func timeOf(v *ledger.Verified) string {
	if v == nil {
		return ""
	}
	return v.Time.UTC().Format(time.RFC3339)
}
