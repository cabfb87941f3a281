package model

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/synod-mpc/synod/engine"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// Private prediction: a model owner encrypts the weights under the
// consortium's collective key (EncryptModelForPrediction); a data party
// evaluates them on its own records, which it holds in the clear, as
// plaintexts (EvaluatePlainRecords: ciphertext-by-plaintext products, no
// feature encryption at all; EvaluateRecords fuses it with the encoding of
// the records, which is what the nodes run); the outputs are prepared for release
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
	first, err := firstLayer(p, em, pl, func(_ *columnEncoder, i int, _ *rlwe.Plaintext) (*rlwe.Plaintext, error) {
		return in[i], nil
	})
	if err != nil {
		return nil, err
	}
	return evaluateAfterFirst(p, evk, em, pl, circuit, first)
}

// EvaluateRecords is EncodeFeatures followed by EvaluatePlainRecords, fused
// (what a data party runs on each batch of its records): each feature
// column is encoded into a scratch plaintext of the worker and multiplied
// into the first layer's accumulators at once, so that no batch of
// plaintexts (one megabyte per feature at ckks-n14) is ever materialized.
// The result is the same as the two calls'. At most pl.RecordsPerBatch
// records, each of em.Arch.Inputs features of magnitude <= MaxFeatureValue.
func EvaluateRecords(p engine.Parameters, evk rlwe.EvaluationKeySet, em *EncryptedModel, records [][]float64) ([]*rlwe.Ciphertext, error) {
	pl, circuit, err := em.check(p)
	if err != nil {
		return nil, err
	}
	if err := checkRecords(pl, records); err != nil {
		return nil, err
	}
	if len(em.W[0])*min(runtime.GOMAXPROCS(0), pl.InputCiphertexts) > maxFusedAccumulators {
		// Wide first layers: one accumulator per output per worker
		// would cost more memory than the plaintexts.
		pts, err := EncodeFeatures(p, pl, records)
		if err != nil {
			return nil, err
		}
		return EvaluatePlainRecords(p, evk, em, pts)
	}
	first, err := firstLayer(p, em, pl, func(e *columnEncoder, i int, pt *rlwe.Plaintext) (*rlwe.Plaintext, error) {
		return pt, e.encodeColumn(records, i, pt)
	})
	if err != nil {
		return nil, err
	}
	return evaluateAfterFirst(p, evk, em, pl, circuit, first)
}

// maxFusedAccumulators bounds the first-layer accumulators (two
// polynomials at the input level each) EvaluateRecords allocates.
const maxFusedAccumulators = 64

// evaluateAfterFirst runs the activation of the first layer and the
// layers after it, from the first layer's dense outputs.
func evaluateAfterFirst(p engine.Parameters, evk rlwe.EvaluationKeySet, em *EncryptedModel, pl *Plan, circuit []layerCircuit, first []*rlwe.Ciphertext) ([]*rlwe.Ciphertext, error) {
	denseEnc := em.denseFunc(p)
	return layers(p, evk, pl, circuit, nil, func(ev *hefloat.Evaluator, x []*rlwe.Ciphertext, l, k, level int) (*rlwe.Ciphertext, error) {
		if l == 0 {
			return first[k], nil
		}
		return denseEnc(ev, x, l, k, level)
	})
}

