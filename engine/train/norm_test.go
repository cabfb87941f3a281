package train

import (
	"math"
	"strings"
	"testing"

	"github.com/synod-mpc/synod/engine"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
)

// TestNormCheck: NormSlack decrypts to R^2 - ||w||^2, and the masked sign
// reads inside exactly when ||w|| <= R, on both sides of the boundary.
func TestNormCheck(t *testing.T) {
	p := testParams(t, "ckks-n14")
	keys := testKeys(t, p)
	w := []float64{3, -4, 0.5, 1.25} // ||w||^2 = 26.8125
	point := encryptModel(t, p, keys.sk, w, p.MaxLevel())
	norm2 := 26.8125
	for _, radius := range []float64{1, 5, 5.178, 5.179, 6, 100} {
		slack, err := NormSlack(p, keys.evk, point, radius)
		if err != nil {
			t.Fatal(err)
		}
		got := decryptSlots(t, p, keys.sk, slack)
		want := radius*radius - norm2
		for _, j := range []int{0, 1, p.MaxSlots() - 1} {
			if math.Abs(got[j]-want) > 1e-6*radius*radius {
				t.Errorf("R=%g: slack slot %d = %.8g, want %.8g", radius, j, got[j], want)
			}
		}
		masks := make([]*rlwe.Ciphertext, 3)
		for i := range masks {
			if masks[i], err = EncryptSignMask(p, keys.pk, slack.Level()); err != nil {
				t.Fatal(err)
			}
		}
		tct, err := MaskedSign(p, keys.evk, slack, masks)
		if err != nil {
			t.Fatal(err)
		}
		v, err := engine.DecryptVector(p, keys.sk, tct, 1)
		if err != nil {
			t.Fatal(err)
		}
		inside, err := InsideBall(v)
		if err != nil {
			t.Fatal(err)
		}
		if inside != (want > 0) {
			t.Errorf("R=%g: inside=%v with slack %g", radius, inside, want)
		}
		// The magnitude is blurred by the masks: |T| / |slack| is a sum
		// of three masks in [2^12, 2^20).
		ratio := math.Abs(v[0] / want)
		if ratio < 3*engine.CohortMaskMin*0.999 || ratio > 3*engine.CohortMaskMax*1.001 {
			t.Errorf("R=%g: |T/slack| = %g outside [3*2^12, 3*2^20]", radius, ratio)
		}
	}
	if _, err := NormSlack(p, keys.evk, point, MaxCheckedRadius*2); err == nil || !strings.Contains(err.Error(), "radius") {
		t.Errorf("radius beyond MaxCheckedRadius: got %v", err)
	}
	if _, err := NormSlack(p, nil, point, 5); err == nil {
		t.Error("no keys accepted")
	}
	if _, err := InsideBall([]float64{math.NaN()}); err == nil {
		t.Error("NaN read as a sign")
	}
}

