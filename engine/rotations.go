package engine

import (
	"errors"
	"fmt"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// MaxCells is the number of slots a released aggregate may occupy (the cells
// of a grouped count, say). The consortium generates Galois keys once, at
// setup, and each key share is megabytes, so the built-in circuits are
// restricted to the rotations needed to sum up to MaxCells slots: powers of
// two below MaxCells.
const MaxCells = 64

// GaloisElements returns the Galois elements of the rotations by
// 1, 2, 4, ..., MaxCells/2 slots: the keys the built-in circuits need, and so
// the ones the setup protocol must generate collectively.
func (p Parameters) GaloisElements() []uint64 {
	var els []uint64
	for k := 1; k < MaxCells; k <<= 1 {
		els = append(els, p.GaloisElementForRotation(k))
	}
	return els
}

// SumSlots returns a ciphertext whose slot 0 holds the sum of the first n
// slots of ct, n a power of two at most MaxCells (the totals across the cells
// of an aggregate). It takes log2(n) rotations by 1, 2, 4, ..., n/2, each
// followed by an addition; slots other than 0 hold partial sums and must be
// ignored. eval must carry the Galois keys of GaloisElements.
func SumSlots(p Parameters, eval *hefloat.Evaluator, ct *rlwe.Ciphertext, n int) (*rlwe.Ciphertext, error) {
	if eval == nil {
		return nil, errors.New("sum slots: nil evaluator")
	}
	if !isPowerOfTwo(n) || n > MaxCells {
		return nil, fmt.Errorf("sum slots: n=%d is not a power of two in [1, %d]", n, MaxCells)
	}
	if err := checkCiphertextShape(p, ct); err != nil {
		return nil, fmt.Errorf("sum slots: %w", err)
	}
	if ct.Degree() != 1 {
		return nil, fmt.Errorf("sum slots: ciphertext of degree %d, expected 1 (relinearize first)", ct.Degree())
	}
	acc := ct.CopyNew()
	rotated := hefloat.NewCiphertext(p.Parameters, 1, ct.Level())
	for k := 1; k < n; k <<= 1 {
		if err := eval.Rotate(acc, k, rotated); err != nil {
			return nil, fmt.Errorf("sum slots: rotation by %d: %w", k, err)
		}
		if err := eval.Add(acc, rotated, acc); err != nil {
			return nil, fmt.Errorf("sum slots: adding rotation by %d: %w", k, err)
		}
	}
	return acc, nil
}
