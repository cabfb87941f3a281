package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/protocols"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
)

// TestPrivatePredictionCollectiveKey runs private prediction as the nodes
// do, with the keys of a real (in-process) 3-party, threshold-2 setup: the
// owner encrypts the logistic regression's weights under the collective
// public key (Q-only public-key encryption), a data party evaluates them on
// its own records as plaintexts, prepares the outputs for release, two
// parties switch them to a fresh key of the data party with flooded shares,
// and the data party decrypts. Against float64: max abs error < 1e-3,
// label agreement >= 99.5%.
func TestPrivatePredictionCollectiveKey(t *testing.T) {
	if testing.Short() {
		t.Skip("LogN=14 setup")
	}
	p, err := engine.ParametersByName("ckks-n14")
	if err != nil {
		t.Fatal(err)
	}
	parties := []protocols.PartyID{"p1", "p2", "p3"}
	res, err := protocols.RunSetupInProcess(p, parties, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseJSON(fixture(t, "logreg.json"))
	if err != nil {
		t.Fatal(err)
	}
	pk := res["p1"].PublicKey
	em, err := EncryptModelForPrediction(p, pk, m)
	if err != nil {
		t.Fatal(err)
	}
	// The upload travels encoded: decode it as the parties do.
	b, err := em.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if em, err = UnmarshalEncryptedModel(p, b); err != nil {
		t.Fatal(err)
	}
	t.Logf("encrypted model: %d ciphertexts, %d bytes", em.Ciphertexts(), len(b))
	pl, err := em.Plan(p)
	if err != nil {
		t.Fatal(err)
	}
	records := normalRecords(rand.New(rand.NewPCG(7, 30)), 3000, m.Inputs, 4)
	pts, err := EncodeFeatures(p, pl, records)
	if err != nil {
		t.Fatal(err)
	}
	evk := rlwe.NewMemEvaluationKeySet(res["p1"].RelinearizationKey)
	outs, err := EvaluatePlainRecords(p, evk, em, pts)
	if err != nil {
		t.Fatal(err)
	}
	if err := PrepareRelease(p, outs); err != nil {
		t.Fatal(err)
	}
	sk, target := engine.GenKeyPair(p)
	req := protocols.KeySwitchRequest{Session: "s", Group: []protocols.PartyID{"p1", "p2"}, Target: target, Ciphertext: outs[0]}
	agg, err := protocols.NewKeySwitchAggregator(p, req)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range req.Group {
		msg, err := protocols.KeySwitchShare(p, id, parties, 2, res[id].ThresholdShare, req, p.FloodingSigma, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := agg.Step(msg); err != nil {
			t.Fatal(err)
		}
	}
	got, err := engine.DecryptVector(p, sk, agg.Result(), len(records))
	if err != nil {
		t.Fatal(err)
	}
	worst, agree := 0.0, 0
	for j, r := range records {
		want, _ := m.Predict(r)
		worst = math.Max(worst, math.Abs(got[j]-want[0]))
		if (got[j] >= 0.5) == (want[0] >= 0.5) {
			agree++
		}
	}
	rate := float64(agree) / float64(len(records))
	t.Logf("max abs error %.2e, label agreement %.4f", worst, rate)
	if worst > 1e-3 || rate < 0.995 {
		t.Fatalf("max abs error %.2e (want < 1e-3), agreement %.4f (want >= 0.995)", worst, rate)
	}
	// A party without the prediction plan's headroom cannot release.
	if err := PrepareRelease(p, []*rlwe.Ciphertext{agg.Result()}); err == nil {
		t.Fatal("PrepareRelease accepted a ciphertext already at the release scale")
	}
}

func TestPredictionPlanTooDeep(t *testing.T) {
	p, err := engine.ParametersByName("ckks-n13")
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseJSON(fixture(t, "logreg.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewPredictionPlan(p, architecture(m)); err == nil {
		t.Fatal("logistic regression with a degree-31 sigmoid accepted on ckks-n13")
	}
}

func TestMetricsFromBins(t *testing.T) {
	b := Bins{ROC: 10, Calibration: 5}
	scores := []float64{0.05, 0.15, 0.65, 0.95, 0.5, 0.49, 1, 0}
	labels := []float64{0, 0, 1, 1, 0, 1, 1, 0}
	cells := make([]float64, b.Cells())
	if err := b.BinScores(cells, scores, labels); err != nil {
		t.Fatal(err)
	}
	m, err := b.Metrics(cells)
	if err != nil {
		t.Fatal(err)
	}
	// >= 0.5 predicts 1: 0.65, 0.95, 0.5, 1 -> TP 3 (0.65, 0.95, 1), FP 1 (0.5).
	if m.Records != 8 || m.Positives != 4 || m.TruePositives != 3 || m.FalsePositives != 1 || m.TrueNegatives != 3 || m.FalseNegatives != 1 {
		t.Fatalf("confusion: %+v", m)
	}
	brier := 0.0
	for i := range scores {
		brier += (scores[i] - labels[i]) * (scores[i] - labels[i])
	}
	if math.Abs(m.Brier-brier/8) > 1e-12 || m.Accuracy != 0.75 {
		t.Fatalf("brier %v want %v, accuracy %v", m.Brier, brier/8, m.Accuracy)
	}
	// No two scores share a bin across classes here: binned AUC = exact AUC.
	if exact := ExactAUC(scores, labels); math.Abs(m.AUC-exact) > 1e-12 {
		t.Fatalf("auc %v, exact %v", m.AUC, exact)
	}
	if _, err := (Bins{ROC: 9, Calibration: 3}).Metrics(make([]float64, 28)); err == nil {
		t.Fatal("odd bin count accepted")
	}
	if err := b.BinScores(cells, []float64{0.3}, []float64{2}); err == nil {
		t.Fatal("label 2 accepted")
	}
}

// FuzzUnmarshalEncryptedModel: hostile encrypted-model uploads are refused
// with an error, never a panic.
func FuzzUnmarshalEncryptedModel(f *testing.F) {
	p, err := engine.ParametersByName("ckks-n13")
	if err != nil {
		f.Fatal(err)
	}
	kp := keys(f, "ckks-n13")
	lin := &Model{Name: "lin", Inputs: 2, Layers: []Layer{{Weights: [][]float64{{0.5, -1}}, Bias: []float64{0.25}}}}
	em, err := EncryptModelForPrediction(p, kp.pk, lin)
	if err != nil {
		f.Fatal(err)
	}
	valid, err := em.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	if _, err := UnmarshalEncryptedModel(p, valid); err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add([]byte(encryptedModelTag))
	f.Add([]byte("garbage"))
	bad := append([]byte(nil), valid...)
	bad[len(bad)-9] ^= 0xff
	f.Add(bad)
	f.Fuzz(func(t *testing.T, b []byte) {
		em, err := UnmarshalEncryptedModel(p, b)
		if err == nil && em == nil {
			t.Fatal("nil model without error")
		}
	})
}
