package model

import (
	"errors"
	"fmt"
	"math"

	"github.com/synod-mpc/synod/engine"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// Encrypted-weight mode: the model owner's weights are secret too. Only the
// architecture (shapes, activations, intervals, degrees, standardization
// folded away) is public. Each weight and bias is encrypted as a ciphertext
// holding its value in every slot, so with column-packed records a dense
// layer is sum_i ct(w_i)*ct_i + ct(b): ciphertext products accumulated
// without relinearization, then one relinearization and one rescale per
// output. It costs the same level as the plaintext mode, needs the
// relinearization key even for linear models, and still no Galois key (no
// rotation: the weight is already in every slot). Weights of layer l are
// encrypted at that layer's input level with scale q_level, so that the
// rescale returns the product exactly to the default scale; biases one level
// lower at the default scale.

// EncryptedModel is a model whose weights and biases are encrypted.
type EncryptedModel struct {
	// Arch is the public architecture: the model with zero weights and
	// biases (and no standardization, already folded into the weights).
	Arch *Model
	// W[l][k][i] encrypts the (folded) weight of input i into output k of
	// layer l; B[l][k] the bias.
	W [][][]*rlwe.Ciphertext
	B [][]*rlwe.Ciphertext
	// Prediction is true when the weights were encrypted for the
	// prediction plan (NewPredictionPlan: outputs at level 1, for release
	// by key switch), false for NewEncryptedPlan.
	Prediction bool
}

// Ciphertexts is the number of weight and bias ciphertexts.
func (em *EncryptedModel) Ciphertexts() int {
	n := 0
	for l := range em.W {
		for k := range em.W[l] {
			n += len(em.W[l][k]) + 1
		}
	}
	return n
}

// architecture is m with zero weights and biases and no standardization.
func architecture(m *Model) *Model {
	a := &Model{Name: m.Name, Inputs: m.Inputs, Layers: make([]Layer, len(m.Layers))}
	for l, layer := range m.Layers {
		a.Layers[l] = Layer{Weights: make([][]float64, len(layer.Weights)), Bias: make([]float64, len(layer.Bias)),
			Activation: layer.Activation, Interval: layer.Interval, Degree: layer.Degree}
		for k, row := range layer.Weights {
			a.Layers[l].Weights[k] = make([]float64, len(row))
		}
	}
	return a
}

// NewEncryptedPlan is NewPlan for the encrypted-weight mode: same depth, the
// relinearization key always, and the count of weight ciphertexts.
func NewEncryptedPlan(p engine.Parameters, arch *Model) (*Plan, error) {
	pl, err := NewPlan(p, arch)
	if err != nil {
		return nil, err
	}
	pl.NeedsRelinearizationKey = true
	for _, l := range pl.Layers {
		pl.WeightCiphertexts += l.Out * (l.In + 1)
	}
	return pl, nil
}

// EncryptModel encrypts m's weights under pk (run by the model owner).
func EncryptModel(p engine.Parameters, pk *rlwe.PublicKey, m *Model) (*EncryptedModel, error) {
	pl, err := NewEncryptedPlan(p, m)
	if err != nil {
		return nil, err
	}
	return encryptModel(p, pk, m, pl)
}

// encryptModel encrypts m's weights at the levels of plan pl, with the
// Q-only public-key encryption of EncryptFeatures.
func encryptModel(p engine.Parameters, pk *rlwe.PublicKey, m *Model, pl *Plan) (*EncryptedModel, error) {
	if pk == nil {
		return nil, errors.New("encrypt model: nil public key")
	}
	if len(pk.Value) != 2 || pk.Value[0].Q.N() != p.N() || pk.Value[0].Q.Level() < pl.InputLevel {
		return nil, fmt.Errorf("encrypt model: public key does not fit parameter set %s at level %d", p.Name, pl.InputLevel)
	}
	circuit, err := compile(m)
	if err != nil {
		return nil, err
	}
	encParams, err := encryptionParameters(p)
	if err != nil {
		return nil, fmt.Errorf("encrypt model: %w", err)
	}
	ecd := hefloat.NewEncoder(p.Parameters)
	enc := rlwe.NewEncryptor(encParams, pk)
	slots := make([]float64, p.MaxSlots())
	encrypt := func(v float64, level int, scale rlwe.Scale) (*rlwe.Ciphertext, error) {
		pt := hefloat.NewPlaintext(p.Parameters, level)
		pt.Scale = scale
		for j := range slots {
			slots[j] = v
		}
		if err := ecd.Encode(slots, pt); err != nil {
			return nil, err
		}
		ct := hefloat.NewCiphertext(p.Parameters, 1, level)
		return ct, enc.Encrypt(pt, ct)
	}
	em := &EncryptedModel{Arch: architecture(m), W: make([][][]*rlwe.Ciphertext, len(circuit)), B: make([][]*rlwe.Ciphertext, len(circuit))}
	for l, c := range circuit {
		level := pl.Layers[l].InputLevel
		em.W[l] = make([][]*rlwe.Ciphertext, len(c.w))
		em.B[l] = make([]*rlwe.Ciphertext, len(c.b))
		for k := range c.w {
			em.W[l][k] = make([]*rlwe.Ciphertext, len(c.w[k]))
			for i, w := range c.w[k] {
				if em.W[l][k][i], err = encrypt(w, level, rlwe.NewScale(p.Q()[level])); err != nil {
					return nil, fmt.Errorf("encrypt model: layer %d weight [%d][%d]: %w", l, k, i, err)
				}
			}
			if em.B[l][k], err = encrypt(c.b[k], level-1, p.DefaultScale()); err != nil {
				return nil, fmt.Errorf("encrypt model: layer %d bias %d: %w", l, k, err)
			}
		}
	}
	return em, nil
}

// EvaluateEncrypted runs an encrypted-weight model on column-packed records
// (as Evaluate does for plaintext weights).
func EvaluateEncrypted(p engine.Parameters, evk rlwe.EvaluationKeySet, em *EncryptedModel, in []*rlwe.Ciphertext) ([]*rlwe.Ciphertext, error) {
	pl, circuit, err := em.check(p)
	if err != nil {
		return nil, err
	}
	return run(p, evk, pl, circuit, in, em.denseFunc(p))
}

// check validates the shapes and levels of em's ciphertexts against its plan.
func (em *EncryptedModel) check(p engine.Parameters) (*Plan, []layerCircuit, error) {
	if em == nil || em.Arch == nil {
		return nil, nil, errors.New("evaluate encrypted: nil model")
	}
	pl, err := em.plan(p)
	if err != nil {
		return nil, nil, err
	}
	circuit, err := compile(em.Arch)
	if err != nil {
		return nil, nil, err
	}
	if len(em.W) != len(pl.Layers) || len(em.B) != len(pl.Layers) {
		return nil, nil, fmt.Errorf("evaluate encrypted: %d weight layers for %d layers", len(em.W), len(pl.Layers))
	}
	for l, lp := range pl.Layers {
		if len(em.W[l]) != lp.Out || len(em.B[l]) != lp.Out {
			return nil, nil, fmt.Errorf("evaluate encrypted: layer %d: %d weight rows and %d biases for %d outputs", l, len(em.W[l]), len(em.B[l]), lp.Out)
		}
		for k := range lp.Out {
			if len(em.W[l][k]) != lp.In {
				return nil, nil, fmt.Errorf("evaluate encrypted: layer %d row %d: %d weights for %d inputs", l, k, len(em.W[l][k]), lp.In)
			}
			for i, ct := range append(append([]*rlwe.Ciphertext(nil), em.W[l][k]...), em.B[l][k]) {
				want := lp.InputLevel
				if i == lp.In {
					want--
				}
				if ct == nil || ct.MetaData == nil || len(ct.Value) != 2 || ct.Value[0].N() != p.N() || ct.Level() != want {
					return nil, nil, fmt.Errorf("evaluate encrypted: layer %d row %d: ciphertext %d is nil, not of degree 1 or not at level %d", l, k, i, want)
				}
				scale := rlwe.NewScale(p.Q()[lp.InputLevel])
				if i == lp.In {
					scale = p.DefaultScale()
				}
				if ct.Scale.Cmp(scale) != 0 {
					return nil, nil, fmt.Errorf("evaluate encrypted: layer %d row %d: ciphertext %d has scale 2^%.2f, expected 2^%.2f", l, k, i, math.Log2(ct.Scale.Float64()), math.Log2(scale.Float64()))
				}
			}
		}
	}
	return pl, circuit, nil
}

// denseFunc computes a dense layer with encrypted weights on ciphertexts.
func (em *EncryptedModel) denseFunc(p engine.Parameters) denseFunc {
	return func(ev *hefloat.Evaluator, x []*rlwe.Ciphertext, l, k, level int) (*rlwe.Ciphertext, error) {
		w := em.W[l][k]
		acc := hefloat.NewCiphertext(p.Parameters, 2, level)
		acc.Scale = x[0].Scale.Mul(w[0].Scale)
		for i := range w {
			if err := ev.MulThenAdd(x[i], w[i], acc); err != nil {
				return nil, err
			}
		}
		out := hefloat.NewCiphertext(p.Parameters, 1, level)
		if err := ev.Relinearize(acc, out); err != nil {
			return nil, err
		}
		if err := ev.Rescale(out, out); err != nil {
			return nil, err
		}
		out.Scale = em.B[l][k].Scale // equal up to the float rounding of q/q
		if err := ev.Add(out, em.B[l][k], out); err != nil {
			return nil, err
		}
		return out, nil
	}
}
