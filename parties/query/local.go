package query

import (
	"fmt"
	"math"
	"sync"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/parties/datasource"
)

// ValueBound is the largest magnitude a party may encrypt in one slot: the
// smallest engine.MaxAggregateValue of the registered parameter sets (2^32,
// about 4.3e9). The engine sizes its modulus so that the sum of up to 2^10
// such values cannot wrap around.
//
// Sums of squares grow fast (10^6 rows of a value near 200 give Σx² = 4e10),
// so Local checks every slot against this bound and refuses, naming the
// cell, rather than let EncryptVector fail or lose precision. Values are
// neither centered nor scaled yet: a schema with declared value ranges will
// let the plan be checked before any party computes, and centering at a
// declared midpoint would shrink Σx² for the same statistics.
func ValueBound() float64 {
	valueBoundOnce.Do(func() {
		valueBound = math.Inf(1)
		for _, name := range engine.ParameterNames() {
			if p, err := engine.ParametersByName(name); err == nil {
				valueBound = min(valueBound, engine.MaxAggregateValue(p))
			}
		}
		if math.IsInf(valueBound, 1) {
			valueBound = math.Exp2(32)
		}
	})
	return valueBound
}

var (
	valueBoundOnce sync.Once
	valueBound     float64
)

// rowPredicate decides whether a row counts.
type rowPredicate func(r int) bool

// compilePredicate binds a predicate to the table's columns.
func compilePredicate(t *datasource.Table, p *synodv1.Predicate) (rowPredicate, error) {
	switch k := p.GetKind().(type) {
	case *synodv1.Predicate_Compare:
		col, err := t.Column(k.Compare.GetColumn())
		if err != nil {
			return nil, err
		}
		op, x := k.Compare.GetOp(), k.Compare.GetValue()
		return func(r int) bool { return match(col[r], op, x) }, nil
	case *synodv1.Predicate_And, *synodv1.Predicate_Or:
		ops := operands(p)
		subs := make([]rowPredicate, len(ops))
		for i, o := range ops {
			s, err := compilePredicate(t, o)
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
		s, err := compilePredicate(t, k.Not)
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

// Local computes a party's partial sums for spec over its table, in
// Layout order. Unknown columns are errors naming the dataset's columns; a
// slot whose value would exceed ValueBound is an error naming the cell.
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
	var where rowPredicate
	if w := spec.GetWhere(); w != nil {
		p, err := compilePredicate(t, w)
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
			if !match(filterCols[i][r], f.GetOp(), f.GetValue()) {
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
