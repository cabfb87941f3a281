package query

import (
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
)

func cmp(col string, op synodv1.Filter_Op, v float64) *synodv1.Filter {
	return &synodv1.Filter{Column: col, Op: op, Value: v}
}

func TestCompileSQLGolden(t *testing.T) {
	for _, tc := range []struct {
		sql  string
		want *synodv1.QuerySpec
	}{
		{
			"SELECT sex, COUNT(*), AVG(bmi), CORR(age, bmi) FROM patients WHERE age BETWEEN 40 AND 70 GROUP BY sex IN (0, 1)",
			&synodv1.QuerySpec{
				Dataset: "patients",
				Aggregates: []*synodv1.Aggregate{
					{Func: synodv1.Aggregate_COUNT},
					{Func: synodv1.Aggregate_MEAN, Column: "bmi"},
					{Func: synodv1.Aggregate_CORR, Column: "age", Column2: "bmi"},
				},
				Filters: []*synodv1.Filter{cmp("age", synodv1.Filter_LE, 70), cmp("age", synodv1.Filter_GE, 40)},
				GroupBy: []*synodv1.GroupBy{{Column: "sex", Domain: []float64{0, 1}}},
			},
		},
		{
			"select sum(bmi), var_samp(age), stddev_samp(age), covar_samp(age, bmi), histogram(age, 0, 40, 60.5, 120) from patients",
			&synodv1.QuerySpec{
				Dataset: "patients",
				Aggregates: []*synodv1.Aggregate{
					{Func: synodv1.Aggregate_SUM, Column: "bmi"},
					{Func: synodv1.Aggregate_VAR_SAMP, Column: "age"},
					{Func: synodv1.Aggregate_STDDEV_SAMP, Column: "age"},
					{Func: synodv1.Aggregate_COVAR_SAMP, Column: "age", Column2: "bmi"},
					{Func: synodv1.Aggregate_HISTOGRAM, Column: "age", Edges: []float64{0, 40, 60.5, 120}},
				},
			},
		},
		{
			"SELECT COUNT(*) FROM patients WHERE NOT (smoker = 1 OR sex NOT IN (1, 0)) AND (bmi > 30 OR age < -1.5e1)",
			&synodv1.QuerySpec{
				Dataset:    "patients",
				Aggregates: []*synodv1.Aggregate{{Func: synodv1.Aggregate_COUNT}},
				Filters:    []*synodv1.Filter{cmp("smoker", synodv1.Filter_NE, 1)},
				Where: &synodv1.Predicate{Kind: &synodv1.Predicate_And{And: &synodv1.Predicate_List{Operands: []*synodv1.Predicate{
					{Kind: &synodv1.Predicate_Or{Or: &synodv1.Predicate_List{Operands: []*synodv1.Predicate{
						{Kind: &synodv1.Predicate_Compare{Compare: cmp("age", synodv1.Filter_LT, -15)}},
						{Kind: &synodv1.Predicate_Compare{Compare: cmp("bmi", synodv1.Filter_GT, 30)}},
					}}}},
					{Kind: &synodv1.Predicate_In{In: &synodv1.Predicate_InList{Column: "sex", Values: []float64{0, 1}}}},
				}}}},
			},
		},
		{
			"SELECT SUM(age) FROM patients WHERE 40 <= age GROUP BY smoker IN (1, 0), sex IN (1, 0, 1)",
			&synodv1.QuerySpec{
				Dataset:    "patients",
				Aggregates: []*synodv1.Aggregate{{Func: synodv1.Aggregate_SUM, Column: "age"}},
				Filters:    []*synodv1.Filter{cmp("age", synodv1.Filter_GE, 40)},
				GroupBy:    []*synodv1.GroupBy{{Column: "smoker", Domain: []float64{0, 1}}, {Column: "sex", Domain: []float64{0, 1}}},
			},
		},
	} {
		got, err := CompileSQL(tc.sql)
		if err != nil {
			t.Errorf("%s: %v", tc.sql, err)
			continue
		}
		if !proto.Equal(got, tc.want) {
			t.Errorf("%s:\n got %v\nwant %v", tc.sql, got, tc.want)
		}
	}
}

