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

// MaxFeatureValue bounds the magnitude of an encrypted feature. Features are
// encoded at the default scale (2^40 or 2^45) at level >= 1, where the modulus
// leaves ample room; the bound keeps the float64 encoding (53-bit mantissa)
// precise to ~1e-6 absolute.
const MaxFeatureValue = 1 << 20

// layerCircuit is a layer with standardization and the change of variable
// of its activation folded into its weights.
type layerCircuit struct {
	w  [][]float64
	b  []float64
	ap *approx // nil for Identity
}

func compile(m *Model) ([]layerCircuit, error) {
	out := make([]layerCircuit, len(m.Layers))
	for l, layer := range m.Layers {
		c := layerCircuit{w: make([][]float64, len(layer.Weights)), b: append([]float64(nil), layer.Bias...)}
		for k, row := range layer.Weights {
			c.w[k] = append([]float64(nil), row...)
		}
		if l == 0 && m.Mean != nil {
			for k := range c.w {
				for i := range c.w[k] {
					c.w[k][i] /= m.Std[i]
					c.b[k] -= c.w[k][i] * m.Mean[i]
				}
			}
		}
		if layer.Activation != "" && layer.Activation != Identity {
			ap, err := approximation(layer)
			if err != nil {
				return nil, err
			}
			alpha, beta := ap.changeOfBasis()
			for k := range c.w {
				for i := range c.w[k] {
					c.w[k][i] *= alpha
				}
				c.b[k] = alpha*c.b[k] + beta
			}
			c.ap = ap
		}
		out[l] = c
	}
	return out, nil
}

// EncodeFeatures encodes a records x features matrix column-packed: plaintext
// i holds feature i of every record, record j in slot j, at the plan's input
// level and the default scale. At most pl.RecordsPerBatch records.
func EncodeFeatures(p engine.Parameters, pl *Plan, records [][]float64) ([]*rlwe.Plaintext, error) {
	cols, err := columns(pl, records)
	if err != nil {
		return nil, err
	}
	pts := make([]*rlwe.Plaintext, len(cols))
	encs := make([]*columnEncoder, 0, runtime.GOMAXPROCS(0))
	var mu sync.Mutex
	err = parallel(len(cols), func(int) func(int) error {
		e := getColumnEncoder(p)
		mu.Lock()
		encs = append(encs, e)
		mu.Unlock()
		return func(i int) error {
			pts[i] = hefloat.NewPlaintext(p.Parameters, pl.InputLevel)
			return e.encode(cols[i], pts[i])
		}
	})
	for _, e := range encs {
		putColumnEncoder(e)
	}
	if err != nil {
		return nil, fmt.Errorf("encode features: %w", err)
	}
	return pts, nil
}

// EncryptFeatures encodes records as EncodeFeatures does and encrypts the
// plaintexts under pk (the collective public key): one ciphertext per
// feature.
func EncryptFeatures(p engine.Parameters, pk *rlwe.PublicKey, pl *Plan, records [][]float64) ([]*rlwe.Ciphertext, error) {
	if pk == nil {
		return nil, errors.New("encrypt features: nil public key")
	}
	if len(pk.Value) != 2 || pk.Value[0].Q.N() != p.N() || pk.Value[0].Q.Level() < pl.InputLevel {
		return nil, fmt.Errorf("encrypt features: public key does not fit parameter set %s at level %d", p.Name, pl.InputLevel)
	}
	cols, err := columns(pl, records)
	if err != nil {
		return nil, err
	}
	encParams, err := encryptionParameters(p)
	if err != nil {
		return nil, fmt.Errorf("encrypt features: %w", err)
	}
	cts := make([]*rlwe.Ciphertext, len(cols))
	enc := rlwe.NewEncryptor(encParams, pk)
	encs := make([]*columnEncoder, 0, runtime.GOMAXPROCS(0))
	var mu sync.Mutex
	err = parallel(len(cols), func(w int) func(int) error {
		en := enc
		if w > 0 {
			en = enc.ShallowCopy()
		}
		e := getColumnEncoder(p)
		mu.Lock()
		encs = append(encs, e)
		mu.Unlock()
		pt := hefloat.NewPlaintext(p.Parameters, pl.InputLevel)
		return func(i int) error {
			if err := e.encode(cols[i], pt); err != nil {
				return err
			}
			cts[i] = hefloat.NewCiphertext(p.Parameters, 1, pl.InputLevel)
			return en.Encrypt(pt, cts[i])
		}
	})
	for _, e := range encs {
		putColumnEncoder(e)
	}
	if err != nil {
		return nil, fmt.Errorf("encrypt features: %w", err)
	}
	return cts, nil
}

