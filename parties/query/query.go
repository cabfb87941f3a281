// Package query checks an aggregate query against a dataset, lays out the
// values a party encrypts, computes a party's local partial sums, and turns
// the decrypted slots back into the statistics asked for.
//
// Each party encrypts one small vector of partial sums (the count of its
// matching rows and the sum of each column asked for); the coordinator adds
// the parties' ciphertexts. The cost therefore grows with the number of
// released cells, not with the number of rows.
package query

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/parties/datasource"
)

// CountSlot labels the slot holding the number of matching rows.
const CountSlot = "count"

// MaxCells bounds the number of slots a query may release.
const MaxCells = 64

// Validate checks a spec's shape, independent of any party's data.
func Validate(spec *synodv1.QuerySpec) error {
	if spec == nil {
		return fmt.Errorf("query: missing spec")
	}
	if spec.GetDataset() == "" {
		return fmt.Errorf("query: missing dataset")
	}
	if len(spec.GetAggregates()) == 0 {
		return fmt.Errorf("query on %s: no aggregate requested", spec.GetDataset())
	}
	for i, a := range spec.GetAggregates() {
		switch a.GetFunc() {
		case synodv1.Aggregate_COUNT:
		case synodv1.Aggregate_SUM, synodv1.Aggregate_MEAN:
			if a.GetColumn() == "" {
				return fmt.Errorf("query: aggregate %d (%s) needs a column", i+1, a.GetFunc())
			}
		default:
			return fmt.Errorf("query: aggregate %d: unsupported function %v", i+1, a.GetFunc())
		}
	}
	for i, f := range spec.GetFilters() {
		if f.GetColumn() == "" {
			return fmt.Errorf("query: filter %d has no column", i+1)
		}
		if f.GetOp() == synodv1.Filter_OP_UNSPECIFIED || synodv1.Filter_Op_name[int32(f.GetOp())] == "" {
			return fmt.Errorf("query: filter %d on %q: unsupported operator %v", i+1, f.GetColumn(), f.GetOp())
		}
		if math.IsNaN(f.GetValue()) || math.IsInf(f.GetValue(), 0) {
			return fmt.Errorf("query: filter %d on %q: value is not finite", i+1, f.GetColumn())
		}
	}
	if n := len(Layout(spec)); n > MaxCells {
		return fmt.Errorf("query: %d result cells exceed the limit of %d", n, MaxCells)
	}
	return nil
}

// Layout lists what each slot of the encrypted vector holds: the count
// first, then the sum of each column named by a SUM or MEAN, in first-use order.
func Layout(spec *synodv1.QuerySpec) []string {
	layout := []string{CountSlot}
	for _, a := range spec.GetAggregates() {
		if a.GetFunc() == synodv1.Aggregate_SUM || a.GetFunc() == synodv1.Aggregate_MEAN {
			label := "sum:" + a.GetColumn()
			if !slices.Contains(layout, label) {
				layout = append(layout, label)
			}
		}
	}
	return layout
}

// Local computes a party's partial sums for spec over its table, in
// Layout order. Unknown columns are errors naming the dataset's columns.
func Local(t *datasource.Table, spec *synodv1.QuerySpec) ([]float64, error) {
	if err := Validate(spec); err != nil {
		return nil, err
	}
	filters := spec.GetFilters()
	filterCols := make([][]float64, len(filters))
	for i, f := range filters {
		col, err := t.Column(f.GetColumn())
		if err != nil {
			return nil, fmt.Errorf("filter %d: %w", i+1, err)
		}
		filterCols[i] = col
	}
	layout := Layout(spec)
	sumCols := make([][]float64, len(layout))
	for i, label := range layout[1:] {
		col, err := t.Column(label[len("sum:"):])
		if err != nil {
			return nil, err
		}
		sumCols[i+1] = col
	}
	out := make([]float64, len(layout))
rows:
	for r := 0; r < t.Rows; r++ {
		for i, f := range filters {
			if !match(filterCols[i][r], f.GetOp(), f.GetValue()) {
				continue rows
			}
		}
		out[0]++
		for i := 1; i < len(layout); i++ {
			out[i] += sumCols[i][r]
		}
	}
	return out, nil
}

