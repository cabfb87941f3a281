package engine

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// Without key switching, the errors are the fresh encryption noise (~2^9 per
// coefficient, /2^60 after decoding: ~1e-14), the rounding at the encoding
// scale 2^30 (~3e-8) and the float64 encoding error, relative ~2^-53*LogN per
// input: for inputs up to 1e9 an absolute tolerance of 1e-5 leaves a factor
// of 4 of room over the measured 2.4e-6.
const directTolerance = 1e-5

func roundTrip(t *testing.T, p Parameters, parties, width int, scale float64) {
	t.Helper()
	sk, pk := testKeys(t, p)
	rng := rand.New(rand.NewPCG(1, uint64(width)))
	want := make([]float64, width)
	cts := make([]*rlwe.Ciphertext, parties)
	for i := range cts {
		v := randomValues(rng, width, scale)
		for j := range v {
			want[j] += v[j]
		}
		ct, err := EncryptVector(p, pk, v)
		if err != nil {
			t.Fatalf("EncryptVector: %v", err)
		}
		if ct.Level() != p.AggregateLevel || ct.LogScale() != float64(p.AggregateLogScale) {
			t.Fatalf("ciphertext at level %d scale 2^%v, want level %d scale 2^%d", ct.Level(), ct.LogScale(), p.AggregateLevel, p.AggregateLogScale)
		}
		cts[i] = ct
	}
	sum, err := Sum(p, cts)
	if err != nil {
		t.Fatalf("Sum: %v", err)
	}
	got, err := DecryptVector(p, sk, sum, width)
	if err != nil {
		t.Fatalf("DecryptVector: %v", err)
	}
	e := maxAbsError(t, got, want)
	t.Logf("%s: %d parties, %d values up to %g: max abs error %.3g", p.Name, parties, width, scale, e)
	if e > directTolerance {
		t.Fatalf("max abs error %g > %g", e, directTolerance)
	}
	for j := 0; j < width; j += 2 {
		if math.Round(got[j]) != want[j] {
			t.Fatalf("count %d: got %v, want %v", j, got[j], want[j])
		}
	}
}

func TestAggregateRoundTrip(t *testing.T) {
	p := testParams(t, "ckks-n13")
	roundTrip(t, p, 3, 3, 100)
	// Values near 1e9 at scale 2^60: value*scale ~ 2^90 exceeds uint64, which
	// lattigo's encoder handles through big.Float.
	roundTrip(t, p, 5, 64, 1e9)
	roundTrip(t, p, 2, p.MaxSlots(), 1e9)
}

func TestAggregateN14(t *testing.T) {
	roundTrip(t, testParams(t, "ckks-n14"), 3, 64, 1e9)
}

func TestMaxAggregateValue(t *testing.T) {
	for _, name := range ParameterNames() {
		p := testParams(t, name)
		if got := MaxAggregateValue(p); got != math.Exp2(32) {
			t.Errorf("%s: MaxAggregateValue = %g, want 2^32", name, got)
		}
	}
	p := testParams(t, "ckks-n13")
	sk, pk := testKeys(t, p)
	m := MaxAggregateValue(p)
	ct, err := EncryptVector(p, pk, []float64{m, -m, 1})
	if err != nil {
		t.Fatalf("EncryptVector at the bound: %v", err)
	}
	got, err := DecryptVector(p, sk, ct, 3)
	if err != nil {
		t.Fatal(err)
	}
	// Encoding error at 2^32 is below 2^32*2^-53*13 ~ 6e-6.
	if e := maxAbsError(t, got, []float64{m, -m, 1}); e > 1e-5 {
		t.Fatalf("max abs error at the bound %g > 1e-5", e)
	}
}

