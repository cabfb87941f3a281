// Package train holds the homomorphic circuits of encrypted-mode training of
// logistic and linear regression: the model stays encrypted under the
// consortium's collective key for the whole training, and no one sees it,
// nor any gradient, until the consortium releases the final model.
//
// One iteration of gradient descent:
//
//   - every data party evaluates the gradient of its own rows at the
//     encrypted model (Gradient): its rows stay in the clear, as
//     plaintexts, so the circuit is ciphertext-by-plaintext products, one
//     polynomial approximation of the sigmoid per batch of rows, and no
//     rotation. It sends p = d+1 ciphertexts G_c, one per coefficient, whose
//     slots sum to k * sum_j (s_j - y_j) z_{j,c} over its rows.
//   - the coordinator adds the parties' G_c and the terms of the penalty
//     and of the momentum (Combine), at the lowest level a collective
//     refresh accepts;
//   - a collective refresh with the slot-mean transform (package protocols)
//     turns each combined ciphertext into a fresh one, at the top level,
//     encrypting the mean of its slots in every slot: with
//     k = -eta*slots/n that is the gradient step -eta*(grad_c + lambda*w_c);
//   - the coordinator adds the steps to the model (Update): additions only,
//     at the top level.
//
// The sigmoid is a Chebyshev interpolant on an interval [-B, B] that must
// hold every logit z.w the training meets. NewPlan derives B from the
// declared feature ranges (|x'| <= 1 after scaling, so ||z|| <= sqrt(p)) and
// a bound R on the weights (|z.w| <= R*sqrt(p)), which it derives from the
// penalty (see derivedRadius) or takes from the spec; when the bound is not
// a theorem (momentum, an explicit radius) the plan says that a runtime
// check of the weights' norm (NormSlack, MaskedSign) is required.
//
// Rows are column-packed as in engine/model: slot j of the plaintext of
// feature c holds x'_{j,c}, a batch holding Plan.Slots rows.
package train

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/engine/model"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/mhe/mhefloat"
)

// Kind is the regression trained.
type Kind string

// Supported regressions.
const (
	// Logistic regression: labels in {0, 1}, s = sigmoid(z.w), log-loss.
	Logistic Kind = "logistic"
	// Linear regression: labels scaled to [-1, 1], s = z.w, squared error.
	Linear Kind = "linear"
)

// DefaultMaxApproxError is the maximum error of the sigmoid's polynomial
// on its interval when the spec sets none.
const DefaultMaxApproxError = 1e-2

// refreshSecurity is the statistical security, in bits, of the masks of the
// collective refresh (mhefloat.GetMinimumLevelForRefresh).
const refreshSecurity = 128

// noiseAllowance bounds the error of the encrypted computation on one
// gradient coefficient (encoding, encryption, rescaling and refresh noise),
// added to the approximation error in the radius argument. The gradient
// tests measure below 1e-9 at ckks-n14 and ckks-n15; the margin is for the
// refresh's noise, which they do not include.
const noiseAllowance = 1e-6

// featureTolerance is how far beyond [-1, 1] a scaled feature (and a scaled
// linear label) may lie: rounding of (x - center)/half.
const featureTolerance = 1e-9

// Limits on the spec: sizes a party or coordinator allocates for.
const (
	MaxFeatures   = 1024
	MaxIterations = 1 << 16
	MaxParties    = 1 << 10
	MaxRows       = 1 << 40
)

// ErrTooDeep is returned (wrapped) by NewPlan when the circuit needs more
// levels than the parameter set has.
var ErrTooDeep = errors.New("training circuit too deep for the parameter set")

