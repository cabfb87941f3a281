package session

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/engine/model"
	"github.com/synod-mpc/synod/protocols"
)

// Encrypted models: an analyst uploads a model whose weights are encrypted
// under the collective key (UploadJob stores it at every reachable party),
// and a party predicts its own records with it (PredictJob, which that
// party coordinates): it evaluates the encrypted weights on its records as
// plaintexts, and t parties switch each batch of predictions to a fresh key
// of that party alone. The key switchers check that the model is stored
// with them and open to the requester, not what the ciphertext they switch
// holds (parties are honest-but-curious).

// ModelBlob is an encrypted model to store: its description and bytes.
type ModelBlob struct {
	Info  *synodv1.ModelInfo
	Model []byte
}

// ModelHost is what a party's machine asks its node about stored models.
type ModelHost interface {
	// CheckModel validates an encrypted model handed to this party for
	// storage (owner, header, strict decoding against the keys).
	CheckModel(info *synodv1.ModelInfo, blob []byte) error
	// ModelInfo returns a stored model's description.
	ModelInfo(name string) (*synodv1.ModelInfo, error)
}

// ModelParty is the party's extension for uploads and predictions.
type ModelParty struct {
	Host      ModelHost
	digest    []byte
	consented bool
}

// Handle implements PartyExtension.
func (e *ModelParty) Handle(p *Party, m protocols.Message) (bool, error) {
	switch m.Kind {
	case KindModelStore:
		var st synodv1.ModelStore
		if err := decode(m, &st); err != nil {
			return true, err
		}
		info := st.GetInfo()
		if !bytes.Equal(info.GetDigest(), digest(st.GetModel())) {
			return true, faultf(m.From, "model digest does not match the model")
		}
		if err := e.Host.CheckModel(info, st.GetModel()); err != nil {
			return true, &Fault{Party: m.From, Err: err}
		}
		info.Session = p.cfg.Session
		e.digest = info.GetDigest()
		p.setStatus(StatusRunning)
		p.Persist(Store{Ref: "model", What: &ModelBlob{Info: info, Model: st.GetModel()}})
		return true, nil
	case KindPredictStart:
		var ps synodv1.PredictStart
		if err := decode(m, &ps); err != nil {
			return true, err
		}
		info, err := e.Host.ModelInfo(ps.GetModel())
		if err != nil {
			return true, err
		}
		if !bytes.Equal(info.GetDigest(), ps.GetDigest()) {
			return true, fmt.Errorf("model %s here has digest %x, the request names %x", ps.GetModel(), info.GetDigest(), ps.GetDigest())
		}
		if allowed := info.GetHeader().GetParties(); len(allowed) > 0 && !slices.Contains(allowed, string(p.cfg.Coordinator)) {
			return true, fmt.Errorf("model %s is not open to %s", ps.GetModel(), p.cfg.Coordinator)
		}
		// Only now will this party switch the session's ciphertexts.
		p.Contributed()
		p.setStatus(StatusRunning)
		p.Event("predict", "prediction key switches accepted for %s (model %s, %d batches)", p.cfg.Coordinator, ps.GetModel(), ps.GetBatches())
		p.Send(KindPredictReady, encode(&synodv1.PredictReady{}))
		return true, nil
	}
	return false, nil
}

// Stored acknowledges a stored model.
func (e *ModelParty) Stored(p *Party, s Stored) error {
	if s.Ref != "model" {
		return nil
	}
	if s.Err != nil {
		return fmt.Errorf("store model: %w", s.Err)
	}
	p.Send(KindModelStored, encode(&synodv1.ModelStored{Digest: e.digest}))
	return nil
}

// UploadJob has every participant store an encrypted model, then records
// the upload.
type UploadJob struct {
	Info    *synodv1.ModelInfo
	Model   []byte
	Timeout time.Duration

	state int
}