// TestCompileSQLCanonical checks that ways of writing the same query give
// the same bytes, including the legacy flags.
func TestCompileSQLCanonical(t *testing.T) {
	for _, group := range [][]string{
		{
			"SELECT COUNT(*) FROM p WHERE age BETWEEN 40 AND 70",
			"SELECT COUNT(*) FROM p WHERE age >= 40 AND age <= 70",
			"select count(*) from p where 70 >= age and (age >= 40)",
			"SELECT COUNT(*) FROM p WHERE NOT (age < 40 OR age > 70)",
			"SELECT COUNT(*) FROM p WHERE age <= 70 AND age >= 40 AND age >= 40",
		},
		{
			"SELECT COUNT(*) FROM p WHERE sex IN (1)",
			"SELECT COUNT(*) FROM p WHERE sex = 1",
			"SELECT COUNT(*) FROM p WHERE NOT NOT sex = 1",
			"SELECT COUNT(*) FROM p WHERE NOT sex <> 1",
		},
		{
			"SELECT COUNT(*) FROM p WHERE (a = 1 OR b = 2) AND c IN (3, 2)",
			"SELECT COUNT(*) FROM p WHERE c IN (2, 3, 3) AND (b = 2 OR a = 1)",
		},
		{
			"SELECT sex, AVG(bmi) FROM p GROUP BY sex IN (1, 0)",
			"SELECT AVG(bmi) FROM p GROUP BY sex IN (0, 1)",
		},
		{
			"SELECT COUNT(*) FROM p WHERE x NOT BETWEEN 1 AND 2",
			"SELECT COUNT(*) FROM p WHERE x < 1 OR x > 2",
		},
	} {
		var first []byte
		for _, sql := range group {
			spec, err := CompileSQL(sql)
			if err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
			b, err := proto.Marshal(spec)
			if err != nil {
				t.Fatal(err)
			}
			if first == nil {
				first = b
			} else if string(b) != string(first) {
				t.Errorf("%q compiles to %v, unlike %q", sql, spec, group[0])
			}
			// Canonicalize is idempotent.
			again, _ := proto.Marshal(Canonicalize(spec))
			if string(again) != string(b) {
				t.Errorf("%q: canonical form changes when canonicalized again", sql)
			}
		}
	}

	// The legacy flags and the SQL give the same spec.
	flags := &synodv1.QuerySpec{Dataset: "patients"}
	for _, a := range []string{"count", "mean:age"} {
		agg, _ := ParseAggregate(a)
		flags.Aggregates = append(flags.Aggregates, agg)
	}
	for _, w := range []string{"sex=1", "age>=40"} {
		f, _ := ParseFilter(w)
		flags.Filters = append(flags.Filters, f)
	}
	sql, err := CompileSQL("SELECT COUNT(*), AVG(age) FROM patients WHERE age >= 40 AND sex = 1")
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(Canonicalize(flags), sql) {
		t.Errorf("flags give %v, SQL %v", Canonicalize(flags), sql)
	}
}

func TestCompileSQLErrorsNameTheConstruct(t *testing.T) {
	for _, tc := range []struct{ sql, want string }{
		{"SELECT COUNT(*) FROM a JOIN b ON a.x = b.x", "JOIN"},
		{"SELECT COUNT(*) FROM a, b", "JOIN"},
		{"SELECT COUNT(*) FROM (SELECT * FROM a) t", "subqueries"},
		{"SELECT COUNT(*) FROM a WHERE x IN (SELECT y FROM b)", "subquery"},
		{"SELECT COUNT(*) FROM a WHERE EXISTS (SELECT 1 FROM b)", "subquer"},
		{"SELECT COUNT(*) FROM a WHERE x > (SELECT 1)", "subquery"},
		{"SELECT COUNT(*) FROM a ORDER BY x", "ORDER BY"},
		{"SELECT COUNT(*) FROM a LIMIT 10", "LIMIT"},
		{"SELECT COUNT(*) FROM a GROUP BY x IN (1) HAVING COUNT(*) > 3", "HAVING"},
		{"SELECT DISTINCT COUNT(*) FROM a", "DISTINCT"},
		{"WITH t AS (SELECT 1) SELECT COUNT(*) FROM t", "WITH"},
		{"SELECT COUNT(*) FROM a UNION SELECT COUNT(*) FROM b", "UNION"},
		{"INSERT INTO a VALUES (1)", "INSERT"},
		{"DELETE FROM a", "DELETE"},
		{"SELECT MAX(x) FROM a", "MAX"},
		{"SELECT MEDIAN(x) FROM a", "MEDIAN"},
		{"SELECT VAR_POP(x) FROM a", "VAR_POP"},
		{"SELECT COUNT(x) FROM a", "COUNT(column)"},
		{"SELECT SUM(DISTINCT x) FROM a", "DISTINCT"},
		{"SELECT SUM(x + 1) FROM a", "arithmetic"},
		{"SELECT SUM(x) AS s FROM a", "aliases"},
		{"SELECT * FROM a", "SELECT *"},
		{"SELECT x FROM a", "GROUP BY column"},
		{"SELECT COUNT(*) FROM a GROUP BY x", "needs its domain"},
		{"SELECT COUNT(*) FROM a GROUP BY x IN ('a', 'b')", "string"},
		{"SELECT COUNT(*) FROM a WHERE x LIKE '1%'", "LIKE"},
		{"SELECT COUNT(*) FROM a WHERE x REGEXP '1'", "REGEXP"},
		{"SELECT COUNT(*) FROM a WHERE x IS NULL", "IS NULL"},
		{"SELECT COUNT(*) FROM a WHERE x XOR y", "XOR"},
		{"SELECT COUNT(*) FROM a WHERE x = y", "want a number, got the column y"},
		{"SELECT COUNT(*) FROM a WHERE 1 = 2", "column compared with a number"},
		{"SELECT COUNT(*) FROM a WHERE x = 'abc'", "string"},
		{"SELECT COUNT(*) FROM a WHERE x + 1 > 3", "arithmetic"},
		{"SELECT COUNT(*) FROM a WHERE ABS(x) > 3", "ABS"},
		{"SELECT COUNT(*) FROM a WHERE x <=> 3", "<=>"},
		{"SELECT COUNT(*) FROM a WHERE x", "as a condition"},
		{"SELECT COUNT(*) FROM a t", "table aliases"},
		{"SELECT COUNT(*) FROM db.a", "qualified table"},
		{"SELECT SUM(a.x) FROM a", "qualified column"},
		{"SELECT COUNT(*) FROM a FOR UPDATE", "locking"},
		{"SELECT SUM(x) OVER () FROM a", "OVER"},
		{"SELECT HISTOGRAM(x, 1) FROM a", "two bucket edges"},
		{"SELECT HISTOGRAM(x, 2, 1) FROM a", "strictly increasing"},
		{"SELECT HISTOGRAM(x, 1, y) FROM a", "want a number"},
		{"SELECT CORR(x) FROM a", "two columns"},
		{"SELECT COUNT(*) FROM a WHERE x > 1e999", "finite"},
		{"SELECT 1 FROM a", "SELECT"},
		{"SELECT COUNT(*)", "FROM"},
		{"SELEC COUNT(*) FROM a", "syntax error"},
		{"SELECT COUNT(*) FROM a GROUP BY x IN (1), x IN (2)", "twice"},
		{"SELECT COUNT(*) FROM a GROUP BY x IN (1) WITH ROLLUP", "ROLLUP"},
	} {
		_, err := CompileSQL(tc.sql)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want an error naming %q, got %v", tc.sql, tc.want, err)
		}
	}
}

