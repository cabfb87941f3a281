package query

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/parties/datasource"
)

// refRowPredicate decides whether a row counts.
type refRowPredicate func(r int) bool

// refCompilePredicate binds a predicate to the table's columns.
func refCompilePredicate(t *datasource.Table, p *synodv1.Predicate) (refRowPredicate, error) {
	switch k := p.GetKind().(type) {
	case *synodv1.Predicate_Compare:
		col, err := t.Column(k.Compare.GetColumn())
		if err != nil {
			return nil, err
		}
		op, x := k.Compare.GetOp(), k.Compare.GetValue()
		return func(r int) bool { return refMatch(col[r], op, x) }, nil
	case *synodv1.Predicate_And, *synodv1.Predicate_Or:
		ops := operands(p)
		subs := make([]refRowPredicate, len(ops))
		for i, o := range ops {
			s, err := refCompilePredicate(t, o)
			if err != nil {
				return nil, err
			}
			subs[i] = s
		}
		if _, and := k.(*synodv1.Predicate_And); and {
			return func(r int) bool {
				for _, s := range subs {
					if !s(r) {
						return false
					}
				}
				return true
			}, nil
		}
		return func(r int) bool {
			for _, s := range subs {
				if s(r) {
					return true
				}
			}
			return false
		}, nil
	case *synodv1.Predicate_Not:
		s, err := refCompilePredicate(t, k.Not)
		if err != nil {
			return nil, err
		}
		return func(r int) bool { return !s(r) }, nil
	case *synodv1.Predicate_In:
		col, err := t.Column(k.In.GetColumn())
		if err != nil {
			return nil, err
		}
		set := make(map[float64]bool, len(k.In.GetValues()))
		for _, v := range k.In.GetValues() {
			set[v] = true
		}
		return func(r int) bool { return set[col[r]] }, nil
	}
	return nil, fmt.Errorf("empty condition")
}

// localReference is Local as first written (row at a time); Local must
// give bit-identical sums. It computes a party's partial sums for spec over its table, in
// Layout order. Unknown columns are errors naming the dataset's columns; a
// slot whose value would exceed ValueBound is an error naming the cell.
func localReference(t *datasource.Table, spec *synodv1.QuerySpec) ([]float64, error) {
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
	var where refRowPredicate
	if w := spec.GetWhere(); w != nil {
		p, err := refCompilePredicate(t, w)
		if err != nil {
			return nil, fmt.Errorf("where: %w", err)
		}
		where = p
	}
	// Group index of each row: -1 when a value is outside its domain.
	groupCols := make([][]float64, len(spec.GetGroupBy()))
	groupIdx := make([]map[float64]int, len(spec.GetGroupBy()))
	for i, g := range spec.GetGroupBy() {
		col, err := t.Column(g.GetColumn())
		if err != nil {
			return nil, fmt.Errorf("GROUP BY: %w", err)
		}
		groupCols[i] = col
		groupIdx[i] = make(map[float64]int, len(g.GetDomain()))
		for j, v := range g.GetDomain() {
			groupIdx[i][v] = j
		}
	}
	slots := groupSlots(spec)
	type boundSlot struct {
		kind   slotKind
		a, b   []float64
		lo, hi float64
	}
	bound := make([]boundSlot, len(slots))
	for i, s := range slots {
		bs := boundSlot{kind: s.kind, lo: s.lo, hi: s.hi}
		var err error
		if s.a != "" {
			if bs.a, err = t.Column(s.a); err != nil {
				return nil, err
			}
		}
		if s.b != "" {
			if bs.b, err = t.Column(s.b); err != nil {
				return nil, err
			}
		}
		bound[i] = bs
	}
	out := make([]float64, groupCount(spec)*len(slots))
rows:
	for r := 0; r < t.Rows; r++ {
		for i, f := range filters {
			if !refMatch(filterCols[i][r], f.GetOp(), f.GetValue()) {
				continue rows
			}
		}
		if where != nil && !where(r) {
			continue
		}
		g := 0
		for i, col := range groupCols {
			j, ok := groupIdx[i][col[r]]
			if !ok {
				continue rows
			}
			g = g*len(spec.GetGroupBy()[i].GetDomain()) + j
		}
		acc := out[g*len(slots) : (g+1)*len(slots)]
		for i, s := range bound {
			switch s.kind {
			case slotCount:
				acc[i]++
			case slotSum:
				acc[i] += s.a[r]
			case slotSumSq:
				acc[i] += s.a[r] * s.a[r]
			case slotSumXY:
				acc[i] += s.a[r] * s.b[r]
			case slotBucket:
				if v := s.a[r]; s.lo <= v && v < s.hi {
					acc[i]++
				}
			}
		}
	}
	limit := ValueBound()
	for i, v := range out {
		if !(math.Abs(v) <= limit) {
			label := Layout(spec)[i]
			// The value itself stays here: only the fact that it is too large leaves.
			return nil, fmt.Errorf("query: cell %s of dataset %s would exceed the %.4g an encrypted value may hold; "+
				"narrow the WHERE clause or split the rows with GROUP BY", label, t.Name, limit)
		}
	}
	return out, nil
}

