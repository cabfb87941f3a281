package train

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/engine/model"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/utils/bignum"
)

// The party's circuit, per batch of rows, from the point w dropped to the
// gradient level Lz (l_s = Lz-1-Depth is the level of the sigmoid's output):
//
//	P_c = encode(a * x'_c) at level Lz, scale q_Lz     (x'_0 = 1 on rows, 0 on padding)
//	u   = rescale(sum_c w_c * P_c)   = a * z           level Lz-1, scale Delta
//	s'  = kappa * sigma~(u / a)                          level l_s
//	A_c += s' * P_c, P_c read at level l_s with scale q_l_s
//
// and after the last batch G_c = sign(k) * rescale(A_c) - k * sum_b y * x'_c,
// dropped to the refresh level. The plaintext P_c serves both products: its
// integers represent a*x'_c*q_Lz, which read at the scale q_l_s is
// x'_c * a*q_Lz/q_l_s, so the factor |k| of the gradient is reached by
// kappa = |k| * q_l_s/(a*q_Lz). For logistic regression a = 1/B (the change
// of variable of the Chebyshev basis, u in [-1, 1]) and kappa scales the
// polynomial's coefficients; for linear regression there is no polynomial,
// s' = u, and a = sqrt(|k| q_l_s/q_Lz) makes kappa = a. Both rescales return
// exactly to the scale Delta. The products into A_c are accumulated over
// all batches before the one rescale, and the labels enter once: sum_b
// y*x'_c is computed in the clear and subtracted from each G_c at the end. Padding slots
// have x' = 0 and x'_0 = 0, so P_c = 0 there and they add nothing to A_c, and
// y = 0, so nothing to the label term.

// Gradient computes a party's contribution to one iteration: p = d+1
// ciphertexts G_c at the refresh level and the default scale, the slots of
// G_c summing to k * sum_j (s_j - y_j) z_{j,c} over the party's rows, where
// s_j is the sigmoid's polynomial at z_j.w (logistic) or z_j.w (linear) and
// k = pl.GradientFactor. point is what the coordinator sends (State.Point):
// p ciphertexts at level >= pl.GradientLevel and the default scale.
// features[c] is the column of feature c+1 scaled to [-1, 1], labels the
// labels (0 or 1, or scaled to [-1, 1] for linear regression); both are
// checked, and refused, in the clear. evk holds the relinearization key
// (logistic regression).
func (pl *Plan) Gradient(p engine.Parameters, evk rlwe.EvaluationKeySet, point []*rlwe.Ciphertext, features [][]float64, labels []float64) ([]*rlwe.Ciphertext, error) {
	if err := pl.checkParameters(p); err != nil {
		return nil, fmt.Errorf("gradient: %w", err)
	}
	if err := pl.checkRows(features, labels); err != nil {
		return nil, fmt.Errorf("gradient: %w", err)
	}
	if err := checkCiphertexts(p, point, pl.Coefficients, pl.GradientLevel, p.MaxLevel()); err != nil {
		return nil, fmt.Errorf("gradient: point: %w", err)
	}
	if pl.Sigmoid != nil {
		if evk == nil {
			return nil, errors.New("gradient: the sigmoid needs the relinearization key, got no evaluation keys")
		}
		if _, err := evk.GetRelinearizationKey(); err != nil {
			return nil, fmt.Errorf("gradient: the sigmoid needs the relinearization key: %w", err)
		}
	}
	g := newGradientCircuit(p, pl, evk, point)
	defer g.release()
	rows := len(labels)
	for start := 0; start < rows; start += pl.Slots {
		if err := g.batch(features, labels, start, min(start+pl.Slots, rows)); err != nil {
			return nil, fmt.Errorf("gradient: batch %d: %w", start/pl.Slots, err)
		}
	}
	return g.finish()
}

