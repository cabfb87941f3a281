package query

import (
	"fmt"
	"math"
	"sort"
	"strings"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/parties/datasource"
)

// Bounds gives a column's declared value range (from the consortium
// schema); ok is false for a column without one.
type Bounds func(column string) (lo, hi float64, ok bool)

// NoiseScales returns, for each slot of Layout(spec), the scale of the
// noise the whole consortium adds to it: the Laplace scale b or the
// Gaussian sigma for the cell's sensitivity and its share of the query's
// epsilon (and delta). One record changes a count or a histogram bucket by
// 1, a sum by at most max|x|, Σx² by max x², Σxy by max|xy|, which is why
// sums need declared ranges. It returns nil when the spec asks for no noise.
//
// Splitting epsilon evenly over every cell is basic composition: safe, and
// pessimistic for grouped cells, which partition the records.
func NoiseScales(spec *synodv1.QuerySpec, bounds Bounds) ([]float64, error) {
	pr := spec.GetPrivacy()
	if pr == nil || pr.GetEpsilon() == 0 {
		return nil, nil
	}
	if spec.GetTraining() != nil {
		t, err := ValidateTraining(spec)
		if err != nil {
			return nil, err
		}
		return t.NoiseScales(spec)
	}
	if err := ValidatePrivacy(pr); err != nil {
		return nil, err
	}
	layout := Layout(spec)
	cells := float64(len(layout))
	eps, delta := pr.GetEpsilon()/cells, pr.GetDelta()/cells
	out := make([]float64, len(layout))
	for i, label := range layout {
		if _, rest, ok := strings.Cut(label, "|"); ok {
			label = rest
		}
		sens, err := sensitivity(label, bounds)
		if err != nil {
			return nil, err
		}
		switch pr.GetMechanism() {
		case synodv1.Privacy_LAPLACE:
			out[i] = sens / eps
		case synodv1.Privacy_GAUSSIAN:
			out[i] = math.Sqrt(2*math.Log(1.25/delta)) * sens / eps
		}
	}
	if err := CheckNoiseFits(pr.GetEpsilon(), layout, out); err != nil {
		return nil, err
	}
	return out, nil
}

// MaxEpsilon is the largest epsilon one session may spend. Beyond it a
// single record may change the likelihood of an answer by more than e^10
// (about 22,000 times): differential privacy no longer protects anyone, and
// an analyst asking for more is asking for the data itself.
const MaxEpsilon = 10

// noiseTail is how many noise scales a draw may reach before it is treated
// as impossible: a Laplace draw exceeds 40 scales with probability e^-40
// (about 4e-18), a Gaussian one 40 sigmas never in practice.
const noiseTail = 40

// CheckNoiseFits refuses a privacy request whose noise could not be
// encoded: a cell's noise of scale b reaches noiseTail*b, and with the
// statistic itself it must stay within half of ValueBound, or encryption
// fails at some party (or, worse, the noised value wraps around). The
// message names the cell and the smallest epsilon that fits, never a value.
func CheckNoiseFits(epsilon float64, labels []string, scales []float64) error {
	limit := ValueBound() / 2
	worst, at := 0.0, ""
	for i, s := range scales {
		if s > worst {
			worst, at = s, labels[min(i, len(labels)-1)]
		}
	}
	if worst*noiseTail <= limit {
		return nil
	}
	return fmt.Errorf("privacy: epsilon %g is too small: cell %s would get noise of scale %.3g, beyond what a ciphertext slot holds (%.3g); ask for epsilon >= %.3g",
		epsilon, at, worst, limit/noiseTail, epsilon*worst*noiseTail/limit)
}

// ValidatePrivacy checks a privacy request on its own.
func ValidatePrivacy(pr *synodv1.Privacy) error {
	eps := pr.GetEpsilon()
	if math.IsNaN(eps) || math.IsInf(eps, 0) || eps < 0 {
		return fmt.Errorf("privacy: epsilon %v is not a positive number", eps)
	}
	if eps > MaxEpsilon {
		return fmt.Errorf("privacy: epsilon %g is above %d, where differential privacy no longer protects a record (one record may change an answer's likelihood %.0f times)", eps, MaxEpsilon, math.Exp(MaxEpsilon))
	}
	switch pr.GetMechanism() {
	case synodv1.Privacy_LAPLACE:
	case synodv1.Privacy_GAUSSIAN:
		if d := pr.GetDelta(); !(d > 0 && d < 1) {
			return fmt.Errorf("privacy: the Gaussian mechanism needs 0 < delta < 1, got %v", d)
		}
		if eps >= 1 {
			return fmt.Errorf("privacy: the classic Gaussian mechanism needs epsilon < 1, got %v", eps)
		}
	default:
		return fmt.Errorf("privacy: mechanism %v is not laplace or gaussian", pr.GetMechanism())
	}
	return nil
}

func sensitivity(label string, bounds Bounds) (float64, error) {
	kind, cols, _ := strings.Cut(label, ":")
	absMax := func(c string) (float64, error) {
		lo, hi, ok := bounds(c)
		if !ok {
			return 0, fmt.Errorf("privacy: column %q has no declared value range, so its sums have no bounded sensitivity", c)
		}
		return math.Max(math.Abs(lo), math.Abs(hi)), nil
	}
	switch kind {
	case CountSlot, "hist":
		return 1, nil
	case "sum":
		return absMax(cols)
	case "sumsq":
		m, err := absMax(cols)
		return m * m, err
	case "sumxy":
		a, b, _ := strings.Cut(cols, ",")
		ma, err := absMax(a)
		if err != nil {
			return 0, err
		}
		mb, err := absMax(b)
		return ma * mb, err
	}
	return 0, fmt.Errorf("privacy: no sensitivity for cell %q", label)
}

// Columns lists every column a query reads (aggregates, filters, the where
// predicate, groups, a training's features and label), sorted and
// distinct: what a column policy checks.
func Columns(spec *synodv1.QuerySpec) []string {
	seen := map[string]bool{}
	add := func(c string) {
		if c != "" {
			seen[c] = true
		}
	}
	for _, a := range spec.GetAggregates() {
		add(a.GetColumn())
		add(a.GetColumn2())
	}
	for _, f := range spec.GetFilters() {
		add(f.GetColumn())
	}
	var walk func(p *synodv1.Predicate)
	walk = func(p *synodv1.Predicate) {
		if p == nil {
			return
		}
		add(p.GetCompare().GetColumn())
		add(p.GetIn().GetColumn())
		for _, o := range p.GetAnd().GetOperands() {
			walk(o)
		}
		for _, o := range p.GetOr().GetOperands() {
			walk(o)
		}
		walk(p.GetNot())
	}
	walk(spec.GetWhere())
	for _, g := range spec.GetGroupBy() {
		add(g.GetColumn())
	}
	for _, f := range spec.GetTraining().GetFeatures() {
		add(f)
	}
	add(spec.GetTraining().GetLabel())
	out := make([]string, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// GroupShape returns the number of groups of a query and the number of
// slots each group takes in Layout(spec); a group's count is its first slot.
func GroupShape(spec *synodv1.QuerySpec) (groups, perGroup int) {
	return groupCount(spec), len(groupSlots(spec))
}

// CheckColumns checks that the table has every column the query reads,
// without reading any row.
func CheckColumns(t *datasource.Table, spec *synodv1.QuerySpec) error {
	for _, c := range Columns(spec) {
		if _, err := t.Column(c); err != nil {
			return err
		}
	}
	return nil
}
