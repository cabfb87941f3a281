package engine

import (
	"fmt"
	"math"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/ring"
)

// Noise flooding of decryption shares.
//
// A released result reaches the analyst through a public key switch: each of
// the t key-switching parties sends h_i = s_i*c1 + Enc_pk_analyst(0) + e_i.
// Without e_i the decryption noise of the result (the sum of the fresh noises
// of every input ciphertext, plus whatever the circuit added) would be
// readable by the analyst, and that noise depends on the parties' secrets.
// Each e_i is drawn from a discrete Gaussian of standard deviation
// sigma = p.FloodingSigma per coefficient, which hides it statistically:
// 2^37 for ckks-n13 and ckks-n14, 2^40 for ckks-n15.
//
// Why not more. lattigo v5's Gaussian sampler (ring.GaussianSampler, used by
// mhe.PublicKeySwitchProtocol) maps a sample v to each prime q_i as v or
// q_i - v without a full reduction: if |v| can exceed the smallest prime of Q
// the negative samples wrap to garbage and the released result is destroyed
// (measured: slot values of 1e22 instead of 1e6 with sigma=2^40 and 40-bit
// primes). Its bound, 6 sigma, must therefore stay below min q_i;
// checkFloodingBound enforces it when a parameter set is loaded. With the
// 40-bit primes of ckks-n13/n14 that caps sigma at 2^37 (6*2^37 = 2^39.6).
// Going higher would need larger primes in Q, or flooding noise sampled
// outside lattigo.
//
// Hiding margin. A fresh public-key encryption has decryption noise
// u*e + e0 + e1*s with ternary u, s and Gaussian e (sigma_e = 3.2), i.e. a
// standard deviation per coefficient of 3.2*sqrt(4N/3+1): about 2^8.4 at
// LogN=13 and 2^8.9 at LogN=14. An aggregate of 2^10 inputs has 2^5 times
// that: about 2^14. The margin log2(sigma / aggregate noise) is therefore
// about 37-14 = 23 bits even for the largest sums (28 bits for a single
// fresh ciphertext; 31 bits at ckks-n15 with 2^40). By the Rényi/KL argument
// the per-coefficient KL divergence is (noise/sigma)^2/2 <= 2^-47 for a sum of
// 2^10 inputs, about 2^-33 over N=2^14 coefficients: a statistical distance
// below 2^-17 on output noise that is itself only a weak function of the
// secrets (and below 2^-27 for a few inputs). FloodingMarginBits reports the
// margin for a parameter set.
//
// Price. The slot error after decoding is the coefficient noise scaled by
// sqrt(N/2) and divided by the scale. At scale 2^60 the flooding of t parties
// costs about tail*sqrt(t)*2^37*2^6.5/2^60: 1e-4 per released value at
// LogN=14 with t=1, 1.8e-4 with t=3 — far below 0.5, so counts round to the
// exact integer, and adequate for sums and means. This is why aggregates are
// encrypted at scale 2^60 rather than the circuits' default 2^40: at 2^40 the
// same flooding would cost ~100 per value.

// floodingBoundFactor truncates the flooding Gaussian at this many standard
// deviations, as lattigo does for its own error distribution (6*3.2).
const floodingBoundFactor = 6

// precisionTail is the number of standard deviations Precision allows a slot
// error: a Gaussian exceeds 8 sigma with probability 1.2e-15, so over the
// 2^13 slots of LogN=14 the bound fails with probability below 1e-11.
const precisionTail = 8

// FloodingDistribution is the noise every party adds to its public key switch
// share (mhe.NewPublicKeySwitchProtocol's noiseFlooding argument): a discrete
// Gaussian of standard deviation p.FloodingSigma truncated at 6 sigma.
// lattigo reads Bound as an absolute bound on the coefficients, not as a
// number of standard deviations.
func FloodingDistribution(p Parameters) ring.DiscreteGaussian {
	return ring.DiscreteGaussian{Sigma: p.FloodingSigma, Bound: floodingBoundFactor * p.FloodingSigma}
}

// checkFloodingBound refuses a flooding distribution whose samples could
// exceed a prime of Q, which lattigo's sampler would not reduce correctly.
func checkFloodingBound(p Parameters) error {
	bound := FloodingDistribution(p).Bound
	for i, q := range p.Q() {
		if bound >= float64(q) {
			return fmt.Errorf("flooding bound %.4g (6 sigma, sigma 2^%.1f) is not below prime %d of Q (%d): lattigo's sampler would wrap negative samples", bound, math.Log2(p.FloodingSigma), i, q)
		}
	}
	return nil
}

// freshNoiseStdDev is the standard deviation per coefficient of the
// decryption noise of a fresh public-key encryption (u*e + e0 + e1*s, ternary
// u and s of density 2/3): sigma_e*sqrt(4N/3 + 1).
func freshNoiseStdDev(p Parameters) float64 {
	return rlwe.DefaultNoise * math.Sqrt(4*float64(p.N())/3+1)
}

// FloodingMarginBits is log2(sigma / noise), the statistical hiding margin of
// one party's flooding over the decryption noise of a single fresh ciphertext
// (subtract 5 bits for a sum of 2^10 inputs).
func FloodingMarginBits(p Parameters) float64 {
	return math.Log2(p.FloodingSigma / freshNoiseStdDev(p))
}

// Precision is the absolute error bound promised on each released aggregate
// value (a slot of a sum of EncryptVector ciphertexts, key-switched by
// keySwitchers parties each flooding with p.FloodingSigma, decrypted by the
// analyst). It is the sum of
//
//   - the decryption noise: tail*sqrt(t*sigma^2 + (2^10+t)*fresh^2)*sqrt(N/2)/scale,
//     the flooding of the t parties plus the fresh noise of up to 2^10 inputs
//     and of the t encryptions of zero inside the shares (tail = 8);
//   - the float64 encoding error of the inputs: at most
//     MaxAggregateValue*2^-53*LogN per input, accumulated over 2^10 inputs as
//     a random walk (factor 2^5);
//   - the rounding to integers at the encoding scale 2^30 (see
//     EncryptVector): tail*0.5*sqrt(N/2)/2^30 per input, same random walk.
//
// Values are typically an order of magnitude more accurate; the bound is what
// a query may promise. Counts are exact after rounding as long as it is < 0.5.
func Precision(p Parameters, keySwitchers int) float64 {
	t := float64(max(keySwitchers, 1))
	fresh := freshNoiseStdDev(p)
	summands := math.Exp2(maxLogSummands)
	coeffStd := math.Sqrt(t*p.FloodingSigma*p.FloodingSigma + (summands+t)*fresh*fresh)
	noise := precisionTail * coeffStd * math.Sqrt(float64(p.N())/2) / math.Exp2(float64(p.AggregateLogScale))
	encoding := MaxAggregateValue(p) * math.Exp2(-53) * float64(p.LogN()) * math.Sqrt(summands)
	rounding := precisionTail * 0.5 * math.Sqrt(float64(p.N())/2) / math.Exp2(encodeLogScale) * math.Sqrt(summands)
	return noise + encoding + rounding
}