// firstLayer computes the dense part of the first layer against plaintext
// records: output k is rescale(sum_i W[0][k][i] * pt_i) + B[0][k] at the
// default scale, one level below the input level. plaintext(e, i, scratch)
// returns the plaintext of feature i (encoding it into scratch with e, or
// not). Features are spread over the workers, each accumulating its share
// of every output in the NTT domain with lazy Montgomery products (no
// reduction per product, no conversion of the plaintexts to the Montgomery
// domain: the sum of the products carries a factor R^-1, removed once by a
// conversion of the sum to the Montgomery domain); the workers' sums are
// then added. The result equals lattigo's MulThenAdd sum exactly.
func firstLayer(p engine.Parameters, em *EncryptedModel, pl *Plan, plaintext func(e *columnEncoder, i int, scratch *rlwe.Plaintext) (*rlwe.Plaintext, error)) ([]*rlwe.Ciphertext, error) {
	level := pl.InputLevel
	ringQ := p.RingQ().AtLevel(level)
	w := em.W[0]
	outs := len(w)
	// Lazy products are < 2q: with q < 2^56 (Synod's primes have at most
	// 55 bits), q + 2^6 * 2q < 2^64, so reduce every 2^6 products.
	const reduceEvery = 1 << 6
	for _, q := range ringQ.ModuliChain() {
		if q >= 1<<56 {
			return nil, fmt.Errorf("evaluate: prime %d above 2^56", q)
		}
	}
	type worker struct {
		acc []*rlwe.Ciphertext
		e   *columnEncoder
	}
	var (
		mu      sync.Mutex
		workers []*worker
	)
	err := parallel(pl.InputCiphertexts, func(int) func(int) error {
		wk := &worker{acc: make([]*rlwe.Ciphertext, outs), e: getColumnEncoder(p)}
		for k := range wk.acc {
			wk.acc[k] = hefloat.NewCiphertext(p.Parameters, 1, level)
		}
		mu.Lock()
		workers = append(workers, wk)
		mu.Unlock()
		scratch := hefloat.NewPlaintext(p.Parameters, level)
		n := 0
		return func(i int) error {
			pt, err := plaintext(wk.e, i, scratch)
			if err != nil {
				return err
			}
			for k, acc := range wk.acc {
				ct := w[k][i]
				ringQ.MulCoeffsMontgomeryLazyThenAddLazy(ct.Value[0], pt.Value, acc.Value[0])
				ringQ.MulCoeffsMontgomeryLazyThenAddLazy(ct.Value[1], pt.Value, acc.Value[1])
			}
			if n++; n%reduceEvery == 0 {
				for _, acc := range wk.acc {
					ringQ.Reduce(acc.Value[0], acc.Value[0])
					ringQ.Reduce(acc.Value[1], acc.Value[1])
				}
			}
			return nil
		}
	})
	for _, wk := range workers {
		putColumnEncoder(wk.e)
	}
	if err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	first := workers[0].acc
	scale := p.DefaultScale().Mul(w[0][0].Scale)
	var evs evaluators
	defer evs.release(p)
	ev := evs.get(p, nil, 0)
	for k, acc := range first {
		for j := range acc.Value {
			ringQ.Reduce(acc.Value[j], acc.Value[j])
			for _, wk := range workers[1:] {
				ringQ.Reduce(wk.acc[k].Value[j], wk.acc[k].Value[j])
				ringQ.Add(acc.Value[j], wk.acc[k].Value[j], acc.Value[j])
			}
			ringQ.MForm(acc.Value[j], acc.Value[j])
		}
		acc.Scale = scale
		if err := ev.Rescale(acc, acc); err != nil {
			return nil, err
		}
		acc.Scale = em.B[0][k].Scale // equal up to the float rounding of q/q
		if err := ev.Add(acc, em.B[0][k], acc); err != nil {
			return nil, err
		}
	}
	return first, nil
}

// checkRecords checks a batch of records as columns does.
func checkRecords(pl *Plan, records [][]float64) error {
	if len(records) == 0 || len(records) > pl.RecordsPerBatch {
		return fmt.Errorf("encode features: %d records outside [1, %d] (one batch)", len(records), pl.RecordsPerBatch)
	}
	for j, r := range records {
		if len(r) != pl.InputCiphertexts {
			return fmt.Errorf("encode features: record %d has %d features, expected %d", j, len(r), pl.InputCiphertexts)
		}
		for i, v := range r {
			if math.IsNaN(v) || math.Abs(v) > MaxFeatureValue {
				return fmt.Errorf("encode features: record %d feature %d = %g is not a number of magnitude at most %d", j, i, v, MaxFeatureValue)
			}
		}
	}
	return nil
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
