package query

import (
	"bytes"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
)

// Canonicalize returns the canonical form of a spec, so that two ways of
// writing the same query give the same bytes (the bytes the parties sign):
//
//   - nested AND/OR are flattened, their operands sorted and deduplicated,
//     a one-operand AND/OR is its operand;
//   - NOT of a comparison is the opposite comparison (values are finite, so
//     NOT x < 3 is x >= 3), NOT NOT p is p;
//   - IN values and GROUP BY domains are sorted and deduplicated, IN of one
//     value is an equality; -0 is 0;
//   - the top-level conjuncts that are single comparisons go to filters
//     (sorted, deduplicated), the rest stays in where. So
//     `--where age>=40` and `WHERE age >= 40` are the same spec, and
//     `BETWEEN 40 AND 70` is `age >= 40 AND age <= 70`.
//
// Aggregates keep their order (it is the order of the result columns), and
// so do GROUP BY columns (the order of the result rows).
func Canonicalize(spec *synodv1.QuerySpec) *synodv1.QuerySpec {
	out := proto.Clone(spec).(*synodv1.QuerySpec)
	var conj []*synodv1.Predicate
	for _, f := range out.GetFilters() {
		conj = append(conj, &synodv1.Predicate{Kind: &synodv1.Predicate_Compare{Compare: f}})
	}
	if w := out.GetWhere(); w != nil {
		conj = append(conj, w)
	}
	out.Filters, out.Where = nil, nil
	if len(conj) > 0 {
		all := conj[0]
		if len(conj) > 1 {
			all = &synodv1.Predicate{Kind: &synodv1.Predicate_And{And: &synodv1.Predicate_List{Operands: conj}}}
		}
		all = normalize(all, false)
		var rest []*synodv1.Predicate
		for _, p := range conjuncts(all) {
			if c, ok := p.GetKind().(*synodv1.Predicate_Compare); ok {
				out.Filters = append(out.Filters, c.Compare)
			} else {
				rest = append(rest, p)
			}
		}
		switch len(rest) {
		case 0:
		case 1:
			out.Where = rest[0]
		default:
			out.Where = &synodv1.Predicate{Kind: &synodv1.Predicate_And{And: &synodv1.Predicate_List{Operands: rest}}}
		}
	}
	for _, g := range out.GetGroupBy() {
		g.Domain = sortedSet(g.GetDomain())
	}
	for _, a := range out.GetAggregates() {
		for i, e := range a.GetEdges() {
			a.Edges[i] = e + 0
		}
	}
	return out
}

func conjuncts(p *synodv1.Predicate) []*synodv1.Predicate {
	if a, ok := p.GetKind().(*synodv1.Predicate_And); ok {
		return a.And.GetOperands()
	}
	return []*synodv1.Predicate{p}
}

