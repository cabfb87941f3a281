package model

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/synod-mpc/synod/engine"
)

// ErrTooDeep is returned (wrapped) by NewPlan when a model needs more levels
// than the parameter set has.
var ErrTooDeep = errors.New("model too deep for the parameter set")

// LayerPlan is the plan of one dense layer and its activation.
type LayerPlan struct {
	In, Out    int
	Activation Activation
	Interval   [2]float64
	// Degree and Depth of the activation polynomial (0 for Identity).
	Degree, Depth int
	// ApproxError is the maximum interpolation error on Interval.
	ApproxError float64
	// Levels consumed: 1 for the weights (multiplication by constants and
	// rescale) plus Depth.
	Levels int
	// InputLevel is the level of the layer's input ciphertexts.
	InputLevel int
	// ConstMuls counts the weight products (In*Out): by constants, or by
	// ciphertexts in the encrypted-weight mode;
	// CtMuls estimates ciphertext-by-ciphertext products (the power basis
	// and Paterson-Stockmeyer giant steps), per output.
	ConstMuls, CtMuls int
}

// Plan is how a model runs on a parameter set; NewPlan refuses models that do
// not fit, so a plan's existence means the circuit can be evaluated.
type Plan struct {
	Model  string
	Params string
	LogN   int
	// RecordsPerBatch is the number of records in one ciphertext set
	// (2^(LogN-1) slots).
	RecordsPerBatch int
	// InputCiphertexts per batch (one per feature); OutputCiphertexts per
	// batch (one per model output).
	InputCiphertexts, OutputCiphertexts int
	// Levels needed by the circuit; inputs are encrypted at InputLevel =
	// Levels + OutputLevel and outputs come out at OutputLevel: 0 when the
	// last activation bounds the outputs, 1 (if available) when the last
	// layer is linear, for headroom. Available is the parameter set's
	// MaxLevel.
	Levels, Available, InputLevel, OutputLevel int
	LogScale                                   int
	// OutputBound is the largest output magnitude the modulus at
	// OutputLevel holds at the default scale (|y|*scale < Q/2); larger
	// outputs of a linear last layer wrap around.
	OutputBound float64
	Layers      []LayerPlan
	// NeedsRelinearizationKey is true when some activation multiplies
	// ciphertexts; GaloisElements is empty: column packing with plaintext
	// weights needs no rotation.
	NeedsRelinearizationKey bool
	GaloisElements          []uint64
	// CiphertextBytes is the size of one input ciphertext at InputLevel.
	CiphertextBytes int
	// WeightCiphertexts is the number of encrypted weights and biases in the
	// encrypted-weight mode (NewEncryptedPlan), 0 with plaintext weights.
	WeightCiphertexts int
}

// NewPlan validates the model and checks that it fits p.
func NewPlan(p engine.Parameters, m *Model) (*Plan, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if p.N() == 0 {
		return nil, errors.New("model: parameters are not initialised (use engine.ParametersByName)")
	}
	if p.LevelsConsumedPerRescaling() != 1 {
		return nil, fmt.Errorf("model: parameter set %s consumes %d levels per rescaling, expected 1", p.Name, p.LevelsConsumedPerRescaling())
	}
	pl := &Plan{
		Model: m.Name, Params: p.Name, LogN: p.LogN(), RecordsPerBatch: p.MaxSlots(),
		InputCiphertexts: m.Inputs, OutputCiphertexts: m.Outputs(),
		Available: p.MaxLevel(), LogScale: int(math.Round(math.Log2(p.DefaultScale().Float64()))),
	}
	in := m.Inputs
	for _, l := range m.Layers {
		lp := LayerPlan{In: in, Out: len(l.Bias), Activation: l.Activation, Levels: 1, ConstMuls: in * len(l.Bias)}
		if lp.Activation == "" {
			lp.Activation = Identity
		}
		if lp.Activation != Identity {
			ap, err := approximation(l)
			if err != nil {
				return nil, err
			}
			lp.Interval, lp.Degree, lp.Depth, lp.ApproxError = l.Interval, ap.degree, ap.depth, ap.maxError
			lp.Levels += ap.depth
			lp.CtMuls = ctMulEstimate(ap)
			pl.NeedsRelinearizationKey = pl.NeedsRelinearizationKey || ap.degree > 1
		}
		pl.Levels += lp.Levels
		pl.Layers = append(pl.Layers, lp)
		in = lp.Out
	}
	if pl.Levels > pl.Available {
		return nil, fmt.Errorf("%w: model %q needs %d levels (%s), parameter set %s has %d",
			ErrTooDeep, m.Name, pl.Levels, pl.levelSummary(), p.Name, pl.Available)
	}
	if last := m.Layers[len(m.Layers)-1].Activation; (last == "" || last == Identity) && pl.Levels < pl.Available {
		pl.OutputLevel = 1
	}
	pl.InputLevel = pl.Levels + pl.OutputLevel
	logQ := 0.0
	for _, q := range p.Q()[:pl.OutputLevel+1] {
		logQ += math.Log2(float64(q))
	}
	pl.OutputBound = math.Exp2(logQ - float64(pl.LogScale) - 1)
	level := pl.InputLevel
	for i := range pl.Layers {
		pl.Layers[i].InputLevel = level
		level -= pl.Layers[i].Levels
	}
	pl.CiphertextBytes = engine.CiphertextBinarySize(p, pl.InputLevel)
	return pl, nil
}

