package query

import (
	"fmt"
	"math"
	"slices"
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

// Local evaluates a query a column at a time, over blocks of chunkRows rows
// that stay in cache: the WHERE clause becomes a mask of the block, the
// matching rows' group indices a list of row numbers per group, and each
// slot one tight loop over a group's rows. Every accumulator still receives
// its rows in table order, so the sums are bit for bit those of adding one
// row at a time (counts are integers, exact in a float64 below 2^53).
const chunkRows = 4096

// predKind is what a compiled predicate node computes.
type predKind int

const (
	predCompare predKind = iota
	predAnd
	predOr
	predNot
	predIn
)

// colPredicate is a predicate bound to the table's columns, evaluated on a
// block of rows at once.
type colPredicate struct {
	kind  predKind
	col   []float64
	op    synodv1.Filter_Op
	x     float64
	list  []float64        // IN with few values: compared in turn
	set   map[float64]bool // IN with many values
	subs  []*colPredicate
	depth int
}

// maxInList is the largest IN list compared value by value rather than
// looked up in a map.
const maxInList = 16

// compilePredicate binds a predicate to the table's columns.
func compilePredicate(t *datasource.Table, p *synodv1.Predicate, depth int) (*colPredicate, error) {
	switch k := p.GetKind().(type) {
	case *synodv1.Predicate_Compare:
		col, err := t.Column(k.Compare.GetColumn())
		if err != nil {
			return nil, err
		}
		return &colPredicate{kind: predCompare, col: col, op: k.Compare.GetOp(), x: k.Compare.GetValue(), depth: depth}, nil
	case *synodv1.Predicate_And, *synodv1.Predicate_Or:
		ops := operands(p)
		c := &colPredicate{kind: predOr, subs: make([]*colPredicate, len(ops)), depth: depth}
		if _, and := k.(*synodv1.Predicate_And); and {
			c.kind = predAnd
		}
		for i, o := range ops {
			s, err := compilePredicate(t, o, depth+1)
			if err != nil {
				return nil, err
			}
			c.subs[i] = s
		}
		return c, nil
	case *synodv1.Predicate_Not:
		s, err := compilePredicate(t, k.Not, depth+1)
		if err != nil {
			return nil, err
		}
		return &colPredicate{kind: predNot, subs: []*colPredicate{s}, depth: depth}, nil
	case *synodv1.Predicate_In:
		col, err := t.Column(k.In.GetColumn())
		if err != nil {
			return nil, err
		}
		c := &colPredicate{kind: predIn, col: col, depth: depth}
		if vs := k.In.GetValues(); len(vs) <= maxInList {
			c.list = vs
		} else {
			c.set = make(map[float64]bool, len(vs))
			for _, v := range vs {
				c.set[v] = true
			}
		}
		return c, nil
	}
	return nil, fmt.Errorf("empty condition")
}

// masks holds one scratch mask per predicate depth.
type masks [][]bool

func (m *masks) at(depth, n int) []bool {
	for len(*m) <= depth {
		*m = append(*m, make([]bool, chunkRows))
	}
	return (*m)[depth][:n]
}

// eval sets out[k] to whether row lo+k satisfies p.
func (p *colPredicate) eval(lo int, out []bool, scratch *masks) {
	switch p.kind {
	case predCompare:
		compareBlock(p.col[lo:lo+len(out)], p.op, p.x, out)
	case predIn:
		col := p.col[lo : lo+len(out)]
		if p.set != nil {
			for k, v := range col {
				out[k] = p.set[v]
			}
			return
		}
		for k, v := range col {
			hit := false
			for _, x := range p.list {
				if v == x {
					hit = true
					break
				}
			}
			out[k] = hit
		}
	case predNot:
		p.subs[0].eval(lo, out, scratch)
		for k, b := range out {
			out[k] = !b
		}
	case predAnd, predOr:
		p.subs[0].eval(lo, out, scratch)
		buf := scratch.at(p.depth+1, len(out))
		for _, s := range p.subs[1:] {
			s.eval(lo, buf, scratch)
			if p.kind == predAnd {
				for k, b := range buf {
					out[k] = out[k] && b
				}
			} else {
				for k, b := range buf {
					out[k] = out[k] || b
				}
			}
		}
	}
}

// compareBlock sets out[k] to col[k] op x.
func compareBlock(col []float64, op synodv1.Filter_Op, x float64, out []bool) {
	out = out[:len(col)]
	switch op {
	case synodv1.Filter_EQ:
		for k, v := range col {
			out[k] = v == x
		}
	case synodv1.Filter_NE:
		for k, v := range col {
			out[k] = v != x
		}
	case synodv1.Filter_LT:
		for k, v := range col {
			out[k] = v < x
		}
	case synodv1.Filter_LE:
		for k, v := range col {
			out[k] = v <= x
		}
	case synodv1.Filter_GT:
		for k, v := range col {
			out[k] = v > x
		}
	case synodv1.Filter_GE:
		for k, v := range col {
			out[k] = v >= x
		}
	default:
		clear(out)
	}
}

// groupColumn is a GROUP BY column bound to the table.
type groupColumn struct {
	col    []float64
	domain []float64 // sorted and distinct (Validate)
}

// index is v's position in the domain, or -1.
func (g *groupColumn) index(v float64) int {
	d := g.domain
	if len(d) <= 8 {
		for j, x := range d {
			if v == x {
				return j
			}
		}
		return -1
	}
	lo, hi := 0, len(d)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if d[m] < v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(d) && d[lo] == v {
		return lo
	}
	return -1
}

// boundSlot is a slot bound to the table's columns.
type boundSlot struct {
	kind   slotKind
	a, b   []float64
	lo, hi float64
}

// bucketSet is the bucket slots of one column whose intervals do not
// overlap, sorted: a row falls in at most one, found by binary search.
type bucketSet struct {
	col    []float64
	lo, hi []float64
	slot   []int // slot index of each bucket
	counts []int // per bucket, for the group at hand
}

// bucketSets gathers the bucket slots of each column into one bucketSet
// when their intervals are disjoint; it returns the sets and, for every
// bucket slot it covers, true in covered.
func bucketSets(slots []slot, bound []boundSlot) ([]*bucketSet, []bool) {
	covered := make([]bool, len(slots))
	byCol := map[string][]int{}
	var cols []string
	for i, s := range slots {
		if s.kind == slotBucket {
			if byCol[s.a] == nil {
				cols = append(cols, s.a)
			}
			byCol[s.a] = append(byCol[s.a], i)
		}
	}
	var sets []*bucketSet
	for _, c := range cols {
		idx := byCol[c]
		slices.SortFunc(idx, func(i, j int) int { return compareFloat(slots[i].lo, slots[j].lo) })
		disjoint := true
		for k := 1; k < len(idx); k++ {
			if slots[idx[k]].lo < slots[idx[k-1]].hi {
				disjoint = false
				break
			}
		}
		if !disjoint {
			continue
		}
		bs := &bucketSet{col: bound[idx[0]].a, counts: make([]int, len(idx))}
		for _, i := range idx {
			bs.lo = append(bs.lo, slots[i].lo)
			bs.hi = append(bs.hi, slots[i].hi)
			bs.slot = append(bs.slot, i)
			covered[i] = true
		}
		sets = append(sets, bs)
	}
	return sets, covered
}

// add counts the rows in bs's buckets. The bucket of v is the last one whose
// lower edge is <= v, if v is below its upper edge; a guess from the mean
// bucket width (exact for equal-width histograms), corrected against the
// edges, finds it.
func (bs *bucketSet) add(rows []int32) {
	clear(bs.counts)
	lo, hi, col, counts := bs.lo, bs.hi, bs.col, bs.counts
	n := len(lo)
	first, last := lo[0], float64(n-1)
	scale := float64(n) / (hi[n-1] - first)
	if !(scale > 0) || math.IsInf(scale, 0) {
		scale = 0
	}
	for _, r := range rows {
		v := col[r]
		f := (v - first) * scale
		if !(f >= 0) {
			f = 0
		} else if f > last {
			f = last
		}
		k := int(f)
		for k > 0 && v < lo[k] {
			k--
		}
		for k+1 < n && lo[k+1] <= v {
			k++
		}
		if lo[k] <= v && v < hi[k] {
			counts[k]++
		}
	}
}

// Local computes a party's partial sums for spec over its table, in
// Layout order. Unknown columns are errors naming the dataset's columns; a
// slot whose value would exceed ValueBound is an error naming the cell.
func Local(t *datasource.Table, spec *synodv1.QuerySpec) ([]float64, error) {
	if err := Validate(spec); err != nil {
		return nil, err
	}
	where, err := compileWhere(t, spec)
	if err != nil {
		return nil, err
	}
	groups := make([]groupColumn, len(spec.GetGroupBy()))
	for i, g := range spec.GetGroupBy() {
		col, err := t.Column(g.GetColumn())
		if err != nil {
			return nil, fmt.Errorf("GROUP BY: %w", err)
		}
		groups[i] = groupColumn{col: col, domain: g.GetDomain()}
	}
	slots := groupSlots(spec)
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
	buckets, covered := bucketSets(slots, bound)
	ac := newAccumulator(bound, covered, buckets)
	nGroups := groupCount(spec)
	out := make([]float64, nGroups*len(slots))

	var scratch masks
	// Per block: the matching rows and their groups, then the same rows
	// ordered by group (a counting sort, so each group's rows stay in
	// table order) with each group's start in start.
	var (
		rows   = make([]int32, 0, chunkRows)
		gidx   = make([]int32, 0, chunkRows)
		sorted = make([]int32, chunkRows)
		start  = make([]int, nGroups+1)
	)
	for lo := 0; lo < t.Rows; lo += chunkRows {
		hi := min(lo+chunkRows, t.Rows)
		var mask []bool
		if where != nil {
			mask = scratch.at(0, hi-lo)
			where.eval(lo, mask, &scratch)
		}
		rows, gidx = rows[:0], gidx[:0]
	block:
		for k := range hi - lo {
			if mask != nil && !mask[k] {
				continue
			}
			r := lo + k
			g := 0
			for i := range groups {
				j := groups[i].index(groups[i].col[r])
				if j < 0 {
					continue block
				}
				g = g*len(groups[i].domain) + j
			}
			rows = append(rows, int32(r))
			gidx = append(gidx, int32(g))
		}
		if len(rows) == 0 {
			continue
		}
		var byGroup []int32
		if nGroups == 1 {
			byGroup = rows
			start[0], start[1] = 0, len(rows)
		} else {
			clear(start)
			for _, g := range gidx {
				start[g+1]++
			}
			for g := 1; g <= nGroups; g++ {
				start[g] += start[g-1]
			}
			next := sorted[:len(rows)]
			for k, g := range gidx {
				next[start[g]] = rows[k]
				start[g]++
			}
			// start[g] is now group g's end; shift back to starts.
			copy(start[1:], start[:nGroups])
			start[0] = 0
			byGroup = next
		}
		for g := range nGroups {
			rs := byGroup[start[g]:start[g+1]]
			if len(rs) == 0 {
				continue
			}
			ac.add(out[g*len(slots):(g+1)*len(slots)], rs)
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

// lane is one slot summed over a group's rows: Σ a (b nil) or Σ a·b (b is
// a itself for a sum of squares).
type lane struct {
	slot int
	a, b []float64
}

// accumulator is how Local adds a group's rows to its slots: the sums a few
// at a time, so that independent additions overlap (each slot still adds
// its rows in table order), and the buckets of a column in one pass.
type accumulator struct {
	counts  []int
	sums    []lane
	prods   []lane
	single  []boundSlot // buckets not in a bucketSet
	singleI []int
	buckets []*bucketSet
}

func newAccumulator(bound []boundSlot, covered []bool, buckets []*bucketSet) *accumulator {
	ac := &accumulator{buckets: buckets}
	for i, s := range bound {
		switch s.kind {
		case slotCount:
			ac.counts = append(ac.counts, i)
		case slotSum:
			ac.sums = append(ac.sums, lane{slot: i, a: s.a})
		case slotSumSq:
			ac.prods = append(ac.prods, lane{slot: i, a: s.a, b: s.a})
		case slotSumXY:
			ac.prods = append(ac.prods, lane{slot: i, a: s.a, b: s.b})
		case slotBucket:
			if !covered[i] {
				ac.single = append(ac.single, s)
				ac.singleI = append(ac.singleI, i)
			}
		}
	}
	return ac
}

// add adds the rows rs (in table order) of one group to its slots acc.
func (ac *accumulator) add(acc []float64, rs []int32) {
	for _, i := range ac.counts {
		acc[i] += float64(len(rs))
	}
	addSums(acc, ac.sums, rs)
	addProducts(acc, ac.prods, rs)
	for k, s := range ac.single {
		n, a := 0, s.a
		for _, r := range rs {
			if v := a[r]; s.lo <= v && v < s.hi {
				n++
			}
		}
		acc[ac.singleI[k]] += float64(n)
	}
	for _, bs := range ac.buckets {
		bs.add(rs)
		for k, n := range bs.counts {
			acc[bs.slot[k]] += float64(n)
		}
	}
}

func addSums(acc []float64, lanes []lane, rs []int32) {
	for ; len(lanes) >= 4; lanes = lanes[4:] {
		a0, a1, a2, a3 := lanes[0].a, lanes[1].a, lanes[2].a, lanes[3].a
		s0, s1, s2, s3 := acc[lanes[0].slot], acc[lanes[1].slot], acc[lanes[2].slot], acc[lanes[3].slot]
		for _, r := range rs {
			s0 += a0[r]
			s1 += a1[r]
			s2 += a2[r]
			s3 += a3[r]
		}
		acc[lanes[0].slot], acc[lanes[1].slot], acc[lanes[2].slot], acc[lanes[3].slot] = s0, s1, s2, s3
	}
	if len(lanes) >= 2 {
		a0, a1 := lanes[0].a, lanes[1].a
		s0, s1 := acc[lanes[0].slot], acc[lanes[1].slot]
		for _, r := range rs {
			s0 += a0[r]
			s1 += a1[r]
		}
		acc[lanes[0].slot], acc[lanes[1].slot] = s0, s1
		lanes = lanes[2:]
	}
	if len(lanes) == 1 {
		a0, s0 := lanes[0].a, acc[lanes[0].slot]
		for _, r := range rs {
			s0 += a0[r]
		}
		acc[lanes[0].slot] = s0
	}
}

func addProducts(acc []float64, lanes []lane, rs []int32) {
	for ; len(lanes) >= 4; lanes = lanes[4:] {
		a0, a1, a2, a3 := lanes[0].a, lanes[1].a, lanes[2].a, lanes[3].a
		b0, b1, b2, b3 := lanes[0].b, lanes[1].b, lanes[2].b, lanes[3].b
		s0, s1, s2, s3 := acc[lanes[0].slot], acc[lanes[1].slot], acc[lanes[2].slot], acc[lanes[3].slot]
		for _, r := range rs {
			s0 += a0[r] * b0[r]
			s1 += a1[r] * b1[r]
			s2 += a2[r] * b2[r]
			s3 += a3[r] * b3[r]
		}
		acc[lanes[0].slot], acc[lanes[1].slot], acc[lanes[2].slot], acc[lanes[3].slot] = s0, s1, s2, s3
	}
	if len(lanes) >= 2 {
		a0, a1, b0, b1 := lanes[0].a, lanes[1].a, lanes[0].b, lanes[1].b
		s0, s1 := acc[lanes[0].slot], acc[lanes[1].slot]
		for _, r := range rs {
			s0 += a0[r] * b0[r]
			s1 += a1[r] * b1[r]
		}
		acc[lanes[0].slot], acc[lanes[1].slot] = s0, s1
		lanes = lanes[2:]
	}
	if len(lanes) == 1 {
		a0, b0, s0 := lanes[0].a, lanes[0].b, acc[lanes[0].slot]
		for _, r := range rs {
			s0 += a0[r] * b0[r]
		}
		acc[lanes[0].slot] = s0
	}
}

func compareFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compileWhere compiles a spec's row selection: the legacy filters (an AND
// of comparisons) ahead of the WHERE clause; nil selects every row.
func compileWhere(t *datasource.Table, spec *synodv1.QuerySpec) (*colPredicate, error) {
	var conds []*colPredicate
	for i, f := range spec.GetFilters() {
		col, err := t.Column(f.GetColumn())
		if err != nil {
			return nil, fmt.Errorf("filter %d: %w", i+1, err)
		}
		conds = append(conds, &colPredicate{kind: predCompare, col: col, op: f.GetOp(), x: f.GetValue(), depth: 1})
	}
	if w := spec.GetWhere(); w != nil {
		p, err := compilePredicate(t, w, 1)
		if err != nil {
			return nil, fmt.Errorf("where: %w", err)
		}
		conds = append(conds, p)
	}
	switch len(conds) {
	case 0:
		return nil, nil
	case 1:
		return conds[0], nil
	}
	for _, c := range conds {
		c.depth = 1
	}
	return &colPredicate{kind: predAnd, subs: conds, depth: 0}, nil
}

// Select returns the columns of t named by names, restricted to the rows
// the spec's filters and WHERE clause select, in table order.
func Select(t *datasource.Table, spec *synodv1.QuerySpec, names []string) ([][]float64, error) {
	where, err := compileWhere(t, spec)
	if err != nil {
		return nil, err
	}
	src := make([][]float64, len(names))
	for i, c := range names {
		if src[i], err = t.Column(c); err != nil {
			return nil, err
		}
	}
	if where == nil {
		return src, nil
	}
	out := make([][]float64, len(names))
	var scratch masks
	for lo := 0; lo < t.Rows; lo += chunkRows {
		hi := min(lo+chunkRows, t.Rows)
		mask := scratch.at(0, hi-lo)
		where.eval(lo, mask, &scratch)
		for k, ok := range mask {
			if !ok {
				continue
			}
			for i := range src {
				out[i] = append(out[i], src[i][lo+k])
			}
		}
	}
	return out, nil
}