func match(v float64, op synodv1.Filter_Op, x float64) bool {
	switch op {
	case synodv1.Filter_EQ:
		return v == x
	case synodv1.Filter_NE:
		return v != x
	case synodv1.Filter_LT:
		return v < x
	case synodv1.Filter_LE:
		return v <= x
	case synodv1.Filter_GT:
		return v > x
	case synodv1.Filter_GE:
		return v >= x
	}
	return false
}

// Cell is one released statistic.
type Cell struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// Finish turns the decrypted slots (in Layout order) into the statistics the
// spec asked for. Counts are rounded to the nearest integer: the noise the
// parameters promise is far below one half.
func Finish(spec *synodv1.QuerySpec, slots []float64) ([]Cell, error) {
	layout := Layout(spec)
	if len(slots) < len(layout) {
		return nil, fmt.Errorf("result has %d slots, the query lays out %d", len(slots), len(layout))
	}
	count := math.Round(slots[0])
	sum := func(col string) float64 { return slots[slices.Index(layout, "sum:"+col)] }
	var cells []Cell
	for _, a := range spec.GetAggregates() {
		switch a.GetFunc() {
		case synodv1.Aggregate_COUNT:
			cells = append(cells, Cell{Name: "COUNT(*)", Value: count})
		case synodv1.Aggregate_SUM:
			cells = append(cells, Cell{Name: fmt.Sprintf("SUM(%s)", a.GetColumn()), Value: sum(a.GetColumn())})
		case synodv1.Aggregate_MEAN:
			mean := math.NaN()
			if count > 0 {
				mean = sum(a.GetColumn()) / count
			}
			cells = append(cells, Cell{Name: fmt.Sprintf("MEAN(%s)", a.GetColumn()), Value: mean})
		}
	}
	return cells, nil
}

// ParseAggregate reads "count", "sum:COLUMN" or "mean:COLUMN".
func ParseAggregate(s string) (*synodv1.Aggregate, error) {
	fn, col, _ := strings.Cut(strings.TrimSpace(s), ":")
	switch strings.ToLower(fn) {
	case "count":
		if col != "" {
			return nil, fmt.Errorf("aggregate %q: count takes no column", s)
		}
		return &synodv1.Aggregate{Func: synodv1.Aggregate_COUNT}, nil
	case "sum", "mean", "avg":
		if col == "" {
			return nil, fmt.Errorf("aggregate %q: %s needs a column, e.g. %s:age", s, fn, fn)
		}
		f := synodv1.Aggregate_SUM
		if fn != "sum" {
			f = synodv1.Aggregate_MEAN
		}
		return &synodv1.Aggregate{Func: f, Column: col}, nil
	}
	return nil, fmt.Errorf("aggregate %q: unknown function %q (want count, sum:COLUMN or mean:COLUMN)", s, fn)
}

var filterRE = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|!=|==|=|<|>)\s*(\S+)\s*$`)

var filterOps = map[string]synodv1.Filter_Op{
	"=": synodv1.Filter_EQ, "==": synodv1.Filter_EQ, "!=": synodv1.Filter_NE,
	"<": synodv1.Filter_LT, "<=": synodv1.Filter_LE, ">": synodv1.Filter_GT, ">=": synodv1.Filter_GE,
}

// ParseFilter reads "COLUMN OP NUMBER", e.g. "age>=40".
func ParseFilter(s string) (*synodv1.Filter, error) {
	m := filterRE.FindStringSubmatch(s)
	if m == nil {
		return nil, fmt.Errorf("filter %q: want COLUMN OP NUMBER with OP one of = != < <= > >=", s)
	}
	v, err := strconv.ParseFloat(m[3], 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return nil, fmt.Errorf("filter %q: %q is not a finite number", s, m[3])
	}
	return &synodv1.Filter{Column: m[1], Op: filterOps[m[2]], Value: v}, nil
}