// ctMulEstimate is the number of ciphertext products for one polynomial:
// the power basis (powers of two and the baby-step powers) plus one product
// per giant step.
func ctMulEstimate(ap *approx) int {
	logDeg := depthOf(ap.degree)
	logSplit := logDeg >> 1
	a := (1 << logSplit) + (1 << (logDeg - logSplit)) + logDeg - logSplit - 3
	b := (1 << (logSplit + 1)) + (1 << (logDeg - logSplit - 1)) + logDeg - logSplit - 4
	if a > b {
		logSplit++
	}
	baby := 1 << logSplit
	n := logDeg - 1 // X^2, X^4, ..., X^(2^(logDeg-1))
	for i := baby - 1; i > 2; i-- {
		if !ap.odd || i&1 == 1 {
			if i&(i-1) != 0 {
				n++
			}
		}
	}
	return n + (ap.degree+1)/baby - 1
}

func (pl *Plan) levelSummary() string {
	parts := make([]string, len(pl.Layers))
	for i, l := range pl.Layers {
		if l.Depth > 0 {
			parts[i] = fmt.Sprintf("layer %d: 1 + %d for %s degree %d", i, l.Depth, l.Activation, l.Degree)
		} else {
			parts[i] = fmt.Sprintf("layer %d: 1", i)
		}
	}
	return strings.Join(parts, "; ")
}

// Explain describes the plan in text: depth per layer, approximation errors,
// keys and ciphertext counts.
func (pl *Plan) Explain() string {
	var b strings.Builder
	fmt.Fprintf(&b, "model %s on %s (LogN=%d, scale 2^%d)\n", pl.Model, pl.Params, pl.LogN, pl.LogScale)
	fmt.Fprintf(&b, "packing: column-packed, slot j of ciphertext i = feature i of record j; %d records per batch\n", pl.RecordsPerBatch)
	fmt.Fprintf(&b, "per batch: %d input ciphertexts (%d bytes each at level %d), %d output ciphertexts at level %d\n",
		pl.InputCiphertexts, pl.CiphertextBytes, pl.InputLevel, pl.OutputCiphertexts, pl.OutputLevel)
	fmt.Fprintf(&b, "outputs must stay below %.3g in magnitude (modulus at level %d)\n", pl.OutputBound, pl.OutputLevel)
	fmt.Fprintf(&b, "depth: %d of %d levels\n", pl.Levels, pl.Available)
	products := "constant products"
	if pl.WeightCiphertexts > 0 {
		products = "ciphertext products, one relinearization per output"
	}
	for i, l := range pl.Layers {
		fmt.Fprintf(&b, "  layer %d: dense %d -> %d (%d %s, 1 level)", i, l.In, l.Out, l.ConstMuls, products)
		if l.Depth > 0 {
			fmt.Fprintf(&b, ", %s on [%g, %g]: Chebyshev degree %d, %d levels, max approximation error %.2e, ~%d ciphertext products per output",
				l.Activation, l.Interval[0], l.Interval[1], l.Degree, l.Depth, l.ApproxError, l.CtMuls)
		}
		fmt.Fprintf(&b, "; level %d -> %d\n", l.InputLevel, l.InputLevel-l.Levels)
	}
	keys := "none"
	if pl.NeedsRelinearizationKey {
		keys = "relinearization key"
	}
	if pl.WeightCiphertexts > 0 {
		fmt.Fprintf(&b, "weights: encrypted, %d ciphertexts (one per weight and bias, value in every slot)\n", pl.WeightCiphertexts)
		fmt.Fprintf(&b, "keys: %s; Galois keys: none (column packing, no rotations)\n", keys)
	} else {
		fmt.Fprintf(&b, "keys: %s; Galois keys: none (plaintext weights, no rotations)\n", keys)
	}
	return b.String()
}
