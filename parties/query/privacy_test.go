package query

import (
	"fmt"
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

// TestEpsilonRange: an epsilon that no longer protects anyone (1e308) or
// whose noise no slot can hold (1e-300) is refused before any party
// computes, and the refusal carries no data value.
func TestEpsilonRange(t *testing.T) {
	bounds := func(c string) (float64, float64, bool) { return 15, 55, c == "bmi" }
	spec := &synodv1.QuerySpec{Dataset: "patients",
		Aggregates: []*synodv1.Aggregate{{Func: synodv1.Aggregate_COUNT}, {Func: synodv1.Aggregate_MEAN, Column: "bmi"}}}
	for _, c := range []struct {
		eps  float64
		want string
	}{
		{1e308, "above 10"},
		{10.5, "above 10"},
		{1e-300, "too small"},
		{1e-9, "too small"},
	} {
		spec.Privacy = &synodv1.Privacy{Mechanism: synodv1.Privacy_LAPLACE, Epsilon: c.eps}
		_, err := NoiseScales(spec, bounds)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("epsilon %g: %v, want %q", c.eps, err, c.want)
		}
	}
	for _, eps := range []float64{10, 1, 0.01} {
		spec.Privacy = &synodv1.Privacy{Mechanism: synodv1.Privacy_LAPLACE, Epsilon: eps}
		if _, err := NoiseScales(spec, bounds); err != nil {
			t.Errorf("epsilon %g refused: %v", eps, err)
		}
	}
	// The smallest epsilon the refusal suggests is accepted.
	spec.Privacy = &synodv1.Privacy{Mechanism: synodv1.Privacy_LAPLACE, Epsilon: 1e-9}
	_, err := NoiseScales(spec, bounds)
	i := strings.LastIndex(err.Error(), ">= ")
	var suggested float64
	if _, scanErr := fmt.Sscan(err.Error()[i+3:], &suggested); scanErr != nil {
		t.Fatalf("no suggestion in %q", err)
	}
	spec.Privacy.Epsilon = suggested * 1.01
	if _, err := NoiseScales(spec, bounds); err != nil {
		t.Errorf("suggested epsilon %g refused: %v", suggested, err)
	}
}