// Spec is what the analyst asks for and the consortium approves.
type Spec struct {
	Model Kind
	// Features is d, the number of features; the model has p = d+1
	// coefficients, w_0 the intercept.
	Features int
	// Lambda is the L2 penalty (lambda/2)*||w||^2 on every coefficient,
	// the intercept included: in encrypted mode the penalty is what bounds
	// the weights, and so the interval of the sigmoid (derivedRadius), and
	// an unpenalized intercept would have no bound.
	Lambda float64
	// Iterations of gradient descent; the derived radius holds for that
	// many and Update refuses to go beyond.
	Iterations int
	// StepSize eta; 0 chooses 1/L, L the bound on the Hessian's largest
	// eigenvalue (Plan.Smoothness). A larger step needs an explicit Radius.
	StepSize float64
	// Momentum selects Nesterov's accelerated gradient with constant
	// momentum beta = (1 - sqrt(eta*lambda)) / (1 + sqrt(eta*lambda)).
	Momentum bool
	// Radius R bounds ||w||_2 (of the point where gradients are evaluated);
	// 0 derives it (derivedRadius).
	Radius float64
	// MaxApproxError bounds the sigmoid polynomial's error on its interval;
	// 0 means DefaultMaxApproxError.
	MaxApproxError float64
	// Parties is the number of data parties, whose gradients Combine
	// expects; it is also the number of refresh participants the refresh
	// level is sized for (the masks grow with its logarithm: a refresh
	// among more parties may need a higher level).
	Parties int
	// Rows is the total number of rows n over all parties.
	Rows int
	// Slots is the number of rows per batch; 0 means the parameter set's
	// MaxSlots. The refresh's slot mean always averages MaxSlots slots.
	Slots int
}

// Plan is how a training runs on a parameter set; NewPlan refuses what
// does not fit, so a plan's existence means the circuits can be evaluated
// and the interval of the sigmoid is accounted for.
type Plan struct {
	Spec   Spec // with defaults filled in
	Params string
	LogN   int
	// Coefficients is p = Features+1.
	Coefficients int
	// MaxSlots is the number of slots the refresh averages; Slots the rows
	// per batch.
	MaxSlots, Slots int

	// Smoothness L bounds the largest eigenvalue of the objective's
	// Hessian: p/4 + lambda (logistic) or p + lambda (linear).
	Smoothness float64
	// StepSize eta, Beta the momentum (0 without).
	StepSize, Beta float64
	// GradientFactor k = -eta*MaxSlots/Rows, folded into the parties'
	// products, so that the refreshed slot mean is -eta*gradient.
	GradientFactor float64

	// Radius R bounds ||w||; RadiusDerived says whether NewPlan derived it,
	// RadiusReason how.
	Radius        float64
	RadiusDerived bool
	RadiusReason  string
	// RuntimeNormCheck is true when R is not a theorem of the plan: the
	// coordinator must check ||w|| <= R under encryption (NormSlack,
	// MaskedSign) before every gradient and stop when it fails.
	RuntimeNormCheck bool

	// Bound B = R*sqrt(p): the sigmoid is approximated on [-B, B]
	// (logistic only).
	Bound float64
	// Sigmoid is the polynomial (nil for linear), of degree Degree and
	// depth Depth, with maximum error ApproxError on [-B, B]; Products
	// estimates its ciphertext products.
	Sigmoid                   *model.Approximation
	Degree, Depth, Products   int
	ApproxError               float64
	RefreshLevel, TopLevel    int // the refresh's minimum input level; MaxLevel
	GradientLevel, PointLevel int // level the parties compute from; level of the point they receive
	// LevelsNeeded is what the circuit needs from the top: GradientLevel
	// (plus one for the momentum's extrapolation).
	LevelsNeeded int
	LogScale     int

	// Per party per iteration: the point received (Coefficients
	// ciphertexts at PointLevel) and the gradient sent (Coefficients
	// ciphertexts at RefreshLevel).
	PointBytes, GradientBytes int
	// Refreshes per iteration (one per coefficient).
	Refreshes int

	// Costs, if set, lets Explain estimate the time of an iteration.
	Costs *Costs
}

// NewPlan checks spec and fits it to p.
func NewPlan(p engine.Parameters, spec Spec) (*Plan, error) {
	pl, err := plan(p, spec)
	if errors.Is(err, ErrTooDeep) {
		var fits []string
		for _, name := range engine.ParameterNames() {
			if name == p.Name {
				continue
			}
			if other, perr := engine.ParametersByName(name); perr == nil {
				if _, ferr := plan(other, spec); ferr == nil {
					fits = append(fits, name)
				}
			}
		}
		if len(fits) == 0 {
			return nil, fmt.Errorf("%w; no registered parameter set fits (raise Lambda or MaxApproxError, or give a smaller Radius)", err)
		}
		return nil, fmt.Errorf("%w; it fits %s", err, strings.Join(fits, ", "))
	}
	return pl, err
}

