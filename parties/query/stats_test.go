package query

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/synod-mpc/synod/parties/datasource"
)

func readTable(csv string) (*datasource.Table, error) {
	return datasource.ReadCSV("patients", "inline", strings.NewReader(csv))
}

// testRows is a synthetic table: 3 parties' worth of rows with columns
// age, sex, bmi, smoker, grp (0..2).
func testRows(t *testing.T, seed uint64, n int) (*datasource.Table, []map[string]float64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	var b strings.Builder
	b.WriteString("age,sex,bmi,smoker,grp\n")
	var rows []map[string]float64
	for range n {
		age := float64(18 + r.IntN(70))
		bmi := math.Round((17+0.12*age+r.NormFloat64()*4)*10) / 10
		row := map[string]float64{"age": age, "sex": float64(r.IntN(2)), "bmi": bmi, "smoker": float64(r.IntN(2)), "grp": float64(r.IntN(3))}
		rows = append(rows, row)
		fmt.Fprintf(&b, "%g,%g,%g,%g,%g\n", row["age"], row["sex"], row["bmi"], row["smoker"], row["grp"])
	}
	tab, err := readTable(b.String())
	if err != nil {
		t.Fatal(err)
	}
	return tab, rows
}

// Plain float64 statistics, two-pass, as a reference.
func plainMean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func plainCovar(xs, ys []float64) float64 {
	mx, my := plainMean(xs), plainMean(ys)
	s := 0.0
	for i := range xs {
		s += (xs[i] - mx) * (ys[i] - my)
	}
	return s / float64(len(xs)-1)
}

// plain computes the statistics of a query in the clear, row by row, for
// the rows where keep holds, grouped by sex.
func plain(rows []map[string]float64, keep func(map[string]float64) bool) map[float64]map[string]float64 {
	out := map[float64]map[string]float64{}
	for _, sex := range []float64{0, 1} {
		var age, bmi []float64
		hist := make([]float64, 3)
		edges := []float64{18, 40, 60, 90}
		for _, r := range rows {
			if r["sex"] != sex || !keep(r) {
				continue
			}
			age, bmi = append(age, r["age"]), append(bmi, r["bmi"])
			for i := 0; i+1 < len(edges); i++ {
				if edges[i] <= r["age"] && r["age"] < edges[i+1] {
					hist[i]++
				}
			}
		}
		sum := 0.0
		for _, x := range bmi {
			sum += x
		}
		out[sex] = map[string]float64{
			"COUNT(*)":              float64(len(age)),
			"SUM(bmi)":              sum,
			"MEAN(bmi)":             plainMean(bmi),
			"VAR_SAMP(age)":         plainCovar(age, age),
			"STDDEV_SAMP(bmi)":      math.Sqrt(plainCovar(bmi, bmi)),
			"COVAR_SAMP(age, bmi)":  plainCovar(age, bmi),
			"CORR(age, bmi)":        plainCovar(age, bmi) / math.Sqrt(plainCovar(age, age)*plainCovar(bmi, bmi)),
			"HISTOGRAM(age)[18,40)": hist[0],
			"HISTOGRAM(age)[40,60)": hist[1],
			"HISTOGRAM(age)[60,90)": hist[2],
		}
	}
	return out
}

const statsSelect = "SELECT sex, COUNT(*), SUM(bmi), AVG(bmi), VAR_SAMP(age), STDDEV_SAMP(bmi), COVAR_SAMP(age, bmi), CORR(age, bmi), HISTOGRAM(age, 18, 40, 60, 90) FROM patients"