// sortedSet sorts values, drops duplicates and turns -0 into 0.
func sortedSet(vs []float64) []float64 {
	out := make([]float64, 0, len(vs))
	for _, v := range vs {
		out = append(out, v+0)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

var negated = map[synodv1.Filter_Op]synodv1.Filter_Op{
	synodv1.Filter_EQ: synodv1.Filter_NE, synodv1.Filter_NE: synodv1.Filter_EQ,
	synodv1.Filter_LT: synodv1.Filter_GE, synodv1.Filter_GE: synodv1.Filter_LT,
	synodv1.Filter_GT: synodv1.Filter_LE, synodv1.Filter_LE: synodv1.Filter_GT,
}

func compare(col string, op synodv1.Filter_Op, v float64) *synodv1.Predicate {
	return &synodv1.Predicate{Kind: &synodv1.Predicate_Compare{Compare: &synodv1.Filter{Column: col, Op: op, Value: v + 0}}}
}

// normalize returns the canonical form of p, or of NOT p when not is set.
// Invalid nodes are returned unchanged (Validate reports them).
func normalize(p *synodv1.Predicate, not bool) *synodv1.Predicate {
	wrap := func(q *synodv1.Predicate) *synodv1.Predicate {
		if not {
			return &synodv1.Predicate{Kind: &synodv1.Predicate_Not{Not: q}}
		}
		return q
	}
	switch k := p.GetKind().(type) {
	case *synodv1.Predicate_Compare:
		op := k.Compare.GetOp()
		if not {
			n, ok := negated[op]
			if !ok {
				return wrap(p)
			}
			op = n
		}
		return compare(k.Compare.GetColumn(), op, k.Compare.GetValue())
	case *synodv1.Predicate_Not:
		if k.Not == nil {
			return wrap(p)
		}
		return normalize(k.Not, !not)
	case *synodv1.Predicate_In:
		vs := sortedSet(k.In.GetValues())
		if len(vs) == 1 {
			op := synodv1.Filter_EQ
			if not {
				op = synodv1.Filter_NE
			}
			return compare(k.In.GetColumn(), op, vs[0])
		}
		return wrap(&synodv1.Predicate{Kind: &synodv1.Predicate_In{In: &synodv1.Predicate_InList{Column: k.In.GetColumn(), Values: vs}}})
	case *synodv1.Predicate_And, *synodv1.Predicate_Or:
		_, and := k.(*synodv1.Predicate_And)
		if not { // De Morgan: NOT (a AND b) = NOT a OR NOT b
			and = !and
		}
		var ops []*synodv1.Predicate
		for _, o := range operands(p) {
			n := normalize(o, not)
			// Flatten operands of the same kind.
			if _, isAnd := n.GetKind().(*synodv1.Predicate_And); isAnd && and {
				ops = append(ops, operands(n)...)
			} else if _, isOr := n.GetKind().(*synodv1.Predicate_Or); isOr && !and {
				ops = append(ops, operands(n)...)
			} else {
				ops = append(ops, n)
			}
		}
		ops = sortPredicates(ops)
		if len(ops) == 1 {
			return ops[0]
		}
		list := &synodv1.Predicate_List{Operands: ops}
		if and {
			return &synodv1.Predicate{Kind: &synodv1.Predicate_And{And: list}}
		}
		return &synodv1.Predicate{Kind: &synodv1.Predicate_Or{Or: list}}
	}
	return wrap(p)
}

// sortPredicates orders predicates by their encoding and drops duplicates;
// comparisons sort first.
func sortPredicates(ps []*synodv1.Predicate) []*synodv1.Predicate {
	type keyed struct {
		key []byte
		p   *synodv1.Predicate
	}
	ks := make([]keyed, len(ps))
	for i, p := range ps {
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(p)
		ks[i] = keyed{b, p}
	}
	slices.SortFunc(ks, func(a, b keyed) int { return bytes.Compare(a.key, b.key) })
	ks = slices.CompactFunc(ks, func(a, b keyed) bool { return bytes.Equal(a.key, b.key) })
	out := make([]*synodv1.Predicate, len(ks))
	for i, k := range ks {
		out[i] = k.p
	}
	return out
}

// ParseAggregate reads "count", "sum:COLUMN" or "mean:COLUMN" (the legacy
// --agg flag).
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
	return nil, fmt.Errorf("aggregate %q: unknown function %q (want count, sum:COLUMN or mean:COLUMN; other statistics in SQL: mpcctl query \"SELECT ...\")", s, fn)
}

var filterRE = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|!=|==|=|<|>)\s*(\S+)\s*$`)

var filterOps = map[string]synodv1.Filter_Op{
	"=": synodv1.Filter_EQ, "==": synodv1.Filter_EQ, "!=": synodv1.Filter_NE,
	"<": synodv1.Filter_LT, "<=": synodv1.Filter_LE, ">": synodv1.Filter_GT, ">=": synodv1.Filter_GE,
}

// ParseFilter reads "COLUMN OP NUMBER", e.g. "age>=40" (the legacy --where flag).
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