// checkParameters checks that p is the parameter set of the plan.
func (pl *Plan) checkParameters(p engine.Parameters) error {
	if p.N() == 0 || p.Name != pl.Params || p.LogN() != pl.LogN || p.MaxLevel() != pl.TopLevel {
		return fmt.Errorf("parameter set %s (LogN=%d) is not the plan's %s", p.Name, p.LogN(), pl.Params)
	}
	return nil
}

// checkRows refuses rows outside the declared ranges; errors name the row
// and column, never the value.
func (pl *Plan) checkRows(features [][]float64, labels []float64) error {
	if len(features) != pl.Spec.Features {
		return fmt.Errorf("%d feature columns, the plan has %d features", len(features), pl.Spec.Features)
	}
	rows := len(labels)
	if rows == 0 || rows > pl.Spec.Rows {
		return fmt.Errorf("%d rows outside [1, %d] (the plan's total)", rows, pl.Spec.Rows)
	}
	for c, col := range features {
		if len(col) != rows {
			return fmt.Errorf("feature %d has %d rows, the labels %d", c+1, len(col), rows)
		}
		for j, v := range col {
			if !(math.Abs(v) <= 1+featureTolerance) { // NaN fails too
				return fmt.Errorf("row %d: scaled feature %d is outside [-1, 1] (features must be scaled by their declared ranges)", j, c+1)
			}
		}
	}
	for j, y := range labels {
		switch pl.Spec.Model {
		case Logistic:
			if y != 0 && y != 1 {
				return fmt.Errorf("row %d: the label is not 0 or 1", j)
			}
		case Linear:
			if !(math.Abs(y) <= 1+featureTolerance) {
				return fmt.Errorf("row %d: the scaled label is outside [-1, 1]", j)
			}
		}
	}
	return nil
}

// checkCiphertexts checks n degree-1 ciphertexts of p at a level in
// [minLevel, maxLevel] and the default scale.
func checkCiphertexts(p engine.Parameters, cts []*rlwe.Ciphertext, n, minLevel, maxLevel int) error {
	if len(cts) != n {
		return fmt.Errorf("%d ciphertexts, expected %d", len(cts), n)
	}
	for i, ct := range cts {
		if err := checkCiphertext(p, ct, minLevel, maxLevel); err != nil {
			return fmt.Errorf("ciphertext %d: %w", i, err)
		}
	}
	return nil
}

func checkCiphertext(p engine.Parameters, ct *rlwe.Ciphertext, minLevel, maxLevel int) error {
	if err := checkShape(p, ct, minLevel, maxLevel); err != nil {
		return err
	}
	return settleScale(ct, p.DefaultScale())
}

// checkShape checks a degree-1 batched NTT ciphertext of p at a level in
// [minLevel, maxLevel].
func checkShape(p engine.Parameters, ct *rlwe.Ciphertext, minLevel, maxLevel int) error {
	switch {
	case ct == nil || ct.MetaData == nil || len(ct.Value) != 2:
		return errors.New("nil or not of degree 1")
	case ct.Value[0].N() != p.N() || ct.Value[1].N() != p.N() || ct.Value[0].Level() != ct.Value[1].Level():
		return fmt.Errorf("not of the ring degree %d of %s", p.N(), p.Name)
	case ct.Level() < minLevel || ct.Level() > maxLevel:
		return fmt.Errorf("at level %d, expected [%d, %d]", ct.Level(), minLevel, maxLevel)
	case !ct.IsNTT || !ct.IsBatched || ct.LogDimensions != p.LogMaxDimensions():
		return fmt.Errorf("not a batched NTT ciphertext of %s", p.Name)
	}
	return nil
}

// settleScale accepts a scale equal to want up to the float rounding of
// rescales (q*Delta/q), and sets it to want exactly, so that additions
// never see two scales.
func settleScale(ct *rlwe.Ciphertext, want rlwe.Scale) error {
	if r := ct.Scale.Float64() / want.Float64(); math.Abs(r-1) > 1e-9 {
		return fmt.Errorf("scale 2^%.4f, expected 2^%.4f", math.Log2(ct.Scale.Float64()), math.Log2(want.Float64()))
	}
	ct.Scale = want
	return nil
}

