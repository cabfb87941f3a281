package query

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
)

// Cell is one released statistic of one group.
type Cell struct {
	// Group holds the GROUP BY columns' values; nil without GROUP BY.
	Group map[string]float64 `json:"group,omitempty"`
	Name  string             `json:"name"`
	// Value is NaN when the statistic is undefined (AVG of no row,
	// VAR_SAMP of fewer than two, CORR of a constant column) or suppressed;
	// JSON null.
	Value float64 `json:"value"`
	// Suppressed is set when the cell's group fell below the consortium's
	// minimum cohort: its value was never released.
	Suppressed bool `json:"suppressed,omitempty"`
}

type cellJSON struct {
	Group      map[string]float64 `json:"group,omitempty"`
	Name       string             `json:"name"`
	Value      *float64           `json:"value"`
	Suppressed bool               `json:"suppressed,omitempty"`
}

// Suppress marks the cells of the suppressed groups (Finish emits the same
// number of cells for every group, in group order) and clears their values.
func Suppress(spec *synodv1.QuerySpec, cells []Cell, suppressed func(group int) bool) {
	groups, _ := GroupShape(spec)
	if groups == 0 || len(cells)%groups != 0 {
		return
	}
	per := len(cells) / groups
	for i := range cells {
		if suppressed(i / per) {
			cells[i].Value, cells[i].Suppressed = math.NaN(), true
		}
	}
}

