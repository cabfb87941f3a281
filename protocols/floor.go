package protocols

import (
	"fmt"
	"time"

	"github.com/synod-mpc/synod/engine"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/utils/sampling"
)

// FloorSetup measures the raw lattigo cost of the setup's work for n parties
// in one process: collective public key, relinearization key, the Galois
// keys and the t-of-n Shamir sharing of every secret, with no state
// machines, signatures, message encoding or encryption of shares. It is the
// floor the networked setup is measured against.
func FloorSetup(params engine.Parameters, n, t int, galEls []uint64) (time.Duration, error) {
	if n < 1 || t < 1 || t > n {
		return 0, fmt.Errorf("floor setup: invalid n=%d t=%d", n, t)
	}
	p := *params.GetRLWEParameters()
	start := time.Now()

	crs, err := sampling.NewKeyedPRNG([]byte("synod/floor"))
	if err != nil {
		return 0, err
	}
	kgen := rlwe.NewKeyGenerator(p)
	sks := make([]*rlwe.SecretKey, n)
	for i := range sks {
		sks[i] = kgen.GenSecretKeyNew()
	}

	ckg := mhe.NewPublicKeyGenProtocol(p)
	ckgCRP := ckg.SampleCRP(crs)
	ckgAgg := ckg.AllocateShare()
	for i := range sks {
		sh := ckg.AllocateShare()
		ckg.GenShare(sks[i], ckgCRP, &sh)
		ckg.AggregateShares(ckgAgg, sh, &ckgAgg)
	}
	pk := rlwe.NewPublicKey(p)
	ckg.GenPublicKey(ckgAgg, ckgCRP, pk)

	rkg := mhe.NewRelinearizationKeyGenProtocol(p)
	rkgCRP := rkg.SampleCRP(crs)
	_, r1Agg, r2Agg := rkg.AllocateShare()
	eph := make([]*rlwe.SecretKey, n)
	for i := range sks {
		var r1 mhe.RelinearizationKeyGenShare
		eph[i], r1, _ = rkg.AllocateShare()
		rkg.GenShareRoundOne(sks[i], rkgCRP, eph[i], &r1)
		rkg.AggregateShares(r1Agg, r1, &r1Agg)
	}
	for i := range sks {
		_, _, r2 := rkg.AllocateShare()
		rkg.GenShareRoundTwo(eph[i], sks[i], r1Agg, &r2)
		rkg.AggregateShares(r2Agg, r2, &r2Agg)
	}
	rlk := rlwe.NewRelinearizationKey(p)
	rkg.GenRelinearizationKey(r1Agg, r2Agg, rlk)

	gkg := mhe.NewGaloisKeyGenProtocol(p)
	for _, g := range galEls {
		crp := gkg.SampleCRP(crs)
		agg := gkg.AllocateShare()
		agg.GaloisElement = g
		for i := range sks {
			sh := gkg.AllocateShare()
			if err := gkg.GenShare(sks[i], g, crp, &sh); err != nil {
				return 0, err
			}
			if err := gkg.AggregateShares(agg, sh, &agg); err != nil {
				return 0, err
			}
		}
		gk := rlwe.NewGaloisKey(p)
		if err := gkg.GenGaloisKey(agg, crp, gk); err != nil {
			return 0, err
		}
	}

	thr := mhe.NewThresholdizer(p)
	tsks := make([]mhe.ShamirSecretShare, n)
	for j := range tsks {
		tsks[j] = thr.AllocateThresholdSecretShare()
	}
	for i := range sks {
		poly, err := thr.GenShamirPolynomial(t, sks[i])
		if err != nil {
			return 0, err
		}
		for j := range tsks {
			sh := thr.AllocateThresholdSecretShare()
			thr.GenShamirSecretShare(mhe.ShamirPublicPoint(j+1), poly, &sh)
			if err := thr.AggregateShares(tsks[j], sh, &tsks[j]); err != nil {
				return 0, err
			}
		}
	}
	return time.Since(start), nil
}

