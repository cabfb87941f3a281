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

// benchRefresh is a 2-of-3 consortium on ckks-n14 with a request for one
// ciphertext at the minimum refresh level, and the group's shares.
func benchRefresh(b *testing.B) (engine.Parameters, map[PartyID]*SetupResult, RefreshRequest, []Message) {
	p := benchParams(b, "ckks-n14")
	res, err := RunSetupInProcess(p, partyIDs(3), 2, nil)
	if err != nil {
		b.Fatal(err)
	}
	level, _, err := engine.MinRefreshLevel(p, p.DefaultScale(), 2)
	if err != nil {
		b.Fatal(err)
	}
	ct := encryptAt(b, p, res["party-1"].PublicKey, make([]float64, p.MaxSlots()), level, p.LogDefaultScale())
	req := RefreshRequest{Session: "bench", Group: []PartyID{"party-1", "party-2"}, Ciphertexts: []*rlwe.Ciphertext{ct}}
	var msgs []Message
	for _, id := range req.Group {
		r := res[id]
		m, err := RefreshShare(p, id, r.Parties, r.Threshold, r.ThresholdShare, req, "")
		if err != nil {
			b.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	return p, res, req, msgs
}

// BenchmarkRefreshShareN14 is one party's share for one ciphertext at the
// minimum level (3) of ckks-n14: masks, the two key-switch shares, the
// digest and the CRP.
//
//	go test ./protocols -run '^$' -bench 'Refresh.*N14' -benchtime 10x
func BenchmarkRefreshShareN14(b *testing.B) {
	p, res, req, msgs := benchRefresh(b)
	r := res["party-1"]
	for b.Loop() {
		if _, err := RefreshShare(p, "party-1", r.Parties, r.Threshold, r.ThresholdShare, req, ""); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(msgs[0].Payload)), "share-bytes")
}

// BenchmarkRefreshFinalizeN14 is the aggregator's last step for one
// ciphertext once every share is summed: masked decryption, rescaling of
// the masked plaintext, re-encryption at the top level.
func BenchmarkRefreshFinalizeN14(b *testing.B) {
	p, _, req, msgs := benchRefresh(b)
	agg, err := NewRefreshAggregator(p, req)
	if err != nil {
		b.Fatal(err)
	}
	for _, m := range msgs {
		if _, err := agg.Step(m); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if _, err := agg.finalize(); err != nil {
			b.Fatal(err)
		}
	}
}
