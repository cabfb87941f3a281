package engine

import (
	"math"
	"strings"
	"testing"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// The cohort test against the plaintext decision, with three contributors
// whose counts straddle the minimum.
func TestCohortTest(t *testing.T) {
	p, err := ParametersByName("ckks-n13")
	if err != nil {
		t.Fatal(err)
	}
	kgen := hefloat.NewKeyGenerator(p.Parameters)
	sk, pk := kgen.GenKeyPairNew()
	rlk := kgen.GenRelinearizationKeyNew(sk)
	const k = 20
	// Cells: empty, 19 (below), 19 (below), large, exactly 20, and two
	// fractional (DP-noisy) counts on either side of 19.5.
	parties := [][]float64{
		{0, 7, 10, 300000, 19, 6.5, 6.5},
		{0, 6, 9, 250000, 0, 7.25, 7.25},
		{0, 6, 0, 1, 1, 5.9, 5.7},
	}
	var counts, masks []*rlwe.Ciphertext
	total := make([]float64, len(parties[0]))
	for _, c := range parties {
		cc, mc, err := EncryptCohortInputs(p, pk, c)
		if err != nil {
			t.Fatal(err)
		}
		counts, masks = append(counts, cc), append(masks, mc)
		for i, v := range c {
			total[i] += v
		}
	}
	ct, err := CohortTest(p, rlk, counts, masks, k)
	if err != nil {
		t.Fatal(err)
	}
	if ct.Level() != p.AggregateLevel {
		t.Fatalf("T at level %d, want the aggregate level %d", ct.Level(), p.AggregateLevel)
	}
	got, err := DecryptVector(p, sk, ct, len(total))
	if err != nil {
		t.Fatal(err)
	}
	pass, err := CohortPasses(got, len(total))
	if err != nil {
		t.Fatal(err)
	}
	for g, c := range total {
		if want := math.Round(c) >= k; pass[g] != want {
			t.Errorf("cell %d: count %g, min %d: passes=%v, want %v (T=%g)", g, c, k, pass[g], want, got[g])
		}
		// |T| hides the count behind the sum of masks, but its size is
		// bounded by it.
		lo, hi := math.Abs(c-k+0.5)*3*CohortMaskMin, math.Abs(c-k+0.5)*3*CohortMaskMax
		if a := math.Abs(got[g]); a < lo*0.99 || a > hi*1.01 {
			t.Errorf("cell %d: |T|=%g outside [%g, %g]", g, a, lo, hi)
		}
	}
}

// The decryption noise of T stays far below the smallest margin
// (CohortMaskMin/2 for one contributor) for every parameter set and up to
// 64 key switchers.
func TestCohortNoiseMargin(t *testing.T) {
	for _, name := range ParameterNames() {
		p, err := ParametersByName(name)
		if err != nil {
			t.Fatal(err)
		}
		bound := CohortNoiseBound(p, 64)
		t.Logf("%s: cohort noise bound %.3g, margin %d", name, bound, CohortMaskMin/2)
		if bound > CohortMaskMin/8 {
			t.Errorf("%s: noise bound %g too close to the margin %d", name, bound, CohortMaskMin/2)
		}
	}
}

func TestCohortTestRejects(t *testing.T) {
	p, err := ParametersByName("ckks-n13")
	if err != nil {
		t.Fatal(err)
	}
	kgen := hefloat.NewKeyGenerator(p.Parameters)
	sk, pk := kgen.GenKeyPairNew()
	rlk := kgen.GenRelinearizationKeyNew(sk)
	cc, mc, err := EncryptCohortInputs(p, pk, []float64{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	agg, err := EncryptVector(p, pk, []float64{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name          string
		rlk           *rlwe.RelinearizationKey
		counts, masks []*rlwe.Ciphertext
		want          string
	}{
		{"no rlk", nil, []*rlwe.Ciphertext{cc}, []*rlwe.Ciphertext{mc}, "no relinearization key"},
		{"uneven", rlk, []*rlwe.Ciphertext{cc, cc}, []*rlwe.Ciphertext{mc}, "2 count and 1 mask"},
		{"aggregate as counts", rlk, []*rlwe.Ciphertext{agg}, []*rlwe.Ciphertext{mc}, "counts 0: degree 1 at level 2"},
		{"swapped", rlk, []*rlwe.Ciphertext{mc}, []*rlwe.Ciphertext{cc}, "counts 0: scale 2^40.00, want 2^49"},
	} {
		if _, err := CohortTest(p, c.rlk, c.counts, c.masks, 5); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
}