func TestEncryptVectorRejects(t *testing.T) {
	p := testParams(t, "ckks-n13")
	_, pk := testKeys(t, p)
	_, pk14 := testKeys(t, testParams(t, "ckks-n14"))
	m := MaxAggregateValue(p)
	cases := []struct {
		name   string
		pk     *rlwe.PublicKey
		values []float64
		want   string
	}{
		{"nan", pk, []float64{1, math.NaN()}, "value 1 is NaN"},
		{"inf", pk, []float64{math.Inf(-1)}, "value 0 is -Inf"},
		{"too large", pk, []float64{0, 0, m * 2}, "exceeds the bound"},
		{"too small", pk, []float64{-m * 1.5}, "exceeds the bound"},
		{"too many", pk, make([]float64, p.MaxSlots()+1), "exceed the 4096 slots"},
		{"empty", pk, nil, "no values"},
		{"nil key", nil, []float64{1}, "nil public key"},
		{"wrong key", pk14, []float64{1}, "ring degree 16384, expected 8192"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := EncryptVector(p, c.pk, c.values)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
	if _, err := EncryptVector(Parameters{}, pk, []float64{1}); err == nil {
		t.Fatal("zero Parameters accepted")
	}
}

func TestSumRejects(t *testing.T) {
	p := testParams(t, "ckks-n13")
	p14 := testParams(t, "ckks-n14")
	_, pk := testKeys(t, p)
	_, pk14 := testKeys(t, p14)
	a, err := EncryptVector(p, pk, []float64{1})
	if err != nil {
		t.Fatal(err)
	}
	other, err := EncryptVector(p14, pk14, []float64{1})
	if err != nil {
		t.Fatal(err)
	}
	lower := a.CopyNew()
	hefloat.NewEvaluator(p.Parameters, nil).DropLevel(lower, 1)
	rescaled := a.CopyNew()
	rescaled.Scale = rlwe.NewScale(math.Exp2(40))
	cases := []struct {
		name string
		cts  []*rlwe.Ciphertext
		want string
	}{
		{"empty", nil, "no ciphertexts"},
		{"nil", []*rlwe.Ciphertext{a, nil}, "ciphertext 1: nil ciphertext"},
		{"other params", []*rlwe.Ciphertext{a, other}, "ring degree 16384, expected 8192"},
		{"level", []*rlwe.Ciphertext{a, lower}, "ciphertext 1 is at level 1, ciphertext 0 at 2"},
		{"scale", []*rlwe.Ciphertext{a, rescaled}, "ciphertext 1 has scale 2^40.00, ciphertext 0 has 2^60.00"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Sum(p, c.cts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
	// Sum must not modify its inputs.
	before := a.CopyNew()
	if _, err := Sum(p, []*rlwe.Ciphertext{a, a}); err != nil {
		t.Fatal(err)
	}
	if !a.Equal(before) {
		t.Fatal("Sum modified its first input")
	}
}

func TestDecryptVectorRejects(t *testing.T) {
	p := testParams(t, "ckks-n13")
	sk, pk := testKeys(t, p)
	sk14, _ := testKeys(t, testParams(t, "ckks-n14"))
	ct, err := EncryptVector(p, pk, []float64{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		sk   *rlwe.SecretKey
		ct   *rlwe.Ciphertext
		n    int
		want string
	}{
		{"n zero", sk, ct, 0, "n=0 outside [1, 4096]"},
		{"n too large", sk, ct, 4097, "n=4097 outside"},
		{"nil ct", sk, nil, 1, "nil ciphertext"},
		{"nil key", nil, ct, 1, "nil secret key"},
		{"wrong key", sk14, ct, 1, "does not fit"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecryptVector(p, c.sk, c.ct, c.n)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
}

// A public key derived from a stored secret key encrypts what that secret
// key decrypts, to the precision of a fresh encryption.
func TestGenPublicKey(t *testing.T) {
	p := testParams(t, "ckks-n13")
	sk, _ := testKeys(t, p)
	pk := GenPublicKey(p, sk)
	want := randomValues(rand.New(rand.NewPCG(7, 7)), 64, 1000)
	ct, err := EncryptVector(p, pk, want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecryptVector(p, sk, ct, len(want))
	if err != nil {
		t.Fatal(err)
	}
	// Fresh encryption noise only, as in roundTrip.
	if e := maxAbsError(t, got, want); e > directTolerance {
		t.Fatalf("max abs error %g > %g", e, directTolerance)
	}
	_, other := GenKeyPair(p)
	ct, err = EncryptVector(p, other, want)
	if err != nil {
		t.Fatal(err)
	}
	if got, err = DecryptVector(p, sk, ct, len(want)); err == nil && maxAbsError(t, got, want) < 1 {
		t.Fatal("a ciphertext under another key decrypts")
	}
}
