package test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine/model"
	"github.com/synod-mpc/synod/parties/datasource"
	"github.com/synod-mpc/synod/parties/transport"
)

// inferJSON is mpcctl infer -o json.
type inferJSON struct {
	Session      string      `json:"session"`
	Contributors []string    `json:"contributors"`
	KeySwitchers []string    `json:"key_switchers"`
	Precision    float64     `json:"precision"`
	Metrics      metricsJSON `json:"-"`
	Receipt      *struct {
		Height int64 `json:"height"`
	} `json:"receipt"`
}

type metricsJSON struct {
	Records, Positives, Negatives                                float64
	TruePositives, FalsePositives, TrueNegatives, FalseNegatives float64
	Accuracy, Brier, AUC, ECE                                    *float64
}

// plainInference computes the validation metrics in the clear over the
// union of the given parties' sample data, without binning: the exact
// confusion matrix at 0.5, the Brier score and the exact AUC; and the binned
// metrics (model.Bins) of the same union.
type plainInference struct {
	records, positives, tp, fp, tn, fn float64
	brier, auc                         float64
	binned                             *model.Metrics
	binAUCBound                        float64 // half the fraction of (pos, neg) pairs sharing a score bin
}

func computePlainInference(t *testing.T, parties []string, m *model.Model, features []string, label string, bins model.Bins) plainInference {
	t.Helper()
	var scores, labels []float64
	for _, p := range parties {
		tab, err := datasource.LoadCSV("patients", filepath.Join(repoRoot(), "configs/sample", "patients-"+p+".csv"))
		if err != nil {
			t.Fatal(err)
		}
		ycol, err := tab.Column(label)
		if err != nil {
			t.Fatal(err)
		}
		for r := 0; r < tab.Rows; r++ {
			x := make([]float64, len(features))
			for i, f := range features {
				c, err := tab.Column(f)
				if err != nil {
					t.Fatal(err)
				}
				x[i] = c[r]
			}
			y, err := m.Predict(x)
			if err != nil {
				t.Fatal(err)
			}
			scores = append(scores, y[0])
			labels = append(labels, ycol[r])
		}
	}
	var pi plainInference
	for j, p := range scores {
		y := labels[j]
		pi.records++
		pi.positives += y
		pred := p >= 0.5
		switch {
		case pred && y == 1:
			pi.tp++
		case pred && y == 0:
			pi.fp++
		case !pred && y == 0:
			pi.tn++
		default:
			pi.fn++
		}
		pi.brier += (p - y) * (p - y)
	}
	pi.brier /= pi.records
	pi.auc = model.ExactAUC(scores, labels)
	cells := make([]float64, bins.Cells())
	if err := bins.BinScores(cells, scores, labels); err != nil {
		t.Fatal(err)
	}
	var err error
	if pi.binned, err = bins.Metrics(cells); err != nil {
		t.Fatal(err)
	}
	shared := 0.0
	for r := range bins.ROC {
		shared += cells[3*r] * cells[3*r+1]
	}
	pi.binAUCBound = shared / 2 / (pi.binned.Positives * pi.binned.Negatives)
	return pi
}

