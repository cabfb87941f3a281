// Package audit verifies a result an analyst holds against the consortium
// chain, trusting only the consortium file: the chain's genesis (its
// validator set) and the parties' identity keys. Every record it relies on
// is proven with CometBFT's light client and checked to be signed by its
// sender; reads that are not proven only point at records to prove.
//
// Verify runs a fixed list of checks, each of which runs unless a check it
// depends on did not pass, so that one tampered item does not hide the
// state of the others. Presenting the checks is the caller's business.
package audit

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.dedis.ch/kyber/v3"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/ledger"
	"github.com/synod-mpc/synod/ledger/records"
	"github.com/synod-mpc/synod/parties/consortium"
)

// Status is the outcome of a check.
type Status int

const (
	// OK: the check passed.
	OK Status = iota
	// Fail: the check ran and failed.
	Fail
	// Skip: the check did not run, because a check it needs did not pass.
	Skip
)

// String is the status as mpcctl has always printed it in skip details and
// JSON: "ok", "FAIL", "skipped".
func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case Fail:
		return "FAIL"
	case Skip:
		return "skipped"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Check is one check and its outcome.
type Check struct {
	Name   string
	Status Status
	// Detail is what was verified (OK), what is wrong (Fail), or which of
	// the checks it needs did not pass (Skip).
	Detail string
	// Needs are the checks this one depends on.
	Needs []string
}

// Tally counts the checks that failed and those skipped.
func Tally(checks []Check) (failed, skipped int) {
	for _, c := range checks {
		switch c.Status {
		case Fail:
			failed++
		case Skip:
			skipped++
		}
	}
	return failed, skipped
}

// Names of the checks Verify runs, in the order it runs them.
const (
	CheckLocal       = "local result"
	CheckTranscript  = "transcript inclusion"
	CheckHeight      = "receipt height"
	CheckProof       = "receipt proof"
	CheckRecord      = "transcript record"
	CheckSetup       = "setup records"
	CheckApproval    = "approval inclusion"
	CheckApprovalRef = "approval reference"
	CheckCertificate = "approval certificate"
	CheckResult      = "result hash"
)

// Held is where the analyst keeps the results it received (the analyst
// client's result store).
type Held interface {
	// Load returns a session's result metadata, with its receipt, and
	// the result ciphertext as received.
	Load(session string) (*synodv1.ResultMetadata, []byte, error)
}

// Auditor verifies records against the chain, trusting only the
// consortium file.
type Auditor struct {
	cons    *consortium.Consortium
	members map[string]kyber.Point
	rpcs    []string
}

// New reads the consortium file. It needs the file's chain section and at
// least two chain RPC addresses: a light client needs a primary and a
// witness.
func New(consortiumFile string) (*Auditor, error) {
	cons, err := consortium.Load(consortiumFile)
	if err != nil {
		return nil, err
	}
	if cons.Chain == nil {
		return nil, fmt.Errorf("consortium file %s has no chain section", consortiumFile)
	}
	a := &Auditor{cons: cons, members: map[string]kyber.Point{}, rpcs: cons.RPCAddresses()}
	for _, m := range cons.Parties() {
		k, err := cons.IdentityKey(m.ID)
		if err != nil {
			return nil, err
		}
		a.members[m.ID] = k
	}
	if len(a.rpcs) < 2 {
		return nil, fmt.Errorf("consortium file lists %d chain RPC addresses; a light client needs a primary and a witness", len(a.rpcs))
	}
	return a, nil
}

// Log lists the sessions recorded on the chain. The list is an unverified
// read of one party's RPC (the first that answers): what it says is proven
// only by verifying a session.
func (a *Auditor) Log(ctx context.Context) ([]ledger.SessionSummary, error) {
	var sessions []ledger.SessionSummary
	if err := a.read(func(c ledger.Client) (err error) {
		sessions, err = c.Sessions(ctx)
		return err
	}); err != nil {
		return nil, fmt.Errorf("read the chain: %w", err)
	}
	return sessions, nil
}

// include proves a tx's inclusion, trying each party's RPC in turn as
// primary with the others as witnesses, and returns the decoded,
// signature-checked tx. A primary or witness that is down or misbehaves
// makes it move on to the next primary; the error lists every attempt.
func (a *Auditor) include(ctx context.Context, txHash []byte, kind, session string) (*ledger.Tx, *ledger.Verified, error) {
	var errs []string
	for i, primary := range a.rpcs {
		witnesses := slices.Delete(slices.Clone(a.rpcs), i, i+1)
		v, err := ledger.VerifyInclusion(ctx, []byte(a.cons.Chain.Genesis), primary, witnesses, txHash)
		if err != nil {
			errs = append(errs, fmt.Sprintf("primary %s: %v", primary, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		tx, err := ledger.DecodeTx(v.Tx)
		if err != nil {
			return nil, nil, err
		}
		if err := tx.Verify(a.members); err != nil {
			return nil, nil, err
		}
		if tx.Kind != kind || tx.Session != session {
			return nil, nil, fmt.Errorf("tx %X is a %s record of session %s, expected %s of %s", txHash, tx.Kind, tx.Session, kind, session)
		}
		return tx, v, nil
	}
	return nil, nil, fmt.Errorf("no chain RPC proved tx %X (%d tried): %s", txHash, len(errs), strings.Join(errs, "; "))
}

// read runs an unverified read against the first party RPC that answers.
// What it returns is only a pointer into the chain: everything that
// matters is then proven with include.
func (a *Auditor) read(f func(ledger.Client) error) error {
	var lastErr error
	for _, rpc := range a.rpcs {
		c, err := ledger.NewRemoteClient(rpc)
		if err == nil {
			if err = f(c); err == nil {
				return nil
			}
		}
		lastErr = err
	}
	return lastErr
}

// Outcome says how a session on the chain ended, from the kinds of its
// records: "released" (a receipt), "aborted" (an outcome record: the
// approved session failed and released nothing more), "recorded" (a
// transcript without a receipt: a model upload or prediction), "setup",
// or "approved, no end recorded" (an approval alone: the session is still
// running, or its coordinator stopped before it could record the end).
func Outcome(s ledger.SessionSummary) string {
	has := map[string]bool{}
	for _, e := range s.Entries {
		has[e.Kind] = true
	}
	switch {
	case has[records.KindReceipt]:
		return "released"
	case has[records.KindOutcome]:
		return "aborted"
	case has[records.KindTranscript]:
		return "recorded"
	case has[records.KindSetup]:
		return "setup"
	case has[records.KindApproval]:
		return "approved, no end recorded"
	}
	return "unknown"
}
