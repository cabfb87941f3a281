package query

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"vitess.io/vitess/go/vt/sqlparser"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
)

// The SQL subset analysts write (parsed by Vitess's MySQL parser, then
// compiled to a canonical QuerySpec):
//
//	SELECT [group columns,] aggregate, ...
//	FROM dataset
//	[WHERE condition]
//	[GROUP BY column IN (v1, v2, ...) [, column IN (...)]]
//
// Aggregates: COUNT(*), SUM(col), AVG(col), VAR_SAMP(col), STDDEV_SAMP(col),
// COVAR_SAMP(a, b), CORR(a, b), and HISTOGRAM(col, e0, e1, ..., ek): k
// buckets [e0, e1), [e1, e2), ..., [ek-1, ek) with strictly increasing
// numeric edges; values outside [e0, ek) are in no bucket.
//
// GROUP BY columns must declare their domain in the query, as
// `GROUP BY sex IN (0, 1)`: the parties release one cell per value of the
// domain (rows with another value are in no group), and the domain must be
// public before any data is read. A group column may also appear in the
// SELECT list; the result always has one row per group, keyed by the group's
// values.
//
// Conditions: comparisons (= != <> < <= > >=) between a column and a number
// (either side), AND, OR, NOT, IN (...), NOT IN (...), BETWEEN and NOT
// BETWEEN, with parentheses. Every party evaluates them on its own rows
// before encrypting anything.
//
// Numbers may be negative and in any SQL numeric literal form. Anything else
// (JOIN, subqueries, ORDER BY, LIMIT, HAVING, DISTINCT, aliases, other
// functions, arithmetic, strings, NULL tests...) is an error naming the
// construct.

var (
	parserOnce sync.Once
	parser     *sqlparser.Parser
	parserErr  error
)

func sqlParser() (*sqlparser.Parser, error) {
	parserOnce.Do(func() { parser, parserErr = sqlparser.New(sqlparser.Options{}) })
	return parser, parserErr
}

// maxSQLLength bounds the text of a query.
const maxSQLLength = 64 << 10

// CompileSQL compiles a query of the SQL subset above to its canonical
// QuerySpec, validated (Validate); columns are checked by each party.
func CompileSQL(sql string) (*synodv1.QuerySpec, error) {
	if len(sql) > maxSQLLength {
		return nil, fmt.Errorf("sql: query longer than %d bytes", maxSQLLength)
	}
	p, err := sqlParser()
	if err != nil {
		return nil, fmt.Errorf("sql: %w", err)
	}
	stmt, err := p.Parse(sql)
	if err != nil {
		return nil, fmt.Errorf("sql: %w", err)
	}
	sel, ok := stmt.(*sqlparser.Select)
	if !ok {
		return nil, fmt.Errorf("sql: %s is not supported (only SELECT)", statementName(stmt))
	}
	spec, err := compileSelect(sel)
	if err != nil {
		return nil, fmt.Errorf("sql: %w", err)
	}
	spec = Canonicalize(spec)
	if err := Validate(spec); err != nil {
		return nil, err
	}
	return spec, nil
}

func statementName(stmt sqlparser.Statement) string {
	switch stmt.(type) {
	case *sqlparser.Union:
		return "UNION"
	case *sqlparser.Insert:
		return "INSERT"
	case *sqlparser.Update:
		return "UPDATE"
	case *sqlparser.Delete:
		return "DELETE"
	}
	return strings.ToUpper(strings.TrimPrefix(fmt.Sprintf("%T", stmt), "*sqlparser."))
}

func unsupported(what string) error { return fmt.Errorf("not supported: %s", what) }

