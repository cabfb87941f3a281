package policy

import (
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
)

// Differential privacy under encryption: every contributing party adds a
// share of the noise to its partial sums before it encrypts them, so the
// released sum carries the whole noise while no party knows it.
//
// Laplace noise is infinitely divisible: if G1, G2 are Gamma(1/n, b), then
// G1 - G2 summed over n parties is Laplace(0, b). Gaussian noise splits as n
// shares of variance sigma^2/n.
//
// If a party drops out after it was counted in n, the total noise is that
// of n-1 shares: slightly less privacy than promised. The coordinator fixes
// n when it sends the certified request and the parties use it as sent.
//
// Known limit: float64 noise is vulnerable to the precision attacks on
// textbook floating-point Laplace samplers (Mironov 2012); the CKKS
// encoding adds its own error on top, which blurs but does not provably
// close that channel.

// NewNoiseSource returns a generator seeded from the system's CSPRNG.
func NewNoiseSource() *rand.Rand {
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		panic(fmt.Errorf("noise source: %w", err)) // the system's randomness failing is not recoverable
	}
	return rand.New(rand.NewChaCha8(seed))
}

// NewSeededNoiseSource is for tests.
func NewSeededNoiseSource(seed uint64) *rand.Rand {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return rand.New(rand.NewChaCha8(s))
}

// LaplaceShare is one of n shares of Laplace(0, scale) noise.
func LaplaceShare(rng *rand.Rand, scale float64, n int) float64 {
	shape := 1 / float64(n)
	return scale * (gamma(rng, shape) - gamma(rng, shape))
}

// GaussianShare is one of n shares of N(0, sigma^2) noise.
func GaussianShare(rng *rand.Rand, sigma float64, n int) float64 {
	return rng.NormFloat64() * sigma / math.Sqrt(float64(n))
}

// LaplaceScale is the Laplace scale for a cell of the given sensitivity
// and epsilon.
func LaplaceScale(sensitivity, epsilon float64) float64 { return sensitivity / epsilon }

// GaussianSigma is the classic Gaussian mechanism's sigma for
// (epsilon, delta)-DP, valid for epsilon < 1.
func GaussianSigma(sensitivity, epsilon, delta float64) float64 {
	return math.Sqrt(2*math.Log(1.25/delta)) * sensitivity / epsilon
}

// gamma samples Gamma(shape, 1): Marsaglia and Tsang for shape >= 1, and
// the boost Gamma(a) = Gamma(a+1) * U^(1/a) below it.
func gamma(rng *rand.Rand, shape float64) float64 {
	if shape < 1 {
		u := rng.Float64()
		for u == 0 {
			u = rng.Float64()
		}
		return gamma(rng, shape+1) * math.Pow(u, 1/shape)
	}
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := rng.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := rng.Float64()
		if u < 1-0.0331*x*x*x*x || math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return d * v
		}
	}
}