func plan(p engine.Parameters, spec Spec) (*Plan, error) {
	if p.N() == 0 {
		return nil, errors.New("train: parameters are not initialised (use engine.ParametersByName)")
	}
	if p.LevelsConsumedPerRescaling() != 1 {
		return nil, fmt.Errorf("train: parameter set %s consumes %d levels per rescaling, expected 1", p.Name, p.LevelsConsumedPerRescaling())
	}
	for i, q := range p.Q() {
		// The lazy products of the gradient circuit (reduceEvery) need
		// primes below 2^56.
		if q >= 1<<56 {
			return nil, fmt.Errorf("train: parameter set %s: prime %d of Q is above 2^56", p.Name, i)
		}
	}
	if spec.MaxApproxError == 0 {
		spec.MaxApproxError = DefaultMaxApproxError
	}
	if spec.Slots == 0 {
		spec.Slots = p.MaxSlots()
	}
	if err := spec.check(p); err != nil {
		return nil, err
	}
	pl := &Plan{
		Spec: spec, Params: p.Name, LogN: p.LogN(), Coefficients: spec.Features + 1,
		MaxSlots: p.MaxSlots(), Slots: spec.Slots, TopLevel: p.MaxLevel(),
		LogScale: int(math.Round(math.Log2(p.DefaultScale().Float64()))),
	}
	coeffs := float64(pl.Coefficients)

	// Smoothness. The Hessian of the data term is (1/n) sum_j c_j z_j z_j^T
	// with c_j = sigma'(z_j.w) <= 1/4 (logistic) or 1 (linear); its largest
	// eigenvalue is at most (1/n) sum_j c_j ||z_j||^2 <= c*p, since every
	// |z_{j,c}| <= 1. The penalty adds lambda.
	curvature := 1.0
	if spec.Model == Logistic {
		curvature = 0.25
	}
	pl.Smoothness = curvature*coeffs + spec.Lambda
	pl.StepSize = spec.StepSize
	if pl.StepSize == 0 {
		pl.StepSize = 1 / pl.Smoothness
	}
	if pl.StepSize > 1/pl.Smoothness*(1+1e-12) && spec.Radius == 0 {
		return nil, fmt.Errorf("train: step size %g exceeds 1/L = %g (L = %g bounds the Hessian): the weights' bound, and so the sigmoid's interval, cannot be derived; give a Radius (and check it at runtime) or a smaller step", pl.StepSize, 1/pl.Smoothness, pl.Smoothness)
	}
	if spec.Momentum {
		if spec.Lambda == 0 {
			return nil, errors.New("train: momentum needs lambda > 0 (its constant beta comes from the strong convexity lambda)")
		}
		r := math.Sqrt(pl.StepSize * spec.Lambda)
		if r >= 1 {
			return nil, fmt.Errorf("train: step size %g times lambda %g is not below 1: no momentum", pl.StepSize, spec.Lambda)
		}
		pl.Beta = (1 - r) / (1 + r)
	}
	pl.GradientFactor = -pl.StepSize * float64(pl.MaxSlots) / float64(spec.Rows)

	if err := pl.chooseRadius(); err != nil {
		return nil, err
	}
	if pl.RuntimeNormCheck && pl.Radius > MaxCheckedRadius {
		return nil, fmt.Errorf("train: radius %.4g needs the runtime norm check, which handles radii up to %d: raise Lambda or give a smaller Radius", pl.Radius, MaxCheckedRadius)
	}
	if spec.Model == Logistic {
		pl.Bound = pl.Radius * math.Sqrt(coeffs)
		if err := pl.chooseSigmoid(); err != nil {
			return nil, err
		}
	}

	minLevel, _, ok := mhefloat.GetMinimumLevelForRefresh(refreshSecurity, p.DefaultScale(), spec.Parties, p.Q())
	if !ok {
		return nil, fmt.Errorf("%w: parameter set %s has no level at which %d parties can refresh with %d-bit masks", ErrTooDeep, p.Name, spec.Parties, refreshSecurity)
	}
	pl.RefreshLevel = minLevel
	// From the gradient level: 1 for z = sum_c w_c x'_c (plaintext
	// products and a rescale), Depth for the sigmoid, 1 for the products
	// (s - y) * k x'_c (rescaled once after the sum over batches), landing
	// on the refresh level.
	pl.GradientLevel = pl.RefreshLevel + 1 + pl.Depth + 1
	pl.PointLevel = pl.TopLevel
	pl.LevelsNeeded = pl.GradientLevel
	if spec.Momentum {
		// The point y = w + beta*v is a product by a constant of
		// top-level ciphertexts: one level below the top.
		pl.PointLevel--
		pl.LevelsNeeded++
	}
	if pl.LevelsNeeded > pl.TopLevel {
		return nil, fmt.Errorf("%w: %s needs %d levels (refresh minimum %d for %d parties, 1 for the logits, %d for the sigmoid of degree %d on [-%.4g, %.4g], 1 for the gradient products%s), parameter set %s has %d",
			ErrTooDeep, spec.Model, pl.LevelsNeeded, pl.RefreshLevel, spec.Parties, pl.Depth, pl.Degree, pl.Bound, pl.Bound, momentumLevel(spec.Momentum), p.Name, pl.TopLevel)
	}
	pl.PointBytes = pl.Coefficients * engine.CiphertextBinarySize(p, pl.PointLevel)
	pl.GradientBytes = pl.Coefficients * engine.CiphertextBinarySize(p, pl.RefreshLevel)
	pl.Refreshes = pl.Coefficients
	return pl, nil
}