// FloorKeySwitch measures the raw lattigo cost of one threshold key switch
// by t parties: t additive shares from Shamir shares, t public-key-switch
// shares with noise flooding, their aggregation and the switch. Preparing
// the keys and the ciphertext (at the aggregate level) is not timed.
func FloorKeySwitch(params engine.Parameters, t int) (time.Duration, error) {
	if t < 1 {
		return 0, fmt.Errorf("floor key switch: invalid t=%d", t)
	}
	p := *params.GetRLWEParameters()
	kgen := rlwe.NewKeyGenerator(p)
	thr := mhe.NewThresholdizer(p)
	tsks := make([]mhe.ShamirSecretShare, t)
	for j := range tsks {
		tsks[j] = thr.AllocateThresholdSecretShare()
	}
	skIdeal := rlwe.NewSecretKey(p)
	for i := 0; i < t; i++ {
		sk := kgen.GenSecretKeyNew()
		p.RingQP().Add(skIdeal.Value, sk.Value, skIdeal.Value)
		poly, err := thr.GenShamirPolynomial(t, sk)
		if err != nil {
			return 0, err
		}
		for j := range tsks {
			sh := thr.AllocateThresholdSecretShare()
			thr.GenShamirSecretShare(mhe.ShamirPublicPoint(j+1), poly, &sh)
			if err := thr.AggregateShares(tsks[j], sh, &tsks[j]); err != nil {
				return 0, err
			}
		}
	}
	ct := rlwe.NewEncryptor(p, skIdeal).EncryptZeroNew(params.AggregateLevel)
	_, targetPk := kgen.GenKeyPairNew()
	dist, err := floodingDistribution(params.FloodingSigma)
	if err != nil {
		return 0, err
	}
	points := make([]mhe.ShamirPublicPoint, t)
	for j := range points {
		points[j] = mhe.ShamirPublicPoint(j + 1)
	}

	start := time.Now()
	pcks, err := mhe.NewPublicKeySwitchProtocol(p, dist)
	if err != nil {
		return 0, err
	}
	agg := pcks.AllocateShare(ct.Level())
	for j := 0; j < t; j++ {
		cmb := mhe.NewCombiner(p, points[j], points, t)
		sk := rlwe.NewSecretKey(p)
		if err := cmb.GenAdditiveShare(points, points[j], tsks[j], sk); err != nil {
			return 0, err
		}
		sh := pcks.AllocateShare(ct.Level())
		pcks.GenShare(sk, targetPk, ct, &sh)
		if err := pcks.AggregateShares(agg, sh, &agg); err != nil {
			return 0, err
		}
	}
	out := rlwe.NewCiphertext(p, 1, ct.Level())
	pcks.KeySwitch(ct, agg, out)
	return time.Since(start), nil
}

// FloorSetupBytes is the least a setup of n parties must move: every party's
// collective public key, relinearization key (both rounds) and Galois key
// shares to each of the n-1 others, and a Shamir share to each of them, at
// lattigo's own serialized sizes. The networked setup's bytes are measured
// against it.
func FloorSetupBytes(params engine.Parameters, n int, galEls []uint64) int64 {
	p := *params.GetRLWEParameters()
	ckg := mhe.NewPublicKeyGenProtocol(p).AllocateShare()
	_, rkg, _ := mhe.NewRelinearizationKeyGenProtocol(p).AllocateShare()
	gkg := mhe.NewGaloisKeyGenProtocol(p).AllocateShare()
	tsk := mhe.NewThresholdizer(p).AllocateThresholdSecretShare()
	broadcast := int64(ckg.BinarySize() + 2*rkg.BinarySize() + len(galEls)*gkg.BinarySize())
	return int64(n) * int64(n-1) * (broadcast + int64(tsk.BinarySize()))
}

