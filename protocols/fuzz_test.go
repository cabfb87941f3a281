package protocols

import (
	"bytes"
	"crypto/rand"
	"errors"
	"math"
	"testing"

	"github.com/synod-mpc/synod/engine"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/utils/sampling"
	"go.dedis.ch/kyber/v3"
	"go.dedis.ch/kyber/v3/group/edwards25519"
)

// The fuzz targets feed arbitrary bytes to every decoder that Step (or the
// node) applies to untrusted payloads. Property: no panic, and whatever
// decodes re-encodes to the same bytes.

func fuzzParams(f *testing.F) (engine.Parameters, rlwe.Parameters) {
	p, err := engine.ParametersByName("ckks-n13")
	if err != nil {
		f.Fatal(err)
	}
	return p, *p.GetRLWEParameters()
}

func fuzzCRS(f *testing.F) sampling.PRNG {
	prng, err := sampling.NewKeyedPRNG([]byte("fuzz"))
	if err != nil {
		f.Fatal(err)
	}
	return prng
}

func addSeeds(f *testing.F, valid []byte) {
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add(append(bytes.Clone(valid), 1))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
}

func FuzzDecodeCKGShare(f *testing.F) {
	_, params := fuzzParams(f)
	ckg := mhe.NewPublicKeyGenProtocol(params)
	sk := rlwe.NewKeyGenerator(params).GenSecretKeyNew()
	sh := ckg.AllocateShare()
	ckg.GenShare(sk, ckg.SampleCRP(fuzzCRS(f)), &sh)
	addSeeds(f, EncodeCKGShare(params, sh))
	f.Fuzz(func(t *testing.T, b []byte) {
		sh, err := DecodeCKGShare(params, b)
		if err == nil && !bytes.Equal(EncodeCKGShare(params, sh), b) {
			t.Fatal("re-encoding differs")
		}
	})
}

func FuzzDecodeRKGShare(f *testing.F) {
	_, params := fuzzParams(f)
	rkg := mhe.NewRelinearizationKeyGenProtocol(params)
	sk := rlwe.NewKeyGenerator(params).GenSecretKeyNew()
	eph, r1, _ := rkg.AllocateShare()
	rkg.GenShareRoundOne(sk, rkg.SampleCRP(fuzzCRS(f)), eph, &r1)
	addSeeds(f, EncodeRKGShare(params, r1))
	f.Fuzz(func(t *testing.T, b []byte) {
		sh, err := DecodeRKGShare(params, b)
		if err == nil && !bytes.Equal(EncodeRKGShare(params, sh), b) {
			t.Fatal("re-encoding differs")
		}
	})
}

func FuzzDecodeGKGShare(f *testing.F) {
	_, params := fuzzParams(f)
	gkg := mhe.NewGaloisKeyGenProtocol(params)
	sk := rlwe.NewKeyGenerator(params).GenSecretKeyNew()
	sh := gkg.AllocateShare()
	if err := gkg.GenShare(sk, params.GaloisElement(1), gkg.SampleCRP(fuzzCRS(f)), &sh); err != nil {
		f.Fatal(err)
	}
	addSeeds(f, EncodeGKGShare(params, sh))
	f.Fuzz(func(t *testing.T, b []byte) {
		sh, err := DecodeGKGShare(params, b)
		if err == nil && !bytes.Equal(EncodeGKGShare(params, sh), b) {
			t.Fatal("re-encoding differs")
		}
	})
}

func FuzzDecodeTSKShare(f *testing.F) {
	_, params := fuzzParams(f)
	thr := mhe.NewThresholdizer(params)
	sk := rlwe.NewKeyGenerator(params).GenSecretKeyNew()
	poly, err := thr.GenShamirPolynomial(2, sk)
	if err != nil {
		f.Fatal(err)
	}
	sh := thr.AllocateThresholdSecretShare()
	thr.GenShamirSecretShare(1, poly, &sh)
	addSeeds(f, EncodeTSKShare(params, "s", "a", "b", sh))
	f.Fuzz(func(t *testing.T, b []byte) {
		sh, err := DecodeTSKShare(params, "s", "a", "b", b)
		if err == nil && !bytes.Equal(EncodeTSKShare(params, "s", "a", "b", sh), b) {
			t.Fatal("re-encoding differs")
		}
	})
}

