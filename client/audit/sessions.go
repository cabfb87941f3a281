package audit

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/ledger"
	"github.com/synod-mpc/synod/ledger/records"
)

// Session is what the chain says about one session, for a listing: an
// unverified read of one party's RPC, like Log. Fields a record does not
// give (or gives in a body that does not decode) are empty.
type Session struct {
	ID string
	// Kind: "query", "training (exact)", "training (encrypted)",
	// "validation", "model upload", "prediction", "setup" or "unknown".
	Kind string
	// Time is the block time of the session's first record.
	Time time.Time
	// Height is the height of its last record.
	Height  int64
	Analyst string
	// Signers are the parties whose partial signatures made the approval
	// certificate.
	Signers      []string
	Contributors []string
	// Outcome is Outcome of the session's records; Reason and Offender
	// are its outcome record's, for an aborted session.
	Outcome  string
	Reason   string
	Offender string
	Epsilon  float64
	// Query is the approved QuerySpec as JSON.
	Query   string
	Records []ledger.SessionEntry
}

// Sessions lists the sessions on the chain with what their approval,
// transcript and outcome records say, newest first. Like Log it is an
// unverified read of the first party RPC that answers: Verify and
// VerifyChain prove a session's records.
func (a *Auditor) Sessions(ctx context.Context) ([]Session, error) {
	var (
		sums []ledger.SessionSummary
		recs []ledger.Record
	)
	// One RPC answers every read, so that they see the same chain (up to
	// the blocks committed in between).
	err := a.read(func(c ledger.Client) error {
		var err error
		if sums, err = c.Sessions(ctx); err != nil {
			return err
		}
		recs = recs[:0]
		// The kinds that open a session (setup, approval, a model's
		// transcript) and those that say how it went; not its rounds.
		for _, kind := range []string{records.KindSetup, records.KindApproval, records.KindTranscript, records.KindOutcome} {
			rs, err := c.Records(ctx, kind)
			if err != nil {
				return err
			}
			recs = append(recs, rs...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the chain: %w", err)
	}
	byID := make(map[string]*Session, len(sums))
	out := make([]Session, len(sums))
	for i, s := range sums {
		out[i] = Session{ID: s.Session, Kind: "unknown", Outcome: Outcome(s), Records: s.Entries}
		for _, e := range s.Entries {
			out[i].Height = max(out[i].Height, e.Height)
		}
		byID[s.Session] = &out[i]
	}
	for _, r := range recs {
		s := byID[r.Tx.Session]
		if s == nil {
			continue // committed after the session list was read
		}
		if s.Time.IsZero() || r.Time.Before(s.Time) {
			s.Time = r.Time
		}
		s.fill(r.Tx.Kind, r.Tx.Body)
	}
	slices.SortStableFunc(out, func(x, y Session) int {
		return cmp.Or(y.Time.Compare(x.Time), cmp.Compare(x.ID, y.ID))
	})
	return out, nil
}

// fill takes what a record of kind says about its session.
func (s *Session) fill(kind string, body []byte) {
	switch kind {
	case records.KindSetup:
		s.Kind = "setup"
	case records.KindApproval:
		ap, err := records.DecodeApproval(body)
		if err != nil {
			return
		}
		s.Analyst, s.Signers, s.Epsilon = ap.Analyst, ap.Signers, ap.Epsilon
		s.Kind = "query"
		raw, err := hex.DecodeString(ap.Spec)
		spec := &synodv1.QuerySpec{}
		if err != nil || proto.Unmarshal(raw, spec) != nil {
			return
		}
		switch {
		case spec.GetTraining() != nil:
			s.Kind = "training (exact)"
			if spec.GetTraining().GetMode() == synodv1.Training_ENCRYPTED {
				s.Kind = "training (encrypted)"
			}
		case spec.GetInference() != nil:
			s.Kind = "validation"
		}
		if b, err := (protojson.MarshalOptions{Multiline: true}).Marshal(spec); err == nil {
			s.Query = string(b)
		}
	case records.KindTranscript:
		m, err := records.DecodeModel(body)
		if err == nil && m.Model != "" {
			// A model upload's transcript says the model was stored; a
			// prediction's that predictions were released.
			s.Kind = "prediction"
			if m.Outcome == "stored" {
				s.Kind = "model upload"
			}
		}
		tr, err := records.DecodeTranscript(body)
		if err != nil {
			return
		}
		s.Contributors = tr.Contributors
		if s.Analyst == "" {
			s.Analyst = tr.Analyst
		}
	case records.KindOutcome:
		o, err := records.DecodeOutcome(body)
		if err != nil {
			return
		}
		s.Reason, s.Offender = o.Reason, o.Offender
		if s.Analyst == "" {
			s.Analyst = o.Analyst
		}
	}
}