func (c *cluster) infer(args ...string) (*inferJSON, error) {
	out, err := c.ctl(append([]string{"infer", "-o", "json"}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, strings.TrimSpace(out))
	}
	var r struct {
		inferJSON
		Metrics map[string]any `json:"metrics"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return nil, fmt.Errorf("infer output %q: %w", out, err)
	}
	res := r.inferJSON
	num := func(k string) float64 {
		if v, ok := r.Metrics[k].(float64); ok {
			return v
		}
		return math.NaN()
	}
	res.Metrics = metricsJSON{Records: num("records"), Positives: num("positives"), Negatives: num("negatives"),
		TruePositives: num("true_positives"), FalsePositives: num("false_positives"), TrueNegatives: num("true_negatives"), FalseNegatives: num("false_negatives")}
	for k, dst := range map[string]**float64{"accuracy": &res.Metrics.Accuracy, "brier": &res.Metrics.Brier, "auc": &res.Metrics.AUC, "ece": &res.Metrics.ECE} {
		if v, ok := r.Metrics[k].(float64); ok {
			*dst = &v
		}
	}
	return &res, nil
}

// TestInfer: model validation across a 3-party consortium with real mpcnode
// processes: metrics released under encryption against the same metrics in
// the clear on the union of the parties' data; models and requests the
// engine cannot evaluate refused before any data moves.
func TestInfer(t *testing.T) {
	c := newCluster(t, 3, 2, "ckks-n14")
	start := time.Now()
	if out, err := c.ctl("setup"); err != nil {
		t.Fatalf("setup: %v\n%s", err, out)
	}
	t.Logf("setup took %s", time.Since(start).Round(time.Millisecond))
	diabetes := filepath.Join(repoRoot(), "configs/models/diabetes.json")

	t.Run("validation metrics match plaintext", func(t *testing.T) {
		got, err := c.infer("--model", diabetes, "--dataset", "patients", "--label", "diabetic", "--features", "age,bmi")
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Contributors) != 3 || len(got.KeySwitchers) != 2 || got.Receipt == nil {
			t.Fatalf("contributors %v, key switchers %v, receipt %v", got.Contributors, got.KeySwitchers, got.Receipt)
		}
		b, err := os.ReadFile(diabetes)
		if err != nil {
			t.Fatal(err)
		}
		m, err := model.ParseJSON(b)
		if err != nil {
			t.Fatal(err)
		}
		want := computePlainInference(t, got.Contributors, m, []string{"age", "bmi"}, "diabetic", model.DefaultBins)
		g := got.Metrics
		for _, cmp := range []struct {
			name      string
			got, want float64
		}{
			{"records", g.Records, want.records}, {"positives", g.Positives, want.positives},
			{"true positives", g.TruePositives, want.tp}, {"false positives", g.FalsePositives, want.fp},
			{"true negatives", g.TrueNegatives, want.tn}, {"false negatives", g.FalseNegatives, want.fn},
		} {
			if cmp.got != cmp.want {
				t.Errorf("%s = %v, plaintext %v (counts must be exact)", cmp.name, cmp.got, cmp.want)
			}
		}
		if g.Accuracy == nil || math.Abs(*g.Accuracy-(want.tp+want.tn)/want.records) > 1e-12 {
			t.Errorf("accuracy %v, plaintext %v", g.Accuracy, (want.tp+want.tn)/want.records)
		}
		// Brier: the released sum of squared errors carries the promised
		// precision; divided by the record count.
		brierTol := 2 * got.Precision / want.records
		if g.Brier == nil || math.Abs(*g.Brier-want.brier) > brierTol {
			t.Errorf("brier %v, plaintext %v, tolerance %g", g.Brier, want.brier, brierTol)
		}
		// AUC: the binned AUC is a function of the (exact) counts only: it
		// equals the plaintext binned AUC; the exact AUC is within half the
		// fraction of pairs that share a bin.
		if g.AUC == nil || math.Abs(*g.AUC-want.binned.AUC) > 1e-9 {
			t.Errorf("auc %v, plaintext binned %v", g.AUC, want.binned.AUC)
		}
		if g.AUC != nil && math.Abs(*g.AUC-want.auc) > want.binAUCBound+1e-12 {
			t.Errorf("binned auc %v vs exact %v: beyond the binning bound %g", *g.AUC, want.auc, want.binAUCBound)
		}
		if g.ECE == nil || math.Abs(*g.ECE-want.binned.ECE) > 1e-3 {
			t.Errorf("ece %v, plaintext %v", g.ECE, want.binned.ECE)
		}
		t.Logf("records %v, accuracy %.4f, brier %.6f (plaintext %.6f), auc %.4f (exact %.4f, bound %.4f), ece %.4f",
			g.Records, *g.Accuracy, *g.Brier, want.brier, *g.AUC, want.auc, want.binAUCBound, *g.ECE)

		out, err := c.ctl("infer", "--model", diabetes, "--dataset", "patients", "--label", "diabetic", "--features", "age,bmi")
		if err != nil || !strings.Contains(out, "auc") || !strings.Contains(out, "observed rate") {
			t.Errorf("table output: %v\n%s", err, out)
		}
	})

	t.Run("models the engine cannot evaluate are refused before any data moves", func(t *testing.T) {
		dir := t.TempDir()
		write := func(name, body string) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}
		for _, tc := range []struct {
			name, model, features, label, want string
		}{
			{"unsupported activation", write("softmax.json", `{"inputs":2,"layers":[{"weights":[[1,1]],"bias":[0],"activation":"softmax","interval":[-1,1]}]}`),
				"age,bmi", "diabetic", `unsupported activation "softmax"`},
			{"two outputs", write("two.json", `{"inputs":2,"layers":[{"weights":[[1,1],[1,0]],"bias":[0,0]}]}`),
				"age,bmi", "diabetic", "2 outputs"},
			{"feature count", diabetes, "age", "diabetic", "1 feature columns for the 2 inputs"},
			{"not an ONNX model", write("garbage.onnx", "not a protobuf at all"), "age,bmi", "diabetic", "onnx"},
			{"unknown column at the parties", diabetes, "age,weight", "diabetic", `no column "weight"`},
			{"label not binary at the parties", diabetes, "age,bmi", "cholesterol", "must hold 0 or 1"},
		} {
			_, err := c.infer("--model", tc.model, "--dataset", "patients", "--label", tc.label, "--features", tc.features)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: want an error containing %q, got %v", tc.name, tc.want, err)
			} else {
				t.Logf("%s: refused: %v", tc.name, err)
			}
		}
	})

	t.Run("private prediction", func(t *testing.T) { testPrivatePrediction(t, c, diabetes) })

	t.Run("malformed uploads and foreign prediction requests are refused", func(t *testing.T) {
		conn := analystConn(t, c)
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		client := synodv1.NewAnalystClient(conn)
		for _, tc := range []struct {
			name   string
			header *synodv1.ModelHeader
			blob   []byte
			want   string
		}{
			{"bad name", &synodv1.ModelHeader{Name: "../x", Parameters: "ckks-n14"}, []byte("x"), "model name"},
			{"other parameters", &synodv1.ModelHeader{Name: "m", Parameters: "ckks-n13"}, []byte("x"), "parameter set"},
			{"garbage", &synodv1.ModelHeader{Name: "m", Parameters: "ckks-n14", KeyDigest: collectiveKeyDigest(t, client)}, []byte("garbage bytes"), "not an encrypted model"},
		} {
			stream, err := client.UploadModel(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(&synodv1.UploadModelRequest{Part: &synodv1.UploadModelRequest_Header{Header: tc.header}}); err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(&synodv1.UploadModelRequest{Part: &synodv1.UploadModelRequest_Model{Model: &synodv1.Chunk{Data: tc.blob, TotalSize: uint64(len(tc.blob))}}}); err != nil {
				t.Fatal(err)
			}
			_, err = stream.CloseAndRecv()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: want an error containing %q, got %v", tc.name, tc.want, err)
			} else {
				t.Logf("%s: refused: %v", tc.name, err)
			}
		}
		ps, err := client.Predict(ctx, &synodv1.PredictRequest{Model: "diabetes", Dataset: "patients", Features: []string{"age", "bmi"}})
		if err == nil {
			_, err = ps.Recv()
		}
		if err == nil || !strings.Contains(err.Error(), "only party-1 itself") {
			t.Errorf("an analyst asked party-1 to predict its records: want a refusal, got %v", err)
		}
	})

	t.Run("a malformed validation spec is refused by the node", func(t *testing.T) {
		conn := analystConn(t, c)
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stream, err := synodv1.NewAnalystClient(conn).SubmitQuery(ctx)
		if err != nil {
			t.Fatal(err)
		}
		spec := &synodv1.QuerySpec{Dataset: "patients", Inference: &synodv1.Inference{Model: []byte(`{"inputs":1,"layers":[{"weights":[[1]],"bias":[0],"activation":"gelu","interval":[-1,1]}]}`), Label: "diabetic", Features: []string{"age"}}}
		if err := stream.Send(&synodv1.SubmitQueryRequest{Part: &synodv1.SubmitQueryRequest_Spec{Spec: spec}}); err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&synodv1.SubmitQueryRequest{Part: &synodv1.SubmitQueryRequest_AnalystKey{AnalystKey: &synodv1.Chunk{Data: []byte("key"), TotalSize: 3}}}); err != nil {
			t.Fatal(err)
		}
		_, err = stream.CloseAndRecv()
		if err == nil || !strings.Contains(err.Error(), "gelu") {
			t.Fatalf("want a refusal naming the activation, got %v", err)
		}
		t.Logf("refused: %v", err)
	})
}

// testPrivatePrediction uploads the diabetes model encrypted under the
// collective key and has party-2 predict its own records with it; the
// predictions in party-2's data directory are checked against float64.
func testPrivatePrediction(t *testing.T, c *cluster, modelPath string) {
	out, err := c.ctl("model", "upload", "--model", modelPath, "--name", "diabetes", "-o", "json")
	if err != nil {
		t.Fatalf("upload: %v\n%s", err, out)
	}
	var up struct {
		Parties []string `json:"parties"`
		Height  int64    `json:"height"`
	}
	if err := json.Unmarshal([]byte(out), &up); err != nil || len(up.Parties) != 3 || up.Height == 0 {
		t.Fatalf("upload answer %s (%v)", out, err)
	}
	out, err = c.ctl("predict", "--party-config", c.partyConfig(2), "--model", "diabetes", "--dataset", "patients",
		"--features", "age,bmi", "--file", "diabetes-predictions.csv", "-o", "json")
	if err != nil {
		t.Fatalf("predict: %v\n%s", err, out)
	}
	t.Logf("predict: %s", strings.TrimSpace(out))
	got, err := datasource.LoadCSV("predictions", filepath.Join(c.dir, "party-2", "data", "diabetes-predictions.csv"))
	if err != nil {
		t.Fatal(err)
	}
	preds, err := got.Column("prediction")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.ParseJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := datasource.LoadCSV("patients", filepath.Join(repoRoot(), "configs/sample/patients-party-2.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if len(preds) != tab.Rows {
		t.Fatalf("%d predictions for %d records", len(preds), tab.Rows)
	}
	age, _ := tab.Column("age")
	bmi, _ := tab.Column("bmi")
	worst, agree := 0.0, 0
	for r := range tab.Rows {
		want, err := m.Predict([]float64{age[r], bmi[r]})
		if err != nil {
			t.Fatal(err)
		}
		worst = math.Max(worst, math.Abs(preds[r]-want[0]))
		if (preds[r] >= 0.5) == (want[0] >= 0.5) {
			agree++
		}
	}
	rate := float64(agree) / float64(tab.Rows)
	t.Logf("%d private predictions: max abs error %.2e, label agreement %.4f", tab.Rows, worst, rate)
	if worst > 1e-3 || rate < 0.995 {
		t.Errorf("max abs error %.2e (want < 1e-3), label agreement %.4f (want >= 0.995)", worst, rate)
	}
}

// analystConn dials party-1 with the analyst's certificate.
func analystConn(t *testing.T, c *cluster) *grpc.ClientConn {
	t.Helper()
	conn, err := transport.Dial(listenAddress(t, c.partyConfig(1)), "party-1", memberCredentials(t, c.dir, "analyst"))
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func collectiveKeyDigest(t *testing.T, client synodv1.AnalystClient) []byte {
	t.Helper()
	stream, err := client.CollectiveKey(context.Background(), &synodv1.CollectiveKeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return msg.GetMetadata().GetKeyDigest()
}

// listenAddress reads a party config's listen address.
func listenAddress(t *testing.T, partyConfig string) string {
	t.Helper()
	b, err := os.ReadFile(partyConfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == "listen" {
			return strings.Trim(strings.TrimSpace(v), `"'`)
		}
	}
	t.Fatalf("%s has no listen address", partyConfig)
	return ""
}