func FuzzOpenShare(f *testing.F) {
	suite := edwards25519.NewBlakeSHA256Ed25519()
	priv := suite.Scalar().Pick(suite.RandomStream())
	f.Add([]byte{})
	f.Add(make([]byte, 32))
	f.Add(make([]byte, 48))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = openShare(suite, priv, b)
	})
}

func FuzzDecodeKeySwitchShare(f *testing.F) {
	p, params := fuzzParams(f)
	kgen := rlwe.NewKeyGenerator(params)
	sk, pk := kgen.GenKeyPairNew()
	ct := rlwe.NewEncryptor(params, sk).EncryptZeroNew(p.AggregateLevel)
	ct.Scale = rlwe.NewScale(math.Exp2(float64(p.AggregateLogScale)))
	req := KeySwitchRequest{Session: "s", Group: []PartyID{"a"}, Target: pk, Ciphertext: ct}
	d, err := req.digest(p)
	if err != nil {
		f.Fatal(err)
	}
	sh := mhe.NewThresholdizer(params).AllocateThresholdSecretShare()
	sh.Poly.Copy(sk.Value)
	m, err := KeySwitchShare(p, "a", []PartyID{"a"}, 1, sh, req, p.FloodingSigma, "")
	if err != nil {
		f.Fatal(err)
	}
	addSeeds(f, m.Payload)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = DecodeKeySwitchShare(params, ct.Level(), d, b)
	})
}

func FuzzUnmarshalKeySwitchRequest(f *testing.F) {
	p, params := fuzzParams(f)
	kgen := rlwe.NewKeyGenerator(params)
	sk, pk := kgen.GenKeyPairNew()
	ct := rlwe.NewEncryptor(params, sk).EncryptZeroNew(p.AggregateLevel)
	ct.Scale = rlwe.NewScale(math.Exp2(float64(p.AggregateLogScale)))
	req := KeySwitchRequest{Session: "s", Group: []PartyID{"a", "b"}, Target: pk, Ciphertext: ct}
	b, err := req.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	addSeeds(f, b)
	f.Add(b[:200])
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalKeySwitchRequest(p, b)
		if err != nil {
			return
		}
		b2, err := r.Marshal()
		if err != nil {
			t.Fatalf("decoded request does not re-encode: %v", err)
		}
		if _, err := UnmarshalKeySwitchRequest(p, b2); err != nil {
			t.Fatalf("re-encoded request does not decode: %v", err)
		}
	})
}

var fuzzSetupResult *SetupResult

func fuzzSetup(f *testing.F, p engine.Parameters) *SetupResult {
	if fuzzSetupResult == nil {
		res, err := RunSetupInProcess(p, []PartyID{"a", "b"}, 2, []uint64{p.GaloisElement(1)})
		if err != nil {
			f.Fatal(err)
		}
		fuzzSetupResult = res["a"]
	}
	return fuzzSetupResult
}

func FuzzUnmarshalPublic(f *testing.F) {
	p, _ := fuzzParams(f)
	r := fuzzSetup(f, p)
	b, err := r.MarshalPublic()
	if err != nil {
		f.Fatal(err)
	}
	addSeeds(f, b)
	f.Add(b[:300])
	f.Fuzz(func(t *testing.T, b []byte) {
		var r SetupResult
		_ = r.UnmarshalPublic(p, b)
	})
}

func FuzzUnmarshalSecrets(f *testing.F) {
	p, _ := fuzzParams(f)
	r := fuzzSetup(f, p)
	b, err := r.MarshalSecrets()
	if err != nil {
		f.Fatal(err)
	}
	addSeeds(f, b)
	f.Add(b[:100])
	f.Fuzz(func(t *testing.T, b []byte) {
		var r SetupResult
		_ = r.UnmarshalSecrets(p, b)
	})
}