// TestCombineUpdate checks the coordinator's arithmetic on known values:
// Combine adds the parties' gradients and -eta*lambda*point (+ beta*v), and
// Update adds the refreshed step to w (and sets v and y = w + beta*v).
func TestCombineUpdate(t *testing.T) {
	p := testParams(t, "ckks-n14")
	keys := testKeys(t, p)
	for _, momentum := range []bool{false, true} {
		pl, err := NewPlan(p, Spec{Model: Linear, Features: 2, Lambda: 0.3, Iterations: 2, Momentum: momentum, Parties: 2, Rows: 100})
		if err != nil {
			t.Fatal(err)
		}
		w, v := []float64{0.5, -1.25, 2}, []float64{0.1, 0.2, -0.3}
		st := &State{W: encryptModel(t, p, keys.sk, w, pl.TopLevel)}
		y := w
		if momentum {
			y = []float64{0.7, -1, 1.5}
			st.V = encryptModel(t, p, keys.sk, v, pl.TopLevel)
			st.Y = encryptModel(t, p, keys.sk, y, pl.PointLevel)
		}
		g1, g2 := []float64{0.01, -0.02, 0.03}, []float64{0.002, 0.004, -0.001}
		grads := [][]*rlwe.Ciphertext{
			encryptModel(t, p, keys.sk, g1, pl.RefreshLevel),
			encryptModel(t, p, keys.sk, g2, pl.RefreshLevel),
		}
		combined, err := pl.Combine(p, st, grads)
		if err != nil {
			t.Fatal(err)
		}
		got := decryptModel(t, p, keys.sk, combined)
		for c := range got {
			want := g1[c] + g2[c] - pl.StepSize*pl.Spec.Lambda*y[c]
			if momentum {
				want += pl.Beta * v[c]
			}
			if math.Abs(got[c]-want) > 1e-7 || combined[c].Level() != pl.RefreshLevel {
				t.Errorf("momentum %v: combined %d = %.9f at level %d, want %.9f at level %d", momentum, c, got[c], combined[c].Level(), want, pl.RefreshLevel)
			}
		}
		step := []float64{0.05, -0.01, 0.02}
		if err := pl.Update(p, st, encryptModel(t, p, keys.sk, step, pl.TopLevel)); err != nil {
			t.Fatal(err)
		}
		gotW := decryptModel(t, p, keys.sk, st.W)
		gotY := decryptModel(t, p, keys.sk, st.Point())
		for c := range w {
			wantW := w[c] + step[c]
			wantY := wantW
			if momentum {
				wantY = wantW + pl.Beta*step[c]
			}
			if math.Abs(gotW[c]-wantW) > 1e-7 || math.Abs(gotY[c]-wantY) > 1e-7 {
				t.Errorf("momentum %v: coefficient %d: w %.9f y %.9f, want %.9f and %.9f", momentum, c, gotW[c], gotY[c], wantW, wantY)
			}
		}
		if st.Iteration != 1 || st.Point()[0].Level() != pl.PointLevel {
			t.Errorf("momentum %v: iteration %d, point at level %d (want 1 and %d)", momentum, st.Iteration, st.Point()[0].Level(), pl.PointLevel)
		}
		// A gradient from a third party, or at the wrong level, is
		// refused; so is an update beyond the plan's iterations.
		if _, err := pl.Combine(p, st, append(grads, grads[0])); err == nil {
			t.Errorf("momentum %v: 3 gradients for 2 parties accepted", momentum)
		}
		if _, err := pl.Combine(p, st, [][]*rlwe.Ciphertext{grads[0], encryptModel(t, p, keys.sk, g2, pl.RefreshLevel+1)}); err == nil {
			t.Errorf("momentum %v: a gradient above the refresh level accepted", momentum)
		}
		if err := pl.Update(p, st, encryptModel(t, p, keys.sk, step, pl.TopLevel)); err != nil {
			t.Fatal(err)
		}
		if err := pl.Update(p, st, encryptModel(t, p, keys.sk, step, pl.TopLevel)); err == nil {
			t.Errorf("momentum %v: a third update for a 2-iteration plan accepted", momentum)
		}
	}
}

// TestInitialModel: fresh encryptions of zero at the top level, two
// encryptions of the same zero differing (they are randomized).
func TestInitialModel(t *testing.T) {
	p := testParams(t, "ckks-n14")
	keys := testKeys(t, p)
	pl, err := NewPlan(p, Spec{Model: Linear, Features: 3, Lambda: 1, Iterations: 2, Momentum: true, Parties: 3, Rows: 100})
	if err != nil {
		t.Fatal(err)
	}
	st, err := pl.InitialModel(p, keys.pk)
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range [][]*rlwe.Ciphertext{st.W, st.V, st.Y} {
		for c, v := range decryptModel(t, p, keys.sk, set) {
			if math.Abs(v) > 1e-8 {
				t.Errorf("initial coefficient %d decrypts to %g", c, v)
			}
		}
	}
	if st.W[0].Level() != pl.TopLevel || st.Y[0].Level() != pl.PointLevel {
		t.Errorf("levels %d and %d, want %d and %d", st.W[0].Level(), st.Y[0].Level(), pl.TopLevel, pl.PointLevel)
	}
	if st.W[0].Value[1].Equal(&st.W[1].Value[1]) {
		t.Error("two coefficients share their randomness")
	}
}
