package node

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/synod-mpc/synod/ledger"
)

// The bodies of the ledger records a node writes. JSON, because auditors
// read them with nothing but the consortium file; every byte string is
// hex so that the records are readable as they are.

// setupRecord is what each party records when the consortium setup ends:
// auditors take the consortium's BLS key from it once every party agrees.
type setupRecord struct {
	Parameters string   `json:"parameters"`
	Parties    []string `json:"parties"`
	Threshold  int      `json:"threshold"`
	KeyDigest  string   `json:"key_digest"` // digest of pk, rlk, Galois keys (protocols.SetupResult.Digest)
	GroupKey   string   `json:"group_key"`  // consortium threshold-BLS key (bn256 G2)
	CRSSeed    string   `json:"crs_seed"`   // derived from the group's signature of the session
}

// approvalRecord is a query's approval certificate.
type approvalRecord struct {
	Analyst     string   `json:"analyst"`
	Spec        string   `json:"spec"`        // canonical QuerySpec bytes
	SpecDigest  string   `json:"spec_digest"` // SHA-256 of Spec
	Certificate string   `json:"certificate"` // threshold-BLS signature of protocols.ApprovalMessage
	Signers     []string `json:"signers"`
	SetupID     string   `json:"setup_session"`
	// Epsilon is the privacy budget the query spends (also in Spec, from
	// which the parties read it); MinCohort the minimum cohort applied.
	Epsilon   float64 `json:"epsilon,omitempty"`
	MinCohort int     `json:"min_cohort,omitempty"`
}

// transcriptRecord is a finished session's transcript.
type transcriptRecord struct {
	Analyst      string    `json:"analyst"`
	Parameters   string    `json:"parameters"`
	SpecDigest   string    `json:"spec_digest"`
	ApprovalTx   string    `json:"approval_tx"`
	SetupID      string    `json:"setup_session"`
	Participants []string  `json:"participants"`
	Contributors []string  `json:"contributors"`
	KeySwitchers []string  `json:"key_switchers"`
	Messages     []string  `json:"messages"`    // SHA-256 of every signed envelope of the session, in order
	ResultDigest string    `json:"result_hash"` // SHA-256 of the result ciphertext released to the analyst
	MinCohort    int       `json:"min_cohort,omitempty"`
	Suppressed   []string  `json:"suppressed,omitempty"` // groups below the minimum cohort, zeroed
	Started      time.Time `json:"started"`
	Finished     time.Time `json:"finished"`
}

// receiptRecord records that a result was released to its analyst.
type receiptRecord struct {
	Analyst      string    `json:"analyst"`
	ResultDigest string    `json:"result_hash"`
	TranscriptTx string    `json:"transcript_tx"`
	Released     time.Time `json:"released"`
}

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
