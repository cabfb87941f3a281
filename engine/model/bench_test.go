package model

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
)

// BenchmarkLogisticRegression30 measures the logistic regression fixture (30
// features, sigmoid degree 31 on [-8, 8]) at ckks-n14 on one batch of 8192
// records: public-key encryption of the 30 column ciphertexts, evaluation,
// decryption of the output, and the three end to end. The target is
// 20,000 records/s end to end.
func BenchmarkLogisticRegression30(b *testing.B) {
	m, err := LoadONNX(fixture(b, "logreg.onnx"), ONNXOptions{Name: "logreg"})
	if err != nil {
		b.Fatal(err)
	}
	k := keys(b, "ckks-n14")
	pl, err := NewPlan(k.p, m)
	if err != nil {
		b.Fatal(err)
	}
	records := normalRecords(rand.New(rand.NewPCG(5, 30)), pl.RecordsPerBatch, m.Inputs, 4)
	cts, err := EncryptFeatures(k.p, k.pk, pl, records)
	if err != nil {
		b.Fatal(err)
	}
	outs, err := Evaluate(k.p, k.evk, m, cts)
	if err != nil {
		b.Fatal(err)
	}
	report := func(b *testing.B, start time.Time) {
		per := time.Since(start).Seconds() / float64(b.N)
		b.ReportMetric(float64(len(records))/per, "records/s")
	}

	b.Run("encrypt", func(b *testing.B) {
		start := time.Now()
		for range b.N {
			if _, err := EncryptFeatures(k.p, k.pk, pl, records); err != nil {
				b.Fatal(err)
			}
		}
		report(b, start)
	})
	b.Run("evaluate", func(b *testing.B) {
		start := time.Now()
		for range b.N {
			if _, err := Evaluate(k.p, k.evk, m, cts); err != nil {
				b.Fatal(err)
			}
		}
		report(b, start)
	})
	b.Run("decrypt", func(b *testing.B) {
		start := time.Now()
		for range b.N {
			if _, err := DecryptOutputs(k.p, k.sk, outs, len(records)); err != nil {
				b.Fatal(err)
			}
		}
		report(b, start)
	})
	b.Run("end-to-end", func(b *testing.B) {
		start := time.Now()
		for range b.N {
			var in, out []*rlwe.Ciphertext
			var err error
			if in, err = EncryptFeatures(k.p, k.pk, pl, records); err != nil {
				b.Fatal(err)
			}
			if out, err = Evaluate(k.p, k.evk, m, in); err != nil {
				b.Fatal(err)
			}
			if _, err = DecryptOutputs(k.p, k.sk, out, len(records)); err != nil {
				b.Fatal(err)
			}
		}
		report(b, start)
	})
	// Pipelined: batch k+1 is encrypted (as data parties would, in
	// parallel with the coordinator) while batch k is evaluated and
	// decrypted, on the same two cores.
	b.Run("end-to-end-pipelined", func(b *testing.B) {
		start := time.Now()
		batches := make(chan []*rlwe.Ciphertext, 1)
		go func() {
			defer close(batches)
			for range b.N {
				in, err := EncryptFeatures(k.p, k.pk, pl, records)
				if err != nil {
					b.Error(err)
					return
				}
				batches <- in
			}
		}()
		for in := range batches {
			out, err := Evaluate(k.p, k.evk, m, in)
			if err != nil {
				b.Fatal(err)
			}
			if _, err = DecryptOutputs(k.p, k.sk, out, len(records)); err != nil {
				b.Fatal(err)
			}
		}
		report(b, start)
	})
}

// BenchmarkPlainRecords measures the party side of private prediction on one
// batch of 8192 records of the logistic regression fixture (ckks-n14):
// encoding of the 30 feature columns (EncodeFeatures), evaluation against
// the encrypted weights (EvaluatePlainRecords) and PrepareRelease; and the
// three fused (EvaluateRecords, what the nodes run).
func BenchmarkPlainRecords(b *testing.B) {
	m, err := ParseJSON(fixture(b, "logreg.json"))
	if err != nil {
		b.Fatal(err)
	}
	k := keys(b, "ckks-n14")
	em, err := EncryptModelForPrediction(k.p, k.pk, m)
	if err != nil {
		b.Fatal(err)
	}
	pl, err := em.Plan(k.p)
	if err != nil {
		b.Fatal(err)
	}
	records := normalRecords(rand.New(rand.NewPCG(5, 30)), pl.RecordsPerBatch, m.Inputs, 4)
	pts, err := EncodeFeatures(k.p, pl, records)
	if err != nil {
		b.Fatal(err)
	}
	report := func(b *testing.B, start time.Time) {
		per := time.Since(start).Seconds() / float64(b.N)
		b.ReportMetric(float64(len(records))/per, "records/s")
	}
	b.Run("encode", func(b *testing.B) {
		start := time.Now()
		for range b.N {
			if _, err := EncodeFeatures(k.p, pl, records); err != nil {
				b.Fatal(err)
			}
		}
		report(b, start)
	})
	b.Run("evaluate", func(b *testing.B) {
		start := time.Now()
		for range b.N {
			outs, err := EvaluatePlainRecords(k.p, k.evk, em, pts)
			if err != nil {
				b.Fatal(err)
			}
			if err := PrepareRelease(k.p, outs); err != nil {
				b.Fatal(err)
			}
		}
		report(b, start)
	})
	b.Run("fused", func(b *testing.B) {
		start := time.Now()
		for range b.N {
			outs, err := EvaluateRecords(k.p, k.evk, em, records)
			if err != nil {
				b.Fatal(err)
			}
			if err := PrepareRelease(k.p, outs); err != nil {
				b.Fatal(err)
			}
		}
		report(b, start)
	})
}
