package session

import (
	"fmt"
	"math"
	"slices"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/engine/train"
	"github.com/synod-mpc/synod/protocols"
)

// Encrypted training: the model stays under the collective key for the
// whole training (engine/train). After the approval every party reports
// its row count (round 1); then, each iteration, the coordinator sends the
// point (one ciphertext per coefficient), every party answers with its
// encrypted gradient computed on its own rows, the coordinator combines
// them and a group of t parties refreshes the sum with the slot-mean
// transform, which returns the step at the top level; the coordinator
// updates the model. When the plan's weight bound is not a theorem (with
// momentum), the coordinator checks ||w|| <= R before every gradient by a
// masked sign test, as the cohort test reads a count's. The only release is
// the final model, packed into one ciphertext and key-switched to the
// analyst. A party that drops out aborts the training: its rows are in the
// learning rate and in every gradient so far, and nothing partial is
// released.

// TrainSpec is the engine/train spec of a training spec, for parties
// parties holding rows rows in all (0 when not yet known: 1 is used, which
// changes only the gradient factor, not the interval or the degree).
func TrainSpec(tr *synodv1.Training, parties, rows int) train.Spec {
	kind := train.Logistic
	if tr.GetModel() == synodv1.Training_LINEAR {
		kind = train.Linear
	}
	return train.Spec{Model: kind, Features: len(tr.GetFeatures()), Lambda: tr.GetL2(), Iterations: int(tr.GetIterations()),
		StepSize: tr.GetStepSize(), Momentum: tr.GetMomentum(), Radius: tr.GetRadius(), Parties: max(parties, 1), Rows: max(rows, 1)}
}

// CheckTrainPlan checks that a plan is the one the spec states: the
// interval and the degree of the sigmoid the parties approved.
func CheckTrainPlan(tr *synodv1.Training, pl *train.Plan) error {
	if tr.GetModel() == synodv1.Training_LINEAR {
		return nil
	}
	if pl.Degree != int(tr.GetDegree()) || math.Abs(pl.Bound-tr.GetInterval()) > 1e-9*math.Max(1, pl.Bound) {
		return fmt.Errorf("training: the plan has a sigmoid of degree %d on [-%.6g, %.6g], the spec states degree %d on [-%.6g, %.6g]",
			pl.Degree, pl.Bound, pl.Bound, tr.GetDegree(), tr.GetInterval(), tr.GetInterval())
	}
	return nil
}

// EncryptedTrainJob is the coordinator's job of an encrypted training.
type EncryptedTrainJob struct {
	Spec   *synodv1.QuerySpec
	Target *rlwe.PublicKey // the analyst's key

	state      int
	plan       *train.Plan
	model      *train.State
	rows       int
	iteration  int
	slack      *rlwe.Ciphertext
	checkKey   *rlwe.SecretKey
	refreshers []PartyID
	contribs   []PartyID
	result     []byte
	meta       *synodv1.ResultMetadata
	switchers  []PartyID
}

const (
	trainRows = iota
	trainCheckMasks
	trainCheckSwitched
	trainGradients
	trainRefreshed
	trainReleased
	trainRecorded
	trainDone
)

