package train

import (
	"fmt"

	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/engine/model"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// PackForRelease gathers a model's coefficients (each a ciphertext holding
// its value in every slot, at a common level >= 2 and the default scale)
// into one ciphertext whose slot c holds coefficient c, at the release
// scale 2^p.AggregateLogScale: one key switch then releases the whole
// model, and the flooding of its shares costs no precision. Each
// coefficient is multiplied by the one-hot plaintext of its slot, encoded
// at the scale of the prime the rescale divides by, so that the sum
// returns exactly to the default scale (one level).
func PackForRelease(p engine.Parameters, w []*rlwe.Ciphertext) (*rlwe.Ciphertext, error) {
	if len(w) == 0 || len(w) > p.MaxSlots() {
		return nil, fmt.Errorf("pack: %d coefficients for %d slots", len(w), p.MaxSlots())
	}
	level := w[0].Level()
	if err := checkCiphertexts(p, w, len(w), level, level); err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	if level < 2 {
		return nil, fmt.Errorf("pack: coefficients at level %d, need 2 (a product and the release)", level)
	}
	ecd := hefloat.NewEncoder(p.Parameters)
	ev := hefloat.NewEvaluator(p.Parameters, nil)
	acc := hefloat.NewCiphertext(p.Parameters, 1, level)
	acc.Scale = w[0].Scale.Mul(rlwe.NewScale(p.Q()[level]))
	slots := make([]float64, p.MaxSlots())
	for c, ct := range w {
		clear(slots)
		slots[c] = 1
		pt := hefloat.NewPlaintext(p.Parameters, level)
		pt.Scale = rlwe.NewScale(p.Q()[level])
		if err := ecd.Encode(slots, pt); err != nil {
			return nil, fmt.Errorf("pack: coefficient %d: %w", c, err)
		}
		if err := ev.MulThenAdd(ct, pt, acc); err != nil {
			return nil, fmt.Errorf("pack: coefficient %d: %w", c, err)
		}
	}
	if err := ev.Rescale(acc, acc); err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	acc.Scale = p.DefaultScale() // equal up to the float rounding of q/q
	if err := model.PrepareRelease(p, []*rlwe.Ciphertext{acc}); err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	return acc, nil
}