func momentumLevel(momentum bool) string {
	if momentum {
		return ", 1 for the momentum's extrapolation"
	}
	return ""
}

func (s *Spec) check(p engine.Parameters) error {
	switch s.Model {
	case Logistic, Linear:
	default:
		return fmt.Errorf("train: unknown model %q (logistic or linear)", string(s.Model))
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case s.Features < 1 || s.Features > MaxFeatures:
		return fmt.Errorf("train: %d features outside [1, %d]", s.Features, MaxFeatures)
	case !finite(s.Lambda) || s.Lambda < 0 || s.Lambda > 1e6:
		return fmt.Errorf("train: lambda %g outside [0, 1e6]", s.Lambda)
	case s.Iterations < 1 || s.Iterations > MaxIterations:
		return fmt.Errorf("train: %d iterations outside [1, %d]", s.Iterations, MaxIterations)
	case !finite(s.StepSize) || s.StepSize < 0 || s.StepSize > 1e6:
		return fmt.Errorf("train: step size %g outside [0, 1e6]", s.StepSize)
	case !finite(s.Radius) || s.Radius < 0 || s.Radius > 1e6:
		return fmt.Errorf("train: radius %g outside [0, 1e6]", s.Radius)
	case !finite(s.MaxApproxError) || s.MaxApproxError <= 0 || s.MaxApproxError > 0.5:
		return fmt.Errorf("train: max approximation error %g outside (0, 0.5]", s.MaxApproxError)
	case s.Parties < 1 || s.Parties > MaxParties:
		return fmt.Errorf("train: %d parties outside [1, %d]", s.Parties, MaxParties)
	case s.Rows < 1 || s.Rows > MaxRows:
		return fmt.Errorf("train: %d rows outside [1, %d]", s.Rows, MaxRows)
	case s.Slots < 1 || s.Slots > p.MaxSlots():
		return fmt.Errorf("train: %d rows per batch outside [1, %d] (the slots of %s)", s.Slots, p.MaxSlots(), p.Name)
	}
	return nil
}

// chooseRadius sets R, from the spec or derived.
func (pl *Plan) chooseRadius() error {
	s := pl.Spec
	if s.Radius > 0 {
		pl.Radius = s.Radius
		derived, _, err := pl.derivedRadius()
		// An explicit radius is a theorem only when it covers the derived
		// one; otherwise the weights must be checked against it.
		pl.RuntimeNormCheck = s.Model == Logistic && (err != nil || s.Radius < derived)
		pl.RadiusReason = "given in the spec"
		if pl.RuntimeNormCheck {
			pl.RadiusReason += "; not implied by the penalty: check ||w|| <= R at runtime"
		} else if s.Model == Logistic {
			pl.RadiusReason += fmt.Sprintf("; covers the derived bound %.4g", derived)
		}
		return nil
	}
	r, reason, err := pl.derivedRadius()
	if err != nil {
		return err
	}
	pl.Radius, pl.RadiusDerived, pl.RadiusReason = r, true, reason
	pl.RuntimeNormCheck = s.Model == Logistic && s.Momentum
	return nil
}

