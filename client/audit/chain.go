package audit

import (
	"context"
	"fmt"
	"strings"

	"go.dedis.ch/kyber/v3"

	"github.com/synod-mpc/synod/ledger"
	"github.com/synod-mpc/synod/ledger/records"
)

// NeedsResult is the detail of CheckLocal in VerifyChain: the checks that
// need it are those of the receipt and of the result.
const NeedsResult = "no result held: the receipt's and the result's checks need the analyst's result"

// VerifyChain checks what the chain alone proves of session, for an
// auditor who does not hold its result: the transcript and the approval,
// each found by session id and proven with the light client, the setup
// records the approval names, that the transcript names that approval,
// query, analyst and setup, and the approval certificate under the
// consortium key. It returns the checks of Verify, CheckLocal skipped with
// NeedsResult and the checks that need the result (the receipt's height
// and proof, the result hash) skipped naming it. CheckApproval runs before
// CheckSetup here, which takes the setup from the approval, so that the
// approval of a session that aborted before its transcript still verifies.
func (a *Auditor) VerifyChain(ctx context.Context, session string) []Check {
	var l checklist
	l.skip(CheckLocal, NeedsResult)

	var (
		ttx *ledger.Tx
		tv  *ledger.Verified
	)
	l.run(CheckTranscript, nil, func() (string, error) {
		var err error
		if ttx, tv, err = a.sessionRecord(ctx, session, records.KindTranscript); err != nil {
			if o, oerr := a.sessionOutcome(ctx, session); oerr == nil && o != nil {
				return "", fmt.Errorf("the chain records that session %s was %s (%s); it has no transcript", session, o.Outcome, o.Reason)
			}
			return "", err
		}
		return fmt.Sprintf("tx %X in block %d (%s), found by session id, light-client verified from genesis", tv.TxHash, tv.Height, timeOf(tv)), nil
	})
	l.run(CheckHeight, []string{CheckLocal}, nil)
	l.run(CheckProof, []string{CheckLocal}, nil)

	var tr *records.Transcript
	l.run(CheckRecord, []string{CheckTranscript}, func() (string, error) {
		var err error
		if tr, err = records.DecodeTranscript(ttx.Body); err != nil {
			return "", err
		}
		return fmt.Sprintf("recorded by %s: %d messages, data from %s", ttx.Sender, len(tr.Messages), strings.Join(tr.Contributors, ", ")), nil
	})

	var (
		ap     *records.Approval
		apHash []byte
	)
	l.run(CheckApproval, nil, func() (string, error) {
		tx, av, err := a.sessionRecord(ctx, session, records.KindApproval)
		if err != nil {
			return "", err
		}
		if ap, err = records.DecodeApproval(tx.Body); err != nil {
			return "", err
		}
		apHash = av.TxHash
		return fmt.Sprintf("tx %X in block %d, found by session id; approved by %s", av.TxHash, av.Height, strings.Join(ap.Signers, ", ")), nil
	})

	var groupKey kyber.Point
	l.run(CheckSetup, []string{CheckApproval}, func() (string, error) {
		var err error
		if groupKey, err = a.setupKey(ctx, ap.SetupID); err != nil {
			return "", err
		}
		return fmt.Sprintf("all %d parties recorded the same keys (setup %s)", len(a.cons.Parties()), ap.SetupID), nil
	})
	l.run(CheckApprovalRef, []string{CheckRecord, CheckApproval}, func() (string, error) {
		if err := sameApproval(tr, ap, "the approval on the chain", apHash, ap.SetupID); err != nil {
			return "", err
		}
		return "the transcript names this approval, its query, analyst and setup", nil
	})
	l.run(CheckCertificate, []string{CheckApproval, CheckSetup}, func() (string, error) {
		if err := checkApproval(session, ap, nil, groupKey); err != nil {
			return "", err
		}
		return "threshold-BLS certificate of the approved query verifies under the consortium key", nil
	})
	l.run(CheckResult, []string{CheckLocal}, nil)
	return l.checks
}
