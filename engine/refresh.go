package engine

import (
	"errors"
	"fmt"
	"math"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe/mhefloat"
	"github.com/tuneinsight/lattigo/v5/ring"
)

// Collective refresh (protocols/refresh.go): a group of t parties turns a
// ciphertext that ran low in the modulus chain into a fresh one at the top
// level, with lattigo's masked transform (encryption to shares, then shares
// to encryption). The sizes it depends on are properties of the parameter
// set, and live here.
//
// Masks. Each party masks the plaintext with a uniform integer of logBound
// bits per coefficient, logBound = 128 + log2(scale): the plaintext (scale
// times values of magnitude ~1) and the ciphertext's noise (a few hundred)
// are then statistically hidden to within 2^-128 per coefficient in the
// aggregate the aggregator decrypts, even if it holds t-1 of the masks. The
// t masks must not wrap modulo Q at the ciphertext's level, which is what
// mhefloat.GetMinimumLevelForRefresh computes: at least logBound + log2(t)
// bits of Q. With 40-bit primes and a 2^40 scale that is level 3 (170 bits)
// for groups of up to 4 parties on ckks-n13 (whose top level is 3: there a
// refresh only re-randomises or transforms, and no group of 5 or more can
// refresh) and level 3 for any group on ckks-n14 (4 of its 7 levels usable
// between refreshes).
//
// Noise. The masks are the flooding of the decryption half: 2^168 against a
// ciphertext noise of 2^10 or so, where the key switch floods with 2^37. The
// consortium's FloodingSigma cannot be used here: its noise lands in the
// refreshed plaintext at the ciphertext's own scale (the circuits' 2^40),
// not at the 2^60 of released aggregates. With it, a refresh by 2 parties
// on ckks-n13 was measured off by 16 per slot (standard deviation, as
// sqrt(2t)*2^37*sqrt(N/2)/2^40 predicts; 64 at most over 4096 slots).
// What the Gaussian noise of a share still does is hide the party's key
// share in the pair it sends:
// the decryption share c1*s_i - M_i + e_i and the re-encryption share
// -a*s_i + M_i + e'_i sum to (c1 - a)*s_i + e_i + e'_i, one RLWE sample.
// Fresh-size noise makes that sample as hard as a public key, but a relay
// that obtained many shares for the very same request could average the
// noise of the samples away. RefreshFloodingSigma is therefore as large as
// the precision of training allows, DefaultScale/2^24 (2^16 at ckks-n13 and
// ckks-n14, 2^21 at ckks-n15): averaging it down would take some 2^35
// identical requests, and the refresh costs about 1e-4 per value
// (RefreshPrecision). Nodes must still answer a given (session, round) once.
// Lattigo adds its fresh noise (3.2) to it in quadrature, and its sampler's
// bound (6 sigma) stays far below every prime of Q (see flooding.go).

// refreshSecurityBits is the statistical security of the refresh masks.
const refreshSecurityBits = 128

// refreshFloodingMarginBits is log2(DefaultScale / RefreshFloodingSigma).
const refreshFloodingMarginBits = 24

// RefreshFloodingSigma is the standard deviation of the Gaussian noise each
// party adds to both halves of its refresh share.
func RefreshFloodingSigma(p Parameters) float64 {
	return p.DefaultScale().Float64() * math.Exp2(-refreshFloodingMarginBits)
}

// RefreshFloodingDistribution is RefreshFloodingSigma as the noise argument
// of mhefloat.NewMaskedLinearTransformationProtocol, truncated at 6 sigma.
func RefreshFloodingDistribution(p Parameters) ring.DiscreteGaussian {
	s := RefreshFloodingSigma(p)
	return ring.DiscreteGaussian{Sigma: s, Bound: floodingBoundFactor * s}
}

// MinRefreshScale is the least ciphertext scale a refresh accepts: half the
// default scale (rescaling leaves scales within a hair of it). Below, the
// refresh noise would cost more than RefreshPrecision allows for.
func MinRefreshScale(p Parameters) float64 {
	return p.DefaultScale().Float64() / 2
}

// MinRefreshLevel returns the lowest level from which a group of groupSize
// parties can refresh a ciphertext of the given scale, and the bit length of
// each party's masks (lattigo's logBound). The masks are sized for the
// larger of the scale and the default scale, so a ciphertext whose scale
// metadata claims less than its plaintext carries is still masked by 128
// bits over the default scale. It fails when no level of the parameter set
// has room for the masks.
func MinRefreshLevel(p Parameters, scale rlwe.Scale, groupSize int) (level int, logBound uint, err error) {
	if groupSize < 1 {
		return 0, 0, fmt.Errorf("refresh group of %d parties", groupSize)
	}
	s := scale.Float64()
	if !(s >= 1) || math.IsInf(s, 0) {
		return 0, 0, errors.New("refresh: invalid ciphertext scale")
	}
	if scale.Cmp(p.DefaultScale()) < 0 {
		scale = p.DefaultScale()
	}
	level, logBound, ok := mhefloat.GetMinimumLevelForRefresh(refreshSecurityBits, scale, groupSize, p.Q())
	if !ok {
		return 0, 0, fmt.Errorf("%s has no level with room for the refresh masks of %d parties (2^%d each at scale 2^%.0f, %d-bit statistical security)",
			p.Name, groupSize, refreshSecurityBits+int(math.Ceil(math.Log2(scale.Float64()))), math.Log2(scale.Float64()), refreshSecurityBits)
	}
	return level, logBound, nil
}

// RefreshPrecision is the absolute error bound a refresh by groupSize
// parties adds to each slot of a ciphertext of scale inScale (its own error
// comes on top). The refreshed coefficient is off by the decryption noise of
// the t shares scaled from inScale to the default scale, the re-encryption
// noise of the t shares, and t+1 truncations of the mask rescaling; a slot
// sees a coefficient error of deviation sigma as sigma*sqrt(N/2) (its real
// part), bounded at 8 standard deviations as in Precision. TransformSlotMean
// projects the decryption noise on one coefficient and does better.
func RefreshPrecision(p Parameters, groupSize int, inScale float64) float64 {
	t := float64(max(groupSize, 1))
	sigma := math.Hypot(RefreshFloodingSigma(p), p.NoiseFreshSK())
	out := p.DefaultScale().Float64()
	spread := math.Sqrt(float64(p.N()) / 2)
	noise := precisionTail * math.Sqrt(t) * sigma * math.Hypot(1/inScale, 1/out) * spread
	rounding := precisionTail * (t + 1) * spread / out
	return noise + rounding
}