// derivedRadius bounds the norm of every point where a gradient is
// evaluated, from the penalty.
//
// J(w) = data term + (lambda/2)||w||^2 with a non-negative data term, so
// (lambda/2)||w||^2 <= J(w), and J(0) = log 2 (logistic: every prediction
// 1/2) or mean(y'^2)/2 <= 1/2 (linear, |y'| <= 1).
//
// Gradient descent with step eta <= 1/L on the gradient g = gradJ + e, the
// error e coming from the sigmoid's approximation (at most eps per row,
// hence |e_c| <= eps*mean_j|z_{j,c}| <= eps and ||e|| <= eps*sqrt(p)) and
// the encryption noise, satisfies by L-smoothness
//
//	J(w+) <= J(w) - eta gradJ.g + (L eta^2/2)||g||^2
//	      <= J(w) - eta gradJ.g + (eta/2)||gradJ + e||^2
//	       = J(w) - (eta/2)||gradJ||^2 + (eta/2)||e||^2 <= J(w) + (eta/2)||e||^2,
//
// so after k iterations from w = 0, J(w_k) <= J(0) + k*eta*eps^2*p/2, and
// ||w_k|| <= R = sqrt(2*(J(0) + K*eta*eps^2*p/2)/lambda) for all k <= K.
// The bound on e needs every earlier logit inside [-B, B], B = R*sqrt(p):
// the induction over k carries it, as w_0 = 0 is inside.
//
// Nesterov's method is not monotone. For exact gradients, the potential
// f(x_k) - f* + (lambda/2)||v_k - x*||^2 of the constant-momentum scheme
// (mu = lambda) decreases, so f(x_k) <= f(0) + (lambda/2)||x*||^2 <= 2 f(0)
// and ||x_k|| <= sqrt(2)*R_0 (R_0 = sqrt(2 f(0)/lambda)); the gradient is
// evaluated at y_k = x_k + beta*(x_k - x_{k-1}), ||y_k|| <= (1+2 beta)
// sqrt(2) R_0. The approximation errors are not covered by that argument:
// the plan then requires the runtime norm check.
func (pl *Plan) derivedRadius() (float64, string, error) {
	s := pl.Spec
	if s.Lambda == 0 {
		return 0, "", errors.New("train: lambda = 0 bounds no weight: give a positive Lambda or an explicit Radius (with a runtime norm check)")
	}
	j0, j0Reason := math.Ln2, "J(0) = log 2"
	if s.Model == Linear {
		j0, j0Reason = 0.5, "J(0) <= 1/2 (|y'| <= 1)"
	}
	if s.Momentum {
		r0 := math.Sqrt(2 * j0 / s.Lambda)
		r := (1 + 2*pl.Beta) * math.Sqrt2 * r0
		return r, fmt.Sprintf("Nesterov, exact gradients: ||y_k|| <= (1+2 beta) sqrt(2) sqrt(2 J(0)/lambda), %s; approximation errors not covered", j0Reason), nil
	}
	eps := noiseAllowance
	if s.Model == Logistic {
		eps += s.MaxApproxError
	}
	growth := float64(s.Iterations) * pl.StepSize * eps * eps * float64(pl.Coefficients) / 2
	r := math.Sqrt(2 * (j0 + growth) / s.Lambda)
	return r, fmt.Sprintf("gradient descent, step <= 1/L: (lambda/2)||w_k||^2 <= J(w_k) <= J(0) + K eta eps^2 p/2 = %.4g + %.3g, %s, eps = %.3g (approximation + noise)", j0, growth, j0Reason, eps), nil
}

// chooseSigmoid picks the smallest degree 2^k-1 whose error on [-B, B] is
// at most MaxApproxError.
func (pl *Plan) chooseSigmoid() error {
	for d := 3; d <= model.MaxApproxDegree; d = 2*d + 1 {
		ap, err := model.Approximate(model.Sigmoid, -pl.Bound, pl.Bound, d)
		if err != nil {
			return fmt.Errorf("train: sigmoid on [-%g, %g]: %w", pl.Bound, pl.Bound, err)
		}
		if ap.MaxError() <= pl.Spec.MaxApproxError {
			pl.Sigmoid, pl.Degree, pl.Depth, pl.Products, pl.ApproxError = ap, ap.Degree(), ap.Depth(), ap.Products(), ap.MaxError()
			return nil
		}
	}
	return fmt.Errorf("%w: the sigmoid on [-%.4g, %.4g] (R = %.4g, p = %d) needs a degree above %d for an error of %g: raise Lambda or MaxApproxError, or give a smaller Radius",
		ErrTooDeep, pl.Bound, pl.Bound, pl.Radius, pl.Coefficients, model.MaxApproxDegree, pl.Spec.MaxApproxError)
}

