package engine

import (
	"math/rand/v2"
	"testing"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// Raw in-process costs at the default parameter set (ckks-n14), with no
// network: the floor the networked system is measured against.

func benchSetup(b *testing.B) (Parameters, *rlwe.SecretKey, *rlwe.PublicKey, []float64) {
	b.Helper()
	p := testParams(b, "ckks-n14")
	sk, pk := testKeys(b, p)
	return p, sk, pk, randomValues(rand.New(rand.NewPCG(1, 2)), 3, 1e6)
}

func BenchmarkEncryptVector(b *testing.B) {
	p, _, pk, values := benchSetup(b)
	for b.Loop() {
		if _, err := EncryptVector(p, pk, values); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSum3(b *testing.B) {
	p, _, pk, values := benchSetup(b)
	cts := make([]*rlwe.Ciphertext, 3)
	for i := range cts {
		ct, err := EncryptVector(p, pk, values)
		if err != nil {
			b.Fatal(err)
		}
		cts[i] = ct
	}
	for b.Loop() {
		if _, err := Sum(p, cts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecryptVector(b *testing.B) {
	p, sk, pk, values := benchSetup(b)
	ct, err := EncryptVector(p, pk, values)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := DecryptVector(p, sk, ct, len(values)); err != nil {
			b.Fatal(err)
		}
	}
}

// maxLevelCiphertext is a ciphertext at the top of the chain and the default
// scale, as circuits that multiply start from.
func maxLevelCiphertext(b *testing.B, p Parameters, pk *rlwe.PublicKey) *rlwe.Ciphertext {
	b.Helper()
	pt := hefloat.NewPlaintext(p.Parameters, p.MaxLevel())
	if err := hefloat.NewEncoder(p.Parameters).Encode([]float64{1, 2, 3}, pt); err != nil {
		b.Fatal(err)
	}
	ct, err := hefloat.NewEncryptor(p.Parameters, pk).EncryptNew(pt)
	if err != nil {
		b.Fatal(err)
	}
	return ct
}

// BenchmarkMulRelin is one ciphertext-ciphertext multiplication with
// relinearization at the top level (7 of ckks-n14), without rescale.
func BenchmarkMulRelin(b *testing.B) {
	p, sk, pk, _ := benchSetup(b)
	kgen := hefloat.NewKeyGenerator(p.Parameters)
	eval := hefloat.NewEvaluator(p.Parameters, rlwe.NewMemEvaluationKeySet(kgen.GenRelinearizationKeyNew(sk)))
	ct := maxLevelCiphertext(b, p, pk)
	out := hefloat.NewCiphertext(p.Parameters, 1, ct.Level())
	for b.Loop() {
		if err := eval.MulRelin(ct, ct, out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRotate is one rotation by one slot at the top level.
func BenchmarkRotate(b *testing.B) {
	p, sk, pk, _ := benchSetup(b)
	kgen := hefloat.NewKeyGenerator(p.Parameters)
	gk := kgen.GenGaloisKeyNew(p.GaloisElementForRotation(1), sk)
	eval := hefloat.NewEvaluator(p.Parameters, rlwe.NewMemEvaluationKeySet(nil, gk))
	ct := maxLevelCiphertext(b, p, pk)
	out := hefloat.NewCiphertext(p.Parameters, 1, ct.Level())
	for b.Loop() {
		if err := eval.Rotate(ct, 1, out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSumSlots64 is SumSlots over MaxCells slots (6 rotations) at the
// aggregate level.
func BenchmarkSumSlots64(b *testing.B) {
	p, sk, pk, values := benchSetup(b)
	eval := localEvaluator(b, p, sk)
	ct, err := EncryptVector(p, pk, values)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := SumSlots(p, eval, ct, MaxCells); err != nil {
			b.Fatal(err)
		}
	}
}
