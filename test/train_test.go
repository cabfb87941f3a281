package test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/synod-mpc/synod/engine/glm"
	"github.com/synod-mpc/synod/parties/datasource"
)

// trainJSON is mpcctl train -o json.
type trainJSON struct {
	Session      string   `json:"session"`
	Contributors []string `json:"contributors"`
	KeySwitchers []string `json:"key_switchers"`
	Rows         float64  `json:"rows"`
	Converged    bool     `json:"converged"`
	Iterations   []struct {
		Round int `json:"round"`
	} `json:"iterations"`
	Coefficients []struct {
		Name   string  `json:"name"`
		Scaled float64 `json:"scaled"`
	} `json:"coefficients"`
	Receipt *struct {
		Height int64 `json:"height"`
	} `json:"receipt"`
}

func (c *cluster) train(args ...string) (*trainJSON, error) {
	out, err := c.ctl(append([]string{"train", "-o", "json"}, args...)...)
	if err != nil {
		return nil, &ctlError{err, strings.TrimSpace(out)}
	}
	var r trainJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return nil, &ctlError{err, out}
	}
	return &r, nil
}

type ctlError struct {
	err error
	out string
}

func (e *ctlError) Error() string { return e.err.Error() + ": " + e.out }

func (r *trainJSON) scaled() []float64 {
	var b []float64
	for _, c := range r.Coefficients {
		b = append(b, c.Scaled)
	}
	return b
}

// pooledRows reads the named columns of the parties' sample data, pooled,
// keeping the rows keep accepts.
func pooledRows(t *testing.T, parties []string, names []string, keep func(row map[string]float64) bool) [][]float64 {
	t.Helper()
	out := make([][]float64, len(names))
	for _, p := range parties {
		tab, err := datasource.LoadCSV("patients", filepath.Join(repoRoot(), "configs/sample", "patients-"+p+".csv"))
		if err != nil {
			t.Fatal(err)
		}
		cols := map[string][]float64{}
		for i, n := range tab.Columns {
			cols[n] = tab.Values[i]
		}
		for r := 0; r < tab.Rows; r++ {
			row := map[string]float64{}
			for n, c := range cols {
				row[n] = c[r]
			}
			if keep != nil && !keep(row) {
				continue
			}
			for i, n := range names {
				out[i] = append(out[i], row[n])
			}
		}
	}
	return out
}

// The sample schema's ranges (configs/schema.yaml).
var sampleRanges = map[string][2]float64{"age": {18, 95}, "bmi": {15, 55}, "systolic_bp": {85, 210}, "cholesterol": {110, 340}, "smoker": {0, 1}, "diabetic": {0, 1}}

func scalingOf(features []string, label string) glm.Scaling {
	s := glm.Scaling{Label: glm.Column{Name: label, Min: sampleRanges[label][0], Max: sampleRanges[label][1]}}
	for _, f := range features {
		s.Features = append(s.Features, glm.Column{Name: f, Min: sampleRanges[f][0], Max: sampleRanges[f][1]})
	}
	return s
}

func maxRelDiff(got, want []float64) float64 {
	var d float64
	for i := range want {
		d = math.Max(d, math.Abs(got[i]-want[i])/math.Max(1, math.Abs(want[i])))
	}
	return d
}

