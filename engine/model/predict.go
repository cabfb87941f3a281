package model

import (
	"errors"
	"fmt"
	"math"

	"github.com/synod-mpc/synod/engine"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// Private prediction: a model owner encrypts the weights under the
// consortium's collective key (EncryptModelForPrediction); a data party
// evaluates them on its own records, which it holds in the clear, as
// plaintexts (EvaluatePlainRecords: ciphertext-by-plaintext products, no
// feature encryption at all); the outputs are prepared for release
// (PrepareRelease) and key-switched by t parties to a fresh key of the data
// party alone, which decrypts them.
//
// Release needs headroom: a threshold key switch adds noise flooding of
// standard deviation engine.Parameters.FloodingSigma (2^37) to hide the
// switchers' secret shares, which would swamp a prediction at the default
// scale 2^40. The prediction plan therefore keeps one spare level: outputs
// come out at level 1, where PrepareRelease multiplies them by the integer
// 2^(AggregateLogScale-LogDefaultScale) and declares the scale
// 2^AggregateLogScale (2^60), the scale aggregates are released at. The
// relative precision is unchanged by the multiplication (the evaluation
// error is multiplied too) and the flooding then costs about 2^-15 per slot.

// NewPredictionPlan is NewEncryptedPlan with the outputs at level 1 (one
// level of headroom for the release); it refuses models that leave no such
// level, wrapping ErrTooDeep.
func NewPredictionPlan(p engine.Parameters, arch *Model) (*Plan, error) {
	pl, err := NewEncryptedPlan(p, arch)
	if err != nil {
		return nil, err
	}
	if pl.OutputLevel >= 1 {
		return pl, nil
	}
	if pl.Levels+1 > pl.Available {
		return nil, fmt.Errorf("%w: model %q needs %d levels (%s) plus 1 to release its predictions by key switch, parameter set %s has %d",
			ErrTooDeep, arch.Name, pl.Levels, pl.levelSummary(), p.Name, pl.Available)
	}
	pl.OutputLevel = 1
	pl.InputLevel = pl.Levels + 1
	level := pl.InputLevel
	for i := range pl.Layers {
		pl.Layers[i].InputLevel = level
		level -= pl.Layers[i].Levels
	}
	logQ := 0.0
	for _, q := range p.Q()[:2] {
		logQ += math.Log2(float64(q))
	}
	pl.OutputBound = math.Exp2(logQ - float64(p.AggregateLogScale) - 1)
	pl.CiphertextBytes = engine.CiphertextBinarySize(p, pl.InputLevel)
	return pl, nil
}

// plan is the plan an encrypted model's weights were encrypted for.
func (em *EncryptedModel) plan(p engine.Parameters) (*Plan, error) {
	if em.Prediction {
		return NewPredictionPlan(p, em.Arch)
	}
	return NewEncryptedPlan(p, em.Arch)
}

// EncryptModelForPrediction encrypts m's weights under pk (the collective
// public key) for private prediction: at the levels of NewPredictionPlan.
func EncryptModelForPrediction(p engine.Parameters, pk *rlwe.PublicKey, m *Model) (*EncryptedModel, error) {
	pl, err := NewPredictionPlan(p, m)
	if err != nil {
		return nil, err
	}
	em, err := encryptModel(p, pk, m, pl)
	if err != nil {
		return nil, err
	}
	em.Prediction = true
	return em, nil
}

// EvaluatePlainRecords runs an encrypted-weight model on records the
// evaluator holds in the clear (a data party's own records), encoded with
// EncodeFeatures at the model's plan (em.Plan). The first layer is a sum of
// ciphertext-by-plaintext products (no relinearization, no encryption of
// the records); the rest is as in EvaluateEncrypted. The result is
// encrypted under the key of the weights.
func EvaluatePlainRecords(p engine.Parameters, evk rlwe.EvaluationKeySet, em *EncryptedModel, in []*rlwe.Plaintext) ([]*rlwe.Ciphertext, error) {
	pl, circuit, err := em.check(p)
	if err != nil {
		return nil, err
	}
	if len(in) != pl.InputCiphertexts {
		return nil, fmt.Errorf("evaluate: %d plaintexts for %d input features", len(in), pl.InputCiphertexts)
	}
	for i, pt := range in {
		switch {
		case pt == nil || pt.MetaData == nil || pt.Value.N() != p.N():
			return nil, fmt.Errorf("evaluate: plaintext %d is nil or not of ring degree %d", i, p.N())
		case pt.Level() != pl.InputLevel:
			return nil, fmt.Errorf("evaluate: plaintext %d is at level %d, the model needs %d", i, pt.Level(), pl.InputLevel)
		case pt.Scale.Cmp(p.DefaultScale()) != 0 || !pt.IsNTT:
			return nil, fmt.Errorf("evaluate: plaintext %d is not an NTT plaintext at the default scale", i)
		}
	}
	denseEnc := em.denseFunc(p)
	first := func(ev *hefloat.Evaluator, k, level int) (*rlwe.Ciphertext, error) {
		w := em.W[0][k]
		acc := hefloat.NewCiphertext(p.Parameters, 1, level)
		acc.Scale = in[0].Scale.Mul(w[0].Scale)
		for i := range w {
			if err := ev.MulThenAdd(w[i], in[i], acc); err != nil {
				return nil, err
			}
		}
		if err := ev.Rescale(acc, acc); err != nil {
			return nil, err
		}
		acc.Scale = em.B[0][k].Scale // equal up to the float rounding of q/q
		if err := ev.Add(acc, em.B[0][k], acc); err != nil {
			return nil, err
		}
		return acc, nil
	}
	return layers(p, evk, pl, circuit, nil, func(ev *hefloat.Evaluator, x []*rlwe.Ciphertext, l, k, level int) (*rlwe.Ciphertext, error) {
		if l == 0 {
			return first(ev, k, level)
		}
		return denseEnc(ev, x, l, k, level)
	})
}

// PrepareRelease takes prediction outputs at level >= 1 and the default
// scale to the release scale 2^p.AggregateLogScale (in place) by an integer
// multiplication, so that the flooding of a key switch costs no precision.
// Outputs must stay below Plan.OutputBound in magnitude.
func PrepareRelease(p engine.Parameters, outs []*rlwe.Ciphertext) error {
	lift := p.AggregateLogScale - p.LogDefaultScale()
	if lift < 0 || lift > 62 {
		return fmt.Errorf("prepare release: scale 2^%d below the default 2^%d", p.AggregateLogScale, p.LogDefaultScale())
	}
	for i, ct := range outs {
		if ct == nil || ct.MetaData == nil || len(ct.Value) != 2 {
			return fmt.Errorf("prepare release: output %d is nil or not of degree 1", i)
		}
		if ct.Level() < 1 {
			return fmt.Errorf("prepare release: output %d is at level 0; use a prediction plan (NewPredictionPlan)", i)
		}
		if ct.Scale.Cmp(p.DefaultScale()) != 0 {
			return fmt.Errorf("prepare release: output %d has scale 2^%.2f, expected the default", i, math.Log2(ct.Scale.Float64()))
		}
		ringQ := p.RingQ().AtLevel(ct.Level())
		for j := range ct.Value {
			ringQ.MulScalar(ct.Value[j], uint64(1)<<lift, ct.Value[j])
		}
		ct.Scale = rlwe.NewScale(math.Exp2(float64(p.AggregateLogScale)))
	}
	return nil
}

// Plan returns the plan of an encrypted model on p (what EncodeFeatures
// needs to encode records for EvaluatePlainRecords).
func (em *EncryptedModel) Plan(p engine.Parameters) (*Plan, error) {
	if em == nil || em.Arch == nil {
		return nil, errors.New("encrypted model: nil model")
	}
	return em.plan(p)
}