// MarshalJSON writes an undefined value as null.
func (c Cell) MarshalJSON() ([]byte, error) {
	j := cellJSON{Group: c.Group, Name: c.Name, Suppressed: c.Suppressed}
	if !math.IsNaN(c.Value) && !math.IsInf(c.Value, 0) {
		j.Value = &c.Value
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads null as NaN.
func (c *Cell) UnmarshalJSON(b []byte) error {
	var j cellJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	c.Group, c.Name, c.Value, c.Suppressed = j.Group, j.Name, math.NaN(), j.Suppressed
	if j.Value != nil {
		c.Value = *j.Value
	}
	return nil
}

// Finish turns the decrypted slots (in Layout order) into the statistics the
// spec asked for: for each group (in Layout order), one cell per aggregate,
// one per bucket for a HISTOGRAM. Counts are rounded to the nearest integer:
// the noise the parameters promise is far below one half.
func Finish(spec *synodv1.QuerySpec, slots []float64) ([]Cell, error) {
	cells, _, err := finish(spec, slots, 0)
	return cells, err
}

// ErrorBounds returns, for each cell Finish returns, a bound on its absolute
// error when each slot carries an absolute error of at most eps (the
// precision the parameters promise). Counts are exact while eps < 1/2.
// The bounds of VAR_SAMP, STDDEV_SAMP, COVAR_SAMP and CORR are first-order
// error propagations with a safety factor of two; they are meaningful when
// the error is small next to the statistic's spread, as with any n that is
// worth releasing.
func ErrorBounds(spec *synodv1.QuerySpec, slots []float64, eps float64) ([]float64, error) {
	_, bounds, err := finish(spec, slots, eps)
	return bounds, err
}

// Name of a statistic as printed: COUNT(*), SUM(age), MEAN(age),
// VAR_SAMP(age), STDDEV_SAMP(age), COVAR_SAMP(age, bmi), CORR(age, bmi).
func statName(a *synodv1.Aggregate) string {
	switch a.GetFunc() {
	case synodv1.Aggregate_COUNT:
		return "COUNT(*)"
	case synodv1.Aggregate_COVAR_SAMP, synodv1.Aggregate_CORR:
		return fmt.Sprintf("%s(%s, %s)", a.GetFunc(), a.GetColumn(), a.GetColumn2())
	}
	return fmt.Sprintf("%s(%s)", a.GetFunc(), a.GetColumn())
}

func finish(spec *synodv1.QuerySpec, values []float64, eps float64) ([]Cell, []float64, error) {
	if err := Validate(spec); err != nil {
		return nil, nil, err
	}
	slots := groupSlots(spec)
	keys := groupKeys(spec)
	if len(values) < len(keys)*len(slots) {
		return nil, nil, fmt.Errorf("result has %d slots, the query lays out %d", len(values), len(keys)*len(slots))
	}
	index := make(map[string]int, len(slots))
	for i, s := range slots {
		index[s.label] = i
	}
	countErr := eps
	if eps < 0.5 {
		countErr = 0
	}
	var cells []Cell
	var bounds []float64
	for g, key := range keys {
		v := values[g*len(slots) : (g+1)*len(slots)]
		var group map[string]float64
		if len(key) > 0 {
			group = make(map[string]float64, len(key))
			for i, c := range GroupColumns(spec) {
				group[c] = key[i]
			}
		}
		emit := func(name string, value, bound float64) {
			cells = append(cells, Cell{Group: group, Name: name, Value: value})
			bounds = append(bounds, bound)
		}
		n := max(math.Round(v[0]), 0)
		s := func(c string) float64 { return v[index["sum:"+c]] }
		q := func(c string) float64 { return v[index["sumsq:"+c]] }
		p := func(x, y string) float64 {
			if x == y {
				return q(x)
			}
			if y < x {
				x, y = y, x
			}
			return v[index["sumxy:"+x+","+y]]
		}
		// covar is the sample covariance of x and y and its error bound.
		covar := func(x, y string) (float64, float64) {
			if n < 2 {
				return math.NaN(), math.NaN()
			}
			c := (p(x, y) - s(x)*s(y)/n) / (n - 1)
			return c, eps * (1 + (math.Abs(s(x))+math.Abs(s(y))+eps)/n) / (n - 1)
		}
		for _, a := range spec.GetAggregates() {
			x, y := a.GetColumn(), a.GetColumn2()
			name := statName(a)
			switch a.GetFunc() {
			case synodv1.Aggregate_COUNT:
				emit(name, n, countErr)
			case synodv1.Aggregate_SUM:
				emit(name, s(x), eps)
			case synodv1.Aggregate_MEAN:
				if n == 0 {
					emit(name, math.NaN(), math.NaN())
				} else {
					emit(name, s(x)/n, eps/n)
				}
			case synodv1.Aggregate_VAR_SAMP:
				vr, dv := covar(x, x)
				emit(name, max(vr, 0), 2*dv)
			case synodv1.Aggregate_STDDEV_SAMP:
				vr, dv := covar(x, x)
				sd := math.Sqrt(max(vr, 0))
				bound := math.Sqrt(2 * dv) // |√a − √b| ≤ √|a − b|
				if sd > 0 {
					bound = min(bound, 2*dv/sd)
				}
				emit(name, sd, bound)
			case synodv1.Aggregate_COVAR_SAMP:
				c, dc := covar(x, y)
				emit(name, c, 2*dc)
			case synodv1.Aggregate_CORR:
				c, dc := covar(x, y)
				vx, dvx := covar(x, x)
				vy, dvy := covar(y, y)
				if !(vx > 0 && vy > 0) {
					emit(name, math.NaN(), math.NaN())
					continue
				}
				den := math.Sqrt(vx * vy)
				r := max(-1, min(1, c/den))
				bound := 2 * (dc/den + math.Abs(r)*(dvx/(2*vx)+dvy/(2*vy)))
				emit(name, r, min(bound, 2))
			case synodv1.Aggregate_HISTOGRAM:
				e := a.GetEdges()
				for i := 0; i+1 < len(e); i++ {
					count := max(math.Round(v[index[bucketLabel(x, e[i], e[i+1])]]), 0)
					emit(fmt.Sprintf("%s[%s,%s)", name, num(e[i]), num(e[i+1])), count, countErr)
				}
			}
		}
	}
	return cells, bounds, nil
}

// Rows pivots cells into one row per group: the group's values, then its
// statistics, with a header naming the GROUP BY columns and the statistics.
func Rows(spec *synodv1.QuerySpec, cells []Cell) (header []string, rows [][]Cell) {
	cols := GroupColumns(spec)
	header = slices.Clone(cols)
	for _, c := range cells {
		if len(rows) == 0 || !sameGroup(rows[len(rows)-1][0].Group, c.Group) {
			rows = append(rows, nil)
		}
		rows[len(rows)-1] = append(rows[len(rows)-1], c)
	}
	if len(rows) > 0 {
		for _, c := range rows[0] {
			header = append(header, c.Name)
		}
	}
	return header, rows
}

func sameGroup(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