// Public-key encryption in lattigo samples the encryption of zero modulo QP
// and divides by P when the parameters have a special modulus P (all of
// Synod's sets): that halves the encryption noise but costs about five
// number-theoretic transforms over Q+P per polynomial instead of three over
// Q. Feature encryption dominates the cost of inference (one ciphertext per
// feature per batch), so it uses the textbook RLWE public-key encryption
// modulo Q alone: (u*pk0 + e0 + m, u*pk1 + e1) with fresh ternary u and
// Gaussian e0, e1, which is what lattigo does for parameters without P. The
// public key is unchanged (its Q part is an RLWE sample modulo Q), security
// is the same, and the extra noise u*e_pk is ~2^-25 relative to the 2^40
// scale (measured: no change in the errors of the tests). encParams are the
// same parameters without P.
var encParamsCache sync.Map // parameter set name -> hefloat.Parameters

func encryptionParameters(p engine.Parameters) (hefloat.Parameters, error) {
	if v, ok := encParamsCache.Load(p.Name); ok {
		return v.(hefloat.Parameters), nil
	}
	ep, err := hefloat.NewParametersFromLiteral(hefloat.ParametersLiteral{
		LogN: p.LogN(), Q: p.Q(), Xs: p.Xs(), Xe: p.Xe(), RingType: p.RingType(),
		LogDefaultScale: p.LogDefaultScale(),
	})
	if err != nil {
		return hefloat.Parameters{}, fmt.Errorf("parameters without P: %w", err)
	}
	encParamsCache.Store(p.Name, ep)
	return ep, nil
}

// columns transposes and checks the records.
func columns(pl *Plan, records [][]float64) ([][]float64, error) {
	if pl == nil {
		return nil, errors.New("encode features: nil plan")
	}
	if len(records) == 0 || len(records) > pl.RecordsPerBatch {
		return nil, fmt.Errorf("encode features: %d records outside [1, %d] (one batch)", len(records), pl.RecordsPerBatch)
	}
	cols := make([][]float64, pl.InputCiphertexts)
	for i := range cols {
		cols[i] = make([]float64, len(records))
	}
	for j, r := range records {
		if len(r) != pl.InputCiphertexts {
			return nil, fmt.Errorf("encode features: record %d has %d features, expected %d", j, len(r), pl.InputCiphertexts)
		}
		for i, v := range r {
			if math.IsNaN(v) || math.Abs(v) > MaxFeatureValue {
				return nil, fmt.Errorf("encode features: record %d feature %d = %g is not a number of magnitude at most %d", j, i, v, MaxFeatureValue)
			}
			cols[i][j] = v
		}
	}
	return cols, nil
}

// Evaluate runs model m on one batch of column-packed ciphertexts (one per
// input feature, as EncryptFeatures produces) and returns one ciphertext per
// model output, slot j holding the prediction for record j, at the plan's
// OutputLevel and the default scale. evk must hold the relinearization key when the plan
// needs it; no Galois key is used. The inputs are not modified.
func Evaluate(p engine.Parameters, evk rlwe.EvaluationKeySet, m *Model, in []*rlwe.Ciphertext) ([]*rlwe.Ciphertext, error) {
	pl, err := NewPlan(p, m)
	if err != nil {
		return nil, err
	}
	circuit, err := compile(m)
	if err != nil {
		return nil, err
	}
	denseConst := func(ev *hefloat.Evaluator, x []*rlwe.Ciphertext, l, k, level int) (*rlwe.Ciphertext, error) {
		return dense(p, ev, x, circuit[l].w[k], circuit[l].b[k], level)
	}
	return run(p, evk, pl, circuit, in, denseConst)
}

// denseFunc computes output k of dense layer l at level (ending one level
// lower, at the default scale).
type denseFunc func(ev *hefloat.Evaluator, x []*rlwe.Ciphertext, l, k, level int) (*rlwe.Ciphertext, error)

