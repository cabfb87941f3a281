package model

import (
	"errors"
	"fmt"

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
	if em == nil || em.Arch == nil {
		return nil, errors.New("evaluate encrypted: nil model")
	}
	pl, err := NewEncryptedPlan(p, em.Arch)
	if err != nil {
		return nil, err
	}
	circuit, err := compile(em.Arch)
	if err != nil {
		return nil, err
	}
	if len(em.W) != len(pl.Layers) || len(em.B) != len(pl.Layers) {
		return nil, fmt.Errorf("evaluate encrypted: %d weight layers for %d layers", len(em.W), len(pl.Layers))
	}
	for l, lp := range pl.Layers {
		if len(em.W[l]) != lp.Out || len(em.B[l]) != lp.Out {
			return nil, fmt.Errorf("evaluate encrypted: layer %d: %d weight rows and %d biases for %d outputs", l, len(em.W[l]), len(em.B[l]), lp.Out)
		}
		for k := range lp.Out {
			if len(em.W[l][k]) != lp.In {
				return nil, fmt.Errorf("evaluate encrypted: layer %d row %d: %d weights for %d inputs", l, k, len(em.W[l][k]), lp.In)
			}
			for i, ct := range append(append([]*rlwe.Ciphertext(nil), em.W[l][k]...), em.B[l][k]) {
				want := lp.InputLevel
				if i == lp.In {
					want--
				}
				if ct == nil || len(ct.Value) != 2 || ct.Value[0].N() != p.N() || ct.Level() != want {
					return nil, fmt.Errorf("evaluate encrypted: layer %d row %d: ciphertext %d is nil, not of degree 1 or not at level %d", l, k, i, want)
				}
			}
		}
	}
	denseEnc := func(ev *hefloat.Evaluator, x []*rlwe.Ciphertext, l, k, level int) (*rlwe.Ciphertext, error) {
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
	return run(p, evk, pl, circuit, in, denseEnc)
}
