package query

import (
	"math"
	"strings"
	"testing"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
)

func TestNoiseScales(t *testing.T) {
	bounds := func(c string) (float64, float64, bool) {
		switch c {
		case "age":
			return 18, 95, true
		case "bmi":
			return 15, 55, true
		}
		return 0, 0, false
	}
	spec := &synodv1.QuerySpec{Dataset: "patients",
		Aggregates: []*synodv1.Aggregate{{Func: synodv1.Aggregate_COUNT}, {Func: synodv1.Aggregate_SUM, Column: "age"}},
		Privacy:    &synodv1.Privacy{Mechanism: synodv1.Privacy_LAPLACE, Epsilon: 1}}
	scales, err := NoiseScales(spec, bounds)
	if err != nil {
		t.Fatal(err)
	}
	// Two cells, epsilon 1/2 each: count b = 1/0.5, sum:age b = 95/0.5.
	if len(scales) != 2 || scales[0] != 2 || scales[1] != 190 {
		t.Fatalf("scales %v", scales)
	}
	spec.Privacy = &synodv1.Privacy{Mechanism: synodv1.Privacy_GAUSSIAN, Epsilon: 0.5, Delta: 1e-6}
	scales, err = NoiseScales(spec, bounds)
	if err != nil {
		t.Fatal(err)
	}
	want := math.Sqrt(2*math.Log(1.25/5e-7)) / 0.25
	if math.Abs(scales[0]-want) > 1e-9 {
		t.Fatalf("gaussian sigma %v, want %v", scales[0], want)
	}
	spec.Aggregates = append(spec.Aggregates, &synodv1.Aggregate{Func: synodv1.Aggregate_SUM, Column: "cholesterol"})
	if _, err := NoiseScales(spec, bounds); err == nil || !strings.Contains(err.Error(), `"cholesterol"`) {
		t.Fatalf("sum of an unbounded column: %v", err)
	}
	spec.Privacy = nil
	if s, err := NoiseScales(spec, bounds); s != nil || err != nil {
		t.Fatalf("no privacy asked: %v %v", s, err)
	}
	for _, bad := range []*synodv1.Privacy{
		{Mechanism: synodv1.Privacy_LAPLACE, Epsilon: -1},
		{Mechanism: synodv1.Privacy_GAUSSIAN, Epsilon: 0.5},
		{Mechanism: synodv1.Privacy_GAUSSIAN, Epsilon: 2, Delta: 1e-6},
		{Epsilon: 1},
	} {
		if ValidatePrivacy(bad) == nil {
			t.Errorf("privacy %v accepted", bad)
		}
	}
}
