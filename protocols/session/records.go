package session

// The records a session commits to the chain (ledger/records holds their
// JSON bodies). The driver fills what only it knows: the digests of the
// session's signed envelopes and the times.

// Ledger record kinds.
const (
	KindSetupRecord      = "setup"
	KindApprovalRecord   = "approval"
	KindTranscriptRecord = "transcript"
	KindRoundRecord      = "round"
)

// ApprovalRecord is a session's approval certificate.
type ApprovalRecord struct {
	Analyst      string
	Spec         []byte
	Certificate  []byte
	Signers      []string
	SetupSession string
	MinCohort    int
	Epsilon      float64
}

// TranscriptRecord is a finished session's transcript (or, with Round
// set, one released round of a multi-round session).
type TranscriptRecord struct {
	Analyst      string
	Parameters   string
	SpecDigest   []byte
	ApprovalTx   []byte
	SetupSession string
	Participants []PartyID
	Contributors []PartyID
	KeySwitchers []PartyID
	Refreshers   []PartyID
	ResultDigest []byte
	MinCohort    int
	Suppressed   []string
	Round        int
	Rounds       int
	Outcome      string
	// Model names an uploaded or trained model and its digest.
	Model       string
	ModelDigest []byte
}

// SetupRecord is a party's view of the consortium setup.
type SetupRecord struct {
	Parameters string
	Parties    []PartyID
	Threshold  int
	KeyDigest  []byte
	GroupKey   []byte
	CRSSeed    []byte
}