// Next implements Job.
func (j *UploadJob) Next(c *Coordinator, outcome any) (Action, error) {
	switch j.state {
	case 0:
		j.state = 1
		c.Event("model", "", "storing encrypted model %s (%d bytes, digest %x) at %s", j.Info.GetHeader().GetName(), len(j.Model), j.Info.GetDigest()[:8], joinIDs(c.Active()))
		return Ask{Stage: "model", Kind: KindModelStore, Payload: encode(&synodv1.ModelStore{Info: j.Info, Model: j.Model}),
			Reply: KindModelStored, Timeout: j.Timeout, Received: "model stored",
			Decode: func(from PartyID, payload []byte) (any, error) {
				var st synodv1.ModelStored
				if err := decodePayload(payload, &st); err != nil {
					return nil, fmt.Errorf("malformed %s: %w", KindModelStored, err)
				}
				if !bytes.Equal(st.GetDigest(), j.Info.GetDigest()) {
					return nil, errors.New("stored a model with another digest")
				}
				return nil, nil
			}}, nil
	case 1:
		in := outcome.(Answers)
		parties := sortedIDs(mapKeys(in.From))
		j.state = 2
		return Record{Kind: KindTranscriptRecord, Transcript: true, Body: TranscriptRecord{
			Analyst: j.Info.GetOwner(), Parameters: c.cfg.Keys.Params.Name, SpecDigest: digest(headerBytes(j.Info)), SetupSession: c.cfg.Keys.SetupSession,
			Participants: sortedIDs(c.cfg.Participants), Contributors: parties, ResultDigest: j.Info.GetDigest(), Outcome: "stored",
			Model: j.Info.GetHeader().GetName(), ModelDigest: j.Info.GetDigest()}}, nil
	case 2:
		r := outcome.(Recorded)
		c.Event("ledger", "", "model upload recorded at height %d (tx %X)", r.Receipt.Height, r.Receipt.TxHash)
		j.state = 3
		meta := &synodv1.ResultMetadata{Session: c.cfg.Session, Parameters: c.cfg.Keys.Params.Name,
			Receipt: &synodv1.Receipt{Height: r.Receipt.Height, TxHash: r.Receipt.TxHash, SetupSession: c.cfg.Keys.SetupSession}}
		for _, p := range c.Active() {
			meta.Contributors = append(meta.Contributors, string(p))
		}
		return Publish{Release: Release{Round: 1, Final: true, Result: &Result{Meta: meta}}}, nil
	}
	return Finish{}, nil
}

func headerBytes(info *synodv1.ModelInfo) []byte {
	return encode(info.GetHeader())
}

// Predictions are a prediction session's output, for the requesting
// party's data directory.
type Predictions struct {
	File   string
	Values []float64
}

// PredictJob evaluates an encrypted model on the coordinating party's own
// records, batch by batch (the next batch is evaluated while the previous
// one is key-switched), has every batch switched to a fresh key of this
// party, decrypts and stores the predictions.
type PredictJob struct {
	Info    *synodv1.ModelInfo
	Model   *model.EncryptedModel
	Columns [][]float64 // the party's feature columns
	Rows    int
	Dataset string
	Output  string
	Keys    *Keys

	state    int
	plan     *model.Plan
	batches  int
	next     int // next batch to evaluate
	current  int // batch being switched
	ready    map[int]*rlwe.Ciphertext
	sk       *rlwe.SecretKey
	pk       *rlwe.PublicKey
	preds    []float64
	group    []PartyID
	began    bool
	switcher []PartyID
	h        hasher
}

type hasher interface {
	Write([]byte) (int, error)
	Sum([]byte) []byte
}

