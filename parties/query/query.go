// Package query checks an aggregate query against a dataset, lays out the
// values a party encrypts, computes a party's local partial sums, and turns
// the decrypted slots back into the statistics asked for.
//
// Each party encrypts one small vector of partial sums; the coordinator adds
// the parties' ciphertexts. The cost therefore grows with the number of
// released cells, not with the number of rows. For every group of the query
// (one, without GROUP BY) the vector holds the count of the matching rows
// and, as the statistics need them, the sum of a column, the sum of its
// squares, the sum of the product of two columns and one count per histogram
// bucket (see Layout). The analyst computes every statistic from these sums
// (Finish): AVG = Σx/n, VAR_SAMP = (Σx² − (Σx)²/n)/(n−1), and so on.
//
// Releasing these sums releases slightly more than the statistics alone: the
// analyst learns the count and the sums, not only their quotient. That is the
// current design; a policy on minimum cohort size applies to the counts.
//
// Analysts write queries in a SQL subset (CompileSQL) or with the legacy
// --agg/--where flags (ParseAggregate, ParseFilter); both produce a
// canonical QuerySpec (Canonicalize), which is what the parties approve.
package query

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
)

// CountSlot labels the slot holding the number of matching rows.
const CountSlot = "count"

// MaxCells bounds the number of slots a query may release: all of them go in
// one ciphertext, and the smallest registered parameter set (ckks-n13) has
// 4096 slots.
const MaxCells = 4096

// Limits on the shape of a spec, so that a hostile or mistaken spec cannot
// make a party allocate or recurse without bound.
const (
	maxPredicateDepth = 64
	maxPredicateNodes = 1024
	maxInValues       = 1024
	maxGroupColumns   = 4
)