// gradientCircuit holds one Gradient call's buffers.
type gradientCircuit struct {
	p       engine.Parameters
	pl      *Plan
	lz, ls  int // gradient level, level of the sigmoid's output
	scaleZ  rlwe.Scale
	a       float64 // factor of the encoded features
	poly    bignum.Polynomial
	c0      float64 // constant added after the odd polynomial
	w       []*rlwe.Ciphertext
	low     []*rlwe.Plaintext  // P_c truncated to level ls, per feature
	acc     []*rlwe.Ciphertext // A_c, lazily reduced, at level ls
	labels  [][]float64        // sum_b y * x'_c per slot, in the clear
	batches int
	base    *hefloat.Evaluator // pooled, without keys
	ev      *hefloat.Evaluator // base with the caller's keys
	workers []*gradientWorker
}

// gradientWorker is one goroutine's encoder and buffers.
type gradientWorker struct {
	ecd     *model.ColumnEncoder
	scratch *rlwe.Plaintext // P_c at level lz
	z       *rlwe.Ciphertext
	values  []float64
}

func newGradientCircuit(p engine.Parameters, pl *Plan, evk rlwe.EvaluationKeySet, point []*rlwe.Ciphertext) *gradientCircuit {
	lz := pl.GradientLevel
	ls := lz - 1 - pl.Depth
	qz, qs := float64(p.Q()[lz]), float64(p.Q()[ls])
	absK := math.Abs(pl.GradientFactor)
	g := &gradientCircuit{p: p, pl: pl, lz: lz, ls: ls, scaleZ: rlwe.NewScale(p.Q()[lz])}
	if pl.Sigmoid != nil {
		g.a = 1 / pl.Bound
		g.poly, g.c0 = pl.Sigmoid.Scaled(absK * pl.Bound * qs / qz)
	} else {
		g.a = math.Sqrt(absK * qs / qz)
	}
	g.base = getEvaluator(p)
	if evk == nil {
		evk = rlwe.NewMemEvaluationKeySet(nil)
	}
	g.ev = g.base.WithKey(evk)
	g.w = make([]*rlwe.Ciphertext, pl.Coefficients)
	for c, ct := range point {
		g.w[c] = copyAtLevel(p, ct, lz)
	}
	g.low = make([]*rlwe.Plaintext, pl.Coefficients)
	g.acc = make([]*rlwe.Ciphertext, pl.Coefficients)
	g.labels = make([][]float64, pl.Coefficients)
	for c := range g.low {
		g.low[c] = hefloat.NewPlaintext(p.Parameters, ls)
		g.acc[c] = hefloat.NewCiphertext(p.Parameters, 1, ls)
		g.labels[c] = make([]float64, pl.Slots)
	}
	for range min(runtime.GOMAXPROCS(0), pl.Coefficients) {
		g.workers = append(g.workers, &gradientWorker{
			ecd:     model.GetColumnEncoder(p),
			scratch: hefloat.NewPlaintext(p.Parameters, lz),
			z:       hefloat.NewCiphertext(p.Parameters, 1, lz),
			values:  make([]float64, pl.Slots),
		})
	}
	return g
}

// copyAtLevel copies ct dropped to level (only the residues it keeps).
func copyAtLevel(p engine.Parameters, ct *rlwe.Ciphertext, level int) *rlwe.Ciphertext {
	out := hefloat.NewCiphertext(p.Parameters, ct.Degree(), level)
	*out.MetaData = *ct.MetaData
	for j := range out.Value {
		for i := 0; i <= level; i++ {
			copy(out.Value[j].Coeffs[i], ct.Value[j].Coeffs[i])
		}
	}
	return out
}

// release returns the pooled evaluator and encoders.
func (g *gradientCircuit) release() {
	putEvaluator(g.p, g.base)
	for _, wk := range g.workers {
		wk.ecd.Release()
	}
}

