package session

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine"
)

// CellsJob is the coordinator's job of every session whose parties
// contribute encrypted cells that are summed and released to the analyst:
// aggregate queries (with the minimum-cohort test when a party demands
// one), model validations, and exact training (one round for linear
// regression; for logistic regression one round per Newton iteration, the
// analyst sending the next coefficients between rounds).
type CellsJob struct {
	// Target is the analyst's public key.
	Target *rlwe.PublicKey
	Spec   *synodv1.QuerySpec
	// Labels names every cell; Groups and PerGroup shape a grouped
	// query's cells (the cohort test's groups).
	Labels           []string
	Groups, PerGroup int
	// NoiseScales is the differential privacy noise scale of every cell
	// (nil without DP).
	NoiseScales []float64
	// Rounds is the most rounds the spec allows (1 for a single release).
	Rounds int
	// What names the session in progress events ("query", ...); Intro,
	// when set, is reported when the job starts.
	What, Intro string

	state      cellsState
	round      int
	tested     []PartyID // the parties of the cohort test
	suppressed []int
	cohortKey  *rlwe.SecretKey
	sum        []byte // the released ciphertext of the round
	meta       *synodv1.ResultMetadata
	released   []PartyID // contributors of every round
	switchers  []PartyID
}

type cellsState uint8

const (
	cellsStart cellsState = iota
	cellsCohortInputs
	cellsCohortSwitched
	cellsValues
	cellsSwitched
	cellsRecorded
	cellsWaitAnalyst
	cellsFinalRecorded
)

