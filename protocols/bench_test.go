package protocols

import (
	"math"
	"testing"
	"time"

	"github.com/synod-mpc/synod/engine"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
)

// The benchmarks compare the setup state machines (message encoding,
// validation, ECIES of Shamir shares, digests) run in one process with the
// raw lattigo floor for the same work.
//
//	go test ./protocols -run '^$' -bench . -benchtime 3x

func benchParams(b *testing.B, name string) engine.Parameters {
	p, err := engine.ParametersByName(name)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func benchSetup(b *testing.B, name string, n, t int) {
	p := benchParams(b, name)
	gal := []uint64{p.GaloisElement(1)}
	b.Run("in-process", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := RunSetupInProcess(p, partyIDs(n), t, gal); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("floor", func(b *testing.B) {
		var total time.Duration
		for i := 0; i < b.N; i++ {
			d, err := FloorSetup(p, n, t, gal)
			if err != nil {
				b.Fatal(err)
			}
			total += d
		}
		b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "floor-ms/op")
	})
}

func BenchmarkSetupN3T2CKKSN13(b *testing.B) { benchSetup(b, "ckks-n13", 3, 2) }
func BenchmarkSetupN3T2CKKSN14(b *testing.B) { benchSetup(b, "ckks-n14", 3, 2) }

func BenchmarkKeySwitchT2CKKSN14(b *testing.B) {
	p := benchParams(b, "ckks-n14")
	b.Run("floor", func(b *testing.B) {
		var total time.Duration
		for i := 0; i < b.N; i++ {
			d, err := FloorKeySwitch(p, 2)
			if err != nil {
				b.Fatal(err)
			}
			total += d
		}
		b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "floor-ms/op")
	})
	b.Run("protocol", func(b *testing.B) {
		res, err := RunSetupInProcess(p, partyIDs(3), 2, nil)
		if err != nil {
			b.Fatal(err)
		}
		kgen := rlwe.NewKeyGenerator(p.Parameters)
		_, rpk := kgen.GenKeyPairNew()
		ct := rlwe.NewEncryptor(p.Parameters, res["party-1"].PublicKey).EncryptZeroNew(p.AggregateLevel)
		ct.Scale = rlwe.NewScale(math.Exp2(float64(p.AggregateLogScale)))
		group := []PartyID{"party-1", "party-2"}
		req := KeySwitchRequest{Session: "ks", Group: group, Target: rpk, Ciphertext: ct}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			agg, err := NewKeySwitchAggregator(p, req)
			if err != nil {
				b.Fatal(err)
			}
			for _, id := range group {
				r := res[id]
				m, err := KeySwitchShare(p, id, r.Parties, r.Threshold, r.ThresholdShare, req, p.FloodingSigma, "")
				if err != nil {
					b.Fatal(err)
				}
				if _, err := agg.Step(m); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
