package model

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/synod-mpc/synod/engine"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// fixture reads a file of configs/models.
func fixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "configs", "models", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

type testKeys struct {
	p   engine.Parameters
	sk  *rlwe.SecretKey
	pk  *rlwe.PublicKey
	evk rlwe.EvaluationKeySet
}

var keyCache sync.Map

// keys returns a parameter set and locally generated keys (the test harness
// holds the secret key), once per parameter set.
func keys(tb testing.TB, name string) testKeys {
	tb.Helper()
	if k, ok := keyCache.Load(name); ok {
		return k.(testKeys)
	}
	p, err := engine.ParametersByName(name)
	if err != nil {
		tb.Fatal(err)
	}
	kgen := hefloat.NewKeyGenerator(p.Parameters)
	sk, pk := kgen.GenKeyPairNew()
	k := testKeys{p: p, sk: sk, pk: pk, evk: rlwe.NewMemEvaluationKeySet(kgen.GenRelinearizationKeyNew(sk))}
	keyCache.Store(name, k)
	return k
}

// normalRecords draws n records of d standard normal features, clipped to
// [-clip, clip].
func normalRecords(rng *rand.Rand, n, d int, clip float64) [][]float64 {
	recs := make([][]float64, n)
	for j := range recs {
		recs[j] = make([]float64, d)
		for i := range recs[j] {
			recs[j][i] = math.Max(-clip, math.Min(clip, rng.NormFloat64()))
		}
	}
	return recs
}

