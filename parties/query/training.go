package query

import (
	"fmt"
	"math"
	"slices"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine/glm"
)

// Training specs: a QuerySpec whose Training is set asks the parties to fit
// a model together (mpcctl train). Filters and WHERE select the training
// rows exactly as they select a query's; the spec's ranges scale every
// feature (and a linear label) into [-1, 1].

// Limits on a training spec.
const (
	// MaxTrainingFeatures keeps exact training's statistics (p(p+1)/2+p+1
	// cells for p = d+1 coefficients) within MaxCells.
	MaxTrainingFeatures = 62
	// MaxExactIterations bounds the Newton iterations of exact logistic
	// training.
	MaxExactIterations = 100
	// maxL2 bounds the penalty (a larger one fits nothing).
	maxL2 = 1e6
)

// Training is a validated training spec: what each party computes on.
type Training struct {
	Spec    *synodv1.Training
	Kind    glm.Kind
	Scaling glm.Scaling
	// Rounds is the most rounds the session may release (exact mode: 1 for
	// linear regression, the iterations for logistic).
	Rounds int
}

// ValidateTraining checks a training spec's shape before any data moves;
// mpcctl, the coordinator and every party run it.
func ValidateTraining(spec *synodv1.QuerySpec) (*Training, error) {
	tr := spec.GetTraining()
	switch {
	case tr == nil:
		return nil, fmt.Errorf("training: the spec carries no training")
	case spec.GetDataset() == "":
		return nil, fmt.Errorf("training: missing dataset")
	case len(spec.GetAggregates()) > 0 || spec.GetInference() != nil:
		return nil, fmt.Errorf("training: a training takes no aggregates and no model to validate")
	case len(spec.GetGroupBy()) > 0:
		return nil, fmt.Errorf("training: GROUP BY is not supported with a training")
	case tr.GetLabel() == "":
		return nil, fmt.Errorf("training: missing label column")
	case len(tr.GetFeatures()) == 0:
		return nil, fmt.Errorf("training: no feature columns")
	case len(tr.GetFeatures()) > MaxTrainingFeatures:
		return nil, fmt.Errorf("training: %d features exceed the limit of %d", len(tr.GetFeatures()), MaxTrainingFeatures)
	}
	for i, f := range spec.GetFilters() {
		if err := validateFilter(f); err != nil {
			return nil, fmt.Errorf("training: filter %d: %w", i+1, err)
		}
	}
	if w := spec.GetWhere(); w != nil {
		nodes := 0
		if err := validatePredicate(w, 0, &nodes); err != nil {
			return nil, fmt.Errorf("training: where: %w", err)
		}
	}
	t := &Training{Spec: tr}
	switch tr.GetModel() {
	case synodv1.Training_LINEAR:
		t.Kind = glm.Linear
	case synodv1.Training_LOGISTIC:
		t.Kind = glm.Logistic
	default:
		return nil, fmt.Errorf("training: model %v: want linear or logistic", tr.GetModel())
	}
	cols := append(slices.Clone(tr.GetFeatures()), tr.GetLabel())
	for i, c := range cols {
		if c == "" || slices.Contains(cols[:i], c) {
			return nil, fmt.Errorf("training: column %q is empty or repeated among the features and the label", c)
		}
	}
	want := 2 * len(tr.GetFeatures())
	if t.Kind == glm.Linear {
		want += 2
	}
	if len(tr.GetRanges()) != want {
		return nil, fmt.Errorf("training: %d range values, want %d (min and max of every feature%s)", len(tr.GetRanges()), want, map[bool]string{true: " and of the label", false: ""}[t.Kind == glm.Linear])
	}
	r := tr.GetRanges()
	for i, f := range tr.GetFeatures() {
		t.Scaling.Features = append(t.Scaling.Features, glm.Column{Name: f, Min: r[2*i], Max: r[2*i+1]})
	}
	if t.Kind == glm.Linear {
		t.Scaling.Label = glm.Column{Name: tr.GetLabel(), Min: r[want-2], Max: r[want-1]}
	} else {
		t.Scaling.Label = glm.Column{Name: tr.GetLabel(), Min: 0, Max: 1}
	}
	if err := t.Scaling.Validate(t.Kind); err != nil {
		return nil, fmt.Errorf("training: %w", err)
	}
	if l := tr.GetL2(); math.IsNaN(l) || math.IsInf(l, 0) || l < 0 || l > maxL2 {
		return nil, fmt.Errorf("training: --l2 %v outside [0, %g]", l, maxL2)
	}
	pr := spec.GetPrivacy()
	if pr != nil && pr.GetEpsilon() != 0 {
		if tr.GetMode() != synodv1.Training_EXACT {
			return nil, fmt.Errorf("training: differential privacy is available in exact mode only (encrypted mode releases only the final model)")
		}
		if err := ValidatePrivacy(pr); err != nil {
			return nil, err
		}
	}
	switch tr.GetMode() {
	case synodv1.Training_EXACT:
		t.Rounds = 1
		if t.Kind == glm.Logistic {
			t.Rounds = int(tr.GetIterations())
			if t.Rounds < 1 || t.Rounds > MaxExactIterations {
				return nil, fmt.Errorf("training: %d Newton iterations outside [1, %d]", t.Rounds, MaxExactIterations)
			}
		} else if tr.GetIterations() > 1 {
			return nil, fmt.Errorf("training: exact linear regression takes one round, not %d iterations", tr.GetIterations())
		}
		if tr.GetKeepEncrypted() {
			return nil, fmt.Errorf("training: --keep-encrypted needs encrypted mode")
		}
	case synodv1.Training_ENCRYPTED:
		if tr.GetIterations() < 1 {
			return nil, fmt.Errorf("training: encrypted mode needs at least one iteration")
		}
		if tr.GetKeepEncrypted() {
			if err := checkName(tr.GetName()); err != nil {
				return nil, fmt.Errorf("training: --keep-encrypted: %w", err)
			}
		}
	default:
		return nil, fmt.Errorf("training: mode %v: want exact or encrypted", tr.GetMode())
	}
	return t, nil
}