// Next implements Job.
func (j *CellsJob) Next(c *Coordinator, outcome any) (Action, error) {
	params := c.cfg.Keys.Params
	ap := c.Approval()
	switch j.state {
	case cellsStart:
		j.round = 1
		if j.Intro != "" {
			c.Event(j.What, "", "%s", j.Intro)
		}
		if ap.MinCohort > 0 {
			j.state = cellsCohortInputs
			return j.request(c, nil, "cohort", "minimum cohort %d: waiting for encrypted group counts", ap.MinCohort), nil
		}
		j.state = cellsValues
		return j.request(c, nil, "inputs", "waiting for encrypted inputs"), nil

	case cellsCohortInputs:
		in := outcome.(Answers).From
		active := c.Active()
		if len(active) < c.cfg.Threshold {
			return nil, fmt.Errorf("only %d parties remain, below the threshold %d; %s", len(active), c.cfg.Threshold, nothingReleased)
		}
		var counts, masks []*rlwe.Ciphertext
		for _, p := range sortedIDs(mapKeys(in)) {
			ci := in[p].(cohortInput)
			counts, masks = append(counts, ci.counts), append(masks, ci.masks)
		}
		t, err := engine.CohortTest(params, c.cfg.Keys.Setup.RelinearizationKey, counts, masks, ap.MinCohort)
		if err != nil {
			return nil, fmt.Errorf("cohort test: %w", err) // CohortTest names the input
		}
		j.tested = active
		sk, pk := engine.GenKeyPair(params)
		j.cohortKey = sk
		j.state = cellsCohortSwitched
		return KeySwitch{Stage: "cohort", What: "the cohort test to a throwaway key of the coordinator ", Ciphertext: t, Target: pk}, nil

	case cellsCohortSwitched:
		sw := outcome.(Switched)
		signs, err := engine.DecryptVector(params, j.cohortKey, sw.Ciphertext, j.Groups)
		if err != nil {
			return nil, fmt.Errorf("cohort test: %w", err)
		}
		j.cohortKey = nil
		passes, err := engine.CohortPasses(signs, j.Groups)
		if err != nil {
			return nil, err
		}
		var groups []uint32
		for g, ok := range passes {
			if !ok {
				j.suppressed = append(j.suppressed, g)
				groups = append(groups, uint32(g))
			}
		}
		c.Event("cohort", "", "%d of %d cells below the minimum cohort of %d are suppressed", len(j.suppressed), j.Groups, ap.MinCohort)
		j.state = cellsValues
		return Ask{Stage: "inputs", Kind: KindSuppress, Payload: encode(&synodv1.Suppress{Groups: groups}), Reply: KindContribution,
			Decode: j.decodeValues(params), KeepGoing: true, Waiting: "waiting for encrypted inputs", Received: "encrypted inputs"}, nil

	case cellsValues:
		in := outcome.(Answers).From
		active := c.Active()
		if j.tested != nil && len(active) < len(j.tested) {
			// The cohort test counted parties whose values are now
			// missing: a released cell could describe fewer than the
			// minimum.
			return nil, fmt.Errorf("%d of the %d parties of the cohort test sent no values; %s", len(j.tested)-len(active), len(j.tested), nothingReleased)
		}
		if len(active) < c.cfg.Threshold {
			return nil, fmt.Errorf("only %d parties remain, below the threshold %d; %s", len(active), c.cfg.Threshold, nothingReleased)
		}
		contributors := sortedIDs(mapKeys(in))
		cts := make([]*rlwe.Ciphertext, 0, len(contributors))
		for _, p := range contributors {
			cts = append(cts, in[p].(*rlwe.Ciphertext))
		}
		sum, err := engine.Sum(params, cts)
		if err != nil {
			return nil, fmt.Errorf("evaluate: %w", err)
		}
		c.Event("evaluate", "", "summed %d encrypted inputs", len(cts))
		j.meta = &synodv1.ResultMetadata{Session: c.cfg.Session, Spec: j.Spec, Parameters: params.Name, MinCohort: uint32(ap.MinCohort)}
		for _, p := range contributors {
			j.meta.Contributors = append(j.meta.Contributors, string(p))
		}
		j.addContributors(contributors)
		j.state = cellsSwitched
		return KeySwitch{Stage: "key-switch", What: "the result to the analyst's key ", Ciphertext: sum, Target: j.Target}, nil

	case cellsSwitched:
		sw := outcome.(Switched)
		b, err := sw.Ciphertext.MarshalBinary()
		if err != nil {
			return nil, err
		}
		j.sum = b
		j.switchers = sw.Group
		for _, p := range sw.Group {
			j.meta.KeySwitchers = append(j.meta.KeySwitchers, string(p))
		}
		j.meta.Precision = engine.Precision(params, len(sw.Group))
		for i, l := range j.Labels {
			slot := &synodv1.ResultSlot{Label: l}
			if j.PerGroup > 0 {
				slot.Suppressed = slices.Contains(j.suppressed, i/j.PerGroup)
			}
			if j.NoiseScales != nil {
				slot.NoiseScale = j.NoiseScales[i]
			}
			j.meta.Slots = append(j.meta.Slots, slot)
		}
		final := j.round >= j.Rounds
		if j.Rounds > 1 {
			j.meta.Round, j.meta.Final = uint32(j.round), final
		}
		j.state = cellsRecorded
		rec := j.transcript(c, sw.Group)
		kind := KindTranscriptRecord
		if j.Rounds > 1 {
			kind, rec.Round = KindRoundRecord, j.round
		}
		return Record{Kind: kind, Body: rec, Transcript: true}, nil

	case cellsRecorded:
		r := outcome.(Recorded)
		j.meta.Receipt = &synodv1.Receipt{Height: r.Receipt.Height, TxHash: r.Receipt.TxHash, ApprovalTxHash: ap.TxHash,
			SetupSession: c.cfg.Keys.SetupSession, Certificate: ap.Certificate}
		c.Event("ledger", "", "%s recorded at height %d (tx %X)", j.recordName(), r.Receipt.Height, r.Receipt.TxHash)
		rel := Release{Round: j.round, Final: j.meta.GetFinal() || j.Rounds == 1, Result: &Result{Meta: j.meta, Ciphertext: j.sum}}
		if j.Rounds <= 1 {
			j.state = cellsFinalRecorded
			return Publish{Release: rel}, nil
		}
		if j.round >= j.Rounds {
			j.state = cellsWaitAnalyst // the last round: the transcript follows
			return Publish{Release: rel}, nil
		}
		j.state = cellsWaitAnalyst
		return Publish{Release: rel}, nil

	case cellsWaitAnalyst:
		if outcome == nil {
			if j.round >= j.Rounds {
				j.state = cellsFinalRecorded
				return j.finalRecord(c), nil
			}
			return AwaitAnalyst{}, nil
		}
		next := outcome.(Continue)
		if next.Stop {
			j.state = cellsFinalRecorded
			return j.finalRecord(c), nil
		}
		if next.Round != j.round {
			return nil, fmt.Errorf("the analyst continued from round %d, the session is at round %d", next.Round, j.round)
		}
		if len(next.Coefficients) == 0 {
			return nil, fmt.Errorf("the analyst's next round has no coefficients")
		}
		j.round++
		j.state = cellsValues
		return j.request(c, next.Coefficients, "inputs", "round %d: waiting for encrypted inputs", j.round), nil

	case cellsFinalRecorded:
		if r, ok := outcome.(Recorded); ok && j.Rounds > 1 {
			c.Event("ledger", "", "transcript of %d rounds recorded at height %d (tx %X)", j.round, r.Receipt.Height, r.Receipt.TxHash)
		}
		return Finish{}, nil
	}
	return nil, fmt.Errorf("cells job: state %d", j.state)
}