// Evaluators hold tens of buffers of the ring degree (about a hundred
// megabytes at ckks-n15) and are not safe for concurrent use: they are
// pooled per parameter set, as engine/model does (and as its column
// encoders are).
var evaluatorPools sync.Map // parameter set name -> *sync.Pool

func pool(pools *sync.Map, p engine.Parameters) *sync.Pool {
	v, _ := pools.LoadOrStore(p.Name, &sync.Pool{})
	return v.(*sync.Pool)
}

func getEvaluator(p engine.Parameters) *hefloat.Evaluator {
	if ev, ok := pool(&evaluatorPools, p).Get().(*hefloat.Evaluator); ok && ev.GetParameters().Equal(&p.Parameters) {
		return ev
	}
	return hefloat.NewEvaluator(p.Parameters, nil)
}

func putEvaluator(p engine.Parameters, ev *hefloat.Evaluator) { pool(&evaluatorPools, p).Put(ev) }

// reduceEvery bounds the lazy Montgomery accumulations between reductions:
// each adds less than 2q, and with q < 2^56 (every prime of Synod's sets),
// q + 2^6 * 2q < 2^64.
const reduceEvery = 1 << 6

// batch adds the rows [start, end) to the accumulators.
func (g *gradientCircuit) batch(features [][]float64, labels []float64, start, end int) error {
	p := g.p
	ringZ := p.RingQ().AtLevel(g.lz)
	ringS := p.RingQ().AtLevel(g.ls)
	n := end - start
	column := func(c int, out []float64) {
		clear(out)
		if c == 0 {
			for j := range n {
				out[j] = 1
			}
			return
		}
		copy(out, features[c-1][start:end])
	}

	// u = a*z: each worker accumulates the products of its features.
	err := g.parallel(func(wk *gradientWorker, first bool) func(c int) error {
		wk.z.Value[0].Zero()
		wk.z.Value[1].Zero()
		done := 0
		return func(c int) error {
			column(c, wk.values)
			// The label term, in the clear.
			for j := range n {
				g.labels[c][j] += labels[start+j] * wk.values[j]
				wk.values[j] *= g.a
			}
			wk.scratch.Scale = g.scaleZ
			if err := wk.ecd.Encode(wk.values, wk.scratch); err != nil {
				return fmt.Errorf("encode feature %d: %w", c, err)
			}
			ringZ.MulCoeffsMontgomeryLazyThenAddLazy(g.w[c].Value[0], wk.scratch.Value, wk.z.Value[0])
			ringZ.MulCoeffsMontgomeryLazyThenAddLazy(g.w[c].Value[1], wk.scratch.Value, wk.z.Value[1])
			if done++; done%reduceEvery == 0 {
				ringZ.Reduce(wk.z.Value[0], wk.z.Value[0])
				ringZ.Reduce(wk.z.Value[1], wk.z.Value[1])
			}
			// The residues of P_c modulo the primes up to ls are P_c at
			// level ls.
			for i := 0; i <= g.ls; i++ {
				copy(g.low[c].Value.Coeffs[i], wk.scratch.Value.Coeffs[i])
			}
			return nil
		}
	})
	if err != nil {
		return err
	}
	u := g.workers[0].z
	for j := range u.Value {
		ringZ.Reduce(u.Value[j], u.Value[j])
		for _, wk := range g.workers[1:] {
			ringZ.Reduce(wk.z.Value[j], wk.z.Value[j])
			ringZ.Add(u.Value[j], wk.z.Value[j], u.Value[j])
		}
		// The lazy products carry a factor R^-1 (Montgomery): MForm
		// multiplies it back.
		ringZ.MForm(u.Value[j], u.Value[j])
	}
	u.Scale = p.DefaultScale().Mul(g.scaleZ)
	z := hefloat.NewCiphertext(p.Parameters, 1, g.lz-1)
	if err := g.ev.Rescale(u, z); err != nil {
		return fmt.Errorf("logits: %w", err)
	}

	s := z
	if g.pl.Sigmoid != nil {
		s, err = hefloat.NewPolynomialEvaluator(p.Parameters, g.ev).Evaluate(z, hefloat.NewPolynomial(g.poly), p.DefaultScale())
		if err != nil {
			return fmt.Errorf("sigmoid: %w", err)
		}
		if g.c0 != 0 {
			if err := g.ev.Add(s, g.c0, s); err != nil {
				return fmt.Errorf("sigmoid: %w", err)
			}
		}
	}
	if s.Level() < g.ls {
		return fmt.Errorf("sigmoid output at level %d, planned %d", s.Level(), g.ls)
	}
	g.ev.DropLevel(s, s.Level()-g.ls)
	if err := settleScale(s, p.DefaultScale()); err != nil {
		return fmt.Errorf("sigmoid output: %w", err)
	}

	// A_c += s' * P_c, features spread over the workers.
	err = g.parallel(func(*gradientWorker, bool) func(c int) error {
		return func(c int) error {
			ringS.MulCoeffsMontgomeryLazyThenAddLazy(s.Value[0], g.low[c].Value, g.acc[c].Value[0])
			ringS.MulCoeffsMontgomeryLazyThenAddLazy(s.Value[1], g.low[c].Value, g.acc[c].Value[1])
			if (g.batches+1)%reduceEvery == 0 {
				ringS.Reduce(g.acc[c].Value[0], g.acc[c].Value[0])
				ringS.Reduce(g.acc[c].Value[1], g.acc[c].Value[1])
			}
			return nil
		}
	})
	g.batches++
	return err
}