// checkName checks a stored model's name (letters, digits, - _ .).
func checkName(name string) error {
	if name == "" || len(name) > 64 || name[0] == '.' {
		return fmt.Errorf("model name %q: want 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("model name %q: want 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'", name)
		}
	}
	return nil
}

// Columns lists the columns a training reads: its features, its label and
// the columns of its filters.
func (t *Training) Columns(spec *synodv1.QuerySpec) []string {
	cols := append(slices.Clone(t.Spec.GetFeatures()), t.Spec.GetLabel())
	for _, c := range Columns(spec) {
		if !slices.Contains(cols, c) {
			cols = append(cols, c)
		}
	}
	return cols
}

// Labels names the cells of one round of exact training.
func (t *Training) Labels() []string { return glm.Labels(t.Kind, t.Scaling.P()) }

// NoiseScales returns the differential privacy noise scale of every cell
// of a round of exact training (nil without DP). The spec's epsilon (and
// delta) is the whole training's: it is split evenly over every cell of
// every round it may release (basic composition), each cell's sensitivity
// given by glm.Sensitivities for rows scaled into [-1, 1].
func (t *Training) NoiseScales(spec *synodv1.QuerySpec) ([]float64, error) {
	pr := spec.GetPrivacy()
	if pr == nil || pr.GetEpsilon() == 0 {
		return nil, nil
	}
	sens := glm.Sensitivities(t.Kind, t.Scaling.P())
	cells := float64(len(sens) * t.Rounds)
	eps, delta := pr.GetEpsilon()/cells, pr.GetDelta()/cells
	out := make([]float64, len(sens))
	for i, s := range sens {
		switch pr.GetMechanism() {
		case synodv1.Privacy_LAPLACE:
			out[i] = s / eps
		case synodv1.Privacy_GAUSSIAN:
			out[i] = math.Sqrt(2*math.Log(1.25/delta)) * s / eps
		}
	}
	if err := CheckNoiseFits(pr.GetEpsilon(), t.Labels(), out); err != nil {
		return nil, err
	}
	return out, nil
}
