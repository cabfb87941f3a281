package train

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"

	"github.com/synod-mpc/synod/engine"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// The runtime norm check. When the plan's radius R is not a theorem
// (Plan.RuntimeNormCheck: momentum, an explicit radius), the sigmoid's
// interval holds only while ||w|| <= R at every point where a gradient is
// evaluated; outside it the polynomial diverges and the gradient is
// garbage that no one would notice under encryption. Before each gradient
// the coordinator therefore computes S = R^2 - ||w||^2 (NormSlack) and
// learns its sign, and only its sign, with the masked product of
// engine/cohort.go: every data party encrypts a fresh random mask r_i in
// [engine.CohortMaskMin, engine.CohortMaskMax) (EncryptSignMask), the
// coordinator computes T = S * sum_i r_i (MaskedSign) and has T key-switched
// to a throwaway key of its own; T > 0 (InsideBall) means the point is
// inside the ball. The mask is one value in every slot, and the coordinator
// reads one slot: it learns S times a sum of random masks that no party
// knows unless all contributors collude, i.e. the sign and a blurred
// magnitude (within a factor 2^8) of the slack, as the cohort test does for
// a count's distance to k.

// MaxCheckedRadius bounds the radius NormSlack accepts: it keeps R^2 and the
// masked product far below the modulus and the encoder's 2^53 mantissa.
const MaxCheckedRadius = 1 << 12

// NormSlack returns an encryption of R^2 - sum_c w_c^2 from the p
// coefficient ciphertexts of a point (State.Point or State.W) at a common
// level >= 2: one product per coefficient, accumulated before a single
// relinearization and rescale. The result is one level below the inputs,
// at scale Delta^2/q (not the default scale: nothing but MaskedSign reads
// it). evk holds the relinearization key.
func NormSlack(p engine.Parameters, evk rlwe.EvaluationKeySet, point []*rlwe.Ciphertext, radius float64) (*rlwe.Ciphertext, error) {
	if !(radius > 0 && radius <= MaxCheckedRadius) {
		return nil, fmt.Errorf("norm slack: radius %g outside (0, %d]", radius, MaxCheckedRadius)
	}
	if evk == nil {
		return nil, errors.New("norm slack: no evaluation keys (the relinearization key is needed)")
	}
	if _, err := evk.GetRelinearizationKey(); err != nil {
		return nil, fmt.Errorf("norm slack: %w", err)
	}
	if len(point) == 0 {
		return nil, errors.New("norm slack: no coefficients")
	}
	level := -1
	if point[0] != nil && len(point[0].Value) > 0 {
		level = point[0].Level()
	}
	if level < 2 {
		return nil, fmt.Errorf("norm slack: point at level %d, needs 2 or more", level)
	}
	if err := checkCiphertexts(p, point, len(point), level, level); err != nil {
		return nil, fmt.Errorf("norm slack: %w", err)
	}
	ev := hefloat.NewEvaluator(p.Parameters, evk)
	acc := hefloat.NewCiphertext(p.Parameters, 2, level)
	acc.Scale = p.DefaultScale().Mul(p.DefaultScale())
	for c, w := range point {
		if err := ev.MulThenAdd(w, w, acc); err != nil {
			return nil, fmt.Errorf("norm slack: coefficient %d: %w", c, err)
		}
	}
	out := hefloat.NewCiphertext(p.Parameters, 1, level)
	if err := ev.Relinearize(acc, out); err != nil {
		return nil, fmt.Errorf("norm slack: %w", err)
	}
	if err := ev.Rescale(out, out); err != nil {
		return nil, fmt.Errorf("norm slack: %w", err)
	}
	if err := ev.Mul(out, -1, out); err != nil {
		return nil, fmt.Errorf("norm slack: %w", err)
	}
	if err := ev.Add(out, radius*radius, out); err != nil {
		return nil, fmt.Errorf("norm slack: %w", err)
	}
	return out, nil
}