// Next implements Job.
func (j *EncryptedTrainJob) Next(c *Coordinator, outcome any) (Action, error) {
	keys := c.cfg.Keys
	params := keys.Params
	tr := j.Spec.GetTraining()
	ap := c.Approval()
	switch j.state {
	case trainRows:
		if outcome == nil {
			req := &synodv1.Request{Spec: c.cfg.Spec, Analyst: c.cfg.Analyst, Certificate: ap.Certificate, Round: 1}
			return Ask{Stage: "training", Kind: KindRequest, Payload: encode(req), Reply: KindContribution, Received: "row count",
				Waiting: "encrypted training: waiting for every party's row count", Decode: decodeRows}, nil
		}
		in := outcome.(Answers).From
		for _, n := range in {
			j.rows += n.(int)
		}
		j.contribs = sortedIDs(mapKeys(in))
		if j.rows == 0 {
			return nil, fmt.Errorf("training: the parties hold no row that the filters select; %s", nothingReleased)
		}
		pl, err := train.NewPlan(params, TrainSpec(tr, len(j.contribs), j.rows))
		if err != nil {
			return nil, err
		}
		if err := CheckTrainPlan(tr, pl); err != nil {
			return nil, err
		}
		j.plan = pl
		if j.model, err = pl.InitialModel(params, keys.Setup.PublicKey); err != nil {
			return nil, err
		}
		c.Event("training", "", "%d rows over %d parties; %d iterations of %s, %d ciphertexts per party each way, %d refreshes per iteration",
			j.rows, len(j.contribs), tr.GetIterations(), map[bool]string{true: "Nesterov's accelerated gradient", false: "gradient descent"}[tr.GetMomentum()],
			pl.Coefficients, pl.Refreshes)
		return j.iterate(c)

	case trainCheckMasks:
		in := outcome.(Answers).From
		var masks []*rlwe.Ciphertext
		for _, p := range sortedIDs(mapKeys(in)) {
			masks = append(masks, in[p].(*rlwe.Ciphertext))
		}
		t, err := train.MaskedSign(params, rlwe.NewMemEvaluationKeySet(keys.Setup.RelinearizationKey), j.slack, masks)
		if err != nil {
			return nil, fmt.Errorf("norm check: %w", err)
		}
		sk, pk := engine.GenKeyPair(params)
		j.checkKey, j.state = sk, trainCheckSwitched
		return KeySwitch{Stage: "norm-check", What: "the norm check to a throwaway key of the coordinator ", Ciphertext: t, Target: pk}, nil

	case trainCheckSwitched:
		sw := outcome.(Switched)
		v, err := engine.DecryptVector(params, j.checkKey, sw.Ciphertext, 1)
		if err != nil {
			return nil, fmt.Errorf("norm check: %w", err)
		}
		j.checkKey = nil
		inside, err := train.InsideBall(v)
		if err != nil {
			return nil, fmt.Errorf("norm check: %w", err)
		}
		if !inside {
			return nil, fmt.Errorf("training: before iteration %d the weights left the ball of radius %.4g the sigmoid's interval was planned for; %s (raise --l2 or --radius)",
				j.iteration+1, j.plan.Radius, nothingReleased)
		}
		return j.askGradients(c)

	case trainGradients:
		in := outcome.(Answers).From
		grads := make([][]*rlwe.Ciphertext, 0, len(in))
		for _, p := range sortedIDs(mapKeys(in)) {
			grads = append(grads, in[p].([]*rlwe.Ciphertext))
		}
		x, err := j.plan.Combine(params, j.model, grads)
		if err != nil {
			return nil, fmt.Errorf("iteration %d: %w", j.iteration+1, err)
		}
		j.state = trainRefreshed
		return Refresh{Stage: "refresh", Round: uint32(j.iteration + 1), Transform: protocols.TransformSlotMean, Ciphertexts: x}, nil

	case trainRefreshed:
		r := outcome.(Refreshed)
		for _, p := range r.Group {
			if !slices.Contains(j.refreshers, p) {
				j.refreshers = append(j.refreshers, p)
			}
		}
		if err := j.plan.Update(params, j.model, r.Ciphertexts); err != nil {
			return nil, fmt.Errorf("iteration %d: %w", j.iteration+1, err)
		}
		j.iteration++
		c.Event("iteration", "", "iteration %d of %d: model updated (refreshed by %s)", j.iteration, tr.GetIterations(), joinIDs(r.Group))
		if j.iteration < int(tr.GetIterations()) {
			return j.iterate(c)
		}
		packed, err := train.PackForRelease(params, j.model.W)
		if err != nil {
			return nil, err
		}
		j.state = trainReleased
		return KeySwitch{Stage: "key-switch", What: "the trained model to the analyst's key ", Ciphertext: packed, Target: j.Target}, nil

	case trainReleased:
		sw := outcome.(Switched)
		b, err := sw.Ciphertext.MarshalBinary()
		if err != nil {
			return nil, err
		}
		j.result, j.switchers = b, sw.Group
		slices.Sort(j.refreshers)
		j.meta = &synodv1.ResultMetadata{Session: c.cfg.Session, Spec: j.Spec, Parameters: params.Name, Precision: engine.Precision(params, len(sw.Group)),
			Rows: uint64(j.rows), Round: uint32(j.iteration), Final: true}
		for _, p := range j.contribs {
			j.meta.Contributors = append(j.meta.Contributors, string(p))
		}
		for _, p := range sw.Group {
			j.meta.KeySwitchers = append(j.meta.KeySwitchers, string(p))
		}
		for i := range j.plan.Coefficients {
			l := "intercept"
			if i > 0 {
				l = "coef:" + tr.GetFeatures()[i-1]
			}
			j.meta.Slots = append(j.meta.Slots, &synodv1.ResultSlot{Label: l})
		}
		j.state = trainRecorded
		return Record{Kind: KindTranscriptRecord, Transcript: true, Body: TranscriptRecord{Analyst: c.cfg.Analyst, Parameters: params.Name,
			SpecDigest: digest(c.cfg.Spec), ApprovalTx: ap.TxHash, SetupSession: keys.SetupSession, Participants: sortedIDs(c.cfg.Participants),
			Contributors: j.contribs, KeySwitchers: sw.Group, Refreshers: j.refreshers, ResultDigest: digest(b), Rounds: j.iteration, Outcome: "released"}}, nil

	case trainRecorded:
		r := outcome.(Recorded)
		j.meta.Receipt = &synodv1.Receipt{Height: r.Receipt.Height, TxHash: r.Receipt.TxHash, ApprovalTxHash: ap.TxHash,
			SetupSession: keys.SetupSession, Certificate: ap.Certificate}
		c.Event("ledger", "", "transcript of %d iterations recorded at height %d (tx %X)", j.iteration, r.Receipt.Height, r.Receipt.TxHash)
		j.state = trainDone
		return Publish{Release: Release{Round: 1, Final: true, Result: &Result{Meta: j.meta, Ciphertext: j.result}}}, nil
	}
	return Finish{}, nil
}