// finish turns the accumulators into the G_c.
func (g *gradientCircuit) finish() ([]*rlwe.Ciphertext, error) {
	p := g.p
	ringS := p.RingQ().AtLevel(g.ls)
	k := g.pl.GradientFactor
	ecd := g.workers[0].ecd
	out := make([]*rlwe.Ciphertext, len(g.acc))
	for c, acc := range g.acc {
		for j := range acc.Value {
			ringS.Reduce(acc.Value[j], acc.Value[j])
			ringS.MForm(acc.Value[j], acc.Value[j])
		}
		acc.Scale = p.DefaultScale().Mul(rlwe.NewScale(p.Q()[g.ls]))
		ct := hefloat.NewCiphertext(p.Parameters, 1, g.ls-1)
		if err := g.ev.Rescale(acc, ct); err != nil {
			return nil, fmt.Errorf("gradient: coefficient %d: %w", c, err)
		}
		if err := settleScale(ct, p.DefaultScale()); err != nil {
			return nil, fmt.Errorf("gradient: coefficient %d: %w", c, err)
		}
		g.ev.DropLevel(ct, ct.Level()-g.pl.RefreshLevel)
		ringR := p.RingQ().AtLevel(ct.Level())
		if k < 0 {
			ringR.Neg(ct.Value[0], ct.Value[0])
			ringR.Neg(ct.Value[1], ct.Value[1])
		}
		for j := range g.labels[c] {
			g.labels[c][j] *= k
		}
		pt := hefloat.NewPlaintext(p.Parameters, ct.Level())
		if err := ecd.Encode(g.labels[c], pt); err != nil {
			return nil, fmt.Errorf("gradient: coefficient %d: encode the label term: %w", c, err)
		}
		if err := g.ev.Sub(ct, pt, ct); err != nil {
			return nil, fmt.Errorf("gradient: coefficient %d: %w", c, err)
		}
		out[c] = ct
	}
	return out, nil
}

// parallel runs task(c) for every coefficient c on the workers; newTask
// builds a worker's task (first is true for worker 0).
func (g *gradientCircuit) parallel(newTask func(wk *gradientWorker, first bool) func(c int) error) error {
	n := g.pl.Coefficients
	if len(g.workers) == 1 {
		task := newTask(g.workers[0], true)
		for c := range n {
			if err := task(c); err != nil {
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
	for i, wk := range g.workers {
		task := newTask(wk, i == 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range next {
				if err := task(c); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for c := range n {
		next <- c
	}
	close(next)
	wg.Wait()
	return first
}