// Next implements Job.
func (j *PredictJob) Next(c *Coordinator, outcome any) (Action, error) {
	p := j.Keys.Params
	switch j.state {
	case 0:
		pl, err := j.Model.Plan(p)
		if err != nil {
			return nil, err
		}
		if j.Model.Arch.Outputs() != 1 {
			return nil, fmt.Errorf("model %s has %d outputs; prediction supports one", j.Info.GetHeader().GetName(), j.Model.Arch.Outputs())
		}
		j.plan = pl
		j.batches = (j.Rows + pl.RecordsPerBatch - 1) / pl.RecordsPerBatch
		j.ready = map[int]*rlwe.Ciphertext{}
		j.h = sha256.New()
		name := j.Info.GetHeader().GetName()
		c.Event("predict", "", "model %s (%s) on %d records of %s: %d batches of up to %d, %d levels", name, j.Model.Arch, j.Rows, j.Dataset, j.batches, pl.RecordsPerBatch, pl.Levels+pl.OutputLevel)
		j.state = 1
		return Ask{Stage: "predict", Kind: KindPredictStart, KeepGoing: true, Reply: KindPredictReady,
			Payload: encode(&synodv1.PredictStart{Model: name, Digest: j.Info.GetDigest(), Dataset: j.Dataset, Records: uint64(j.Rows), Batches: uint32(j.batches)}),
			Decode:  func(PartyID, []byte) (any, error) { return nil, nil }}, nil
	case 1:
		in := outcome.(Answers)
		j.switcher = sortedIDs(mapKeys(in.From))
		if len(j.switcher) < c.cfg.Threshold {
			return nil, fmt.Errorf("only %d parties accepted to key-switch (%s), below the threshold %d", len(j.switcher), joinIDs(j.switcher), c.cfg.Threshold)
		}
		j.sk, j.pk = engine.GenKeyPair(p) // fresh, this session only, never stored
		j.state = 2
		return j.evaluate(c), nil
	case 2:
		switch o := outcome.(type) {
		case Worked:
			var b int
			if _, err := fmt.Sscanf(o.Ref, "batch-%d", &b); err != nil {
				return nil, fmt.Errorf("predict: unknown work %q", o.Ref)
			}
			j.ready[b] = o.Value.(*rlwe.Ciphertext)
		case Switched:
			j.group = o.Group
			ctb, err := o.Ciphertext.MarshalBinary()
			if err != nil {
				return nil, err
			}
			j.h.Write(ctb)
			lo, hi := j.current*j.plan.RecordsPerBatch, min((j.current+1)*j.plan.RecordsPerBatch, j.Rows)
			v, err := engine.DecryptVector(p, j.sk, o.Ciphertext, hi-lo)
			if err != nil {
				return nil, fmt.Errorf("batch %d: %w", j.current+1, err)
			}
			j.preds = append(j.preds, v...)
			j.current++
			j.began = false
			if j.current == j.batches {
				j.state = 3
				c.Event("predict", "", "%d predictions decrypted, written to %s in the data directory", j.Rows, j.Output)
				return Persist{What: &Predictions{File: j.Output, Values: j.preds}}, nil
			}
		}
		// Keep two batches evaluated ahead; switch the current one when
		// it is ready.
		if a := j.evaluate(c); a != nil {
			return a, nil
		}
		if ct, ok := j.ready[j.current]; ok && !j.began {
			delete(j.ready, j.current)
			j.began = true
			return KeySwitch{Stage: "key-switch", What: fmt.Sprintf("batch %d of %d to a fresh key of %s ", j.current+1, j.batches, c.cfg.Self), Ciphertext: ct, Target: j.pk}, nil
		}
		return Idle{}, nil
	case 3:
		j.state = 4
		return Record{Kind: KindTranscriptRecord, Transcript: true, Body: TranscriptRecord{
			Analyst: string(c.cfg.Self), Parameters: p.Name, SpecDigest: digest(encode(&synodv1.PredictStart{Model: j.Info.GetHeader().GetName(), Digest: j.Info.GetDigest(), Dataset: j.Dataset, Records: uint64(j.Rows)})),
			SetupSession: j.Keys.SetupSession, Participants: sortedIDs(c.cfg.Participants), Contributors: []PartyID{c.cfg.Self},
			KeySwitchers: j.group, ResultDigest: j.h.Sum(nil), Outcome: "released", Model: j.Info.GetHeader().GetName(), ModelDigest: j.Info.GetDigest()}}, nil
	case 4:
		r := outcome.(Recorded)
		c.Event("ledger", "", "prediction transcript recorded at height %d (tx %X)", r.Receipt.Height, r.Receipt.TxHash)
		return Finish{}, nil
	}
	return Finish{}, nil
}

// evaluate starts the evaluation of the next batch when fewer than two are
// ahead of the key switches.
func (j *PredictJob) evaluate(c *Coordinator) Action {
	if j.next >= j.batches || j.next > j.current+1 {
		return nil
	}
	b := j.next
	j.next++
	lo, hi := b*j.plan.RecordsPerBatch, min((b+1)*j.plan.RecordsPerBatch, j.Rows)
	p, em, cols := j.Keys.Params, j.Model, j.Columns
	evk := rlwe.NewMemEvaluationKeySet(j.Keys.Setup.RelinearizationKey)
	return Compute{Ref: fmt.Sprintf("batch-%d", b), Run: func() (any, error) {
		records := make([][]float64, hi-lo)
		for r := range records {
			x := make([]float64, len(cols))
			for i, col := range cols {
				x[i] = col[lo+r]
			}
			records[r] = x
		}
		outs, err := model.EvaluateRecords(p, evk, em, records)
		if err == nil {
			err = model.PrepareRelease(p, outs)
		}
		if err != nil {
			return nil, fmt.Errorf("batch %d: %w", b+1, err)
		}
		return outs[0], nil
	}}
}