// iterate starts an iteration: the norm check first when the plan needs it.
func (j *EncryptedTrainJob) iterate(c *Coordinator) (Action, error) {
	if !j.plan.RuntimeNormCheck {
		return j.askGradients(c)
	}
	params := c.cfg.Keys.Params
	slack, err := train.NormSlack(params, rlwe.NewMemEvaluationKeySet(c.cfg.Keys.Setup.RelinearizationKey), j.model.Point(), j.plan.Radius)
	if err != nil {
		return nil, fmt.Errorf("norm check: %w", err)
	}
	j.slack, j.state = slack, trainCheckMasks
	req := &synodv1.Request{Spec: c.cfg.Spec, Analyst: c.cfg.Analyst, Round: uint32(j.iteration + 2), SignMaskLevel: uint32(slack.Level())}
	return Ask{Stage: "norm-check", Kind: KindRequest, Payload: encode(req), Reply: KindContribution,
		Decode: func(from PartyID, payload []byte) (any, error) {
			var in synodv1.Contribution
			if err := decodePayload(payload, &in); err != nil {
				return nil, fmt.Errorf("malformed sign mask: %w", err)
			}
			ct, err := engine.DecodeCiphertext(params, in.GetSignMask())
			if err != nil {
				return nil, fmt.Errorf("malformed sign mask ciphertext: %w", err)
			}
			return ct, nil
		}}, nil
}

// askGradients sends the point and waits for every party's gradient.
func (j *EncryptedTrainJob) askGradients(c *Coordinator) (Action, error) {
	params := c.cfg.Keys.Params
	req := &synodv1.Request{Spec: c.cfg.Spec, Analyst: c.cfg.Analyst, Round: uint32(j.iteration + 2), TotalRows: uint64(j.rows),
		Parties: uint32(len(j.contribs))}
	for i, ct := range j.model.Point() {
		// The parties compute from the gradient level: what lies above it
		// would travel for nothing.
		if ct.Level() > j.plan.GradientLevel {
			ct = ct.CopyNew()
			ct.Resize(ct.Degree(), j.plan.GradientLevel)
		}
		b, err := engine.MarshalCiphertext(ct)
		if err != nil {
			return nil, fmt.Errorf("point %d: %w", i, err)
		}
		req.Model = append(req.Model, b)
	}
	j.state = trainGradients
	p := j.plan.Coefficients
	return Ask{Stage: "gradients", Kind: KindRequest, Payload: encode(req), Reply: KindContribution, Received: "encrypted gradient",
		Waiting: fmt.Sprintf("iteration %d: waiting for the parties' encrypted gradients", j.iteration+1),
		Decode: func(from PartyID, payload []byte) (any, error) {
			var in synodv1.Contribution
			if err := decodePayload(payload, &in); err != nil {
				return nil, fmt.Errorf("malformed gradient: %w", err)
			}
			if len(in.GetGradient()) != p {
				return nil, fmt.Errorf("malformed gradient: %d ciphertexts, want %d", len(in.GetGradient()), p)
			}
			out := make([]*rlwe.Ciphertext, p)
			for i, b := range in.GetGradient() {
				ct, err := engine.DecodeCiphertext(params, b)
				if err != nil {
					return nil, fmt.Errorf("malformed gradient ciphertext %d: %w", i, err)
				}
				out[i] = ct
			}
			return out, nil
		}}, nil
}