// Validate checks a spec's shape, independent of any party's data.
func Validate(spec *synodv1.QuerySpec) error {
	if spec == nil {
		return fmt.Errorf("query: missing spec")
	}
	if spec.GetDataset() == "" {
		return fmt.Errorf("query: missing dataset")
	}
	if pr := spec.GetPrivacy(); pr != nil && pr.GetEpsilon() != 0 {
		if err := ValidatePrivacy(pr); err != nil {
			return err
		}
	}
	if len(spec.GetAggregates()) == 0 {
		return fmt.Errorf("query on %s: no aggregate requested", spec.GetDataset())
	}
	for i, a := range spec.GetAggregates() {
		if err := validateAggregate(a); err != nil {
			return fmt.Errorf("query: aggregate %d (%s): %w", i+1, a.GetFunc(), err)
		}
	}
	for i, f := range spec.GetFilters() {
		if err := validateFilter(f); err != nil {
			return fmt.Errorf("query: filter %d: %w", i+1, err)
		}
	}
	if w := spec.GetWhere(); w != nil {
		nodes := 0
		if err := validatePredicate(w, 0, &nodes); err != nil {
			return fmt.Errorf("query: where: %w", err)
		}
	}
	if len(spec.GetGroupBy()) > maxGroupColumns {
		return fmt.Errorf("query: %d GROUP BY columns exceed the limit of %d", len(spec.GetGroupBy()), maxGroupColumns)
	}
	seen := map[string]bool{}
	for _, g := range spec.GetGroupBy() {
		if g.GetColumn() == "" {
			return fmt.Errorf("query: GROUP BY without a column")
		}
		if seen[g.GetColumn()] {
			return fmt.Errorf("query: GROUP BY %s appears twice", g.GetColumn())
		}
		seen[g.GetColumn()] = true
		if len(g.GetDomain()) == 0 {
			return fmt.Errorf("query: GROUP BY %s needs its domain, e.g. GROUP BY %s IN (0, 1)", g.GetColumn(), g.GetColumn())
		}
		if len(g.GetDomain()) > MaxCells {
			return fmt.Errorf("query: GROUP BY %s: %d values exceed the limit of %d cells", g.GetColumn(), len(g.GetDomain()), MaxCells)
		}
		for j, v := range g.GetDomain() {
			if !finite(v) {
				return fmt.Errorf("query: GROUP BY %s: domain value %v is not finite", g.GetColumn(), v)
			}
			if j > 0 && !(g.GetDomain()[j-1] < v) {
				return fmt.Errorf("query: GROUP BY %s: domain must be sorted and distinct", g.GetColumn())
			}
		}
	}
	if n := CellCount(spec); n > MaxCells {
		return fmt.Errorf("query: %d result cells (%d groups × %d) exceed the limit of %d", n, groupCount(spec), len(groupSlots(spec)), MaxCells)
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func validateAggregate(a *synodv1.Aggregate) error {
	if a == nil {
		return fmt.Errorf("empty aggregate")
	}
	needCol, needCol2, needEdges := false, false, false
	switch a.GetFunc() {
	case synodv1.Aggregate_COUNT:
	case synodv1.Aggregate_SUM, synodv1.Aggregate_MEAN, synodv1.Aggregate_VAR_SAMP, synodv1.Aggregate_STDDEV_SAMP:
		needCol = true
	case synodv1.Aggregate_COVAR_SAMP, synodv1.Aggregate_CORR:
		needCol, needCol2 = true, true
	case synodv1.Aggregate_HISTOGRAM:
		needCol, needEdges = true, true
	default:
		return fmt.Errorf("unsupported function %v", a.GetFunc())
	}
	switch {
	case needCol && a.GetColumn() == "":
		return fmt.Errorf("needs a column")
	case !needCol && a.GetColumn() != "":
		return fmt.Errorf("takes no column")
	case needCol2 && a.GetColumn2() == "":
		return fmt.Errorf("needs a second column")
	case !needCol2 && a.GetColumn2() != "":
		return fmt.Errorf("takes one column")
	case !needEdges && len(a.GetEdges()) > 0:
		return fmt.Errorf("takes no bucket edges")
	}
	if needEdges {
		e := a.GetEdges()
		if len(e) < 2 {
			return fmt.Errorf("needs at least two bucket edges")
		}
		if len(e) > MaxCells+1 {
			return fmt.Errorf("%d buckets exceed the limit of %d cells", len(e)-1, MaxCells)
		}
		for i, v := range e {
			if !finite(v) {
				return fmt.Errorf("bucket edge %v is not finite", v)
			}
			if i > 0 && !(e[i-1] < v) {
				return fmt.Errorf("bucket edges must be strictly increasing")
			}
		}
	}
	return nil
}

func validateFilter(f *synodv1.Filter) error {
	if f.GetColumn() == "" {
		return fmt.Errorf("no column")
	}
	if f.GetOp() == synodv1.Filter_OP_UNSPECIFIED || synodv1.Filter_Op_name[int32(f.GetOp())] == "" {
		return fmt.Errorf("on %q: unsupported operator %v", f.GetColumn(), f.GetOp())
	}
	if !finite(f.GetValue()) {
		return fmt.Errorf("on %q: value is not finite", f.GetColumn())
	}
	return nil
}

func validatePredicate(p *synodv1.Predicate, depth int, nodes *int) error {
	if depth > maxPredicateDepth {
		return fmt.Errorf("nested deeper than %d", maxPredicateDepth)
	}
	if *nodes++; *nodes > maxPredicateNodes {
		return fmt.Errorf("more than %d conditions", maxPredicateNodes)
	}
	switch k := p.GetKind().(type) {
	case *synodv1.Predicate_Compare:
		return validateFilter(k.Compare)
	case *synodv1.Predicate_And, *synodv1.Predicate_Or:
		ops := operands(p)
		if len(ops) < 2 {
			return fmt.Errorf("AND/OR with %d operands", len(ops))
		}
		for _, o := range ops {
			if err := validatePredicate(o, depth+1, nodes); err != nil {
				return err
			}
		}
		return nil
	case *synodv1.Predicate_Not:
		if k.Not == nil {
			return fmt.Errorf("NOT without operand")
		}
		return validatePredicate(k.Not, depth+1, nodes)
	case *synodv1.Predicate_In:
		if k.In.GetColumn() == "" {
			return fmt.Errorf("IN without a column")
		}
		vs := k.In.GetValues()
		if len(vs) == 0 || len(vs) > maxInValues {
			return fmt.Errorf("IN on %q with %d values (want 1 to %d)", k.In.GetColumn(), len(vs), maxInValues)
		}
		for _, v := range vs {
			if !finite(v) {
				return fmt.Errorf("IN on %q: value %v is not finite", k.In.GetColumn(), v)
			}
		}
		return nil
	}
	return fmt.Errorf("empty condition")
}

func operands(p *synodv1.Predicate) []*synodv1.Predicate {
	switch k := p.GetKind().(type) {
	case *synodv1.Predicate_And:
		return k.And.GetOperands()
	case *synodv1.Predicate_Or:
		return k.Or.GetOperands()
	}
	return nil
}

// slotKind says what a slot of a group accumulates.
type slotKind int

const (
	slotCount  slotKind = iota
	slotSum             // Σ a
	slotSumSq           // Σ a²
	slotSumXY           // Σ a·b
	slotBucket          // #rows with lo <= a < hi
)

// slot is one value a party accumulates per group.
type slot struct {
	label  string
	kind   slotKind
	a, b   string // columns
	lo, hi float64
}

// num formats a number canonically (shortest representation that parses back).
func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func bucketLabel(col string, lo, hi float64) string {
	return fmt.Sprintf("hist:%s:[%s,%s)", col, num(lo), num(hi))
}

// groupSlots lists the slots of one group: the count first, then what each
// aggregate needs, in first-use order and without repetition.
func groupSlots(spec *synodv1.QuerySpec) []slot {
	slots := []slot{{label: CountSlot, kind: slotCount}}
	seen := map[string]bool{CountSlot: true}
	add := func(s slot) {
		if !seen[s.label] {
			seen[s.label] = true
			slots = append(slots, s)
		}
	}
	sum := func(c string) { add(slot{label: "sum:" + c, kind: slotSum, a: c}) }
	sumsq := func(c string) { add(slot{label: "sumsq:" + c, kind: slotSumSq, a: c}) }
	sumxy := func(x, y string) {
		if x == y {
			sumsq(x)
			return
		}
		if y < x {
			x, y = y, x
		}
		add(slot{label: "sumxy:" + x + "," + y, kind: slotSumXY, a: x, b: y})
	}
	for _, a := range spec.GetAggregates() {
		x, y := a.GetColumn(), a.GetColumn2()
		switch a.GetFunc() {
		case synodv1.Aggregate_SUM, synodv1.Aggregate_MEAN:
			sum(x)
		case synodv1.Aggregate_VAR_SAMP, synodv1.Aggregate_STDDEV_SAMP:
			sum(x)
			sumsq(x)
		case synodv1.Aggregate_COVAR_SAMP:
			sum(x)
			sum(y)
			sumxy(x, y)
		case synodv1.Aggregate_CORR:
			sum(x)
			sum(y)
			sumsq(x)
			sumsq(y)
			sumxy(x, y)
		case synodv1.Aggregate_HISTOGRAM:
			e := a.GetEdges()
			for i := 0; i+1 < len(e); i++ {
				add(slot{label: bucketLabel(x, e[i], e[i+1]), kind: slotBucket, a: x, lo: e[i], hi: e[i+1]})
			}
		}
	}
	return slots
}

// groupCount is the number of groups (1 without GROUP BY), saturating at
// MaxCells+1.
func groupCount(spec *synodv1.QuerySpec) int {
	n := 1
	for _, g := range spec.GetGroupBy() {
		n *= max(len(g.GetDomain()), 1)
		if n > MaxCells {
			return MaxCells + 1
		}
	}
	return n
}

// CellCount is the number of slots the query releases (saturating above
// MaxCells), computed without materializing the layout.
func CellCount(spec *synodv1.QuerySpec) int {
	n := groupCount(spec) * len(groupSlots(spec))
	return min(n, MaxCells*MaxCells)
}

// GroupColumns names the GROUP BY columns, in spec order.
func GroupColumns(spec *synodv1.QuerySpec) []string {
	var cols []string
	for _, g := range spec.GetGroupBy() {
		cols = append(cols, g.GetColumn())
	}
	return cols
}

// groupKeys lists every group's values, the first GROUP BY column varying
// slowest; one empty key without GROUP BY.
func groupKeys(spec *synodv1.QuerySpec) [][]float64 {
	keys := [][]float64{nil}
	for _, g := range spec.GetGroupBy() {
		var next [][]float64
		for _, k := range keys {
			for _, v := range g.GetDomain() {
				next = append(next, append(append([]float64(nil), k...), v))
			}
		}
		keys = next
	}
	return keys
}

func groupPrefix(spec *synodv1.QuerySpec, key []float64) string {
	if len(key) == 0 {
		return ""
	}
	parts := make([]string, len(key))
	for i, v := range key {
		parts[i] = spec.GetGroupBy()[i].GetColumn() + "=" + num(v)
	}
	return strings.Join(parts, ",") + "|"
}

// Layout lists what each slot of the encrypted vector holds. For each group
// (the first GROUP BY column varying slowest), in this order: "count", then
// in first-use order "sum:COL", "sumsq:COL" (Σx²), "sumxy:A,B" (Σab, columns
// sorted) and "hist:COL:[LO,HI)" (a bucket's count), as the aggregates need
// them. With GROUP BY each label is prefixed by its group, e.g.
// "sex=1|sum:bmi". Without GROUP BY the layout of a COUNT/SUM/MEAN query is
// the historical one: count, then sum:COL in first-use order.
// The spec must be valid (Validate).
func Layout(spec *synodv1.QuerySpec) []string {
	slots := groupSlots(spec)
	var out []string
	for _, k := range groupKeys(spec) {
		p := groupPrefix(spec, k)
		for _, s := range slots {
			out = append(out, p+s.label)
		}
	}
	return out
}
