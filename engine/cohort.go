package engine

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// The cohort test decides which cells of an aggregate fall below a minimum
// cohort size k without revealing their counts. Every party encrypts its
// per-group counts C_i and a vector of fresh random masks r_i (uniform in
// [CohortMaskMin, CohortMaskMax), one per group), one level above the
// aggregate level. The coordinator computes
//
//	T = (Σ C_i − k + 1/2) ⊙ Σ r_i
//
// with one relinearized product and one rescale, and has T key-switched to
// a throwaway key of its own. The sign of each slot says whether the cell
// passes; its magnitude is the count's distance to k times a sum of random
// masks that no party knows unless every contributor colludes. The
// coordinator then learns, beyond the suppression pattern that the analyst
// sees anyway, only that blurred distance.
//
// The parties then encrypt their partial sums with the suppressed cells set
// to zero: suppression is exact, where a product with a 0/1 plaintext would
// leave each suppressed slot holding its value times the mask's encoding
// error.

// Mask range: masks are at least 2^12, so |T| >= 2^11 per contributor,
// far above the decryption noise of T (CohortNoiseBound); at most 2^20 so
// that T stays far below the modulus.
const (
	CohortMaskMin = 1 << 12
	CohortMaskMax = 1 << 20
)

// cohortMaskLogScale is the scale of the masks. The counts' scale is
// chosen so that T, after the rescale by the prime at CohortLevel, sits
// 2^12 above the flooding noise (cohortTLogScale; the key switch wants at
// least 2^10): far enough that the noise is small next to CohortMaskMin/2,
// low enough that |T| <= 2^62 stays below the modulus at the aggregate
// level.
const cohortMaskLogScale = 40

func cohortTLogScale(p Parameters) int { return int(math.Round(math.Log2(p.FloodingSigma))) + 12 }

func cohortCountLogScale(p Parameters) int {
	return cohortTLogScale(p) + int(math.Round(math.Log2(float64(p.Q()[CohortLevel(p)])))) - cohortMaskLogScale
}

// CohortLevel is the level of cohort-test inputs: one product and one
// rescale bring T to the aggregate level.
func CohortLevel(p Parameters) int { return p.AggregateLevel + 1 }

func checkCohortParameters(p Parameters) error {
	if err := checkAggregateParameters(p); err != nil {
		return err
	}
	if CohortLevel(p) > p.MaxLevel() {
		return fmt.Errorf("parameter set %s has no level above the aggregate level for the cohort test", p.Name)
	}
	return nil
}

// EncryptCohortInputs encrypts a party's per-group counts and fresh random
// masks for the cohort test.
func EncryptCohortInputs(p Parameters, pk *rlwe.PublicKey, counts []float64) (countsCt, masksCt *rlwe.Ciphertext, err error) {
	if err := checkCohortParameters(p); err != nil {
		return nil, nil, fmt.Errorf("encrypt cohort inputs: %w", err)
	}
	masks := make([]float64, len(counts))
	var b [8]byte
	for i := range masks {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, nil, fmt.Errorf("encrypt cohort inputs: masks: %w", err)
		}
		masks[i] = float64(CohortMaskMin + binary.LittleEndian.Uint64(b[:])%(CohortMaskMax-CohortMaskMin))
	}
	if countsCt, err = encryptAt(p, pk, counts, CohortLevel(p), cohortCountLogScale(p)); err != nil {
		return nil, nil, fmt.Errorf("encrypt cohort counts: %w", err)
	}
	if masksCt, err = encryptAt(p, pk, masks, CohortLevel(p), cohortMaskLogScale); err != nil {
		return nil, nil, fmt.Errorf("encrypt cohort masks: %w", err)
	}
	return countsCt, masksCt, nil
}

