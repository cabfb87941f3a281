package train

import (
	"math/rand/v2"
	"testing"

	"github.com/synod-mpc/synod/engine"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
)

// benchSpec is 30 features for one party's full batch. At ckks-n14 only a
// heavy penalty fits: lambda = 8 keeps the sigmoid on [-2.4, 2.4] at degree
// 3 (the refresh needs 3 of the 7 levels); at ckks-n15, lambda = 0.01 puts
// it on [-66, 66] at degree 127.
func benchGradient(b *testing.B, params string, lambda float64) {
	p := testParams(b, params)
	keys := testKeys(b, p)
	rows := p.MaxSlots()
	truth := make([]float64, 31)
	for c := range truth {
		truth[c] = 0.1 * float64(c%5-2)
	}
	d := logisticData(rand.New(rand.NewPCG(9, 10)), rows, truth)
	pl, err := NewPlan(p, Spec{Model: Logistic, Features: 30, Lambda: lambda, Iterations: 20, Parties: 3, Rows: 3 * rows})
	if err != nil {
		b.Fatal(err)
	}
	costs, err := MeasureCosts(p, pl, keys.pk, keys.evk, 0)
	if err != nil {
		b.Fatal(err)
	}
	pl.Costs = &costs
	b.Log(pl.Explain())
	point := encryptModel(b, p, keys.sk, truth, pl.PointLevel)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := pl.Gradient(p, keys.evk, point, d.x, d.y); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(pl.GradientBytes), "sent-bytes/party/iter")
	b.ReportMetric(float64(pl.PointBytes), "received-bytes/party/iter")
}

func BenchmarkGradientN14(b *testing.B) { benchGradient(b, "ckks-n14", 8) }
func BenchmarkGradientN15(b *testing.B) { benchGradient(b, "ckks-n15", 0.01) }

// BenchmarkUpdate is the coordinator's work around one refresh at
// ckks-n15, 31 coefficients, 3 parties: Combine (sums and the penalty term)
// and Update (additions at the top level); the refresh is not included.
func BenchmarkUpdate(b *testing.B) {
	for _, momentum := range []bool{false, true} {
		name := "gd"
		if momentum {
			name = "nesterov"
		}
		b.Run(name, func(b *testing.B) {
			p := testParams(b, "ckks-n15")
			keys := testKeys(b, p)
			pl, err := NewPlan(p, Spec{Model: Logistic, Features: 30, Lambda: 0.01, Iterations: 1 << 16, Momentum: momentum, Radius: 10, Parties: 3, Rows: 30000})
			if err != nil {
				b.Fatal(err)
			}
			st, err := pl.InitialModel(p, keys.pk)
			if err != nil {
				b.Fatal(err)
			}
			zeros := make([]float64, pl.Coefficients)
			grads := [][]*rlwe.Ciphertext{
				encryptModel(b, p, keys.sk, zeros, pl.RefreshLevel),
				encryptModel(b, p, keys.sk, zeros, pl.RefreshLevel),
				encryptModel(b, p, keys.sk, zeros, pl.RefreshLevel),
			}
			step := encryptModel(b, p, keys.sk, zeros, pl.TopLevel)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := pl.Combine(p, st, grads); err != nil {
					b.Fatal(err)
				}
				if err := pl.Update(p, st, step); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(pl.Coefficients*engine.CiphertextBinarySize(p, pl.RefreshLevel)), "refresh-input-bytes/iter")
		})
	}
}
