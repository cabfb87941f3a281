package train

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/synod-mpc/synod/engine"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// The tests run the circuits under a single secret key: the consortium's
// collective key is a sum of the parties' secrets, and nothing in this
// package depends on how the key was made. The collective refresh (package
// protocols) is simulated with the ideal secret key by simulateRefresh.

func testParams(tb testing.TB, name string) engine.Parameters {
	tb.Helper()
	p, err := engine.ParametersByName(name)
	if err != nil {
		tb.Fatalf("ParametersByName(%q): %v", name, err)
	}
	return p
}

type testKeySet struct {
	sk  *rlwe.SecretKey
	pk  *rlwe.PublicKey
	evk rlwe.EvaluationKeySet
}

var keyCache sync.Map // parameter set name -> *testKeySet

// testKeys generates a key set per parameter set, once.
func testKeys(tb testing.TB, p engine.Parameters) *testKeySet {
	tb.Helper()
	if ks, ok := keyCache.Load(p.Name); ok {
		return ks.(*testKeySet)
	}
	kgen := hefloat.NewKeyGenerator(p.Parameters)
	sk, pk := kgen.GenKeyPairNew()
	ks := &testKeySet{sk: sk, pk: pk, evk: rlwe.NewMemEvaluationKeySet(kgen.GenRelinearizationKeyNew(sk))}
	v, _ := keyCache.LoadOrStore(p.Name, ks)
	return v.(*testKeySet)
}

// decryptSlots decrypts every slot of ct.
func decryptSlots(tb testing.TB, p engine.Parameters, sk *rlwe.SecretKey, ct *rlwe.Ciphertext) []float64 {
	tb.Helper()
	v, err := engine.DecryptVector(p, sk, ct, p.MaxSlots())
	if err != nil {
		tb.Fatalf("decrypt: %v", err)
	}
	return v
}

// simulateRefresh stands in for the collective refresh with the slot-mean
// transform: it decrypts each ciphertext with the ideal secret key, takes
// the mean of its slots in float64 and encrypts that value in every slot at
// the top level and the default scale. The real protocol adds its masking
// noise (about the ciphertext noise); this simulation adds a fresh
// encryption's.
func simulateRefresh(tb testing.TB, p engine.Parameters, sk *rlwe.SecretKey, cts []*rlwe.Ciphertext) []*rlwe.Ciphertext {
	tb.Helper()
	out := make([]*rlwe.Ciphertext, len(cts))
	for i, ct := range cts {
		mean := slotMean(decryptSlots(tb, p, sk, ct))
		out[i] = encryptConstant(tb, p, sk, mean, p.MaxLevel())
	}
	return out
}

func slotMean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// encryptConstant encrypts v in every slot at level, default scale.
func encryptConstant(tb testing.TB, p engine.Parameters, sk *rlwe.SecretKey, v float64, level int) *rlwe.Ciphertext {
	tb.Helper()
	vals := make([]float64, p.MaxSlots())
	for j := range vals {
		vals[j] = v
	}
	pt := hefloat.NewPlaintext(p.Parameters, level)
	if err := hefloat.NewEncoder(p.Parameters).Encode(vals, pt); err != nil {
		tb.Fatal(err)
	}
	ct := hefloat.NewCiphertext(p.Parameters, 1, level)
	if err := hefloat.NewEncryptor(p.Parameters, sk).Encrypt(pt, ct); err != nil {
		tb.Fatal(err)
	}
	return ct
}

// encryptModel encrypts the coefficients w at level.
func encryptModel(tb testing.TB, p engine.Parameters, sk *rlwe.SecretKey, w []float64, level int) []*rlwe.Ciphertext {
	tb.Helper()
	cts := make([]*rlwe.Ciphertext, len(w))
	for c, v := range w {
		cts[c] = encryptConstant(tb, p, sk, v, level)
	}
	return cts
}

// decryptModel reads slot 0 of each coefficient.
func decryptModel(tb testing.TB, p engine.Parameters, sk *rlwe.SecretKey, cts []*rlwe.Ciphertext) []float64 {
	tb.Helper()
	w := make([]float64, len(cts))
	for c, ct := range cts {
		v, err := engine.DecryptVector(p, sk, ct, 1)
		if err != nil {
			tb.Fatal(err)
		}
		w[c] = v[0]
	}
	return w
}

// dataset is column-packed rows: x[c][j] is feature c+1 of row j, scaled
// to [-1, 1]; y[j] the label.
type dataset struct {
	x [][]float64
	y []float64
}

func (d dataset) rows() int { return len(d.y) }

// slice returns rows [a, b).
func (d dataset) slice(a, b int) dataset {
	out := dataset{x: make([][]float64, len(d.x)), y: d.y[a:b]}
	for c := range d.x {
		out.x[c] = d.x[c][a:b]
	}
	return out
}

// logit is z_j.w.
func (d dataset) logit(w []float64, j int) float64 {
	z := w[0]
	for c := range d.x {
		z += w[c+1] * d.x[c][j]
	}
	return z
}

// logisticData draws n rows with features uniform in [-1, 1] and labels
// from a logistic model with coefficients truth.
func logisticData(rng *rand.Rand, n int, truth []float64) dataset {
	d := dataset{x: make([][]float64, len(truth)-1), y: make([]float64, n)}
	for c := range d.x {
		d.x[c] = make([]float64, n)
		for j := range d.x[c] {
			d.x[c][j] = 2*rng.Float64() - 1
		}
	}
	for j := range d.y {
		if rng.Float64() < sigmoid(d.logit(truth, j)) {
			d.y[j] = 1
		}
	}
	return d
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