// checkInputs checks the ciphertexts given to Evaluate or EvaluateEncrypted.
func checkInputs(p engine.Parameters, pl *Plan, in []*rlwe.Ciphertext) error {
	if len(in) != pl.InputCiphertexts {
		return fmt.Errorf("evaluate: %d ciphertexts for %d input features", len(in), pl.InputCiphertexts)
	}
	scale := p.DefaultScale()
	for i, ct := range in {
		switch {
		case ct == nil || ct.MetaData == nil || len(ct.Value) != 2:
			return fmt.Errorf("evaluate: ciphertext %d is nil or not of degree 1", i)
		case ct.Value[0].N() != p.N() || ct.Value[1].N() != p.N() || ct.Value[0].Level() != ct.Value[1].Level():
			return fmt.Errorf("evaluate: ciphertext %d does not have the ring degree %d of %s", i, p.N(), p.Name)
		case ct.Level() < pl.InputLevel || ct.Level() > p.MaxLevel():
			return fmt.Errorf("evaluate: ciphertext %d is at level %d, the model needs %d", i, ct.Level(), pl.InputLevel)
		case ct.Scale.Cmp(scale) != 0:
			return fmt.Errorf("evaluate: ciphertext %d has scale 2^%.2f, expected the default 2^%d", i, math.Log2(ct.Scale.Float64()), pl.LogScale)
		case !ct.IsNTT || !ct.IsBatched || ct.LogDimensions != p.LogMaxDimensions():
			return fmt.Errorf("evaluate: ciphertext %d is not a batched NTT ciphertext of %s", i, p.Name)
		}
	}
	return nil
}

// run evaluates the layers: dense products by denseFn, then the activation
// polynomials, outputs of a layer in parallel.
func run(p engine.Parameters, evk rlwe.EvaluationKeySet, pl *Plan, circuit []layerCircuit, in []*rlwe.Ciphertext, denseFn denseFunc) ([]*rlwe.Ciphertext, error) {
	if err := checkInputs(p, pl, in); err != nil {
		return nil, err
	}
	if pl.NeedsRelinearizationKey {
		if evk == nil {
			return nil, errors.New("evaluate: the model needs a relinearization key, got no evaluation keys")
		}
		if _, err := evk.GetRelinearizationKey(); err != nil {
			return nil, fmt.Errorf("evaluate: the model needs a relinearization key: %w", err)
		}
	}
	x := make([]*rlwe.Ciphertext, len(in))
	for i, ct := range in {
		// Layer inputs are only read: no copy unless levels are dropped.
		if x[i] = ct; ct.Level() > pl.InputLevel {
			x[i] = ct.CopyNew()
			x[i].Resize(1, pl.InputLevel)
		}
	}
	return layers(p, evk, pl, circuit, x, denseFn)
}

// layers evaluates the circuit from inputs x at the plan's input level (x
// may be nil when denseFn computes the first layer from elsewhere).
func layers(p engine.Parameters, evk rlwe.EvaluationKeySet, pl *Plan, circuit []layerCircuit, x []*rlwe.Ciphertext, denseFn denseFunc) ([]*rlwe.Ciphertext, error) {
	if pl.NeedsRelinearizationKey {
		if evk == nil {
			return nil, errors.New("evaluate: the model needs a relinearization key, got no evaluation keys")
		}
		if _, err := evk.GetRelinearizationKey(); err != nil {
			return nil, fmt.Errorf("evaluate: the model needs a relinearization key: %w", err)
		}
	}
	scale := p.DefaultScale()
	level := pl.InputLevel
	var evs evaluators
	defer evs.release(p)
	for l, c := range circuit {
		y := make([]*rlwe.Ciphertext, len(c.b))
		want := level - pl.Layers[l].Levels
		err := parallel(len(c.b), func(w int) func(int) error {
			ev := evs.get(p, evk, w)
			return func(k int) error {
				ct, err := denseFn(ev, x, l, k, level)
				if err != nil {
					return fmt.Errorf("layer %d output %d: %w", l, k, err)
				}
				if c.ap != nil {
					res, err := hefloat.NewPolynomialEvaluator(p.Parameters, ev).Evaluate(ct, hefloat.NewPolynomial(c.ap.poly), scale)
					if err != nil {
						return fmt.Errorf("layer %d output %d: %s: %w", l, k, c.ap.act, err)
					}
					if c.ap.c0 != 0 {
						if err := ev.Add(res, c.ap.c0, res); err != nil {
							return fmt.Errorf("layer %d output %d: %w", l, k, err)
						}
					}
					ct = res
				}
				if ct.Level() < want {
					return fmt.Errorf("layer %d output %d: at level %d, planned %d", l, k, ct.Level(), want)
				}
				ev.DropLevel(ct, ct.Level()-want)
				y[k] = ct
				return nil
			}
		})
		if err != nil {
			return nil, fmt.Errorf("evaluate: %w", err)
		}
		x, level = y, want
	}
	return x, nil
}