func decodeRows(from PartyID, payload []byte) (any, error) {
	var in synodv1.Contribution
	if err := decodePayload(payload, &in); err != nil {
		return nil, fmt.Errorf("malformed row count: %w", err)
	}
	if in.GetRows() > train.MaxRows {
		return nil, fmt.Errorf("row count %d beyond %d", in.GetRows(), train.MaxRows)
	}
	return int(in.GetRows()), nil
}

// TrainHost is what a party's machine asks its node for encrypted training:
// its selected rows, scaled into [-1, 1] by the spec's ranges.
type TrainHost interface {
	Design(spec *synodv1.QuerySpec) (features [][]float64, labels []float64, err error)
}

// TrainParty is the party's extension for encrypted training.
type TrainParty struct {
	Host TrainHost

	features [][]float64
	labels   []float64
	working  bool
}

// Contribute answers a round of an encrypted training (handled is false
// for every other spec).
func (e *TrainParty) Contribute(p *Party) (bool, error) {
	spec := p.Spec()
	tr := spec.GetTraining()
	if tr.GetMode() != synodv1.Training_ENCRYPTED {
		return false, nil
	}
	req := p.Request()
	keys := p.cfg.Keys
	params := keys.Params
	switch {
	case req.GetRound() == 1:
		f, y, err := e.Host.Design(spec)
		if err != nil {
			p.refuse("%v", err)
			return true, nil
		}
		e.features, e.labels = f, y
		p.Contributed()
		p.Send(KindContribution, encode(&synodv1.Contribution{Round: 1, Rows: uint64(len(y))}))
		return true, nil
	case e.labels == nil:
		return true, faultf(p.cfg.Coordinator, "training round %d before the row count", req.GetRound())
	case req.GetSignMaskLevel() > 0:
		ct, err := train.EncryptSignMask(params, keys.Setup.PublicKey, int(req.GetSignMaskLevel()))
		if err != nil {
			return true, &Fault{Party: p.cfg.Coordinator, Err: fmt.Errorf("sign mask: %w", err)}
		}
		b, err := engine.MarshalCiphertext(ct)
		if err != nil {
			return true, err
		}
		p.Send(KindContribution, encode(&synodv1.Contribution{Round: req.GetRound(), SignMask: b}))
		return true, nil
	}
	if e.working {
		return true, faultf(p.cfg.Coordinator, "a gradient asked while the previous one is computed")
	}
	pl, err := train.NewPlan(params, TrainSpec(tr, int(req.GetParties()), int(req.GetTotalRows())))
	if err != nil {
		return true, err
	}
	if err := CheckTrainPlan(tr, pl); err != nil {
		return true, err
	}
	if int(req.GetRound())-1 > int(tr.GetIterations()) {
		return true, faultf(p.cfg.Coordinator, "iteration %d beyond the %d approved", req.GetRound()-1, tr.GetIterations())
	}
	point := make([]*rlwe.Ciphertext, len(req.GetModel()))
	for i, b := range req.GetModel() {
		if point[i], err = engine.DecodeCiphertext(params, b); err != nil {
			return true, faultf(p.cfg.Coordinator, "malformed point ciphertext %d: %v", i, err)
		}
	}
	e.working = true
	evk := rlwe.NewMemEvaluationKeySet(keys.Setup.RelinearizationKey)
	f, y, round := e.features, e.labels, req.GetRound()
	p.Do(Work{Ref: "gradient", Run: func() (any, error) {
		g, err := pl.Gradient(params, evk, point, f, y)
		if err != nil {
			return nil, err
		}
		in := &synodv1.Contribution{Round: round}
		for _, ct := range g {
			b, err := engine.MarshalCiphertext(ct)
			if err != nil {
				return nil, err
			}
			in.Gradient = append(in.Gradient, b)
		}
		return in, nil
	}})
	return true, nil
}

// Worked sends a computed gradient.
func (e *TrainParty) Worked(p *Party, w Worked) error {
	if w.Ref != "gradient" {
		return nil
	}
	e.working = false
	if w.Err != nil {
		return fmt.Errorf("gradient: %w", w.Err)
	}
	p.Send(KindContribution, encode(w.Value.(*synodv1.Contribution)))
	return nil
}

// Handle implements PartyExtension: encrypted training adds no kind.
func (e *TrainParty) Handle(*Party, protocols.Message) (bool, error) { return false, nil }