func TestCellLimit(t *testing.T) {
	// The bench's shape: 10 aggregates and a 20-bucket histogram by a 2-value column.
	edges := make([]string, 21)
	for i := range edges {
		edges[i] = strconv.Itoa(i * 5)
	}
	sql := "SELECT COUNT(*), SUM(age), AVG(bmi), VAR_SAMP(age), STDDEV_SAMP(bmi), COVAR_SAMP(age, bmi), CORR(age, bmi), " +
		"AVG(cholesterol), VAR_SAMP(systolic_bp), CORR(cholesterol, systolic_bp), HISTOGRAM(age, " + strings.Join(edges, ", ") +
		") FROM patients GROUP BY sex IN (0, 1)"
	spec, err := CompileSQL(sql)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(Layout(spec)); n != CellCount(spec) || n > MaxCells {
		t.Fatalf("layout %d, cell count %d", n, CellCount(spec))
	}
	// Too many groups is refused before anything is laid out.
	vals := make([]string, 100)
	for i := range vals {
		vals[i] = strconv.Itoa(i)
	}
	in := "IN (" + strings.Join(vals, ",") + ")"
	_, err = CompileSQL("SELECT COUNT(*), AVG(x) FROM p GROUP BY a " + in + ", b " + in)
	if err == nil || !strings.Contains(err.Error(), "exceed the limit") {
		t.Fatalf("want a cell limit error, got %v", err)
	}
}

func FuzzCompileSQL(f *testing.F) {
	for _, s := range []string{
		"SELECT sex, COUNT(*), AVG(bmi), CORR(age, bmi) FROM patients WHERE age BETWEEN 40 AND 70 GROUP BY sex IN (0, 1)",
		"SELECT HISTOGRAM(age, 0, 10, 20, 40), VAR_SAMP(bmi), STDDEV_SAMP(bmi), COVAR_SAMP(age, bmi), SUM(x) FROM p",
		"SELECT COUNT(*) FROM p WHERE NOT (a = 1 OR b NOT IN (1, 2)) AND c NOT BETWEEN -1 AND 1e3",
		"SELECT COUNT(*) FROM p GROUP BY a IN (1, 2), b IN (3)",
		"SELECT COUNT(*) FROM a JOIN b",
		"SELECT x FROM (SELECT 1) t ORDER BY x LIMIT 1",
		"SELECT COUNT(*) FROM p WHERE ((((a > 1))))",
	} {
		f.Add(s)
	}
	tab, err := readTable("age,sex,bmi,a,b,c,x\n30,0,20,1,2,3,4\n45,1,25.5,0,1,2,3\n")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		spec, err := CompileSQL(sql)
		if err != nil {
			return
		}
		if err := Validate(spec); err != nil {
			t.Fatalf("%q compiles to an invalid spec: %v", sql, err)
		}
		b1, _ := proto.Marshal(spec)
		b2, _ := proto.Marshal(Canonicalize(spec))
		if string(b1) != string(b2) {
			t.Fatalf("%q: canonical form is not stable", sql)
		}
		if n := len(Layout(spec)); n != CellCount(spec) {
			t.Fatalf("%q: layout %d cells, count %d", sql, n, CellCount(spec))
		}
		if local, err := Local(tab, spec); err == nil {
			if _, err := Finish(spec, local); err != nil {
				t.Fatalf("%q: finish: %v", sql, err)
			}
		}
	})
}