// TestStatisticsMatchPlaintext runs every statistic and every WHERE form
// through Local (three parties' tables, summed) and Finish, against a float64
// two-pass computation over the same rows. Tolerance: counts exact, other
// statistics 1e-9 relative (the one-pass sums lose a few ulps).
func TestStatisticsMatchPlaintext(t *testing.T) {
	var tabs []*datasource.Table
	var rows []map[string]float64
	for p := range 3 {
		tab, rs := testRows(t, uint64(p+1), 400)
		tabs = append(tabs, tab)
		rows = append(rows, rs...)
	}
	for _, tc := range []struct {
		where string
		keep  func(r map[string]float64) bool
	}{
		{"", func(map[string]float64) bool { return true }},
		{"WHERE age = 50", func(r map[string]float64) bool { return r["age"] == 50 }},
		{"WHERE age != 50", func(r map[string]float64) bool { return r["age"] != 50 }},
		{"WHERE age <> 50", func(r map[string]float64) bool { return r["age"] != 50 }},
		{"WHERE age < 50", func(r map[string]float64) bool { return r["age"] < 50 }},
		{"WHERE age <= 50", func(r map[string]float64) bool { return r["age"] <= 50 }},
		{"WHERE age > 50", func(r map[string]float64) bool { return r["age"] > 50 }},
		{"WHERE 50 > age", func(r map[string]float64) bool { return r["age"] < 50 }},
		{"WHERE age >= 50", func(r map[string]float64) bool { return r["age"] >= 50 }},
		{"WHERE age BETWEEN 40 AND 70", func(r map[string]float64) bool { return r["age"] >= 40 && r["age"] <= 70 }},
		{"WHERE age NOT BETWEEN 40 AND 70", func(r map[string]float64) bool { return r["age"] < 40 || r["age"] > 70 }},
		{"WHERE grp IN (0, 2)", func(r map[string]float64) bool { return r["grp"] == 0 || r["grp"] == 2 }},
		{"WHERE grp NOT IN (0, 2)", func(r map[string]float64) bool { return r["grp"] == 1 }},
		{"WHERE age > 30 AND bmi < 27.5", func(r map[string]float64) bool { return r["age"] > 30 && r["bmi"] < 27.5 }},
		{"WHERE smoker = 1 OR bmi >= 30", func(r map[string]float64) bool { return r["smoker"] == 1 || r["bmi"] >= 30 }},
		{"WHERE NOT (smoker = 1 OR bmi >= 30)", func(r map[string]float64) bool { return !(r["smoker"] == 1 || r["bmi"] >= 30) }},
		{"WHERE (grp = 1 OR age < 30) AND NOT smoker = 0 AND bmi BETWEEN 20 AND 35",
			func(r map[string]float64) bool {
				return (r["grp"] == 1 || r["age"] < 30) && r["smoker"] != 0 && r["bmi"] >= 20 && r["bmi"] <= 35
			}},
	} {
		sql := statsSelect + " " + tc.where + " GROUP BY sex IN (0, 1)"
		spec, err := CompileSQL(sql)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		var total []float64
		for _, tab := range tabs {
			local, err := Local(tab, spec)
			if err != nil {
				t.Fatal(err)
			}
			if total == nil {
				total = make([]float64, len(local))
			}
			for i, v := range local {
				total[i] += v
			}
		}
		cells, err := Finish(spec, total)
		if err != nil {
			t.Fatal(err)
		}
		want := plain(rows, tc.keep)
		if len(cells) != 2*len(want[0]) {
			t.Fatalf("%s: %d cells", tc.where, len(cells))
		}
		for _, c := range cells {
			w, ok := want[c.Group["sex"]][c.Name]
			if !ok {
				t.Fatalf("%s: unexpected cell %+v", tc.where, c)
			}
			tol := 1e-9 * max(1, math.Abs(w))
			if strings.HasPrefix(c.Name, "COUNT") || strings.HasPrefix(c.Name, "HISTOGRAM") {
				tol = 0
			}
			if math.IsNaN(w) != math.IsNaN(c.Value) || math.Abs(c.Value-w) > tol {
				t.Errorf("%s: sex=%g %s = %v, plaintext %v", tc.where, c.Group["sex"], c.Name, c.Value, w)
			}
		}
	}
}