// runEncrypted encrypts records, evaluates m and decrypts the predictions.
func runEncrypted(t *testing.T, k testKeys, m *Model, records [][]float64) [][]float64 {
	t.Helper()
	pl, err := NewPlan(k.p, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("plan:\n%s", pl.Explain())
	cts, err := EncryptFeatures(k.p, k.pk, pl, records)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := Evaluate(k.p, k.evk, m, cts)
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != m.Outputs() {
		t.Fatalf("%d outputs, expected %d", len(outs), m.Outputs())
	}
	got, err := DecryptOutputs(k.p, k.sk, outs, len(records))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// compare returns the max absolute error against the exact and the
// polynomial float64 evaluations, and the agreement of labels (p > 0.5) of
// output 0 with the exact model.
func compare(t *testing.T, m *Model, records, got [][]float64) (maxExact, maxApprox, agreement float64) {
	t.Helper()
	agree := 0
	for j, r := range records {
		want, err := m.Predict(r)
		if err != nil {
			t.Fatal(err)
		}
		approx, err := m.PredictApprox(r)
		if err != nil {
			t.Fatal(err)
		}
		for k := range want {
			maxExact = math.Max(maxExact, math.Abs(got[j][k]-want[k]))
			maxApprox = math.Max(maxApprox, math.Abs(got[j][k]-approx[k]))
		}
		if (got[j][0] > 0.5) == (want[0] > 0.5) {
			agree++
		}
	}
	return maxExact, maxApprox, float64(agree) / float64(len(records))
}

// TestLogisticRegression30 runs the torch-exported logistic regression (30
// standardized features) on a full batch of 8192 records at ckks-n14.
func TestLogisticRegression30(t *testing.T) {
	fromJSON, err := ParseJSON(fixture(t, "logreg.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := LoadONNX(fixture(t, "logreg.onnx"), ONNXOptions{Name: "logreg"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Inputs != 30 || m.Outputs() != 1 || len(m.Layers) != 1 || m.Layers[0].Activation != Sigmoid {
		t.Fatalf("onnx model: %s", m)
	}
	for i, w := range m.Layers[0].Weights[0] {
		if d := math.Abs(w - fromJSON.Layers[0].Weights[0][i]); d > 1e-7 {
			t.Fatalf("weight %d: onnx %v, json %v", i, w, fromJSON.Layers[0].Weights[0][i])
		}
	}

	k := keys(t, "ckks-n14")
	pl, err := NewPlan(k.p, m)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 30))
	records := normalRecords(rng, pl.RecordsPerBatch, 30, 4)
	for j, r := range records {
		if err := m.CheckRecord(r); err != nil {
			t.Fatalf("record %d: %v", j, err)
		}
	}
	got := runEncrypted(t, k, m, records)
	maxExact, maxApprox, agreement := compare(t, m, records, got)
	t.Logf("logistic regression, 30 features, %d records, ckks-n14: max |encrypted - float64| = %.2e (vs the polynomial: %.2e), label agreement %.4f%%",
		len(records), maxExact, maxApprox, 100*agreement)
	if maxExact >= 1e-3 {
		t.Errorf("max absolute error %.2e, want < 1e-3", maxExact)
	}
	if agreement < 0.995 {
		t.Errorf("label agreement %.4f, want >= 0.995", agreement)
	}
}

// TestLogisticRegressionN13TooDeep: ckks-n13 has 3 levels; the sigmoid
// polynomial that meets the error target needs 5 more than the weights.
func TestLogisticRegressionN13TooDeep(t *testing.T) {
	m, err := ParseJSON(fixture(t, "logreg.json"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewPlan(keys(t, "ckks-n13").p, m)
	if !errors.Is(err, ErrTooDeep) || !strings.Contains(err.Error(), "needs 6 levels") || !strings.Contains(err.Error(), "has 3") {
		t.Fatalf("expected too deep (6 vs 3), got %v", err)
	}
	t.Log(err)
}

// TestMLPFromONNX runs the torch-exported MLP 4 -> 8 (tanh) -> 1 (sigmoid)
// on raw features (standardization folded in) at ckks-n15: with tanh on
// [-6, 6] (degree 63) and sigmoid on [-8, 8] (degree 31) it needs 13 levels.
func TestMLPFromONNX(t *testing.T) {
	fromJSON, err := ParseJSON(fixture(t, "mlp.json"))
	if err != nil {
		t.Fatal(err)
	}
	opts := ONNXOptions{
		Name:      "mlp",
		Intervals: [][2]float64{fromJSON.Layers[0].Interval, fromJSON.Layers[1].Interval},
		Mean:      fromJSON.Mean, Std: fromJSON.Std,
	}
	m, err := LoadONNX(fixture(t, "mlp.onnx"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if m.String() != "mlp: 4 -> 8 tanh[-6,6] -> 1 sigmoid[-8,8]" {
		t.Fatalf("onnx model: %s", m)
	}

	rng := rand.New(rand.NewPCG(2, 4))
	records := normalRecords(rng, 2048, 4, 3)
	for j, r := range records {
		for i := range r {
			r[i] = fromJSON.Mean[i] + fromJSON.Std[i]*r[i]
		}
		if err := m.CheckRecord(r); err != nil {
			t.Fatalf("record %d: %v", j, err)
		}
		a, _ := m.Predict(r)
		b, _ := fromJSON.Predict(r)
		if math.Abs(a[0]-b[0]) > 1e-6 {
			t.Fatalf("record %d: onnx model %v, json model %v", j, a, b)
		}
	}

	k := keys(t, "ckks-n14")
	if _, err := NewPlan(k.p, m); !errors.Is(err, ErrTooDeep) {
		t.Fatalf("ckks-n14: expected too deep, got %v", err)
	} else {
		t.Log(err)
	}

	if testing.Short() {
		t.Skip("ckks-n15 evaluation skipped in -short mode")
	}
	got := runEncrypted(t, keys(t, "ckks-n15"), m, records)
	maxExact, maxApprox, agreement := compare(t, m, records, got)
	t.Logf("MLP 4-8-1, %d records, ckks-n15: max |encrypted - float64| = %.2e (vs the polynomials: %.2e), label agreement %.4f%%",
		len(records), maxExact, maxApprox, 100*agreement)
	if maxExact >= 1e-4 {
		t.Errorf("max absolute error %.2e, want < 1e-4", maxExact)
	}
}

// TestLinearRegressionN13: linear regression needs one level, so the small
// parameter set runs it.
func TestLinearRegressionN13(t *testing.T) {
	m := &Model{Name: "linreg", Inputs: 3, Mean: []float64{170, 70, 40}, Std: []float64{10, 15, 12},
		Layers: []Layer{{Weights: [][]float64{{2.5, -1.25, 0.5}}, Bias: []float64{100}}}}
	k := keys(t, "ckks-n13")
	rng := rand.New(rand.NewPCG(3, 3))
	records := normalRecords(rng, 500, 3, 4)
	for _, r := range records {
		for i := range r {
			r[i] = m.Mean[i] + m.Std[i]*r[i]
		}
	}
	pl, err := NewPlan(k.p, m)
	if err != nil {
		t.Fatal(err)
	}
	if pl.OutputLevel != 1 || pl.InputLevel != 2 || pl.OutputBound < 1e14 {
		t.Fatalf("linear output: level %d (input %d), bound %g; expected the headroom of level 1", pl.OutputLevel, pl.InputLevel, pl.OutputBound)
	}
	got := runEncrypted(t, k, m, records)
	maxExact, _, _ := compare(t, m, records, got)
	t.Logf("linear regression, ckks-n13: max abs error %.2e", maxExact)
	if maxExact > 1e-4 {
		t.Errorf("max absolute error %.2e", maxExact)
	}
}

// TestReLUMLP: a ReLU layer (degree 15 on [-4, 4]) then a linear output, at
// ckks-n14 (6 of 7 levels). Compared with the polynomial evaluation, since
// the ReLU interpolant itself is off by up to ~0.1 near 0.
func TestReLUMLP(t *testing.T) {
	m := &Model{Name: "relu", Inputs: 3, Layers: []Layer{
		{Weights: [][]float64{{1, -0.5, 0.25}, {-0.3, 0.8, 0.1}, {0.5, 0.5, -0.5}, {0.2, 0.1, 0.9}},
			Bias: []float64{0.1, -0.2, 0, 0.3}, Activation: ReLU, Interval: [2]float64{-4, 4}, Degree: 15},
		{Weights: [][]float64{{1, -1, 0.5, 0.25}}, Bias: []float64{0.5}},
	}}
	k := keys(t, "ckks-n14")
	records := normalRecords(rand.New(rand.NewPCG(4, 4)), 1000, 3, 2)
	got := runEncrypted(t, k, m, records)
	maxExact, maxApprox, _ := compare(t, m, records, got)
	t.Logf("ReLU MLP 3-4-1, ckks-n14: max error vs polynomial %.2e, vs exact ReLU %.2e", maxApprox, maxExact)
	if maxApprox > 1e-4 {
		t.Errorf("max error against the polynomial evaluation %.2e", maxApprox)
	}
}

func TestEvaluateRefusesBadInputs(t *testing.T) {
	m, err := ParseJSON(fixture(t, "logreg.json"))
	if err != nil {
		t.Fatal(err)
	}
	k := keys(t, "ckks-n14")
	pl, err := NewPlan(k.p, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Evaluate(k.p, k.evk, m, nil); err == nil || !strings.Contains(err.Error(), "0 ciphertexts for 30") {
		t.Errorf("no ciphertexts: %v", err)
	}
	low := make([]*rlwe.Ciphertext, 30)
	for i := range low {
		low[i] = hefloat.NewCiphertext(k.p.Parameters, 1, pl.Levels-1)
	}
	if _, err := Evaluate(k.p, k.evk, m, low); err == nil || !strings.Contains(err.Error(), "needs 6") {
		t.Errorf("low level: %v", err)
	}
	if _, err := EncryptFeatures(k.p, k.pk, pl, [][]float64{make([]float64, 29)}); err == nil {
		t.Error("short record accepted")
	}
	if _, err := EncryptFeatures(k.p, k.pk, pl, [][]float64{append(make([]float64, 29), math.NaN())}); err == nil {
		t.Error("NaN accepted")
	}
	bad := *m
	bad.Layers = []Layer{{Weights: m.Layers[0].Weights, Bias: m.Layers[0].Bias, Activation: "softmax", Interval: [2]float64{-1, 1}}}
	if _, err := NewPlan(k.p, &bad); err == nil || !strings.Contains(err.Error(), "softmax") {
		t.Errorf("unsupported activation: %v", err)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	m, err := ParseJSON(fixture(t, "mlp.json"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	m2, err := ParseJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.String() != m2.String() || m2.Mean[0] != m.Mean[0] || m2.Layers[1].Weights[0][3] != m.Layers[1].Weights[0][3] {
		t.Fatalf("round trip: %s vs %s", m, m2)
	}
	for _, bad := range []string{
		`{"inputs": 1, "layers": [{"weights": [[1]], "bias": [0], "activation": "sigmoid"}]}`,
		`{"inputs": 1, "layers": [{"weights": [[1]], "bias": [0]}], "extra": 1}`,
		`{"inputs": 2, "layers": [{"weights": [[1]], "bias": [0]}]}`,
		`{"inputs": 1, "layers": []}`,
		`{"inputs": 1, "layers": [{"weights": [[1]], "bias": [0]}]} {}`,
	} {
		if _, err := ParseJSON([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

// TestEncryptedWeights runs the logistic regression and the ReLU MLP with
// encrypted weights at ckks-n14.
func TestEncryptedWeights(t *testing.T) {
	lr, err := LoadONNX(fixture(t, "logreg.onnx"), ONNXOptions{Name: "logreg"})
	if err != nil {
		t.Fatal(err)
	}
	mlp := &Model{Name: "mlp", Inputs: 3, Mean: []float64{1, 2, 3}, Std: []float64{2, 2, 2}, Layers: []Layer{
		{Weights: [][]float64{{1, -0.5, 0.25}, {-0.3, 0.8, 0.1}}, Bias: []float64{0.1, -0.2}, Activation: Tanh, Interval: [2]float64{-4, 4}, Degree: 15},
		{Weights: [][]float64{{1, -1}}, Bias: []float64{0.5}},
	}}
	k := keys(t, "ckks-n14")
	for _, c := range []struct {
		m    *Model
		n    int
		clip float64
	}{{lr, 4096, 4}, {mlp, 1000, 2}} {
		pl, err := NewEncryptedPlan(k.p, c.m)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("plan:\n%s", pl.Explain())
		em, err := EncryptModel(k.p, k.pk, c.m)
		if err != nil {
			t.Fatal(err)
		}
		if em.Ciphertexts() != pl.WeightCiphertexts {
			t.Fatalf("%d weight ciphertexts, plan says %d", em.Ciphertexts(), pl.WeightCiphertexts)
		}
		records := normalRecords(rand.New(rand.NewPCG(6, 6)), c.n, c.m.Inputs, c.clip)
		cts, err := EncryptFeatures(k.p, k.pk, pl, records)
		if err != nil {
			t.Fatal(err)
		}
		outs, err := EvaluateEncrypted(k.p, k.evk, em, cts)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecryptOutputs(k.p, k.sk, outs, len(records))
		if err != nil {
			t.Fatal(err)
		}
		maxExact, maxApprox, _ := compare(t, c.m, records, got)
		t.Logf("%s with encrypted weights: max error vs float64 %.2e, vs polynomial %.2e", c.m.Name, maxExact, maxApprox)
		if maxApprox > 5e-5 {
			t.Errorf("%s: max error against the polynomial evaluation %.2e", c.m.Name, maxApprox)
		}
	}
}