func refMatch(v float64, op synodv1.Filter_Op, x float64) bool {
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

// TestLocalMatchesReference checks Local against the row-at-a-time
// reference on random tables and specs: the same error, or the same sums bit
// for bit. Tables span several blocks and values repeat, so that
// comparisons, IN lists, group domains and bucket edges hit exactly.
func TestLocalMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 2026))
	cols := []string{"a", "b", "c", "d"}
	for iter := range 300 {
		rows := []int{0, 1, 7, chunkRows - 1, chunkRows, chunkRows + 1, 2*chunkRows + 333}[rng.IntN(7)]
		table := &datasource.Table{Name: "t", Columns: cols, Values: make([][]float64, len(cols)), Rows: rows}
		for c := range cols {
			table.Values[c] = make([]float64, rows)
			for r := range rows {
				table.Values[c][r] = randValue(rng)
			}
		}
		spec := randSpec(rng, cols)
		if Validate(spec) != nil {
			continue
		}
		want, wantErr := localReference(table, spec)
		got, gotErr := Local(table, spec)
		if fmt.Sprint(wantErr) != fmt.Sprint(gotErr) {
			t.Fatalf("iteration %d, spec %v: error %v, reference %v", iter, spec, gotErr, wantErr)
		}
		if len(got) != len(want) {
			t.Fatalf("iteration %d: %d slots, reference %d", iter, len(got), len(want))
		}
		for i := range want {
			if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
				t.Fatalf("iteration %d, spec %v: slot %d (%s) = %v, reference %v", iter, spec, i, Layout(spec)[i], got[i], want[i])
			}
		}
	}
}

// randValue draws from a small set of values (so that equalities hit),
// with negative zero and fractions, or uniformly.
func randValue(rng *rand.Rand) float64 {
	switch rng.IntN(4) {
	case 0:
		return []float64{0, math.Copysign(0, -1), 1, 2, 3, -1, 0.1, 0.5, 10}[rng.IntN(9)]
	case 1:
		return float64(rng.IntN(40))
	case 2:
		return math.Round(rng.NormFloat64()*100) / 10
	}
	return rng.Float64()*200 - 50
}

func randSpec(rng *rand.Rand, cols []string) *synodv1.QuerySpec {
	col := func() string {
		if rng.IntN(30) == 0 {
			return "missing"
		}
		return cols[rng.IntN(len(cols))]
	}
	spec := &synodv1.QuerySpec{Dataset: "t"}
	for range 1 + rng.IntN(5) {
		a := &synodv1.Aggregate{}
		switch rng.IntN(8) {
		case 0:
			a.Func = synodv1.Aggregate_COUNT
		case 1:
			a.Func, a.Column = synodv1.Aggregate_SUM, col()
		case 2:
			a.Func, a.Column = synodv1.Aggregate_MEAN, col()
		case 3:
			a.Func, a.Column = synodv1.Aggregate_VAR_SAMP, col()
		case 4:
			a.Func, a.Column, a.Column2 = synodv1.Aggregate_COVAR_SAMP, col(), col()
		case 5:
			a.Func, a.Column, a.Column2 = synodv1.Aggregate_CORR, col(), col()
		default:
			a.Func, a.Column = synodv1.Aggregate_HISTOGRAM, col()
			e := float64(rng.IntN(10) - 5)
			for range 2 + rng.IntN(25) {
				a.Edges = append(a.Edges, e)
				switch rng.IntN(3) {
				case 0:
					e += 1
				case 1:
					e += 0.5
				default:
					e += rng.Float64() * 20
				}
			}
		}
		spec.Aggregates = append(spec.Aggregates, a)
	}
	for range rng.IntN(3) {
		spec.Filters = append(spec.Filters, randCompare(rng, col))
	}
	if rng.IntN(3) > 0 {
		spec.Where = randPredicate(rng, col, 0)
	}
	used := map[string]bool{}
	for range rng.IntN(3) {
		c := cols[rng.IntN(len(cols))]
		if used[c] {
			continue
		}
		used[c] = true
		g := &synodv1.GroupBy{Column: c}
		switch rng.IntN(3) {
		case 0:
			g.Domain = []float64{0, 1}
		case 1:
			g.Domain = []float64{-1, 0, 0.5, 2, 3}
		default:
			for v := range 12 + rng.IntN(30) {
				g.Domain = append(g.Domain, float64(v))
			}
		}
		spec.GroupBy = append(spec.GroupBy, g)
	}
	return spec
}

func randCompare(rng *rand.Rand, col func() string) *synodv1.Filter {
	return &synodv1.Filter{Column: col(), Op: synodv1.Filter_Op(1 + rng.IntN(6)), Value: randValue(rng)}
}

func randPredicate(rng *rand.Rand, col func() string, depth int) *synodv1.Predicate {
	k := rng.IntN(6)
	if depth > 3 {
		k = 0
	}
	switch k {
	case 0, 1:
		return &synodv1.Predicate{Kind: &synodv1.Predicate_Compare{Compare: randCompare(rng, col)}}
	case 2:
		in := &synodv1.Predicate_InList{Column: col()}
		for range 1 + rng.IntN(2*maxInList) {
			in.Values = append(in.Values, randValue(rng))
		}
		return &synodv1.Predicate{Kind: &synodv1.Predicate_In{In: in}}
	case 3:
		return &synodv1.Predicate{Kind: &synodv1.Predicate_Not{Not: randPredicate(rng, col, depth+1)}}
	}
	var ops []*synodv1.Predicate
	for range 2 + rng.IntN(3) {
		ops = append(ops, randPredicate(rng, col, depth+1))
	}
	if k == 4 {
		return &synodv1.Predicate{Kind: &synodv1.Predicate_And{And: &synodv1.Predicate_List{Operands: ops}}}
	}
	return &synodv1.Predicate{Kind: &synodv1.Predicate_Or{Or: &synodv1.Predicate_List{Operands: ops}}}
}
