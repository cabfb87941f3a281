package engine

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/mhe"
)

// floodedRelease runs the release path for real: inputs is encrypted under a
// collective key shared additively by t parties, summed, key-switched to an
// analyst with mhe.PublicKeySwitchProtocol (each party flooding with
// FloodingDistribution), and decrypted by the analyst. It returns the max
// error over all slots and checks counts round exactly.
func floodedRelease(t *testing.T, p Parameters, keySwitchers, inputs int) float64 {
	t.Helper()
	kgen := hefloat.NewKeyGenerator(p.Parameters)
	shares := make([]*rlwe.SecretKey, keySwitchers)
	collective := rlwe.NewSecretKey(p.Parameters)
	for i := range shares {
		shares[i] = kgen.GenSecretKeyNew()
		p.RingQP().Add(collective.Value, shares[i].Value, collective.Value)
	}
	cpk := kgen.GenPublicKeyNew(collective)
	analystSK, analystPK := GenKeyPair(p)

	rng := rand.New(rand.NewPCG(uint64(keySwitchers), uint64(inputs)))
	slots := p.MaxSlots()
	want := make([]float64, slots)
	cts := make([]*rlwe.Ciphertext, inputs)
	for i := range cts {
		v := randomValues(rng, slots, 1e9)
		for j := range v {
			want[j] += v[j]
		}
		ct, err := EncryptVector(p, cpk, v)
		if err != nil {
			t.Fatal(err)
		}
		cts[i] = ct
	}
	sum, err := Sum(p, cts)
	if err != nil {
		t.Fatal(err)
	}

	pcks, err := mhe.NewPublicKeySwitchProtocol(p.Parameters, FloodingDistribution(p))
	if err != nil {
		t.Fatalf("NewPublicKeySwitchProtocol: %v", err)
	}
	combined := pcks.AllocateShare(sum.Level())
	for i, s := range shares {
		share := pcks.AllocateShare(sum.Level())
		pcks.GenShare(s, analystPK, sum, &share)
		if i == 0 {
			combined = share
			continue
		}
		if err := pcks.AggregateShares(combined, share, &combined); err != nil {
			t.Fatal(err)
		}
	}
	released := hefloat.NewCiphertext(p.Parameters, 1, sum.Level())
	pcks.KeySwitch(sum, combined, released)

	got, err := DecryptVector(p, analystSK, released, slots)
	if err != nil {
		t.Fatal(err)
	}
	for j := 0; j < slots; j += 2 {
		if math.Round(got[j]) != want[j] {
			t.Fatalf("count in slot %d: got %v, want %v", j, got[j], want[j])
		}
	}
	return maxAbsError(t, got, want)
}

func TestFloodingPrecision(t *testing.T) {
	p := testParams(t, "ckks-n13")
	t.Logf("%s: flooding sigma 2^%.0f, hiding margin %.1f bits", p.Name, math.Log2(p.FloodingSigma), FloodingMarginBits(p))
	for _, ks := range []int{1, 3, 5} {
		e := floodedRelease(t, p, ks, 3)
		bound := Precision(p, ks)
		t.Logf("%s, %d key switchers: max error over %d slots %.3g, Precision %.3g", p.Name, ks, p.MaxSlots(), e, bound)
		if e > bound {
			t.Fatalf("max error %g exceeds Precision %g", e, bound)
		}
		// The flooding must actually be there: the max over thousands of
		// slots exceeds one standard deviation of the flooding term
		// (sqrt(t)*sigma*sqrt(N/2)/scale, 7.6e-6 at t=1), while without
		// flooding the error is the encoding error, ~2e-6.
		if std := math.Sqrt(float64(ks)) * p.FloodingSigma * math.Sqrt(float64(p.N())/2) / math.Exp2(float64(p.AggregateLogScale)); e < std {
			t.Fatalf("max error %g below one flooding standard deviation %g: flooding missing?", e, std)
		}
	}
}

func TestFloodingPrecisionN14(t *testing.T) {
	p := testParams(t, "ckks-n14")
	e := floodedRelease(t, p, 3, 3)
	t.Logf("%s, 3 key switchers: max error over %d slots %.3g, Precision %.3g, margin %.1f bits", p.Name, p.MaxSlots(), e, Precision(p, 3), FloodingMarginBits(p))
	if e > Precision(p, 3) {
		t.Fatalf("max error %g exceeds Precision %g", e, Precision(p, 3))
	}
}

func TestFloodingParameters(t *testing.T) {
	for _, name := range ParameterNames() {
		p := testParams(t, name)
		d := FloodingDistribution(p)
		if d.Sigma != p.FloodingSigma || d.Bound != 6*p.FloodingSigma {
			t.Errorf("%s: FloodingDistribution = %+v", name, d)
		}
		// Counts must round exactly with the largest consortium we plan for.
		if e := Precision(p, 64); e >= 0.5 {
			t.Errorf("%s: Precision(64) = %g, counts would not round", name, e)
		}
		if m := FloodingMarginBits(p); m < 25 {
			t.Errorf("%s: hiding margin %.1f bits < 25", name, m)
		}
		t.Logf("%s: Precision(1)=%.3g Precision(3)=%.3g Precision(10)=%.3g margin %.1f bits", name, Precision(p, 1), Precision(p, 3), Precision(p, 10), FloodingMarginBits(p))
	}
}

func TestFloodingBoundRejected(t *testing.T) {
	p := testParams(t, "ckks-n13")
	if err := checkFloodingBound(p); err != nil {
		t.Fatalf("registered set rejected: %v", err)
	}
	// sigma = 2^40 against 40-bit primes is the configuration that destroyed
	// results in lattigo's sampler.
	p.FloodingSigma = math.Exp2(40)
	if err := checkFloodingBound(p); err == nil {
		t.Fatal("sigma 2^40 with 40-bit primes accepted")
	}
}