// Batches is the number of batches of a party holding rows rows.
func (pl *Plan) Batches(rows int) int { return (rows + pl.Slots - 1) / pl.Slots }

// Costs are measured costs of the operations of an iteration (MeasureCosts
// measures the first three on the local machine; one measurement each, so
// noisy on a loaded machine).
type Costs struct {
	// Encode is the encoding of one feature column at the gradient level.
	Encode time.Duration
	// PlainMul is one ciphertext-by-plaintext product accumulated at the
	// gradient level.
	PlainMul time.Duration
	// Sigmoid is one evaluation of the sigmoid's polynomial.
	Sigmoid time.Duration
	// Refresh is one collective refresh, network included (an input: it
	// depends on the parties and the network).
	Refresh time.Duration
}

// BatchTime estimates a party's time for one batch: p encodings, 2p
// plaintext products, one sigmoid.
func (pl *Plan) BatchTime(c Costs) time.Duration {
	n := time.Duration(pl.Coefficients)
	return n*c.Encode + 2*n*c.PlainMul + c.Sigmoid
}

// IterationTime estimates an iteration: the parties in parallel, each with
// at most ceil(Rows/Parties) rows spread evenly, plus p encodings of the
// label term once per party, then the refreshes one after the other (the
// coordinator's additions are negligible). Operations are counted on one
// core; a party's two cores, and its fixed costs (copies, allocations),
// move the measured time either way by up to a factor of two.
func (pl *Plan) IterationTime(c Costs) time.Duration {
	rows := (pl.Spec.Rows + pl.Spec.Parties - 1) / pl.Spec.Parties
	return time.Duration(pl.Batches(rows))*pl.BatchTime(c) + time.Duration(pl.Coefficients)*c.Encode + time.Duration(pl.Refreshes)*c.Refresh
}

// Explain describes the plan: interval and why, degree, error, levels,
// traffic, refreshes, and with Costs an estimated time.
func (pl *Plan) Explain() string {
	var b strings.Builder
	s := pl.Spec
	method := "gradient descent"
	if s.Momentum {
		method = fmt.Sprintf("Nesterov's accelerated gradient (beta = %.4f)", pl.Beta)
	}
	fmt.Fprintf(&b, "%s regression, %d features (%d coefficients, intercept penalized like the others), lambda %g, on %s (LogN=%d, scale 2^%d)\n",
		s.Model, s.Features, pl.Coefficients, s.Lambda, pl.Params, pl.LogN, pl.LogScale)
	fmt.Fprintf(&b, "%s, %d iterations, step %.4g (1/L = %.4g, L = %.4g bounds the Hessian since |x'| <= 1)\n",
		method, s.Iterations, pl.StepSize, 1/pl.Smoothness, pl.Smoothness)
	fmt.Fprintf(&b, "weights: ||w|| <= R = %.4g (%s)\n", pl.Radius, pl.RadiusReason)
	if s.Model == Logistic {
		fmt.Fprintf(&b, "sigmoid on [-%.4g, %.4g] = R*sqrt(p) (|z.w| <= ||w|| ||z||, ||z|| <= sqrt(p)): Chebyshev degree %d, depth %d, max error %.2e (target %.0e), ~%d ciphertext products per batch\n",
			pl.Bound, pl.Bound, pl.Degree, pl.Depth, pl.ApproxError, s.MaxApproxError, pl.Products)
	} else {
		b.WriteString("no sigmoid: residual z.w - y' (labels scaled to [-1, 1])\n")
	}
	if pl.RuntimeNormCheck {
		fmt.Fprintf(&b, "RUNTIME CHECK REQUIRED: before every gradient, the sign of R^2 - ||w||^2 (NormSlack, MaskedSign); stop when it is negative\n")
	}
	fmt.Fprintf(&b, "levels: the parties compute from level %d (refresh minimum %d for %d parties + 1 logits + %d sigmoid + 1 gradient products); the model lives at level %d, the point sent to the parties at %d; %d of %d levels used\n",
		pl.GradientLevel, pl.RefreshLevel, s.Parties, pl.Depth, pl.TopLevel, pl.PointLevel, pl.LevelsNeeded, pl.TopLevel)
	fmt.Fprintf(&b, "batches of %d rows; gradient factor k = -eta*%d/%d = %.4g\n", pl.Slots, pl.MaxSlots, s.Rows, pl.GradientFactor)
	fmt.Fprintf(&b, "per party per iteration: receives %d ciphertexts (%d bytes), sends %d ciphertexts at level %d (%d bytes)\n",
		pl.Coefficients, pl.PointBytes, pl.Coefficients, pl.RefreshLevel, pl.GradientBytes)
	keys := "relinearization key (the sigmoid)"
	if pl.Sigmoid == nil {
		keys = "none for the gradients"
	}
	if pl.RuntimeNormCheck {
		keys = "relinearization key (the sigmoid and the norm check)"
	}
	fmt.Fprintf(&b, "per iteration: %d collective refreshes (slot mean), no rotation, no Galois key; keys: %s\n", pl.Refreshes, keys)
	if pl.Costs != nil {
		it := pl.IterationTime(*pl.Costs)
		fmt.Fprintf(&b, "estimated time: %v per batch, %v per iteration (%d refreshes at %v), %v for %d iterations\n",
			pl.BatchTime(*pl.Costs).Round(time.Millisecond), it.Round(time.Millisecond), pl.Refreshes, pl.Costs.Refresh, (it * time.Duration(s.Iterations)).Round(time.Second), s.Iterations)
	}
	return b.String()
}

