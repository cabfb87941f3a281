package test

import (
	"math"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/parties/query"
)

// setPolicy rewrites party i's policy section (nil removes it) and
// restarts the party with the extra environment.
func setPolicy(t *testing.T, c *cluster, i int, pol map[string]any, env ...string) {
	t.Helper()
	raw, err := os.ReadFile(c.partyConfig(i))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if pol == nil {
		delete(doc, "policy")
	} else {
		doc["policy"] = pol
	}
	if raw, err = yaml.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.partyConfig(i), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	c.stop(i)
	c.start(i, "mpcnode", env...)
	c.waitReachable(c.n)
}

func wantRefused(t *testing.T, err error, rules ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("query was released, want a refusal by %v", rules)
	}
	for _, r := range rules {
		if !strings.Contains(err.Error(), r) {
			t.Fatalf("refusal does not name %q:\n%v", r, err)
		}
	}
	t.Logf("refused: %v", err)
}

// TestPolicy runs a 3-party consortium (threshold 2) whose parties 2 and 3
// restrict analysts, columns, differential privacy and cohort sizes: each
// rule refuses what it should, naming itself, and the queries it admits come
// back with noise of the declared scale and small cells suppressed.
func TestPolicy(t *testing.T) {
	c := newCluster(t, 3, 2, "ckks-n13")
	if out, err := c.ctl("setup"); err != nil {
		t.Fatalf("setup: %v\n%s", err, out)
	}

	// Analysts: parties 2 and 3 serve only another analyst (set through
	// the environment); party 1 alone is below the threshold.
	for _, i := range []int{2, 3} {
		setPolicy(t, c, i, nil, "SYNOD_POLICY_ANALYSTS=auditor,someone-else")
	}
	_, err := c.query(demoQuery...)
	wantRefused(t, err, "1 of 3 approvals", "party party-2 refused: policy rule analysts: analyst analyst is not allowed", "party party-3 refused: policy rule analysts")

	// Columns, differential privacy and minimum cohort.
	pol := map[string]any{
		"columns":    map[string]any{"patients": []string{"age", "sex", "smoker", "bmi"}},
		"min_cohort": 60,
		"dp":         map[string]any{"require": true, "max_epsilon": 2.5, "budget": 4.5},
	}
	for _, i := range []int{2, 3} {
		setPolicy(t, c, i, pol)
	}
	_, err = c.query("--epsilon", "1", "SELECT AVG(diabetic) FROM patients")
	wantRefused(t, err, "policy rule columns: column(s) diabetic of patients are not released")
	_, err = c.query("SELECT COUNT(*) FROM patients WHERE age >= 80")
	wantRefused(t, err, "policy rule dp.require")
	_, err = c.query("--epsilon", "3", "SELECT COUNT(*) FROM patients WHERE age >= 80")
	wantRefused(t, err, "policy rule dp.max_epsilon: epsilon 3 exceeds this party's limit of 2.5")

	// Gaussian noise on one count (152 rows in the sample data).
	q, err := c.query("--epsilon", "0.5", "--mechanism", "gaussian", "--delta", "1e-6", "SELECT COUNT(*) FROM patients WHERE age >= 80")
	if err != nil {
		t.Fatal(err)
	}
	checkNoisy(t, c, q, "SELECT COUNT(*) FROM patients WHERE age >= 80", 2)

	// Laplace noise, grouped: smokers aged 80+ are 29, below the minimum
	// cohort of 60; non-smokers 123. The second such query exhausts
	// party 2's and 3's budget of 4.5 (0.5 + 2 + 2), the third is refused.
	const grouped = "SELECT smoker, COUNT(*), AVG(bmi) FROM patients WHERE age >= 80 GROUP BY smoker IN (0, 1)"
	for run := 0; run < 2; run++ {
		q, err := c.query("--epsilon", "2", grouped)
		if err != nil {
			t.Fatal(err)
		}
		if q.MinCohort != 60 || q.Suppressed != 2 {
			t.Fatalf("min cohort %d, %d cells suppressed; want 60 and the smokers' 2 cells", q.MinCohort, q.Suppressed)
		}
		for _, r := range q.Results {
			if smoker := r.Group["smoker"]; (smoker == 1) != r.Suppressed {
				t.Fatalf("cell %s of smoker=%v: suppressed=%v", r.Name, smoker, r.Suppressed)
			}
		}
		checkNoisy(t, c, q, grouped, 2)
	}
	_, err = c.query("--epsilon", "2", grouped)
	wantRefused(t, err, "policy rule dp.budget: analyst analyst has spent epsilon 4.5 of a budget of 4.5")
}

// checkNoisy compares a DP result with the plaintext: every released
// statistic within 8 standard deviations of the noise the slot scales
// declare (shares sized for threshold t; every contributor adds one, so the
// variance is contributors/t times the mechanism's), suppressed cells
// carry no value.
func checkNoisy(t *testing.T, c *cluster, q *queryJSON, sql string, threshold int) {
	t.Helper()
	spec := compileSQL(t, sql)
	want := plaintext(t, q.Contributors, spec)
	if len(q.NoiseScales) == 0 {
		t.Fatalf("no noise scales reported")
	}
	inflate := math.Sqrt(float64(len(q.Contributors)) / float64(threshold))
	for i, w := range want {
		g := q.Results[i]
		if g.Suppressed {
			if !math.IsNaN(g.Value) && g.Value != 0 {
				t.Errorf("suppressed %s carries a value %v", g.Name, g.Value)
			}
			continue
		}
		// Laplace(b) has std b*sqrt(2); Gaussian sigma. Counts are the
		// first slot of a group; a mean's error is its sum's over the count.
		std := q.NoiseScales[0] * math.Sqrt(2) * inflate
		if strings.HasPrefix(w.Name, "AVG") || strings.HasPrefix(w.Name, "MEAN") {
			std = q.NoiseScales[1] * math.Sqrt(2) * inflate / want[0].Value
		}
		if d := math.Abs(g.Value - w.Value); d > 8*std {
			t.Errorf("%s = %v, plaintext %v: error %.3g beyond 8 standard deviations of the noise (%.3g)", w.Name, g.Value, w.Value, d, std)
		} else {
			t.Logf("%s = %.3f (plaintext %.3f, error %.3g, noise std %.3g)", w.Name, g.Value, w.Value, d, std)
		}
	}
}

func compileSQL(t *testing.T, sql string) *synodv1.QuerySpec {
	t.Helper()
	spec, err := query.CompileSQL(sql)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}