// CohortTest computes T = (Σ counts − minCohort + 1/2) ⊙ Σ masks at the
// aggregate level: a slot of T is positive exactly when its cell's count,
// rounded to the nearest integer (counts carry fractional DP noise), is at
// least minCohort. The coordinator key-switches T to a key of its own and
// reads the signs with CohortPasses.
func CohortTest(p Parameters, rlk *rlwe.RelinearizationKey, counts, masks []*rlwe.Ciphertext, minCohort int) (*rlwe.Ciphertext, error) {
	if err := checkCohortParameters(p); err != nil {
		return nil, fmt.Errorf("cohort test: %w", err)
	}
	if rlk == nil {
		return nil, errors.New("cohort test: no relinearization key")
	}
	if len(counts) == 0 || len(counts) != len(masks) {
		return nil, fmt.Errorf("cohort test: %d count and %d mask ciphertexts", len(counts), len(masks))
	}
	for i := range counts {
		if err := checkCohortInput(p, counts[i], cohortCountLogScale(p)); err != nil {
			return nil, fmt.Errorf("cohort test: counts %d: %w", i, err)
		}
		if err := checkCohortInput(p, masks[i], cohortMaskLogScale); err != nil {
			return nil, fmt.Errorf("cohort test: masks %d: %w", i, err)
		}
	}
	c, err := Sum(p, counts)
	if err != nil {
		return nil, fmt.Errorf("cohort test: %w", err)
	}
	r, err := Sum(p, masks)
	if err != nil {
		return nil, fmt.Errorf("cohort test: %w", err)
	}
	ev := hefloat.NewEvaluator(p.Parameters, rlwe.NewMemEvaluationKeySet(rlk))
	if err := ev.Add(c, -(float64(minCohort) - 0.5), c); err != nil {
		return nil, fmt.Errorf("cohort test: subtract the minimum: %w", err)
	}
	t := hefloat.NewCiphertext(p.Parameters, 1, c.Level())
	if err := ev.MulRelin(c, r, t); err != nil {
		return nil, fmt.Errorf("cohort test: product: %w", err)
	}
	out := hefloat.NewCiphertext(p.Parameters, 1, t.Level()-1)
	if err := ev.Rescale(t, out); err != nil {
		return nil, fmt.Errorf("cohort test: rescale: %w", err)
	}
	return out, nil
}

func checkCohortInput(p Parameters, ct *rlwe.Ciphertext, logScale int) error {
	if err := checkCiphertextShape(p, ct); err != nil {
		return err
	}
	if ct.Degree() != 1 || ct.Level() != CohortLevel(p) {
		return fmt.Errorf("degree %d at level %d, want degree 1 at level %d", ct.Degree(), ct.Level(), CohortLevel(p))
	}
	if got := math.Log2(ct.Scale.Float64()); got != float64(logScale) {
		return fmt.Errorf("scale 2^%.2f, want 2^%d", got, logScale)
	}
	return nil
}

// CohortNoiseBound bounds the absolute decryption error of a slot of T
// switched by keySwitchers parties: Precision's noise term at T's scale.
// The margin of a slot is at least CohortMaskMin/2 per contributor.
func CohortNoiseBound(p Parameters, keySwitchers int) float64 {
	t := float64(max(keySwitchers, 1))
	fresh := freshNoiseStdDev(p)
	coeffStd := math.Sqrt(t*p.FloodingSigma*p.FloodingSigma + (math.Exp2(maxLogSummands)+t)*fresh*fresh)
	scale := math.Exp2(float64(cohortCountLogScale(p)+cohortMaskLogScale)) / float64(p.Q()[CohortLevel(p)])
	return precisionTail * coeffStd * math.Sqrt(float64(p.N())/2) / scale
}

// CohortPasses reads the decrypted T: cell g passes when T[g] > 0.
func CohortPasses(t []float64, groups int) ([]bool, error) {
	if groups > len(t) {
		return nil, fmt.Errorf("cohort test: %d groups but %d slots", groups, len(t))
	}
	out := make([]bool, groups)
	for g := range out {
		out[g] = t[g] > 0
	}
	return out, nil
}