// FuzzSetupStep throws arbitrary messages at a fresh instance: it must never
// panic, and every rejection names the sender.
func FuzzSetupStep(f *testing.F) {
	p, _ := fuzzParams(f)
	suite := edwards25519.NewBlakeSHA256Ed25519()
	priv := suite.Scalar().Pick(suite.RandomStream())
	pub := suite.Point().Mul(priv, nil)
	cfg := SetupConfig{Params: p, Session: "s", Self: "a", Parties: []PartyID{"a", "b"}, Threshold: 2,
		GaloisElements: []uint64{p.GaloisElement(1)}, Identity: priv, PeerKeys: map[PartyID]kyber.Point{"b": pub}, Rand: rand.Reader}
	for _, k := range []Kind{KindCRSCommit, KindCRSReveal, KindCKGShare, KindRKGRound1, KindRKGRound2, KindGKGShare, KindTSKShare, KindSetupDone} {
		f.Add(string(k), "b", "", make([]byte, 32))
	}
	f.Fuzz(func(t *testing.T, kind, from, to string, payload []byte) {
		s, _, err := NewSetup(cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Step(Message{Session: "s", Kind: Kind(kind), From: PartyID(from), To: PartyID(to), Payload: payload})
		if err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Party != PartyID(from) {
				t.Fatalf("rejection does not name the sender: %v", err)
			}
		}
	})
}

// fuzzRefreshRequest is a one-party refresh request for a ciphertext at
// level of the fuzzing parameters, with the party's secret as its share.
func fuzzRefreshRequest(f *testing.F, level int) (engine.Parameters, RefreshRequest, mhe.ShamirSecretShare) {
	p, params := fuzzParams(f)
	sk := rlwe.NewKeyGenerator(params).GenSecretKeyNew()
	ct := rlwe.NewEncryptor(params, sk).EncryptZeroNew(level)
	ct.Scale, ct.LogDimensions, ct.IsBatched = p.DefaultScale(), p.LogMaxDimensions(), true
	sh := mhe.NewThresholdizer(params).AllocateThresholdSecretShare()
	sh.Poly.Copy(sk.Value)
	return p, RefreshRequest{Session: "s", Round: 1, Group: []PartyID{"a"}, Transform: TransformSlotMean, Ciphertexts: []*rlwe.Ciphertext{ct}}, sh
}

func FuzzDecodeRefreshShare(f *testing.F) {
	p, req, sh := fuzzRefreshRequest(f, 3)
	plan, err := planRefresh(p, req)
	if err != nil {
		f.Fatal(err)
	}
	m, err := RefreshShare(p, "a", []PartyID{"a"}, 1, sh, req, "")
	if err != nil {
		f.Fatal(err)
	}
	addSeeds(f, m.Payload)
	f.Fuzz(func(t *testing.T, b []byte) {
		shares, err := DecodeRefreshShare(p, req, plan.digest, b)
		if err != nil {
			return
		}
		re := bytes.Clone(plan.digest)
		for i := range shares {
			re = refreshShareShape(&shares[i]).encode(*p.GetRLWEParameters(), re)
		}
		if !bytes.Equal(re, b) {
			t.Fatal("re-encoding differs")
		}
	})
}

func FuzzUnmarshalRefreshRequest(f *testing.F) {
	p, req, _ := fuzzRefreshRequest(f, 0)
	b, err := req.Marshal(p)
	if err != nil {
		f.Fatal(err)
	}
	addSeeds(f, b)
	f.Add(b[:60])
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalRefreshRequest(p, b)
		if err != nil {
			return
		}
		b2, err := r.Marshal(p)
		if err != nil {
			t.Fatalf("decoded request does not re-encode: %v", err)
		}
		r2, err := UnmarshalRefreshRequest(p, b2)
		if err != nil {
			t.Fatalf("re-encoded request does not decode: %v", err)
		}
		if b3, err := r2.Marshal(p); err != nil || !bytes.Equal(b2, b3) {
			t.Fatalf("the encoding of a decoded request is not stable (err %v)", err)
		}
	})
}