func compileSelect(sel *sqlparser.Select) (*synodv1.QuerySpec, error) {
	switch {
	case sel.With != nil:
		return nil, unsupported("WITH (common table expressions)")
	case sel.Distinct:
		return nil, unsupported("SELECT DISTINCT")
	case sel.Having != nil:
		return nil, unsupported("HAVING")
	case len(sel.OrderBy) > 0:
		return nil, unsupported("ORDER BY")
	case sel.Limit != nil:
		return nil, unsupported("LIMIT")
	case sel.Into != nil:
		return nil, unsupported("SELECT INTO")
	case len(sel.Windows) > 0:
		return nil, unsupported("WINDOW")
	case sel.Lock != sqlparser.NoLock:
		return nil, unsupported("locking clauses (FOR UPDATE, LOCK IN SHARE MODE)")
	case sel.GroupBy != nil && sel.GroupBy.WithRollup:
		return nil, unsupported("WITH ROLLUP")
	case sel.HighPriority || sel.StraightJoinHint || sel.SQLSmallResult || sel.SQLBigResult || sel.SQLBufferResult || sel.SQLCalcFoundRows || sel.Cache != nil:
		return nil, unsupported("SELECT modifiers (HIGH_PRIORITY, SQL_*...)")
	}
	dataset, err := compileFrom(sel.From)
	if err != nil {
		return nil, err
	}
	spec := &synodv1.QuerySpec{Dataset: dataset}

	if sel.GroupBy != nil {
		for _, e := range sel.GroupBy.Exprs {
			g, err := compileGroupBy(e)
			if err != nil {
				return nil, err
			}
			spec.GroupBy = append(spec.GroupBy, g)
		}
	}
	if sel.SelectExprs == nil || len(sel.SelectExprs.Exprs) == 0 {
		return nil, fmt.Errorf("SELECT lists nothing")
	}
	for _, se := range sel.SelectExprs.Exprs {
		ae, ok := se.(*sqlparser.AliasedExpr)
		if !ok {
			return nil, unsupported("SELECT * (name the aggregates)")
		}
		if !ae.As.IsEmpty() {
			return nil, unsupported("column aliases (AS)")
		}
		if col, ok := ae.Expr.(*sqlparser.ColName); ok {
			name, err := columnName(col)
			if err != nil {
				return nil, err
			}
			if !grouped(spec, name) {
				return nil, fmt.Errorf("column %s in SELECT must be an aggregate's argument or a GROUP BY column", name)
			}
			continue // the result always carries the group's values
		}
		agg, err := compileAggregate(ae.Expr)
		if err != nil {
			return nil, err
		}
		spec.Aggregates = append(spec.Aggregates, agg)
	}
	if len(spec.Aggregates) == 0 {
		return nil, fmt.Errorf("SELECT has no aggregate (COUNT(*), SUM, AVG, VAR_SAMP, STDDEV_SAMP, COVAR_SAMP, CORR, HISTOGRAM)")
	}
	if sel.Where != nil {
		nodes := 0
		w, err := compileCondition(sel.Where.Expr, 0, &nodes)
		if err != nil {
			return nil, fmt.Errorf("WHERE: %w", err)
		}
		spec.Where = w
	}
	return spec, nil
}

func grouped(spec *synodv1.QuerySpec, col string) bool {
	for _, g := range spec.GetGroupBy() {
		if g.GetColumn() == col {
			return true
		}
	}
	return false
}

func compileFrom(from []sqlparser.TableExpr) (string, error) {
	if len(from) != 1 {
		return "", unsupported("JOIN (a query reads one dataset)")
	}
	switch t := from[0].(type) {
	case *sqlparser.JoinTableExpr:
		return "", unsupported("JOIN")
	case *sqlparser.ParenTableExpr:
		return "", unsupported("parenthesized or joined tables")
	case *sqlparser.JSONTableExpr:
		return "", unsupported("JSON_TABLE")
	case *sqlparser.AliasedTableExpr:
		switch te := t.Expr.(type) {
		case *sqlparser.DerivedTable:
			return "", unsupported("subqueries")
		case sqlparser.TableName:
			if !te.Qualifier.IsEmpty() {
				return "", unsupported("qualified table names")
			}
			if !t.As.IsEmpty() || len(t.Columns) > 0 {
				return "", unsupported("table aliases")
			}
			if len(t.Partitions) > 0 || len(t.Hints) > 0 {
				return "", unsupported("partitions and index hints")
			}
			name := te.Name.String()
			if name == "" || strings.EqualFold(name, "dual") {
				return "", fmt.Errorf("FROM names no dataset")
			}
			return name, nil
		}
	}
	return "", unsupported(fmt.Sprintf("FROM %s", sqlparser.String(from[0])))
}

func columnName(c *sqlparser.ColName) (string, error) {
	if !c.Qualifier.IsEmpty() {
		return "", unsupported(fmt.Sprintf("qualified column %s", sqlparser.String(c)))
	}
	name := c.Name.String()
	if name == "" {
		return "", fmt.Errorf("empty column name")
	}
	return name, nil
}

func column(e sqlparser.Expr, what string) (string, error) {
	c, ok := e.(*sqlparser.ColName)
	if !ok {
		return "", fmt.Errorf("%s takes a column, not %s", what, exprName(e))
	}
	return columnName(c)
}

