package train

import (
	"errors"
	"fmt"
	"math"
	"math/big"

	"github.com/synod-mpc/synod/engine"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// The coordinator's side. Each coefficient's ciphertext holds its value in
// every slot, so a refreshed slot mean of a constant ciphertext is that
// constant: whatever must be multiplied by a non-integer constant (the
// penalty's -eta*lambda*w, the momentum's beta*v) is multiplied before the
// refresh (Combine), where the product's level is free, and added to the
// parties' gradients; the refresh returns the sum at the top level and the
// update is additions only (Update). Gradient descent:
//
//	X_c     = sum_parties G_c - eta*lambda*w_c     (Combine, refresh level)
//	step_c  = slotmean(X_c) = -eta*(grad_c + lambda*w_c)   (refresh, top level)
//	w_c    += step_c                                (Update, top level)
//
// Nesterov's accelerated gradient, with v = w_k - w_{k-1} and the point
// y = w + beta*v where the parties evaluate the gradient:
//
//	X_c     = sum_parties G_c - eta*lambda*y_c + beta*v_c
//	v_c     = slotmean(X_c)          (= y - eta*gradJ(y) - w)
//	w_c    += v_c;  y_c = w_c + beta*v_c   (one level below the top)

// State is the coordinator's encrypted training state.
type State struct {
	// Iteration counts the updates applied.
	Iteration int
	// W is the model, one ciphertext per coefficient at the top level.
	W []*rlwe.Ciphertext
	// V (the last step) and Y (the extrapolated point, one level below the
	// top) exist with momentum only.
	V, Y []*rlwe.Ciphertext
}

// Point is what the parties evaluate the gradient at: Y with momentum, W
// otherwise.
func (s *State) Point() []*rlwe.Ciphertext {
	if s.Y != nil {
		return s.Y
	}
	return s.W
}

// InitialModel encrypts w = 0 under pk (the collective public key): fresh
// public-key encryptions of zero, indistinguishable from any other model.
func (pl *Plan) InitialModel(p engine.Parameters, pk *rlwe.PublicKey) (*State, error) {
	if err := pl.checkParameters(p); err != nil {
		return nil, fmt.Errorf("initial model: %w", err)
	}
	if pk == nil || len(pk.Value) != 2 || pk.Value[0].Q.N() != p.N() || pk.Value[0].Q.Level() < pl.TopLevel {
		return nil, fmt.Errorf("initial model: the public key does not fit parameter set %s at level %d", p.Name, pl.TopLevel)
	}
	enc := hefloat.NewEncryptor(p.Parameters, pk)
	zeros := func() ([]*rlwe.Ciphertext, error) {
		pt := hefloat.NewPlaintext(p.Parameters, pl.TopLevel)
		cts := make([]*rlwe.Ciphertext, pl.Coefficients)
		for c := range cts {
			cts[c] = hefloat.NewCiphertext(p.Parameters, 1, pl.TopLevel)
			if err := enc.Encrypt(pt, cts[c]); err != nil {
				return nil, fmt.Errorf("initial model: %w", err)
			}
		}
		return cts, nil
	}
	st := &State{}
	var err error
	if st.W, err = zeros(); err != nil {
		return nil, err
	}
	if pl.Spec.Momentum {
		if st.V, err = zeros(); err != nil {
			return nil, err
		}
		st.Y = make([]*rlwe.Ciphertext, pl.Coefficients)
		for c, w := range st.W {
			st.Y[c] = copyAtLevel(p, w, pl.PointLevel)
		}
	}
	return st, nil
}

// checkState checks the state's shape against the plan.
func (pl *Plan) checkState(p engine.Parameters, st *State) error {
	if st == nil {
		return errors.New("nil state")
	}
	if err := checkCiphertexts(p, st.W, pl.Coefficients, pl.TopLevel, pl.TopLevel); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	if !pl.Spec.Momentum {
		if st.V != nil || st.Y != nil {
			return errors.New("state has momentum terms, the plan has no momentum")
		}
		return nil
	}
	if err := checkCiphertexts(p, st.V, pl.Coefficients, pl.TopLevel, pl.TopLevel); err != nil {
		return fmt.Errorf("momentum: %w", err)
	}
	if err := checkCiphertexts(p, st.Y, pl.Coefficients, pl.PointLevel, pl.PointLevel); err != nil {
		return fmt.Errorf("point: %w", err)
	}
	return nil
}

// Combine adds the parties' gradients (grads[i] is party i's Gradient
// output) and the penalty and momentum terms: the p ciphertexts to refresh
// with the slot-mean transform, at the refresh level and the default scale.
// It needs no key.
func (pl *Plan) Combine(p engine.Parameters, st *State, grads [][]*rlwe.Ciphertext) ([]*rlwe.Ciphertext, error) {
	if err := pl.checkParameters(p); err != nil {
		return nil, fmt.Errorf("combine: %w", err)
	}
	if err := pl.checkState(p, st); err != nil {
		return nil, fmt.Errorf("combine: %w", err)
	}
	if st.Iteration >= pl.Spec.Iterations {
		return nil, fmt.Errorf("combine: the plan's %d iterations are done (its interval holds for no more)", pl.Spec.Iterations)
	}
	if len(grads) != pl.Spec.Parties {
		// The factor k assumes every row: a missing party would bias the
		// gradient, not just slow it.
		return nil, fmt.Errorf("combine: %d gradients, the plan has %d parties", len(grads), pl.Spec.Parties)
	}
	for i, g := range grads {
		if err := checkCiphertexts(p, g, pl.Coefficients, pl.RefreshLevel, pl.RefreshLevel); err != nil {
			return nil, fmt.Errorf("combine: party %d: %w", i, err)
		}
	}
	ev := getEvaluator(p)
	defer putEvaluator(p, ev)
	ringR := p.RingQ().AtLevel(pl.RefreshLevel)
	point := st.Point()
	out := make([]*rlwe.Ciphertext, pl.Coefficients)
	for c := range out {
		sum := grads[0][c].CopyNew()
		for _, g := range grads[1:] {
			ringR.Add(sum.Value[0], g[c].Value[0], sum.Value[0])
			ringR.Add(sum.Value[1], g[c].Value[1], sum.Value[1])
		}
		// -eta*lambda*point (+ beta*v), one level above the refresh
		// level, rescaled onto it.
		var terms []*rlwe.Ciphertext
		if pl.Spec.Lambda != 0 {
			t, err := scaledDown(p, ev, point[c], -pl.StepSize*pl.Spec.Lambda, pl.RefreshLevel)
			if err != nil {
				return nil, fmt.Errorf("combine: coefficient %d: penalty: %w", c, err)
			}
			terms = append(terms, t)
		}
		if pl.Spec.Momentum {
			t, err := scaledDown(p, ev, st.V[c], pl.Beta, pl.RefreshLevel)
			if err != nil {
				return nil, fmt.Errorf("combine: coefficient %d: momentum: %w", c, err)
			}
			terms = append(terms, t)
		}
		for _, t := range terms {
			ringR.Add(sum.Value[0], t.Value[0], sum.Value[0])
			ringR.Add(sum.Value[1], t.Value[1], sum.Value[1])
		}
		out[c] = sum
	}
	return out, nil
}

// scaledDown returns factor*ct at level (below ct's level) and the default
// scale: ct is dropped to level+1, multiplied by the integer
// round(factor*q_{level+1}) and rescaled, which divides by q_{level+1}. The
// rounding costs a relative error of 2^-40 or less on factor; lattigo's Mul
// by a constant does the same except for integer factors, which it does
// not scale.
func scaledDown(p engine.Parameters, ev *hefloat.Evaluator, ct *rlwe.Ciphertext, factor float64, level int) (*rlwe.Ciphertext, error) {
	if ct.Level() <= level {
		return nil, fmt.Errorf("ciphertext at level %d, needs %d", ct.Level(), level+1)
	}
	if math.IsNaN(factor) || math.Abs(factor) > 1<<20 {
		return nil, fmt.Errorf("factor %g out of range", factor)
	}
	q := p.Q()[level+1]
	f := new(big.Float).SetPrec(256).SetFloat64(factor)
	f.Mul(f, new(big.Float).SetUint64(q))
	// Int truncates: round half away from zero.
	f.Add(f, big.NewFloat(math.Copysign(0.5, factor)))
	m, _ := f.Int(nil)
	t := copyAtLevel(p, ct, level+1)
	ringQ := p.RingQ().AtLevel(level + 1)
	ringQ.MulScalarBigint(t.Value[0], m, t.Value[0])
	ringQ.MulScalarBigint(t.Value[1], m, t.Value[1])
	t.Scale = p.DefaultScale().Mul(rlwe.NewScale(q))
	out := hefloat.NewCiphertext(p.Parameters, 1, level)
	if err := ev.Rescale(t, out); err != nil {
		return nil, err
	}
	if err := settleScale(out, p.DefaultScale()); err != nil {
		return nil, err
	}
	return out, nil
}

// Update applies the refreshed steps (the collective refresh of Combine's
// output: p ciphertexts at the top level, default scale) to the state.
func (pl *Plan) Update(p engine.Parameters, st *State, refreshed []*rlwe.Ciphertext) error {
	if err := pl.checkParameters(p); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	if err := pl.checkState(p, st); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	if st.Iteration >= pl.Spec.Iterations {
		return fmt.Errorf("update: the plan's %d iterations are done", pl.Spec.Iterations)
	}
	if err := checkCiphertexts(p, refreshed, pl.Coefficients, pl.TopLevel, pl.TopLevel); err != nil {
		return fmt.Errorf("update: refreshed step: %w", err)
	}
	ev := getEvaluator(p)
	defer putEvaluator(p, ev)
	ringTop := p.RingQ().AtLevel(pl.TopLevel)
	for c, step := range refreshed {
		w := st.W[c]
		ringTop.Add(w.Value[0], step.Value[0], w.Value[0])
		ringTop.Add(w.Value[1], step.Value[1], w.Value[1])
		if !pl.Spec.Momentum {
			continue
		}
		st.V[c] = step.CopyNew() // the caller keeps its refreshed ciphertexts
		y, err := scaledDown(p, ev, st.V[c], pl.Beta, pl.PointLevel)
		if err != nil {
			return fmt.Errorf("update: coefficient %d: extrapolation: %w", c, err)
		}
		ringP := p.RingQ().AtLevel(pl.PointLevel)
		ringP.Add(y.Value[0], w.Value[0], y.Value[0])
		ringP.Add(y.Value[1], w.Value[1], y.Value[1])
		st.Y[c] = y
	}
	st.Iteration++
	return nil
}
