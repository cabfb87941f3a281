package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// TestEncodeFeaturesMatchesLattigo: the column encoder produces the
// plaintexts of lattigo's Encoder.Encode, coefficient for coefficient, at
// every level, for full and partial batches, with large and tiny values.
func TestEncodeFeaturesMatchesLattigo(t *testing.T) {
	for _, name := range []string{"ckks-n13", "ckks-n14"} {
		k := keys(t, name)
		p := k.p
		rng := rand.New(rand.NewPCG(3, 4))
		ecd := hefloat.NewEncoder(p.Parameters)
		e := newColumnEncoder(p)
		for _, n := range []int{p.MaxSlots(), 1, 1000} {
			for _, mag := range []float64{4, MaxFeatureValue, 1e-9} {
				v := make([]float64, n)
				for i := range v {
					v[i] = (2*rng.Float64() - 1) * mag
				}
				v[0] = 0
				for _, level := range []int{0, p.MaxLevel()} {
					want := hefloat.NewPlaintext(p.Parameters, level)
					if err := ecd.Encode(v, want); err != nil {
						t.Fatal(err)
					}
					got := hefloat.NewPlaintext(p.Parameters, level)
					if err := e.encode(v, got); err != nil {
						t.Fatal(err)
					}
					if !got.Value.Equal(&want.Value) {
						t.Fatalf("%s: %d values of magnitude %g at level %d: plaintexts differ", name, n, mag, level)
					}
				}
			}
		}
	}
}

// TestEvaluateRecordsExact: the fused path (EvaluateRecords) gives the
// ciphertexts of EncodeFeatures + EvaluatePlainRecords, and its first layer
// is lattigo's MulThenAdd sum, coefficient for coefficient; on a
// two-output model (several accumulators) and on a partial batch.
func TestEvaluateRecordsExact(t *testing.T) {
	k := keys(t, "ckks-n13")
	p := k.p
	m := &Model{Name: "two", Inputs: 5, Layers: []Layer{{
		Weights: [][]float64{{0.5, -1, 0.25, 0.125, -0.75}, {-0.3, 0.2, 0.1, 0, 0.9}},
		Bias:    []float64{0.25, -0.5},
	}}}
	em, err := EncryptModelForPrediction(p, k.pk, m)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := em.Plan(p)
	if err != nil {
		t.Fatal(err)
	}
	records := normalRecords(rand.New(rand.NewPCG(1, 5)), 1000, m.Inputs, 4)
	got, err := EvaluateRecords(p, k.evk, em, records)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := EncodeFeatures(p, pl, records)
	if err != nil {
		t.Fatal(err)
	}
	want, err := EvaluatePlainRecords(p, k.evk, em, pts)
	if err != nil {
		t.Fatal(err)
	}
	ev := hefloat.NewEvaluator(p.Parameters, k.evk)
	for o := range want {
		if !got[o].Equal(want[o]) {
			t.Fatalf("output %d: EvaluateRecords differs from EvaluatePlainRecords", o)
		}
		// lattigo's reference for the first layer.
		ref := hefloat.NewCiphertext(p.Parameters, 1, pl.InputLevel)
		ref.Scale = pts[0].Scale.Mul(em.W[0][o][0].Scale)
		for i := range pts {
			if err := ev.MulThenAdd(em.W[0][o][i], pts[i], ref); err != nil {
				t.Fatal(err)
			}
		}
		if err := ev.Rescale(ref, ref); err != nil {
			t.Fatal(err)
		}
		ref.Scale = em.B[0][o].Scale
		if err := ev.Add(ref, em.B[0][o], ref); err != nil {
			t.Fatal(err)
		}
		ev.DropLevel(ref, ref.Level()-got[o].Level())
		if !ref.Value[0].Equal(&got[o].Value[0]) || !ref.Value[1].Equal(&got[o].Value[1]) {
			t.Fatalf("output %d: first layer differs from lattigo's MulThenAdd", o)
		}
	}
	preds, err := DecryptOutputs(p, k.sk, got, len(records))
	if err != nil {
		t.Fatal(err)
	}
	for j, r := range records {
		y, _ := m.Predict(r)
		for o := range y {
			if math.Abs(preds[j][o]-y[o]) > 1e-4 {
				t.Fatalf("record %d output %d: %g, expected %g", j, o, preds[j][o], y[o])
			}
		}
	}
	if _, err := EvaluateRecords(p, k.evk, em, [][]float64{{1, 2, 3, 4}}); err == nil {
		t.Fatal("record of 4 features accepted for 5 inputs")
	}
	if _, err := EvaluateRecords(p, k.evk, em, [][]float64{{1, 2, 3, 4, math.NaN()}}); err == nil {
		t.Fatal("NaN feature accepted")
	}
}