// TestTrain trains models over three parties with real mpcnode processes
// and compares them with fits on the pooled rows computed here: exact
// linear and logistic regression equal the pooled fits within 1e-6; the
// exact logistic model validates with mpcctl infer; a party whose policy
// refuses exact training is left out and the model covers the other two;
// encrypted training reaches the float64 run of the same algorithm; a party
// killed mid-training aborts it and nothing is released.
func TestTrain(t *testing.T) {
	c := newCluster(t, 3, 2, "")
	if out, err := c.ctl("setup"); err != nil {
		t.Fatalf("setup: %v\n%s", err, out)
	}
	all := []string{"party-1", "party-2", "party-3"}

	t.Run("exact linear regression equals the pooled fit", func(t *testing.T) {
		features := []string{"age", "bmi", "smoker"}
		r, err := c.train("--dataset", "patients", "--label", "systolic_bp", "--features", strings.Join(features, ","), "--model", "linear", "--l2", "0.001")
		if err != nil {
			t.Fatal(err)
		}
		cols := pooledRows(t, all, append(features, "systolic_bp"), nil)
		want, err := glm.FitLinear(cols[:3], cols[3], scalingOf(features, "systolic_bp"), 0.001)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxRelDiff(r.scaled(), want); d > 1e-6 {
			t.Fatalf("coefficients %v, pooled %v: max relative difference %g > 1e-6", r.scaled(), want, d)
		}
		if r.Rows != float64(len(cols[0])) || len(r.Contributors) != 3 {
			t.Fatalf("rows %g contributors %v, want %d rows from 3 parties", r.Rows, r.Contributors, len(cols[0]))
		}
		if out, err := c.ctl("audit", "verify", r.Session); err != nil {
			t.Fatalf("audit verify: %v\n%s", err, out)
		}
	})

	t.Run("exact logistic regression equals the pooled fit and validates", func(t *testing.T) {
		features := []string{"age", "bmi", "systolic_bp"}
		modelFile := filepath.Join(t.TempDir(), "diabetes.json")
		r, err := c.train("--dataset", "patients", "--label", "diabetic", "--features", strings.Join(features, ","), "--model", "logistic",
			"--l2", "0.0001", "--where", "age >= 30", "--out", modelFile, "--name", "diabetes")
		if err != nil {
			t.Fatal(err)
		}
		cols := pooledRows(t, all, append(features, "diabetic"), func(row map[string]float64) bool { return row["age"] >= 30 })
		want, _, err := glm.FitLogistic(cols[:3], cols[3], scalingOf(features, "diabetic"), 0.0001, 100)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxRelDiff(r.scaled(), want); d > 1e-6 || !r.Converged {
			t.Fatalf("coefficients %v (converged %v after %d rounds), pooled %v: max relative difference %g > 1e-6", r.scaled(), r.Converged, len(r.Iterations), want, d)
		}
		if len(r.Iterations) < 3 {
			t.Fatalf("%d Newton rounds: a logistic fit from zero takes several", len(r.Iterations))
		}
		if _, err := os.Stat(modelFile); err != nil {
			t.Fatal(err)
		}
		out, err := c.ctl("infer", "-o", "json", "--model", modelFile, "--dataset", "patients", "--label", "diabetic", "--features", strings.Join(features, ","))
		if err != nil {
			t.Fatalf("infer of the trained model: %v\n%s", err, out)
		}
		var inf struct {
			Metrics struct{ Accuracy float64 } `json:"metrics"`
		}
		if err := json.Unmarshal([]byte(out), &inf); err != nil {
			t.Fatal(err)
		}
		all := pooledRows(t, []string{"party-1", "party-2", "party-3"}, append(features, "diabetic"), nil)
		probs, err := glm.Predict(glm.Logistic, all[:3], scalingOf(features, "diabetic"), r.scaled())
		if err != nil {
			t.Fatal(err)
		}
		acc, _ := glm.Accuracy(all[3], probs)
		if math.Abs(inf.Metrics.Accuracy-acc) > 1e-9 {
			t.Fatalf("infer accuracy %g, the model's accuracy on the pooled rows %g", inf.Metrics.Accuracy, acc)
		}
	})

	t.Run("a party refusing exact training is left out", func(t *testing.T) {
		c.stop(3)
		c.start(3, "mpcnode", "SYNOD_POLICY_TRAINING_DENY_GRAM=true")
		c.waitReachable(3)
		defer func() { c.stop(3); c.start(3, "mpcnode"); c.waitReachable(3) }()
		features := []string{"age", "bmi"}
		r, err := c.train("--dataset", "patients", "--label", "cholesterol", "--features", "age,bmi", "--model", "linear")
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(r.Contributors, "party-3") || len(r.Contributors) != 2 {
			t.Fatalf("contributors %v: party-3 refuses exact training", r.Contributors)
		}
		cols := pooledRows(t, []string{"party-1", "party-2"}, append(features, "cholesterol"), nil)
		want, err := glm.FitLinear(cols[:2], cols[2], scalingOf(features, "cholesterol"), 0)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxRelDiff(r.scaled(), want); d > 1e-6 {
			t.Fatalf("coefficients %v, pooled over party-1 and party-2 %v: max relative difference %g", r.scaled(), want, d)
		}
	})

	t.Run("encrypted logistic regression reaches the float64 run", func(t *testing.T) {
		features := []string{"age", "bmi", "systolic_bp"}
		const lambda, iters = 1.0, 8
		r, err := c.train("--dataset", "patients", "--label", "diabetic", "--features", strings.Join(features, ","), "--model", "logistic",
			"--mode", "encrypted", "--l2", "1", "--iterations", "8")
		if err != nil {
			t.Fatal(err)
		}
		cols := pooledRows(t, all, append(features, "diabetic"), nil)
		// Gradient descent on the same objective (intercept penalized),
		// step 1/L with L = p/4 + lambda, from zero, exact sigmoid.
		s := scalingOf(features, "diabetic")
		x, y, err := s.Scale(glm.Logistic, cols[:3], cols[3])
		if err != nil {
			t.Fatal(err)
		}
		p := len(features) + 1
		eta := 1 / (float64(p)/4 + lambda)
		w := make([]float64, p)
		n := float64(len(y))
		for range iters {
			g := make([]float64, p)
			for j := range y {
				z := w[0]
				for c := range x {
					z += w[c+1] * x[c][j]
				}
				r := 1/(1+math.Exp(-z)) - y[j]
				g[0] += r / n
				for c := range x {
					g[c+1] += r * x[c][j] / n
				}
			}
			for c := range w {
				w[c] -= eta * (g[c] + lambda*w[c])
			}
		}
		// The polynomial's error (below 1e-2 on its interval) moves each
		// step by at most eta*1e-2*sqrt(p).
		if d := maxRelDiff(r.scaled(), w); d > float64(iters)*eta*1e-2*math.Sqrt(float64(p)) {
			t.Fatalf("encrypted coefficients %v, float64 run %v: difference %g", r.scaled(), w, d)
		}
		if out, err := c.ctl("audit", "verify", r.Session); err != nil {
			t.Fatalf("audit verify: %v\n%s", err, out)
		}
	})

	t.Run("a party killed mid-training aborts it", func(t *testing.T) {
		done := make(chan error, 1)
		go func() {
			_, err := c.train("--dataset", "patients", "--label", "diabetic", "--features", "age,bmi,systolic_bp", "--model", "logistic",
				"--mode", "encrypted", "--l2", "1", "--iterations", "200")
			done <- err
		}()
		// 200 iterations take minutes; a few seconds in, the training is
		// well under way.
		select {
		case err := <-done:
			t.Fatalf("the training ended before party-3 was stopped: %v", err)
		case <-time.After(8 * time.Second):
		}
		c.stop(3)
		err := <-done
		if err == nil || !strings.Contains(err.Error(), "party-3") || !strings.Contains(err.Error(), "nothing was released") {
			t.Fatalf("want a failure naming party-3 with nothing released, got %v", err)
		}
		c.start(3, "mpcnode")
		c.waitReachable(3)
		// The approved session's end is on the chain (once party-3 is back:
		// three validators commit nothing with one down): audit log shows it
		// aborted, and audit verify says so rather than fail as if tampered.
		var aborted string
		for deadline := time.Now().Add(time.Minute); aborted == "" && time.Now().Before(deadline); time.Sleep(time.Second) {
			out, err := c.ctl("audit", "log")
			if err != nil {
				t.Fatalf("audit log: %v\n%s", err, out)
			}
			for _, line := range strings.Split(out, "\n") {
				if f := strings.Fields(line); len(f) > 2 && f[2] == "aborted" {
					aborted = f[0]
				}
			}
		}
		if aborted == "" {
			t.Fatal("audit log shows no aborted session")
		}
		if out, err := c.ctl("audit", "verify", aborted); err == nil || !strings.Contains(out+err.Error(), "was aborted") {
			t.Fatalf("audit verify of the aborted session: %v\n%s", err, out)
		}
	})
}
