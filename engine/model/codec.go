package model

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/synod-mpc/synod/engine"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
)

// Encoding of an encrypted model (what a model owner uploads and the
// parties store):
//
//	"synod/encrypted-model/v1"  format tag (24 bytes)
//	uint32 length, architecture  the model in the JSON format, every weight
//	                             and bias zero, no standardization
//	uint8                        1 for a prediction plan, 0 otherwise
//	then, layer by layer and output by output, the weight ciphertexts of
//	the inputs in order and the bias ciphertext, each engine's encoding of
//	a degree-1 ciphertext (engine.MarshalCiphertext), of exactly the size
//	its level in the plan gives.
//
// UnmarshalEncryptedModel checks the total size against the architecture
// before decoding any ciphertext and decodes each with
// engine.DecodeCiphertext, so hostile bytes are refused with an error
// naming the part (never a panic, never an allocation beyond the input).

const encryptedModelTag = "synod/encrypted-model/v1"

// MaxArchitectureSize bounds the architecture JSON of an encrypted model.
const MaxArchitectureSize = 1 << 20

// MarshalBinary encodes em.
func (em *EncryptedModel) MarshalBinary() ([]byte, error) {
	if em == nil || em.Arch == nil {
		return nil, errors.New("encode encrypted model: nil model")
	}
	arch, err := em.Arch.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encode encrypted model: architecture: %w", err)
	}
	var b bytes.Buffer
	b.WriteString(encryptedModelTag)
	b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(arch))))
	b.Write(arch)
	if em.Prediction {
		b.WriteByte(1)
	} else {
		b.WriteByte(0)
	}
	for l := range em.W {
		for k := range em.W[l] {
			for _, ct := range append(append([]*rlwe.Ciphertext(nil), em.W[l][k]...), em.B[l][k]) {
				cb, err := engine.MarshalCiphertext(ct)
				if err != nil {
					return nil, fmt.Errorf("encode encrypted model: layer %d row %d: %w", l, k, err)
				}
				b.Write(cb)
			}
		}
	}
	return b.Bytes(), nil
}

// ArchitectureOf returns the public architecture of m: zero weights, no
// standardization (it is folded into the encrypted weights).
func ArchitectureOf(m *Model) *Model { return architecture(m) }

// CheckArchitecture checks that arch is a public architecture (every weight
// and bias zero, no standardization) that fits p for prediction.
func CheckArchitecture(p engine.Parameters, arch *Model) (*Plan, error) {
	if err := arch.Validate(); err != nil {
		return nil, err
	}
	if arch.Mean != nil || arch.Std != nil {
		return nil, errors.New("model architecture: carries a standardization; it belongs folded into the encrypted weights")
	}
	for l, layer := range arch.Layers {
		for k, row := range layer.Weights {
			for i, w := range row {
				if w != 0 {
					return nil, fmt.Errorf("model architecture: layer %d weight [%d][%d] is %g; the architecture must carry zero weights (weights travel encrypted)", l, k, i, w)
				}
			}
			if layer.Bias[k] != 0 {
				return nil, fmt.Errorf("model architecture: layer %d bias %d is %g; the architecture must carry zero biases", l, k, layer.Bias[k])
			}
		}
	}
	return NewPredictionPlan(p, arch)
}

// EncryptedModelSize is the exact encoded size of an encrypted model of
// architecture arch (JSON encoding archJSON) under plan pl.
func encryptedModelSize(p engine.Parameters, pl *Plan, archLen int) int {
	n := len(encryptedModelTag) + 4 + archLen + 1
	for _, lp := range pl.Layers {
		n += lp.Out * (lp.In*engine.CiphertextBinarySize(p, lp.InputLevel) + engine.CiphertextBinarySize(p, lp.InputLevel-1))
	}
	return n
}

// UnmarshalEncryptedModel decodes an encrypted model for parameter set p.
// Only prediction-plan models are accepted when prediction is true.
func UnmarshalEncryptedModel(p engine.Parameters, b []byte) (*EncryptedModel, error) {
	if p.N() == 0 {
		return nil, errors.New("decode encrypted model: parameters are not initialised")
	}
	if len(b) < len(encryptedModelTag)+4 || string(b[:len(encryptedModelTag)]) != encryptedModelTag {
		return nil, fmt.Errorf("decode encrypted model: not an encrypted model (missing the %q tag)", encryptedModelTag)
	}
	off := len(encryptedModelTag)
	archLen := int(binary.BigEndian.Uint32(b[off:]))
	off += 4
	if archLen > MaxArchitectureSize || archLen > len(b)-off-1 {
		return nil, fmt.Errorf("decode encrypted model: architecture of %d bytes does not fit the %d bytes left (limit %d)", archLen, len(b)-off-1, MaxArchitectureSize)
	}
	arch, err := ParseJSON(b[off : off+archLen])
	if err != nil {
		return nil, fmt.Errorf("decode encrypted model: architecture: %w", err)
	}
	off += archLen
	mode := b[off]
	off++
	if mode != 1 {
		return nil, fmt.Errorf("decode encrypted model: plan flag %d: only models encrypted for prediction (flag 1) are accepted", mode)
	}
	pl, err := CheckArchitecture(p, arch)
	if err != nil {
		return nil, fmt.Errorf("decode encrypted model: %w", err)
	}
	if want := encryptedModelSize(p, pl, archLen); len(b) != want {
		return nil, fmt.Errorf("decode encrypted model: %d bytes, the architecture %s on %s needs exactly %d", len(b), arch, p.Name, want)
	}
	em := &EncryptedModel{Arch: arch, Prediction: true, W: make([][][]*rlwe.Ciphertext, len(pl.Layers)), B: make([][]*rlwe.Ciphertext, len(pl.Layers))}
	next := func(what string, level int) (*rlwe.Ciphertext, error) {
		size := engine.CiphertextBinarySize(p, level)
		ct, err := engine.DecodeCiphertext(p, b[off:off+size])
		if err != nil {
			return nil, fmt.Errorf("decode encrypted model: %s (bytes %d to %d): %w", what, off, off+size, err)
		}
		if ct.Level() != level {
			return nil, fmt.Errorf("decode encrypted model: %s is at level %d, the plan puts it at %d", what, ct.Level(), level)
		}
		off += size
		return ct, nil
	}
	for l, lp := range pl.Layers {
		em.W[l] = make([][]*rlwe.Ciphertext, lp.Out)
		em.B[l] = make([]*rlwe.Ciphertext, lp.Out)
		for k := range lp.Out {
			em.W[l][k] = make([]*rlwe.Ciphertext, lp.In)
			for i := range lp.In {
				if em.W[l][k][i], err = next(fmt.Sprintf("layer %d weight [%d][%d]", l, k, i), lp.InputLevel); err != nil {
					return nil, err
				}
			}
			if em.B[l][k], err = next(fmt.Sprintf("layer %d bias %d", l, k), lp.InputLevel-1); err != nil {
				return nil, err
			}
		}
	}
	if _, _, err := em.check(p); err != nil {
		return nil, fmt.Errorf("decode encrypted model: %w", err)
	}
	return em, nil
}