// EncryptSignMask is a data party's contribution to the sign test of a
// slack at level (NormSlack's output level): a fresh random integer mask,
// the same in every slot, encrypted under pk (the collective key) at that
// level with scale q_level, so that MaskedSign's product rescales back to
// the slack's scale.
func EncryptSignMask(p engine.Parameters, pk *rlwe.PublicKey, level int) (*rlwe.Ciphertext, error) {
	if level < 1 || level > p.MaxLevel() {
		return nil, fmt.Errorf("sign mask: level %d outside [1, %d]", level, p.MaxLevel())
	}
	if pk == nil || len(pk.Value) != 2 || pk.Value[0].Q.N() != p.N() || pk.Value[0].Q.Level() < level {
		return nil, fmt.Errorf("sign mask: the public key does not fit parameter set %s at level %d", p.Name, level)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("sign mask: %w", err)
	}
	mask := engine.CohortMaskMin + binary.LittleEndian.Uint64(b[:])%(engine.CohortMaskMax-engine.CohortMaskMin)
	// The same value in every slot is the constant polynomial
	// mask*scale: with the scale q_level it is the integer mask*q_level,
	// encoded exactly and without the encoder's FFT (mask*q_level exceeds
	// 2^64, where lattigo's encoder goes through big.Float).
	pt := hefloat.NewPlaintext(p.Parameters, level)
	pt.Scale = rlwe.NewScale(p.Q()[level])
	m := new(big.Int).Mul(new(big.Int).SetUint64(mask), new(big.Int).SetUint64(p.Q()[level]))
	ringQ := p.RingQ().AtLevel(level)
	r := new(big.Int)
	for i, q := range ringQ.ModuliChain()[:level+1] {
		pt.Value.Coeffs[i][0] = r.Mod(m, new(big.Int).SetUint64(q)).Uint64()
	}
	ringQ.NTT(pt.Value, pt.Value)
	ct := hefloat.NewCiphertext(p.Parameters, 1, level)
	if err := hefloat.NewEncryptor(p.Parameters, pk).Encrypt(pt, ct); err != nil {
		return nil, fmt.Errorf("sign mask: %w", err)
	}
	return ct, nil
}

// MaskedSign computes T = slack * sum(masks), one level below the slack,
// and lifts it by an integer power of two to a scale near
// 2^p.AggregateLogScale, so that the flooding of the key switch that
// releases T to the coordinator costs nothing next to |T| >= |slack|*2^12.
// The coordinator decrypts one slot and reads the sign with InsideBall; a
// slack within about 1e-6*R^2 of zero (the encryption's error on ||w||^2)
// may read either way.
func MaskedSign(p engine.Parameters, evk rlwe.EvaluationKeySet, slack *rlwe.Ciphertext, masks []*rlwe.Ciphertext) (*rlwe.Ciphertext, error) {
	if evk == nil {
		return nil, errors.New("masked sign: no evaluation keys (the relinearization key is needed)")
	}
	if err := checkShape(p, slack, 1, p.MaxLevel()); err != nil {
		return nil, fmt.Errorf("masked sign: slack: %w", err)
	}
	level := slack.Level()
	if len(masks) == 0 {
		return nil, errors.New("masked sign: no masks")
	}
	maskScale := rlwe.NewScale(p.Q()[level])
	for i, m := range masks {
		if err := checkShape(p, m, level, level); err != nil {
			return nil, fmt.Errorf("masked sign: mask %d: %w", i, err)
		}
		if err := settleScale(m, maskScale); err != nil {
			return nil, fmt.Errorf("masked sign: mask %d: %w", i, err)
		}
	}
	sum := masks[0].CopyNew()
	ringQ := p.RingQ().AtLevel(level)
	for _, m := range masks[1:] {
		ringQ.Add(sum.Value[0], m.Value[0], sum.Value[0])
		ringQ.Add(sum.Value[1], m.Value[1], sum.Value[1])
	}
	sum.Scale = maskScale
	ev := hefloat.NewEvaluator(p.Parameters, evk)
	t := hefloat.NewCiphertext(p.Parameters, 1, level)
	if err := ev.MulRelin(slack, sum, t); err != nil {
		return nil, fmt.Errorf("masked sign: %w", err)
	}
	if err := ev.Rescale(t, t); err != nil {
		return nil, fmt.Errorf("masked sign: %w", err)
	}
	lift := p.AggregateLogScale - int(math.Round(math.Log2(t.Scale.Float64())))
	if lift > 0 && lift < 62 {
		r := p.RingQ().AtLevel(t.Level())
		r.MulScalar(t.Value[0], uint64(1)<<lift, t.Value[0])
		r.MulScalar(t.Value[1], uint64(1)<<lift, t.Value[1])
		t.Scale = t.Scale.Mul(rlwe.NewScale(math.Exp2(float64(lift))))
	}
	return t, nil
}

// InsideBall reads the decrypted T of MaskedSign: the point is inside the
// ball of the plan's radius when T is positive.
func InsideBall(t []float64) (bool, error) {
	if len(t) == 0 {
		return false, errors.New("inside ball: no slot")
	}
	if math.IsNaN(t[0]) {
		return false, errors.New("inside ball: NaN")
	}
	return t[0] > 0, nil
}