// FloorQueryBytes is the least a query answered by n data parties and a key
// switch by t of them must move: n ciphertexts of cells values at the
// aggregate level, t key-switch shares, and the switched result to the
// analyst.
func FloorQueryBytes(params engine.Parameters, n, t int) int64 {
	p := *params.GetRLWEParameters()
	ct := rlwe.NewCiphertext(p, 1, params.AggregateLevel)
	share := 2 * ct.Value[0].BinarySize() // a public-key-switch share: two polynomials at the level
	return int64(n+1)*int64(ct.BinarySize()) + int64(t)*int64(share)
}

// FloorDerivation measures what every party of the networked setup does
// beyond generating its own shares, as raw lattigo work for one party:
// sampling the common random polynomials, summing the n parties' shares of
// each key and deriving the collective public, relinearization and Galois
// keys. The centralised FloorSetup does this once; the protocol does it at
// every party (each checks the keys itself rather than trusting an
// aggregator), so FloorSetup + (n-1)·FloorDerivation is the floor of the
// protocol's own computation.
func FloorDerivation(params engine.Parameters, n int, galEls []uint64) (time.Duration, error) {
	p := *params.GetRLWEParameters()
	sk := rlwe.NewKeyGenerator(p).GenSecretKeyNew()
	seed := []byte("synod/floor-derivation")
	// Shares of one party, summed n times below: the cost of a sum does
	// not depend on the values.
	crs, err := sampling.NewKeyedPRNG(seed)
	if err != nil {
		return 0, err
	}
	ckg := mhe.NewPublicKeyGenProtocol(p)
	ckgCRP := ckg.SampleCRP(crs)
	ckgSh := ckg.AllocateShare()
	ckg.GenShare(sk, ckgCRP, &ckgSh)
	rkg := mhe.NewRelinearizationKeyGenProtocol(p)
	rkgCRP := rkg.SampleCRP(crs)
	eph, r1, r2 := rkg.AllocateShare()
	rkg.GenShareRoundOne(sk, rkgCRP, eph, &r1)
	rkg.GenShareRoundTwo(eph, sk, r1, &r2)
	gkg := mhe.NewGaloisKeyGenProtocol(p)
	gkgSh := make([]mhe.GaloisKeyGenShare, len(galEls))
	for i, g := range galEls {
		gkgSh[i] = gkg.AllocateShare()
		if err := gkg.GenShare(sk, g, gkg.SampleCRP(crs), &gkgSh[i]); err != nil {
			return 0, err
		}
	}

	start := time.Now()
	crs, err = sampling.NewKeyedPRNG(seed)
	if err != nil {
		return 0, err
	}
	ckgCRP = ckg.SampleCRP(crs)
	rkgCRP = rkg.SampleCRP(crs)
	gkgCRP := make([]mhe.GaloisKeyGenCRP, len(galEls))
	for i := range galEls {
		gkgCRP[i] = gkg.SampleCRP(crs)
	}
	ckgAgg := ckg.AllocateShare()
	_, r1Agg, r2Agg := rkg.AllocateShare()
	for range n {
		ckg.AggregateShares(ckgAgg, ckgSh, &ckgAgg)
		rkg.AggregateShares(r1Agg, r1, &r1Agg)
		rkg.AggregateShares(r2Agg, r2, &r2Agg)
	}
	ckg.GenPublicKey(ckgAgg, ckgCRP, rlwe.NewPublicKey(p))
	rkg.GenRelinearizationKey(r1Agg, r2Agg, rlwe.NewRelinearizationKey(p))
	for i, g := range galEls {
		agg := gkg.AllocateShare()
		agg.GaloisElement = g
		for range n {
			if err := gkg.AggregateShares(agg, gkgSh[i], &agg); err != nil {
				return 0, err
			}
		}
		if err := gkg.GenGaloisKey(agg, gkgCRP[i], rlwe.NewGaloisKey(p)); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}