func (j *CellsJob) recordName() string {
	if j.Rounds > 1 {
		return fmt.Sprintf("round %d", j.round)
	}
	return "transcript"
}

func (j *CellsJob) addContributors(ps []PartyID) {
	for _, p := range ps {
		if !slices.Contains(j.released, p) {
			j.released = append(j.released, p)
		}
	}
	slices.Sort(j.released)
}

func (j *CellsJob) transcript(c *Coordinator, switchers []PartyID) TranscriptRecord {
	ap := c.Approval()
	rec := TranscriptRecord{Analyst: c.cfg.Analyst, Parameters: c.cfg.Keys.Params.Name, SpecDigest: digest(c.cfg.Spec), ApprovalTx: ap.TxHash,
		SetupSession: c.cfg.Keys.SetupSession, Participants: sortedIDs(c.cfg.Participants), Contributors: j.released,
		KeySwitchers: switchers, ResultDigest: digest(j.sum), MinCohort: ap.MinCohort}
	for _, g := range j.suppressed {
		l := j.Labels[g*j.PerGroup]
		if prefix, _, ok := strings.Cut(l, "|"); ok {
			l = prefix
		}
		rec.Suppressed = append(rec.Suppressed, l)
	}
	return rec
}

// finalRecord is a multi-round session's closing transcript.
func (j *CellsJob) finalRecord(c *Coordinator) Action {
	rec := j.transcript(c, j.switchers)
	rec.Rounds = j.round
	rec.Outcome = "released"
	return Record{Kind: KindTranscriptRecord, Body: rec, Transcript: true}
}

// request asks every active party for its cells of the current round.
func (j *CellsJob) request(c *Coordinator, coefficients []float64, stage, format string, a ...any) Action {
	ap := c.Approval()
	req := &synodv1.Request{Spec: c.cfg.Spec, Analyst: c.cfg.Analyst, Certificate: ap.Certificate,
		MinCohort: uint32(ap.MinCohort), Round: uint32(j.round), Coefficients: coefficients}
	decodeFn := j.decodeValues(c.cfg.Keys.Params)
	if ap.MinCohort > 0 && j.round == 1 && j.tested == nil {
		decodeFn = j.decodeCohort(c.cfg.Keys.Params)
	}
	return Ask{Stage: stage, Kind: KindRequest, Payload: encode(req), Reply: KindContribution, Decode: decodeFn,
		KeepGoing: true, Waiting: fmt.Sprintf(format, a...), Received: "encrypted " + stage}
}

type cohortInput struct{ counts, masks *rlwe.Ciphertext }

func (j *CellsJob) decodeCohort(params engine.Parameters) func(PartyID, []byte) (any, error) {
	return func(from PartyID, payload []byte) (any, error) {
		var in synodv1.Contribution
		if err := decodePayload(payload, &in); err != nil {
			return nil, fmt.Errorf("malformed cohort input: %w", err)
		}
		counts, err := engine.DecodeCiphertext(params, in.GetCohortCounts())
		if err != nil {
			return nil, fmt.Errorf("malformed cohort ciphertext: counts: %w", err)
		}
		masks, err := engine.DecodeCiphertext(params, in.GetCohortMasks())
		if err != nil {
			return nil, fmt.Errorf("malformed cohort ciphertext: masks: %w", err)
		}
		return cohortInput{counts, masks}, nil
	}
}

func (j *CellsJob) decodeValues(params engine.Parameters) func(PartyID, []byte) (any, error) {
	return func(from PartyID, payload []byte) (any, error) {
		var in synodv1.Contribution
		if err := decodePayload(payload, &in); err != nil {
			return nil, fmt.Errorf("malformed input: %w", err)
		}
		if int(in.GetRound()) != j.round {
			return nil, fmt.Errorf("input for round %d during round %d", in.GetRound(), j.round)
		}
		ct, err := engine.DecodeCiphertext(params, in.GetValues())
		if err != nil {
			return nil, fmt.Errorf("malformed input ciphertext: %w", err)
		}
		return ct, nil
	}
}