// evaluatorPools holds lattigo evaluators per parameter set: a new
// evaluator allocates some 30 buffers of the ring degree, which costs about
// a tenth of a logistic regression batch at ckks-n14.
var evaluatorPools sync.Map // parameter set name -> *sync.Pool of *hefloat.Evaluator

// evaluators are the pooled evaluators of one evaluation's workers.
type evaluators struct {
	mu   sync.Mutex
	base map[int]*hefloat.Evaluator
	keyd map[int]*hefloat.Evaluator
}

// get returns worker w's evaluator, with evk.
func (e *evaluators) get(p engine.Parameters, evk rlwe.EvaluationKeySet, w int) *hefloat.Evaluator {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ev, ok := e.keyd[w]; ok {
		return ev
	}
	if e.base == nil {
		e.base, e.keyd = map[int]*hefloat.Evaluator{}, map[int]*hefloat.Evaluator{}
	}
	v, _ := evaluatorPools.LoadOrStore(p.Name, &sync.Pool{})
	base, ok := v.(*sync.Pool).Get().(*hefloat.Evaluator)
	if !ok || !base.GetParameters().Equal(&p.Parameters) {
		base = hefloat.NewEvaluator(p.Parameters, nil)
	}
	if evk == nil {
		evk = rlwe.NewMemEvaluationKeySet(nil)
	}
	e.base[w], e.keyd[w] = base, base.WithKey(evk)
	return e.keyd[w]
}

// release returns the evaluators to the pool.
func (e *evaluators) release(p engine.Parameters) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if v, ok := evaluatorPools.Load(p.Name); ok {
		for _, ev := range e.base {
			v.(*sync.Pool).Put(ev)
		}
	}
	e.base, e.keyd = nil, nil
}

// dense computes sum_i w_i*x_i + b at level, then rescales: the products by
// constants are accumulated at scale Delta*q_level, so the rescale returns
// exactly to Delta.
func dense(p engine.Parameters, ev *hefloat.Evaluator, x []*rlwe.Ciphertext, w []float64, b float64, level int) (*rlwe.Ciphertext, error) {
	acc := hefloat.NewCiphertext(p.Parameters, 1, level)
	acc.Scale = x[0].Scale.Mul(rlwe.NewScale(p.Q()[level]))
	for i, wi := range w {
		if wi == 0 {
			continue
		}
		if err := ev.MulThenAdd(x[i], wi, acc); err != nil {
			return nil, err
		}
	}
	if err := ev.Add(acc, b, acc); err != nil {
		return nil, err
	}
	if err := ev.Rescale(acc, acc); err != nil {
		return nil, err
	}
	return acc, nil
}

// DecryptOutputs decrypts the outputs of Evaluate with sk (a test harness or
// the analyst after key switching) and returns n records x outputs.
func DecryptOutputs(p engine.Parameters, sk *rlwe.SecretKey, outs []*rlwe.Ciphertext, n int) ([][]float64, error) {
	preds := make([][]float64, n)
	for j := range preds {
		preds[j] = make([]float64, len(outs))
	}
	for k, ct := range outs {
		v, err := engine.DecryptVector(p, sk, ct, n)
		if err != nil {
			return nil, fmt.Errorf("decrypt output %d: %w", k, err)
		}
		for j := range preds {
			preds[j][k] = v[j]
		}
	}
	return preds, nil
}

// parallel runs n tasks on up to GOMAXPROCS workers; newWorker builds each
// worker's task function (with its own lattigo buffers; worker 0 may use the
// caller's).
func parallel(n int, newWorker func(worker int) func(int) error) error {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		task := newWorker(0)
		for i := range n {
			if err := task(i); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for w := range workers {
		task := newWorker(w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := task(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}
