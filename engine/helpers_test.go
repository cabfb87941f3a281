package engine

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
)

var paramCache sync.Map

// testParams returns a registered parameter set, failing the test otherwise.
func testParams(tb testing.TB, name string) Parameters {
	tb.Helper()
	if p, ok := paramCache.Load(name); ok {
		return p.(Parameters)
	}
	p, err := ParametersByName(name)
	if err != nil {
		tb.Fatalf("ParametersByName(%q): %v", name, err)
	}
	paramCache.Store(name, p)
	return p
}

// testKeys is a key pair per parameter set, generated once.
var keyCache sync.Map

type keyPair struct {
	sk *rlwe.SecretKey
	pk *rlwe.PublicKey
}

func testKeys(tb testing.TB, p Parameters) (*rlwe.SecretKey, *rlwe.PublicKey) {
	tb.Helper()
	if kp, ok := keyCache.Load(p.Name); ok {
		return kp.(keyPair).sk, kp.(keyPair).pk
	}
	sk, pk := GenKeyPair(p)
	keyCache.Store(p.Name, keyPair{sk, pk})
	return sk, pk
}

// randomValues returns n values: integers (counts) in even positions,
// reals of magnitude up to scale in odd positions.
func randomValues(rng *rand.Rand, n int, scale float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		if i%2 == 0 {
			v[i] = float64(rng.IntN(1_000_000))
		} else {
			v[i] = (2*rng.Float64() - 1) * scale
		}
	}
	return v
}

// maxAbsError is the largest |got[i]-want[i]|.
func maxAbsError(tb testing.TB, got, want []float64) float64 {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("got %d values, want %d", len(got), len(want))
	}
	var m float64
	for i := range got {
		m = math.Max(m, math.Abs(got[i]-want[i]))
	}
	return m
}
