package node

import (
	"math"
	"slices"
	"testing"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/configs"
	"github.com/synod-mpc/synod/parties/config"
	"github.com/synod-mpc/synod/parties/consortium"
	"github.com/synod-mpc/synod/parties/policy"
	"github.com/synod-mpc/synod/parties/query"
	"github.com/synod-mpc/synod/parties/schema"
)

func noiseNode(t *testing.T, seed uint64, threshold int) *Node {
	t.Helper()
	sch, err := schema.Parse(configs.Schema)
	if err != nil {
		t.Fatal(err)
	}
	return &Node{cfg: &config.Party{}, cons: &consortium.Consortium{Threshold: threshold}, schema: sch, noise: policy.NewSeededNoiseSource(seed)}
}

// The noise the parties add under encryption has the scale the query's
// epsilon and the schema's value ranges call for: threshold-many parties'
// shares, summed, follow Laplace(b) for each slot (b from the schema's
// bounds), checked by a Kolmogorov-Smirnov test over many seeded runs.
func TestNoiseSharesHaveTheDeclaredScale(t *testing.T) {
	spec, err := query.CompileSQL("SELECT COUNT(*), AVG(bmi) FROM patients")
	if err != nil {
		t.Fatal(err)
	}
	spec.Privacy = &synodv1.Privacy{Mechanism: synodv1.Privacy_LAPLACE, Epsilon: 0.5}
	const threshold, runs = 3, 4000
	parties := []*Node{noiseNode(t, 1, threshold), noiseNode(t, 2, threshold), noiseNode(t, 3, threshold)}
	// Layout: count, sum:bmi. Epsilon splits over the 2 slots: count
	// sensitivity 1 -> b = 4; bmi in [15, 55] -> b = 55/0.25 = 220.
	wantScales := []float64{4, 220}
	totals := make([][]float64, 2)
	for range runs {
		sum := make([]float64, 2)
		for _, p := range parties {
			values := []float64{0, 0}
			scales, err := p.addNoiseShares(spec, values)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(scales, wantScales) {
				t.Fatalf("scales %v, want %v", scales, wantScales)
			}
			sum[0] += values[0]
			sum[1] += values[1]
		}
		totals[0], totals[1] = append(totals[0], sum[0]), append(totals[1], sum[1])
	}
	for slot, b := range wantScales {
		xs := slices.Sorted(slices.Values(totals[slot]))
		var d float64
		for i, x := range xs {
			cdf := 0.5 * math.Exp(x/b)
			if x >= 0 {
				cdf = 1 - 0.5*math.Exp(-x/b)
			}
			d = max(d, math.Abs(cdf-float64(i)/runs), math.Abs(cdf-float64(i+1)/runs))
		}
		// Critical value at alpha = 0.001: 1.95/sqrt(n).
		if crit := 1.95 / math.Sqrt(runs); d > crit {
			t.Errorf("slot %d: KS distance %.4f to Laplace(%g) exceeds %.4f", slot, d, b, crit)
		} else {
			t.Logf("slot %d: KS distance %.4f to Laplace(%g) (critical %.4f)", slot, d, b, crit)
		}
	}
}

// Without declared ranges there is no bounded sensitivity, and the refusal
// says so; without privacy no noise is added.
func TestNoiseSharesNeedRanges(t *testing.T) {
	n := noiseNode(t, 1, 2)
	n.schema = nil
	spec := &synodv1.QuerySpec{Dataset: "patients", Aggregates: []*synodv1.Aggregate{{Func: synodv1.Aggregate_SUM, Column: "bmi"}},
		Privacy: &synodv1.Privacy{Mechanism: synodv1.Privacy_LAPLACE, Epsilon: 1}}
	if _, err := n.addNoiseShares(spec, []float64{0, 0}); err == nil {
		t.Fatal("noise without a declared range for bmi")
	} else {
		t.Log(err)
	}
	spec.Privacy = nil
	values := []float64{7, 8}
	if scales, err := n.addNoiseShares(spec, values); err != nil || scales != nil || values[0] != 7 || values[1] != 8 {
		t.Fatalf("no privacy asked, yet %v %v %v", scales, values, err)
	}
}