// number reads a numeric literal, possibly negated.
func number(e sqlparser.Expr) (float64, error) {
	neg := false
	for {
		u, ok := e.(*sqlparser.UnaryExpr)
		if !ok {
			break
		}
		switch u.Operator {
		case sqlparser.UMinusOp:
			neg = !neg
		case sqlparser.UPlusOp:
		default:
			return 0, fmt.Errorf("want a number, got %s", exprName(e))
		}
		e = u.Expr
	}
	lit, ok := e.(*sqlparser.Literal)
	if !ok {
		return 0, fmt.Errorf("want a number, got %s", exprName(e))
	}
	switch lit.Type {
	case sqlparser.IntVal, sqlparser.FloatVal, sqlparser.DecimalVal:
	default:
		return 0, fmt.Errorf("want a number, got %s", exprName(e))
	}
	v, err := strconv.ParseFloat(lit.Val, 64)
	if err != nil || !finite(v) {
		return 0, fmt.Errorf("%s is not a finite number", lit.Val)
	}
	if neg {
		v = -v
	}
	return v + 0, nil
}

func numbers(es []sqlparser.Expr) ([]float64, error) {
	out := make([]float64, 0, len(es))
	for _, e := range es {
		v, err := number(e)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// exprName names an expression's construct for error messages.
func exprName(e sqlparser.Expr) string {
	switch x := e.(type) {
	case *sqlparser.Subquery:
		return "a subquery"
	case *sqlparser.ExistsExpr:
		return "EXISTS (a subquery)"
	case *sqlparser.Literal:
		if x.Type == sqlparser.StrVal {
			return "a string"
		}
		return "the literal " + sqlparser.String(x)
	case *sqlparser.NullVal:
		return "NULL"
	case *sqlparser.BinaryExpr:
		return "arithmetic (" + sqlparser.String(x) + ")"
	case *sqlparser.FuncExpr:
		return "the function " + strings.ToUpper(x.Name.String())
	case *sqlparser.ColName:
		return "the column " + sqlparser.String(x)
	case sqlparser.AggrFunc:
		return "the aggregate " + strings.ToUpper(x.AggrName())
	}
	s := sqlparser.String(e)
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return fmt.Sprintf("%q", s)
}

func compileAggregate(e sqlparser.Expr) (*synodv1.Aggregate, error) {
	one := func(f synodv1.Aggregate_Func, arg sqlparser.Expr, distinct bool, over *sqlparser.OverClause) (*synodv1.Aggregate, error) {
		if distinct {
			return nil, unsupported(fmt.Sprintf("%s(DISTINCT ...)", f))
		}
		if over != nil {
			return nil, unsupported("window functions (OVER)")
		}
		col, err := column(arg, f.String())
		if err != nil {
			return nil, err
		}
		return &synodv1.Aggregate{Func: f, Column: col}, nil
	}
	switch a := e.(type) {
	case *sqlparser.CountStar:
		if a.OverClause != nil {
			return nil, unsupported("window functions (OVER)")
		}
		return &synodv1.Aggregate{Func: synodv1.Aggregate_COUNT}, nil
	case *sqlparser.Count:
		return nil, unsupported("COUNT(column) (use COUNT(*): columns have no NULLs)")
	case *sqlparser.Sum:
		return one(synodv1.Aggregate_SUM, a.Arg, a.Distinct, a.OverClause)
	case *sqlparser.Avg:
		return one(synodv1.Aggregate_MEAN, a.Arg, a.Distinct, a.OverClause)
	case *sqlparser.VarSamp:
		return one(synodv1.Aggregate_VAR_SAMP, a.Arg, false, a.OverClause)
	case *sqlparser.StdSamp:
		return one(synodv1.Aggregate_STDDEV_SAMP, a.Arg, false, a.OverClause)
	case *sqlparser.FuncExpr:
		if !a.Qualifier.IsEmpty() {
			return nil, unsupported("qualified function names")
		}
		name := strings.ToUpper(a.Name.String())
		switch name {
		case "COVAR_SAMP", "CORR":
			if len(a.Exprs) != 2 {
				return nil, fmt.Errorf("%s takes two columns", name)
			}
			x, err := column(a.Exprs[0], name)
			if err != nil {
				return nil, err
			}
			y, err := column(a.Exprs[1], name)
			if err != nil {
				return nil, err
			}
			f := synodv1.Aggregate_CORR
			if name == "COVAR_SAMP" {
				f = synodv1.Aggregate_COVAR_SAMP
			}
			return &synodv1.Aggregate{Func: f, Column: x, Column2: y}, nil
		case "HISTOGRAM":
			if len(a.Exprs) < 3 {
				return nil, fmt.Errorf("HISTOGRAM takes a column and at least two bucket edges, e.g. HISTOGRAM(age, 0, 40, 60, 120)")
			}
			col, err := column(a.Exprs[0], name)
			if err != nil {
				return nil, err
			}
			edges, err := numbers(a.Exprs[1:])
			if err != nil {
				return nil, fmt.Errorf("HISTOGRAM edges: %w", err)
			}
			return &synodv1.Aggregate{Func: synodv1.Aggregate_HISTOGRAM, Column: col, Edges: edges}, nil
		}
		return nil, unsupported(fmt.Sprintf("the function %s (supported: COUNT(*), SUM, AVG, VAR_SAMP, STDDEV_SAMP, COVAR_SAMP, CORR, HISTOGRAM)", name))
	case sqlparser.AggrFunc:
		return nil, unsupported(fmt.Sprintf("the aggregate %s (supported: COUNT(*), SUM, AVG, VAR_SAMP, STDDEV_SAMP, COVAR_SAMP, CORR, HISTOGRAM)", strings.ToUpper(a.AggrName())))
	}
	return nil, unsupported(fmt.Sprintf("%s in SELECT (want an aggregate)", exprName(e)))
}

func compileGroupBy(e sqlparser.Expr) (*synodv1.GroupBy, error) {
	switch g := e.(type) {
	case *sqlparser.ColName:
		name, err := columnName(g)
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("GROUP BY %s needs its domain: GROUP BY %s IN (v1, v2, ...)", name, name)
	case *sqlparser.ComparisonExpr:
		if g.Operator == sqlparser.InOp {
			col, err := column(g.Left, "GROUP BY")
			if err != nil {
				return nil, err
			}
			tuple, ok := g.Right.(sqlparser.ValTuple)
			if !ok {
				return nil, fmt.Errorf("GROUP BY %s IN takes a list of numbers, not %s", col, exprName(g.Right))
			}
			domain, err := numbers(tuple)
			if err != nil {
				return nil, fmt.Errorf("GROUP BY %s domain: %w", col, err)
			}
			return &synodv1.GroupBy{Column: col, Domain: domain}, nil
		}
	}
	return nil, unsupported(fmt.Sprintf("GROUP BY %s (want GROUP BY column IN (v1, v2, ...))", exprName(e)))
}

var sqlOps = map[sqlparser.ComparisonExprOperator]synodv1.Filter_Op{
	sqlparser.EqualOp: synodv1.Filter_EQ, sqlparser.NotEqualOp: synodv1.Filter_NE,
	sqlparser.LessThanOp: synodv1.Filter_LT, sqlparser.LessEqualOp: synodv1.Filter_LE,
	sqlparser.GreaterThanOp: synodv1.Filter_GT, sqlparser.GreaterEqualOp: synodv1.Filter_GE,
}

// flipped is the operator with its operands swapped: 3 < age is age > 3.
var flipped = map[synodv1.Filter_Op]synodv1.Filter_Op{
	synodv1.Filter_EQ: synodv1.Filter_EQ, synodv1.Filter_NE: synodv1.Filter_NE,
	synodv1.Filter_LT: synodv1.Filter_GT, synodv1.Filter_GT: synodv1.Filter_LT,
	synodv1.Filter_LE: synodv1.Filter_GE, synodv1.Filter_GE: synodv1.Filter_LE,
}

func list(and bool, ops ...*synodv1.Predicate) *synodv1.Predicate {
	l := &synodv1.Predicate_List{Operands: ops}
	if and {
		return &synodv1.Predicate{Kind: &synodv1.Predicate_And{And: l}}
	}
	return &synodv1.Predicate{Kind: &synodv1.Predicate_Or{Or: l}}
}

func negate(p *synodv1.Predicate) *synodv1.Predicate {
	return &synodv1.Predicate{Kind: &synodv1.Predicate_Not{Not: p}}
}

func compileCondition(e sqlparser.Expr, depth int, nodes *int) (*synodv1.Predicate, error) {
	if depth > maxPredicateDepth {
		return nil, fmt.Errorf("condition nested deeper than %d", maxPredicateDepth)
	}
	if *nodes++; *nodes > maxPredicateNodes {
		return nil, fmt.Errorf("more than %d conditions", maxPredicateNodes)
	}
	sub := func(x sqlparser.Expr) (*synodv1.Predicate, error) { return compileCondition(x, depth+1, nodes) }
	switch c := e.(type) {
	case *sqlparser.AndExpr, *sqlparser.OrExpr:
		var l, r sqlparser.Expr
		_, and := c.(*sqlparser.AndExpr)
		if and {
			l, r = c.(*sqlparser.AndExpr).Left, c.(*sqlparser.AndExpr).Right
		} else {
			l, r = c.(*sqlparser.OrExpr).Left, c.(*sqlparser.OrExpr).Right
		}
		lp, err := sub(l)
		if err != nil {
			return nil, err
		}
		rp, err := sub(r)
		if err != nil {
			return nil, err
		}
		return list(and, lp, rp), nil
	case *sqlparser.NotExpr:
		p, err := sub(c.Expr)
		if err != nil {
			return nil, err
		}
		return negate(p), nil
	case *sqlparser.BetweenExpr:
		col, err := column(c.Left, "BETWEEN")
		if err != nil {
			return nil, err
		}
		lo, err := number(c.From)
		if err != nil {
			return nil, fmt.Errorf("BETWEEN: %w", err)
		}
		hi, err := number(c.To)
		if err != nil {
			return nil, fmt.Errorf("BETWEEN: %w", err)
		}
		p := list(true, compare(col, synodv1.Filter_GE, lo), compare(col, synodv1.Filter_LE, hi))
		if !c.IsBetween {
			p = negate(p)
		}
		return p, nil
	case *sqlparser.ComparisonExpr:
		if c.Modifier != sqlparser.Missing {
			return nil, unsupported("ANY/ALL comparisons")
		}
		if c.Escape != nil {
			return nil, unsupported("ESCAPE")
		}
		switch c.Operator {
		case sqlparser.InOp, sqlparser.NotInOp:
			col, err := column(c.Left, "IN")
			if err != nil {
				return nil, err
			}
			tuple, ok := c.Right.(sqlparser.ValTuple)
			if !ok {
				return nil, unsupported(fmt.Sprintf("IN %s (want a list of numbers)", exprName(c.Right)))
			}
			if len(tuple) > maxInValues {
				return nil, fmt.Errorf("IN on %s lists more than %d values", col, maxInValues)
			}
			vs, err := numbers(tuple)
			if err != nil {
				return nil, fmt.Errorf("IN on %s: %w", col, err)
			}
			p := &synodv1.Predicate{Kind: &synodv1.Predicate_In{In: &synodv1.Predicate_InList{Column: col, Values: vs}}}
			if c.Operator == sqlparser.NotInOp {
				p = negate(p)
			}
			return p, nil
		case sqlparser.LikeOp, sqlparser.NotLikeOp:
			return nil, unsupported("LIKE")
		case sqlparser.RegexpOp, sqlparser.NotRegexpOp:
			return nil, unsupported("REGEXP")
		case sqlparser.NullSafeEqualOp:
			return nil, unsupported("<=>")
		}
		op, ok := sqlOps[c.Operator]
		if !ok {
			return nil, unsupported(fmt.Sprintf("the operator %s", c.Operator.ToString()))
		}
		if lc, ok := c.Left.(*sqlparser.ColName); ok {
			col, err := columnName(lc)
			if err != nil {
				return nil, err
			}
			v, err := number(c.Right)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", sqlparser.String(c), err)
			}
			return compare(col, op, v), nil
		}
		if rc, ok := c.Right.(*sqlparser.ColName); ok {
			col, err := columnName(rc)
			if err != nil {
				return nil, err
			}
			v, err := number(c.Left)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", sqlparser.String(c), err)
			}
			return compare(col, flipped[op], v), nil
		}
		return nil, unsupported(fmt.Sprintf("comparison of %s with %s (want a column compared with a number)", exprName(c.Left), exprName(c.Right)))
	case *sqlparser.XorExpr:
		return nil, unsupported("XOR")
	case *sqlparser.IsExpr:
		return nil, unsupported("IS NULL / IS TRUE tests (columns have no NULLs)")
	case *sqlparser.ExistsExpr, *sqlparser.Subquery:
		return nil, unsupported("subqueries")
	}
	return nil, unsupported(fmt.Sprintf("%s as a condition", exprName(e)))
}
