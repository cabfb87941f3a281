package train

import (
	"math"
	"testing"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// PackForRelease puts coefficient c in slot c at the release scale, within
// the CKKS noise of a product and a rescale.
func TestPackForRelease(t *testing.T) {
	p := testParams(t, "ckks-n14")
	ks := testKeys(t, p)
	want := []float64{0.5, -3.25, 17, 0, -0.001}
	enc := hefloat.NewEncryptor(p.Parameters, ks.pk)
	ecd := hefloat.NewEncoder(p.Parameters)
	var w []*rlwe.Ciphertext
	for _, v := range want {
		slots := make([]float64, p.MaxSlots())
		for i := range slots {
			slots[i] = v
		}
		pt := hefloat.NewPlaintext(p.Parameters, p.MaxLevel())
		if err := ecd.Encode(slots, pt); err != nil {
			t.Fatal(err)
		}
		ct, err := enc.EncryptNew(pt)
		if err != nil {
			t.Fatal(err)
		}
		w = append(w, ct)
	}
	packed, err := PackForRelease(p, w)
	if err != nil {
		t.Fatal(err)
	}
	if got := math.Log2(packed.Scale.Float64()); got != float64(p.AggregateLogScale) {
		t.Fatalf("packed at scale 2^%g, want 2^%d", got, p.AggregateLogScale)
	}
	got := decryptSlots(t, p, ks.sk, packed)
	for c := range p.MaxSlots() {
		exp := 0.0
		if c < len(want) {
			exp = want[c]
		}
		if d := math.Abs(got[c] - exp); d > 1e-6 {
			t.Fatalf("slot %d = %g, want %g (error %g > 1e-6)", c, got[c], exp, d)
		}
	}
	if _, err := PackForRelease(p, []*rlwe.Ciphertext{w[0], nil}); err == nil {
		t.Fatal("packed a nil coefficient")
	}
}
