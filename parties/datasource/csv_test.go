package datasource

import (
	"strings"
	"testing"
)

func TestReadCSV(t *testing.T) {
	tab, err := ReadCSV("p", "inline", strings.NewReader("a, b\n1,2\n3.5,-4\n"))
	if err != nil {
		t.Fatal(err)
	}
	if tab.Rows != 2 || tab.Columns[1] != "b" || tab.Values[0][1] != 3.5 || tab.Values[1][1] != -4 {
		t.Fatalf("%+v", tab)
	}
	// A spreadsheet's byte order mark is not part of the first column's name.
	tab, err = ReadCSV("p", "inline", strings.NewReader("\ufeffage,b\n1,2\n"))
	if err != nil || tab.Columns[0] != "age" {
		t.Fatalf("BOM: %v %q", err, tab.Columns)
	}
}

// A cell's content never appears in an error: errors reach logs.
func TestReadCSVErrorsCarryNoValue(t *testing.T) {
	_, err := ReadCSV("p", "f.csv", strings.NewReader("a,b\n1,secret-42.5x\n"))
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("error %v", err)
	}
}

func TestReadCSVErrorsSayWhere(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "empty file",
		"a,a\n1,2\n":        `column "a" appears twice`,
		"a,b\n1,x\n":        `line 2, column "b": not a finite number`,
		"a,b\n1,2\n3, \n":   `line 3, column "b": empty cell`,
		"a,b\n1,2\n1,NaN\n": `line 3, column "b"`,
		"a,b\n1,2,3\n":      "wrong number of fields",
		"a,\n1,2\n":         "column 2 has an empty name",
	} {
		_, err := ReadCSV("p", "f.csv", strings.NewReader(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: want error containing %q, got %v", in, want, err)
		}
	}
}

func FuzzReadCSV(f *testing.F) {
	f.Add("a,b\n1,2\n")
	f.Add("x\n1e308\n-0\n")
	f.Fuzz(func(t *testing.T, in string) {
		tab, err := ReadCSV("p", "fuzz", strings.NewReader(in))
		if err == nil {
			for _, col := range tab.Values {
				if len(col) != tab.Rows {
					t.Fatalf("column of %d values in a table of %d rows", len(col), tab.Rows)
				}
			}
		}
	})
}