// MeasureCosts times the party's operations on this machine at the plan's
// levels, on an encryption of zero under pk (the collective public key;
// nothing is decrypted): a column encoding, an accumulated plaintext
// product (each averaged over 4 runs) and one evaluation of the sigmoid (with evk's
// relinearization key). refresh is taken as given.
func MeasureCosts(p engine.Parameters, pl *Plan, pk *rlwe.PublicKey, evk rlwe.EvaluationKeySet, refresh time.Duration) (Costs, error) {
	if err := pl.checkParameters(p); err != nil {
		return Costs{}, fmt.Errorf("measure costs: %w", err)
	}
	if pk == nil || len(pk.Value) != 2 || pk.Value[0].Q.N() != p.N() || pk.Value[0].Q.Level() < pl.GradientLevel {
		return Costs{}, fmt.Errorf("measure costs: the public key does not fit parameter set %s", p.Name)
	}
	c := Costs{Refresh: refresh}
	ct := hefloat.NewCiphertext(p.Parameters, 1, pl.GradientLevel)
	if err := hefloat.NewEncryptor(p.Parameters, pk).Encrypt(hefloat.NewPlaintext(p.Parameters, pl.GradientLevel), ct); err != nil {
		return Costs{}, fmt.Errorf("measure costs: %w", err)
	}
	ecd := model.GetColumnEncoder(p)
	defer ecd.Release()
	values := make([]float64, pl.Slots)
	for j := range values {
		values[j] = float64(j%7)/7 - 0.5
	}
	pt := hefloat.NewPlaintext(p.Parameters, pl.GradientLevel)
	const reps = 4 // the cheap operations are averaged over a few runs
	start := time.Now()
	for range reps {
		if err := ecd.Encode(values, pt); err != nil {
			return Costs{}, fmt.Errorf("measure costs: %w", err)
		}
	}
	c.Encode = time.Since(start) / reps
	acc := hefloat.NewCiphertext(p.Parameters, 1, pl.GradientLevel)
	ringQ := p.RingQ().AtLevel(pl.GradientLevel)
	start = time.Now()
	for range reps {
		ringQ.MulCoeffsMontgomeryLazyThenAddLazy(ct.Value[0], pt.Value, acc.Value[0])
		ringQ.MulCoeffsMontgomeryLazyThenAddLazy(ct.Value[1], pt.Value, acc.Value[1])
	}
	c.PlainMul = time.Since(start) / reps
	if pl.Sigmoid != nil {
		base := getEvaluator(p)
		defer putEvaluator(p, base)
		if evk == nil {
			return Costs{}, errors.New("measure costs: the sigmoid needs the relinearization key")
		}
		ev := base.WithKey(evk)
		ct.Resize(1, pl.GradientLevel-1)
		poly, _ := pl.Sigmoid.Scaled(1)
		start = time.Now()
		if _, err := hefloat.NewPolynomialEvaluator(p.Parameters, ev).Evaluate(ct, hefloat.NewPolynomial(poly), p.DefaultScale()); err != nil {
			return Costs{}, fmt.Errorf("measure costs: sigmoid: %w", err)
		}
		c.Sigmoid = time.Since(start)
	}
	return c, nil
}
