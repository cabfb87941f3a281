package query

import (
	"math"
	"strings"
	"testing"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/parties/datasource"
)

func table(t *testing.T) *datasource.Table {
	t.Helper()
	tab, err := datasource.ReadCSV("patients", "inline", strings.NewReader("age,bmi,sex\n30,20,0\n45,25.5,1\n60,30,1\n75,22,0\n"))
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestLocalAndFinish(t *testing.T) {
	spec := &synodv1.QuerySpec{
		Dataset: "patients",
		Aggregates: []*synodv1.Aggregate{
			{Func: synodv1.Aggregate_COUNT},
			{Func: synodv1.Aggregate_SUM, Column: "bmi"},
			{Func: synodv1.Aggregate_MEAN, Column: "age"},
			{Func: synodv1.Aggregate_MEAN, Column: "bmi"},
		},
		Filters: []*synodv1.Filter{{Column: "age", Op: synodv1.Filter_GE, Value: 45}, {Column: "sex", Op: synodv1.Filter_EQ, Value: 1}},
	}
	if got := strings.Join(Layout(spec), ","); got != "count,sum:bmi,sum:age" {
		t.Fatalf("layout %s", got)
	}
	local, err := Local(table(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{2, 55.5, 105}
	for i := range want {
		if local[i] != want[i] {
			t.Fatalf("local %v, want %v", local, want)
		}
	}
	cells, err := Finish(spec, []float64{2.0004, 55.5, 105})
	if err != nil {
		t.Fatal(err)
	}
	if cells[0].Value != 2 || cells[1].Value != 55.5 || cells[2].Value != 52.5 || cells[3].Value != 27.75 {
		t.Fatalf("cells %+v", cells)
	}
}

func TestMeanOfEmptyCohortIsNaN(t *testing.T) {
	spec := &synodv1.QuerySpec{Dataset: "d", Aggregates: []*synodv1.Aggregate{{Func: synodv1.Aggregate_MEAN, Column: "age"}}}
	cells, err := Finish(spec, []float64{0.0001, 0})
	if err != nil || !math.IsNaN(cells[0].Value) {
		t.Fatalf("got %v, %v", cells, err)
	}
}

func TestErrorsNameWhatIsWrong(t *testing.T) {
	for _, tc := range []struct {
		spec *synodv1.QuerySpec
		want string
	}{
		{&synodv1.QuerySpec{}, "missing dataset"},
		{&synodv1.QuerySpec{Dataset: "patients"}, "no aggregate"},
		{&synodv1.QuerySpec{Dataset: "patients", Aggregates: []*synodv1.Aggregate{{Func: synodv1.Aggregate_SUM}}}, "needs a column"},
		{&synodv1.QuerySpec{Dataset: "patients", Aggregates: []*synodv1.Aggregate{{Func: synodv1.Aggregate_SUM, Column: "weight"}}}, `no column "weight"`},
		{&synodv1.QuerySpec{Dataset: "patients", Aggregates: []*synodv1.Aggregate{{Func: synodv1.Aggregate_COUNT}},
			Filters: []*synodv1.Filter{{Column: "height", Op: synodv1.Filter_LT, Value: 1}}}, `no column "height"`},
		{&synodv1.QuerySpec{Dataset: "patients", Aggregates: []*synodv1.Aggregate{{Func: 42}}}, "unsupported function"},
		{&synodv1.QuerySpec{Dataset: "patients", Aggregates: []*synodv1.Aggregate{{Func: synodv1.Aggregate_COUNT}},
			Filters: []*synodv1.Filter{{Column: "age", Op: 99, Value: 1}}}, "unsupported operator"},
	} {
		_, err := Local(table(t), tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("spec %v: want error containing %q, got %v", tc.spec, tc.want, err)
		}
	}
}

func TestParse(t *testing.T) {
	f, err := ParseFilter(" age >= 40.5 ")
	if err != nil || f.Column != "age" || f.Op != synodv1.Filter_GE || f.Value != 40.5 {
		t.Fatalf("%v %v", f, err)
	}
	for _, bad := range []string{"age", "age ~ 3", "age > x", "age > NaN", "1age > 3"} {
		if _, err := ParseFilter(bad); err == nil {
			t.Errorf("filter %q accepted", bad)
		}
	}
	for _, s := range []string{"count", "sum:age", "mean:bmi", "avg:bmi"} {
		if _, err := ParseAggregate(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	for _, s := range []string{"median:age", "sum", "count:age", ""} {
		if _, err := ParseAggregate(s); err == nil {
			t.Errorf("aggregate %q accepted", s)
		}
	}
}
