package schema

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/synod-mpc/synod/parties/datasource"
)

func repoFile(p string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", p)
}

// The shipped schema loads and every shipped sample file matches it.
func TestShippedSchemaMatchesSampleData(t *testing.T) {
	s, err := Load(repoFile("configs/schema.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	d, ok := s.Dataset("patients")
	if !ok {
		t.Fatal("no dataset patients")
	}
	if got := strings.Join(d.ColumnNames(), ","); got != "age,sex,bmi,systolic_bp,cholesterol,smoker,diabetic" {
		t.Fatalf("columns %s", got)
	}
	age, ok := s.Column("patients", "age")
	if !ok || age.Type != Integer || *age.Min != 18 || *age.Max != 95 {
		t.Fatalf("age %+v", age)
	}
	sex, _ := d.Column("sex")
	if l, ok := sex.Label(1); !ok || l != "male" {
		t.Fatalf("sex 1 = %q", l)
	}
	files, _ := filepath.Glob(repoFile("configs/sample/patients-party-*.csv"))
	if len(files) == 0 {
		t.Fatal("no sample files")
	}
	for _, f := range files {
		tab, err := datasource.LoadCSV("patients", f)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Check(tab); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
	}
}

func table(cols []string, rows ...[]float64) *datasource.Table {
	t := &datasource.Table{Name: "patients", Columns: cols, Values: make([][]float64, len(cols))}
	for _, r := range rows {
		for i, v := range r {
			t.Values[i] = append(t.Values[i], v)
		}
		t.Rows++
	}
	return t
}

func TestCheckNamesColumnAndRow(t *testing.T) {
	s, err := Load(repoFile("configs/schema.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	all := []string{"age", "sex", "bmi", "systolic_bp", "cholesterol", "smoker", "diabetic"}
	ok := []float64{40, 1, 25, 120, 200, 0, 1}
	with := func(i int, v float64) []float64 {
		r := append([]float64(nil), ok...)
		r[i] = v
		return r
	}
	cases := []struct {
		name string
		tab  *datasource.Table
		want []string
	}{
		{"missing column", table(all[1:], ok[1:]), []string{`column "age"`, "missing"}},
		{"extra column", table(append(all, "weight"), append(ok, 80)), []string{`column "weight"`, "not in the schema"}},
		{"out of range", table(all, ok, with(0, 130)), []string{`column "age"`, "row 2", "130", "out of range [18, 95]"}},
		{"not integer", table(all, with(0, 40.5)), []string{`column "age"`, "row 1", "not an integer"}},
		{"below range", table(all, ok, ok, with(2, 3)), []string{`column "bmi"`, "row 3", "out of range [15, 55]"}},
		{"category", table(all, with(1, 2)), []string{`column "sex"`, "row 1", "not in the categorical domain {0=female, 1=male}"}},
		{"boolean", table(all, with(5, 0.5)), []string{`column "smoker"`, "not a boolean"}},
		{"unknown dataset", &datasource.Table{Name: "visits"}, []string{"dataset visits is not in the consortium schema"}},
	}
	for _, c := range cases {
		err := s.Check(c.tab)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, w)
			}
		}
	}
	if err := s.Check(table(all, ok, ok)); err != nil {
		t.Fatal(err)
	}
	// columns in another order are fine
	if err := s.Check(table([]string{"diabetic", "smoker", "cholesterol", "systolic_bp", "bmi", "sex", "age"}, []float64{1, 0, 200, 120, 25, 1, 40})); err != nil {
		t.Fatal(err)
	}
}

func TestLoadErrorsNameTheField(t *testing.T) {
	const base = `
datasets:
  patients:
    columns:
      - {name: age, type: integer, min: 18, max: 95}
      - name: sex
        type: categorical
        categories: [{code: 0, label: female}, {code: 1, label: male}]
`
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"empty", "", []string{"no datasets"}},
		{"unknown top", base + "tables: {}\n", []string{"unknown field(s) tables"}},
		{"unknown dataset field", strings.Replace(base, "    columns:", "    rows: 3\n    columns:", 1), []string{"dataset patients", "unknown field(s) rows"}},
		{"unknown column field", strings.Replace(base, "min: 18,", "min: 18, mean: 3,", 1), []string{"dataset patients", `column "age"`, "unknown field(s) mean"}},
		{"bad type", strings.Replace(base, "type: integer", "type: text", 1), []string{`column "age"`, `field "type"`, `"text"`}},
		{"missing type", strings.Replace(base, "type: integer, ", "", 1), []string{`column "age"`, `missing field "type"`}},
		{"missing range", strings.Replace(base, ", max: 95", "", 1), []string{`column "age"`, `"min" and "max" are required`}},
		{"inverted range", strings.Replace(base, "min: 18", "min: 100", 1), []string{`column "age"`, `"min" (100) is above field "max" (95)`}},
		{"fractional integer range", strings.Replace(base, "min: 18", "min: 18.5", 1), []string{`column "age"`, "must be integers"}},
		{"no categories", strings.Replace(base, "        categories: [{code: 0, label: female}, {code: 1, label: male}]\n", "", 1), []string{`column "sex"`, `"categories" is required`}},
		{"duplicate code", strings.Replace(base, "code: 1", "code: 0", 1), []string{`column "sex"`, "code 0 appears twice"}},
		{"duplicate label", strings.Replace(base, "label: male", "label: female", 1), []string{`column "sex"`, `label "female" appears twice`}},
		{"empty label", strings.Replace(base, "label: male", "label: ''", 1), []string{`column "sex"`, "code 1 has no label"}},
		{"range on categorical", strings.Replace(base, "type: categorical", "type: categorical\n        min: 0", 1), []string{`column "sex"`, `"min" and "max" are only for`}},
		{"categories on numeric", strings.Replace(base, "max: 95}", "max: 95, categories: [{code: 1, label: a}]}", 1), []string{`column "age"`, `"categories" is only for categorical`}},
		{"duplicate column", base + "      - {name: age, type: boolean}\n", []string{`column "age" is declared twice`}},
		{"unnamed column", base + "      - {type: boolean}\n", []string{"column 3", `missing field "name"`}},
		{"upper-case dataset", strings.Replace(base, "patients:", "Patients:", 1), []string{`dataset "Patients"`, "lower-case"}},
		{"category field", strings.Replace(base, "label: male}", "label: male, colour: red}", 1), []string{`column "sex"`, "categories entry 2", "colour"}},
		{"not yaml", "datasets: [", []string{"not valid YAML"}},
		{"wrong value type", strings.Replace(base, "min: 18", "min: young", 1), []string{"not a schema"}},
	}
	dir := t.TempDir()
	for _, c := range cases {
		p := filepath.Join(dir, "schema.yaml")
		if err := os.WriteFile(p, []byte(c.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(p)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		for _, w := range append(c.want, "schema.yaml") {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, w)
			}
		}
	}
	if _, err := Load(filepath.Join(dir, "absent.yaml")); err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Fatalf("absent file: %v", err)
	}
}
