package engine

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

func TestGaloisElements(t *testing.T) {
	p := testParams(t, "ckks-n13")
	els := p.GaloisElements()
	if len(els) != 6 { // rotations 1, 2, 4, 8, 16, 32
		t.Fatalf("got %d Galois elements, want 6", len(els))
	}
	for i, el := range els {
		if want := p.GaloisElementForRotation(1 << i); el != want {
			t.Errorf("element %d = %d, want rotation by %d (%d)", i, el, 1<<i, want)
		}
	}
	sorted := slices.Clone(els)
	slices.Sort(sorted)
	if len(slices.Compact(sorted)) != len(els) {
		t.Fatal("duplicate Galois elements")
	}
}

// localEvaluator is an evaluator with Galois keys of GaloisElements for a
// locally generated secret (the collective key in production).
func localEvaluator(tb testing.TB, p Parameters, sk *rlwe.SecretKey) *hefloat.Evaluator {
	tb.Helper()
	kgen := hefloat.NewKeyGenerator(p.Parameters)
	gks := kgen.GenGaloisKeysNew(p.GaloisElements(), sk)
	return hefloat.NewEvaluator(p.Parameters, rlwe.NewMemEvaluationKeySet(kgen.GenRelinearizationKeyNew(sk), gks...))
}

func TestSumSlots(t *testing.T) {
	p := testParams(t, "ckks-n13")
	sk, pk := testKeys(t, p)
	eval := localEvaluator(t, p, sk)
	rng := rand.New(rand.NewPCG(7, 7))
	values := randomValues(rng, MaxCells, 1e6)
	ct, err := EncryptVector(p, pk, values)
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= MaxCells; n <<= 1 {
		out, err := SumSlots(p, eval, ct, n)
		if err != nil {
			t.Fatalf("SumSlots(%d): %v", n, err)
		}
		got, err := DecryptVector(p, sk, out, 1)
		if err != nil {
			t.Fatal(err)
		}
		var want float64
		for _, v := range values[:n] {
			want += v
		}
		// Rotation key switching adds ~2^20 of noise per coefficient at
		// most, ~1e-10 at scale 2^60; the float encoding error of inputs up
		// to 1e6 dominates (~1e-9); 1e-6 is a generous tolerance.
		if e := math.Abs(got[0] - want); e > 1e-6 {
			t.Fatalf("n=%d: slot 0 = %v, want %v (error %g)", n, got[0], want, e)
		}
	}
}

func TestSumSlotsRejects(t *testing.T) {
	p := testParams(t, "ckks-n13")
	sk, pk := testKeys(t, p)
	eval := localEvaluator(t, p, sk)
	ct, err := EncryptVector(p, pk, []float64{1, 2, 3, 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		eval *hefloat.Evaluator
		ct   *rlwe.Ciphertext
		n    int
		want string
	}{
		{"not power of two", eval, ct, 3, "n=3 is not a power of two"},
		{"too many", eval, ct, 2 * MaxCells, "n=128"},
		{"zero", eval, ct, 0, "n=0"},
		{"nil evaluator", nil, ct, 2, "nil evaluator"},
		{"nil ciphertext", eval, nil, 2, "nil ciphertext"},
		{"no keys", hefloat.NewEvaluator(p.Parameters, nil), ct, 2, "rotation by 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := SumSlots(p, c.eval, c.ct, c.n)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
}