// TestErrorBoundsHold perturbs every slot by up to eps, as the decryption
// noise does, and checks each statistic stays within its ErrorBounds.
func TestErrorBoundsHold(t *testing.T) {
	tab, _ := testRows(t, 7, 3000)
	spec, err := CompileSQL(statsSelect + " WHERE age >= 30 GROUP BY sex IN (0, 1)")
	if err != nil {
		t.Fatal(err)
	}
	exact, err := Local(tab, spec)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Finish(spec, exact)
	r := rand.New(rand.NewPCG(3, 4))
	for _, eps := range []float64{1e-6, 1e-3, 0.1, 0.45} {
		for trial := range 50 {
			noisy := make([]float64, len(exact))
			for i, v := range exact {
				noisy[i] = v + eps*(2*r.Float64()-1)
				if trial == 0 {
					noisy[i] = v + eps // worst case: every slot off by eps the same way
				}
			}
			got, err := Finish(spec, noisy)
			if err != nil {
				t.Fatal(err)
			}
			bounds, err := ErrorBounds(spec, noisy, eps)
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				// The slack covers float64 rounding of the sums themselves.
				if d := math.Abs(got[i].Value - want[i].Value); d > bounds[i]+1e-12*max(1, math.Abs(want[i].Value)) {
					t.Fatalf("eps %g: %s (sex=%g) off by %g, bound %g", eps, got[i].Name, got[i].Group["sex"], d, bounds[i])
				}
			}
		}
	}
}

func TestUndefinedStatisticsAreNaN(t *testing.T) {
	tab, err := readTable("age,sex,bmi\n30,0,20\n45,1,25\n")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := CompileSQL("SELECT COUNT(*), AVG(bmi), VAR_SAMP(bmi), CORR(age, bmi) FROM patients GROUP BY sex IN (0, 1, 2)")
	if err != nil {
		t.Fatal(err)
	}
	local, err := Local(tab, spec)
	if err != nil {
		t.Fatal(err)
	}
	cells, err := Finish(spec, local)
	if err != nil {
		t.Fatal(err)
	}
	// sex=2 is empty: count 0, the rest NaN; sex=0 has one row: AVG defined, VAR and CORR not.
	for _, c := range cells {
		undefined := c.Group["sex"] == 2 && c.Name != "COUNT(*)" || c.Group["sex"] < 2 && (c.Name == "VAR_SAMP(bmi)" || c.Name == "CORR(age, bmi)")
		if math.IsNaN(c.Value) != undefined {
			t.Errorf("sex=%g %s = %v", c.Group["sex"], c.Name, c.Value)
		}
	}
	b, err := cells[len(cells)-1].MarshalJSON()
	if err != nil || !strings.Contains(string(b), `"value":null`) {
		t.Fatalf("NaN as JSON: %s %v", b, err)
	}
	var back Cell
	if err := back.UnmarshalJSON(b); err != nil || !math.IsNaN(back.Value) {
		t.Fatalf("null from JSON: %v %v", back, err)
	}
}

func TestOverflowIsRefusedNamingTheCell(t *testing.T) {
	tab, err := readTable("x\n50000\n50000\n")
	if err != nil {
		t.Fatal(err)
	}
	// Σx² = 5e9 > 2^32.
	spec, err := CompileSQL("SELECT AVG(x), VAR_SAMP(x) FROM patients")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Local(tab, spec)
	if err == nil || !strings.Contains(err.Error(), "sumsq:x") || strings.Contains(err.Error(), " 5e+09") {
		t.Fatalf("want an error naming sumsq:x (and not its value), got %v", err)
	}
	spec, _ = CompileSQL("SELECT AVG(x) FROM patients")
	if _, err := Local(tab, spec); err != nil {
		t.Fatal(err)
	}
}

func TestLocalUnknownColumns(t *testing.T) {
	tab, _ := readTable("age,sex\n1,0\n")
	for _, sql := range []string{
		"SELECT CORR(age, weight) FROM patients",
		"SELECT COUNT(*) FROM patients WHERE weight IN (1, 2)",
		"SELECT COUNT(*) FROM patients WHERE NOT (age > 1 OR weight < 3)",
		"SELECT COUNT(*) FROM patients GROUP BY weight IN (1, 2)",
		"SELECT HISTOGRAM(weight, 1, 2) FROM patients",
	} {
		spec, err := CompileSQL(sql)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Local(tab, spec); err == nil || !strings.Contains(err.Error(), `"weight"`) {
			t.Errorf("%s: want an error naming weight, got %v", sql, err)
		}
	}
}
