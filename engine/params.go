// Package engine is everything Synod does with lattigo: named parameter
// sets, packing of values into slots, encryption, the evaluator library and
// decryption on the analyst's side. It knows nothing of networking, kyber or
// configuration; a move to another lattigo major version stays inside this
// package and package protocols.
package engine

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// DefaultParameters is the parameter set used when none is named.
const DefaultParameters = "ckks-n14"

// Parameters is a named CKKS parameter set together with the choices Synod
// makes on top of it (the noise flooding of decryption shares, the level and
// scale at which released aggregates are encrypted).
type Parameters struct {
	hefloat.Parameters

	// Name is the registry name ("ckks-n14").
	Name string
	// AggregateLevel is the level at which party inputs of aggregates are
	// encrypted; released ciphertexts stay at this level.
	AggregateLevel int
	// AggregateLogScale is log2 of the scale of aggregate inputs.
	AggregateLogScale int
	// FloodingSigma is the standard deviation of the Gaussian noise each party
	// adds to its decryption (public key switch) share; see flooding.go.
	FloodingSigma float64
}

type parameterSet struct {
	literal           hefloat.ParametersLiteral
	aggregateLevel    int
	aggregateLogScale int
	logFloodingSigma  int
}

// Flooding sigmas are bounded by the moduli: lattigo v5's Gaussian sampler
// reduces a sample modulo each prime only by a single subtraction, so its
// bound (6 sigma) must stay below the smallest prime of Q; see flooding.go.
// With 40-bit primes that allows sigma = 2^37, with 45-bit primes 2^40.
//
// Every set is 128-bit secure for a ternary secret by the Homomorphic
// Encryption Standard: LogQP <= 218 (LogN=13), 438 (14), 881 (15).
var parameterSets = map[string]parameterSet{
	// ckks-n13 is small and fast; meant for tests and trials. LogQP = 218.
	"ckks-n13": {
		literal: hefloat.ParametersLiteral{
			LogN:            13,
			LogQ:            []int{50, 40, 40, 40},
			LogP:            []int{48},
			LogDefaultScale: 40,
		},
		aggregateLevel:    2,
		aggregateLogScale: 60,
		logFloodingSigma:  37,
	},
	// ckks-n14 is the default. LogQP = 435.
	"ckks-n14": {
		literal: hefloat.ParametersLiteral{
			LogN:            14,
			LogQ:            []int{55, 40, 40, 40, 40, 40, 40, 40},
			LogP:            []int{50, 50},
			LogDefaultScale: 40,
		},
		aggregateLevel:    2,
		aggregateLogScale: 60,
		logFloodingSigma:  37,
	},
	// ckks-n15 has room for deeper circuits. LogQP = 880 (730 + 150).
	"ckks-n15": {
		literal: hefloat.ParametersLiteral{
			LogN:            15,
			LogQ:            []int{55, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45},
			LogP:            []int{50, 50, 50},
			LogDefaultScale: 45,
		},
		aggregateLevel:    2,
		aggregateLogScale: 60,
		logFloodingSigma:  40,
	},
}

// maxLogQP bounds LogQP by LogN for 128-bit security (HE standard, ternary secret).
var maxLogQP = map[int]int{13: 218, 14: 438, 15: 881, 16: 1761}

// ParameterNames lists the registered parameter sets.
func ParameterNames() []string {
	names := make([]string, 0, len(parameterSets))
	for n := range parameterSets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ParametersByName returns a registered parameter set.
func ParametersByName(name string) (Parameters, error) {
	if name == "" {
		name = DefaultParameters
	}
	if p, ok := builtParameters.Load(name); ok {
		return p.(Parameters), nil
	}
	p, err := buildParameters(name)
	if err != nil {
		return Parameters{}, err
	}
	builtParameters.Store(name, p)
	return p, nil
}

// builtParameters caches each parameter set once built: building one
// precomputes its rings' NTT tables (tens of milliseconds at LogN=14), and
// lattigo's parameters are immutable, so every caller can share them.
var builtParameters sync.Map // name → Parameters

func buildParameters(name string) (Parameters, error) {
	set, ok := parameterSets[name]
	if !ok {
		return Parameters{}, fmt.Errorf("unknown parameter set %q (known: %s)", name, strings.Join(ParameterNames(), ", "))
	}
	p, err := hefloat.NewParametersFromLiteral(set.literal)
	if err != nil {
		return Parameters{}, fmt.Errorf("parameter set %s: %w", name, err)
	}
	logQP := 0
	for _, q := range slices.Concat(set.literal.LogQ, set.literal.LogP) {
		logQP += q
	}
	if limit, ok := maxLogQP[p.LogN()]; !ok || logQP > limit {
		return Parameters{}, fmt.Errorf("parameter set %s: LogQP=%d exceeds the 128-bit bound for LogN=%d", name, logQP, p.LogN())
	}
	params := Parameters{
		Parameters:        p,
		Name:              name,
		AggregateLevel:    set.aggregateLevel,
		AggregateLogScale: set.aggregateLogScale,
		FloodingSigma:     float64(uint64(1) << set.logFloodingSigma),
	}
	if err := checkFloodingBound(params); err != nil {
		return Parameters{}, fmt.Errorf("parameter set %s: %w", name, err)
	}
	return params, nil
}
