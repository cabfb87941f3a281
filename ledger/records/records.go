// Package records defines the bodies of the consortium chain's records: what
// each proves, who writes it, and its kind on the chain.
//
//   - Setup (kind "setup"), written by every party when a consortium setup
//     ends: its view of the keys. Auditors take the consortium's
//     threshold-BLS key from the setup records once every party agrees.
//   - Approval (kind "approval"), written by a query's coordinator before
//     any data moves: the query and the threshold-BLS certificate of the
//     parties that approved it.
//   - Transcript (kind "transcript"), written by a session's coordinator
//     before the result is released: who took part, the hashes of every
//     signed message and of the released result.
//   - Model (kind "transcript" as well), written for a model upload by its
//     coordinator and for a private prediction by the predicting party: a
//     transcript that also names the model.
//   - Transcript under kind "round", written by the coordinator of a
//     multi-round session (exact training) before it releases each round:
//     a session has one per round (Round set).
//   - Receipt (kind "receipt"), written by the coordinator once it has
//     handed a result to its analyst.
//
// The bodies are JSON, so that an auditor reads them with nothing but the
// consortium file; byte strings are hex. The encoding is fixed by the
// records already on chains: a field's name and tag never change, and a
// field added later must be optional (omitempty), since records written
// before it stay on the chain for good. The Decode functions are strict
// about what a reader relies on (well-formed JSON, every non-optional field
// present) and tolerant of fields they do not know, which later writers may
// add.
//
// The package is a leaf: the ledger checks kinds with it, the node writes
// the bodies, auditors read them.
package records

import (
	"slices"
	"strings"
	"time"
)

// Record kinds: the kind of a ledger transaction says which body it
// carries. A transaction of any other kind is rejected by the chain.
const (
	// KindSetup is the kind of Setup records.
	KindSetup = "setup"
	// KindApproval is the kind of Approval records.
	KindApproval = "approval"
	// KindTranscript is the kind of Transcript and Model records.
	KindTranscript = "transcript"
	// KindReceipt is the kind of Receipt records.
	KindReceipt = "receipt"
	// KindRound is the kind of the Transcript of one released round of a
	// multi-round session; unlike the other kinds, a session holds many
	// (one per body) from the same sender.
	KindRound = "round"
	// KindOutcome is the kind of Outcome records: how a session whose
	// approval is on the chain ended without a release.
	KindOutcome = "outcome"
)

// kinds are the record kinds the chain accepts, in the order of a
// session's life.
var kinds = []string{KindSetup, KindApproval, KindRound, KindTranscript, KindReceipt, KindOutcome}

// KnownKind reports whether kind is one of the record kinds the chain
// accepts.
func KnownKind(kind string) bool { return slices.Contains(kinds, kind) }

// KindList names the kinds the chain accepts, for error messages: "setup,
// approval, transcript or receipt".
func KindList() string {
	return strings.Join(kinds[:len(kinds)-1], ", ") + " or " + kinds[len(kinds)-1]
}

// Setup is what each party records when a consortium setup ends, under the
// setup's session id. It proves that party's view of the keys: an auditor
// takes the consortium's BLS key from the setup records only when every
// party recorded the same keys.
type Setup struct {
	Parameters string   `json:"parameters"` // parameter set name (engine.ParametersByName)
	Parties    []string `json:"parties"`
	Threshold  int      `json:"threshold"`
	KeyDigest  string   `json:"key_digest"` // digest of pk, rlk, Galois keys (protocols.SetupResult.Digest)
	GroupKey   string   `json:"group_key"`  // consortium threshold-BLS key (bn256 G2)
	CRSSeed    string   `json:"crs_seed"`   // derived from the group's signature of the session
}

// Approval is a query's approval certificate, recorded by the coordinator
// before any data moves. It proves that at least a threshold of parties
// approved this query (Spec) for this analyst: Certificate is their
// threshold-BLS signature of protocols.ApprovalMessage(session, Analyst,
// SHA-256(Spec)).
type Approval struct {
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

// Transcript is a finished session's transcript, recorded by its
// coordinator before the result is released. It proves which parties took
// part, which signed messages the session consisted of, and which result
// was released (ResultDigest), under which approval (ApprovalTx, empty for
// sessions that need none) and which setup.
type Transcript struct {
	Analyst      string   `json:"analyst"`
	Parameters   string   `json:"parameters"`
	SpecDigest   string   `json:"spec_digest"`
	ApprovalTx   string   `json:"approval_tx"`
	SetupID      string   `json:"setup_session"`
	Participants []string `json:"participants"`
	Contributors []string `json:"contributors"`
	KeySwitchers []string `json:"key_switchers"`
	Messages     []string `json:"messages"`    // SHA-256 of every signed envelope of the session, in order
	ResultDigest string   `json:"result_hash"` // SHA-256 of the result ciphertext released to the analyst
	MinCohort    int      `json:"min_cohort,omitempty"`
	Suppressed   []string `json:"suppressed,omitempty"` // groups below the minimum cohort, zeroed
	// Refreshers are the parties that refreshed the session's ciphertexts
	// (encrypted training); Round is the round a round record releases,
	// Rounds the rounds a multi-round session released; Outcome says how
	// the session ended ("released", "stored", ...).
	Refreshers []string  `json:"refreshers,omitempty"`
	Round      int       `json:"round,omitempty"`
	Rounds     int       `json:"rounds,omitempty"`
	Outcome    string    `json:"outcome,omitempty"`
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
}

// Model is the transcript of a model upload (recorded by its coordinator:
// Contributors are the parties that stored the encrypted model) or of a
// private prediction (recorded by the predicting party). Its kind is
// KindTranscript; it also names the model and the digest of its encrypted
// weights.
type Model struct {
	Transcript
	Model       string   `json:"model"`
	ModelDigest string   `json:"model_digest"`
	Parties     []string `json:"allowed_parties,omitempty"`
}

// Outcome records, by its coordinator, that a session the parties approved
// ended without releasing its result: an approval on the chain is then
// never silently without an end, and an auditor tells an aborted session
// from a missing or tampered transcript. Offender is the party at fault
// when the coordinator knows it.
type Outcome struct {
	Analyst  string    `json:"analyst"`
	Outcome  string    `json:"outcome"` // "aborted"
	Reason   string    `json:"reason"`
	Offender string    `json:"offender,omitempty"`
	Released int       `json:"released_rounds,omitempty"` // rounds released before the end (multi-round sessions)
	Finished time.Time `json:"finished"`
}

// OutcomeAborted is an Outcome's outcome for a session that ended on an
// error with nothing (more) released.
const OutcomeAborted = "aborted"

// Receipt records that a result was released to its analyst, by the
// coordinator that released it, after the transcript it names.
type Receipt struct {
	Analyst      string    `json:"analyst"`
	ResultDigest string    `json:"result_hash"`
	TranscriptTx string    `json:"transcript_tx"`
	Released     time.Time `json:"released"`
}
