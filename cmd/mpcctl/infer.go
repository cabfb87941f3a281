package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/configs"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/engine/model"
	"github.com/synod-mpc/synod/parties/config"
	"github.com/synod-mpc/synod/parties/datasource"
	"github.com/synod-mpc/synod/parties/node"
	"github.com/synod-mpc/synod/parties/schema"
)

// loadModel reads a model file: ONNX (.onnx) or Synod's JSON format.
func loadModel(path string) (*model.Model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	var m *model.Model
	if strings.EqualFold(filepath.Ext(path), ".onnx") {
		m, err = model.LoadONNX(b, model.ONNXOptions{Name: name})
	} else {
		m, err = model.ParseJSON(b)
	}
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	if m.Name == "" {
		m.Name = name
	}
	return m, nil
}

// defaultFeatures are the dataset's schema columns other than the label,
// when they match the model's inputs in number.
func defaultFeatures(schemaPath, dataset, label string, inputs int) ([]string, error) {
	var sch *schema.Schema
	var err error
	if schemaPath != "" {
		sch, err = schema.Load(schemaPath)
	} else {
		sch, err = schema.Parse(configs.Schema)
	}
	if err != nil {
		return nil, err
	}
	ds, ok := sch.Datasets[dataset]
	if !ok {
		return nil, fmt.Errorf("--features not given and the schema has no dataset %q", dataset)
	}
	var cols []string
	for _, c := range ds.Columns {
		if c.Name != label {
			cols = append(cols, c.Name)
		}
	}
	if len(cols) != inputs {
		return nil, fmt.Errorf("--features not given: the model has %d inputs, dataset %s has %d columns besides %s (%s); name one column per input",
			inputs, dataset, len(cols), label, strings.Join(cols, ", "))
	}
	return cols, nil
}

// inferResult is what mpcctl prints for a validation.
type inferResult struct {
	Session      string         `json:"session,omitempty"`
	Dataset      string         `json:"dataset"`
	Model        string         `json:"model"`
	ModelDigest  string         `json:"model_digest"`
	Label        string         `json:"label"`
	Features     []string       `json:"features"`
	Parameters   string         `json:"parameters,omitempty"`
	Contributors []string       `json:"contributors"`
	KeySwitchers []string       `json:"key_switchers,omitempty"`
	Precision    float64        `json:"precision,omitempty"`
	Metrics      *model.Metrics `json:"metrics"`
	Plaintext    *model.Metrics `json:"plaintext,omitempty"`
	Receipt      *receiptJSON   `json:"receipt,omitempty"`
	// SessionSeconds is the time the session took on the coordinator.
	SessionSeconds float64 `json:"session_seconds,omitempty"`
}

func newInferCmd(g *globals) *cobra.Command {
	var modelPath, dataset, label, schemaPath, paramsName string
	var features, compare []string
	var rocBins, calBins uint32
	var explain bool
	cmd := &cobra.Command{
		Use:   "infer --model M --dataset D --label COLUMN [--features c1,c2,...]",
		Short: "Validate a binary classifier on every party's records; only aggregate metrics are released",
		Long: `Validate a binary classifier on every party's records.

Each party scores its own records with the model, bins the scores with the
labels and contributes only the binned counts and sums, encrypted under the
consortium's collective key; the coordinator adds them and switches the sum to
the analyst's key. mpcctl decrypts it here and prints accuracy (threshold
0.5), the confusion matrix, the Brier score, the calibration table and the AUC
of the binned ROC curve. No per-record prediction leaves a party.

The model is a JSON model file (engine/model's format) or an ONNX file (Gemm,
MatMul, Add, Sigmoid, Tanh, Relu, Identity), with one output: the score.
A model the engine cannot evaluate is refused here, before anything is sent.`,
		Example: `  mpcctl infer --model configs/models/diabetes.json --dataset patients --label diabetic --features age,bmi
  mpcctl infer --model model.onnx --dataset patients --label diabetic -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if modelPath == "" || dataset == "" || label == "" {
				return fmt.Errorf("--model, --dataset and --label are required")
			}
			m, err := loadModel(modelPath)
			if err != nil {
				return err
			}
			if len(features) == 0 {
				if features, err = defaultFeatures(schemaPath, dataset, label, m.Inputs); err != nil {
					return err
				}
			}
			mj, err := m.MarshalJSON()
			if err != nil {
				return err
			}
			spec := &synodv1.QuerySpec{Dataset: dataset, Inference: &synodv1.Inference{
				Model: mj, Label: label, Features: features, RocBins: rocBins, CalibrationBins: calBins}}
			if spec.Inference.RocBins == 0 {
				spec.Inference.RocBins = model.DefaultROCBins
			}
			if spec.Inference.CalibrationBins == 0 {
				spec.Inference.CalibrationBins = uint32(min(model.DefaultCalibrationBins, int(spec.Inference.RocBins)))
			}
			m, bins, err := node.ValidateInference(spec)
			if err != nil {
				return err
			}
			md := sha256.Sum256(mj)
			out := inferResult{Dataset: dataset, Model: m.String(), ModelDigest: fmt.Sprintf("%x", md), Label: label, Features: features}
			if explain {
				return printInferPlan(g.output, m, bins, paramsName)
			}
			r, err := runSession(g, cmd, spec, "validation")
			if err != nil {
				return err
			}
			meta, took := r.Meta, r.Took
			if out.Metrics, err = r.Metrics(mj, bins); err != nil {
				return err
			}
			out.Session, out.Parameters, out.Contributors, out.KeySwitchers = meta.GetSession(), meta.GetParameters(), meta.GetContributors(), meta.GetKeySwitchers()
			out.Precision, out.SessionSeconds = meta.GetPrecision(), took.Seconds()
			if rc := meta.GetReceipt(); rc != nil {
				out.Receipt = &receiptJSON{Height: rc.GetHeight(), TxHash: fmt.Sprintf("%X", rc.GetTxHash()), ApprovalTx: fmt.Sprintf("%X", rc.GetApprovalTxHash())}
			}
			if len(compare) > 0 {
				if out.Plaintext, err = plaintextInference(compare, meta.GetContributors(), m, bins, dataset, features, label); err != nil {
					return err
				}
			}
			return printInfer(g.output, out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&modelPath, "model", "", "model file: JSON model format or .onnx (required)")
	f.StringVar(&dataset, "dataset", "", "dataset every party scores (required)")
	f.StringVar(&label, "label", "", "label column, 0 or 1 (required)")
	f.StringSliceVar(&features, "features", nil, "feature columns, one per model input, in order (default: the schema's columns besides the label)")
	f.StringVar(&schemaPath, "schema", "", "consortium schema for the default features (default: the shipped schema)")
	f.Uint32Var(&rocBins, "roc-bins", model.DefaultROCBins, "score bins of the ROC curve (even, at most 1000)")
	f.Uint32Var(&calBins, "calibration-bins", model.DefaultCalibrationBins, "calibration bins (a divisor of --roc-bins)")
	f.BoolVar(&explain, "explain", false, "print what the validation releases and the model's plan, without running it")
	f.StringVar(&paramsName, "parameters", engine.DefaultParameters, "parameter set --explain plans private prediction for")
	f.StringSliceVar(&compare, "compare-plaintext", nil,
		"party config files whose CSV data to read directly and compute the same metrics in the clear (local demos and tests only)")
	return cmd
}

// PlaintextInference computes the metrics in the clear over the CSV files of
// the given party configs, restricted to the contributors.
func plaintextInference(configs, contributors []string, m *model.Model, bins model.Bins, dataset string, features []string, label string) (*model.Metrics, error) {
	cells := make([]float64, bins.Cells())
	used := 0
	for _, path := range configs {
		cfg, err := config.LoadParty(path, nil)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(contributors, cfg.ID) {
			continue
		}
		ds, ok := cfg.Datasets[dataset]
		if !ok {
			return nil, fmt.Errorf("%s declares no dataset %q", path, dataset)
		}
		t, err := datasource.LoadCSV(dataset, ds.CSV)
		if err != nil {
			return nil, err
		}
		records, labels, err := tableRecords(t, features, label)
		if err != nil {
			return nil, err
		}
		scores, err := m.Scores(records)
		if err != nil {
			return nil, err
		}
		if err := bins.BinScores(cells, scores, labels); err != nil {
			return nil, err
		}
		used++
	}
	if used == 0 {
		return nil, fmt.Errorf("none of the --compare-plaintext configs belongs to a contributor (%s)", strings.Join(contributors, ", "))
	}
	return bins.Metrics(cells)
}

// tableRecords extracts the feature rows and labels of a table.
func tableRecords(t *datasource.Table, features []string, label string) ([][]float64, []float64, error) {
	cols := make([][]float64, len(features))
	for i, f := range features {
		c, err := t.Column(f)
		if err != nil {
			return nil, nil, err
		}
		cols[i] = c
	}
	var labels []float64
	if label != "" {
		var err error
		if labels, err = t.Column(label); err != nil {
			return nil, nil, err
		}
	}
	records := make([][]float64, t.Rows)
	for r := range records {
		x := make([]float64, len(cols))
		for i, c := range cols {
			x[i] = c[r]
		}
		records[r] = x
	}
	return records, labels, nil
}

func printInferPlan(format string, m *model.Model, bins model.Bins, paramsName string) error {
	params, err := engine.ParametersByName(paramsName)
	if err != nil {
		return err
	}
	predict := "fits"
	if pl, err := model.NewPredictionPlan(params, model.ArchitectureOf(m)); err != nil {
		predict = err.Error()
	} else {
		predict = fmt.Sprintf("fits: %d of %d levels, %d weight ciphertexts", pl.Levels+pl.OutputLevel, pl.Available, pl.WeightCiphertexts)
	}
	rows := [][]string{
		{"item", "value"},
		{"model", m.String()},
		{"scoring", "each party, in the clear, on its own records (exact activations)"},
		{"released cells", fmt.Sprintf("%d: per score bin (%d bins of width %g) positives, negatives, sum of scores; the sum of squared errors", bins.Cells(), bins.ROC, 1/float64(bins.ROC))},
		{"ciphertexts per party", "1 (collective public key)"},
		{"calibration bins", fmt.Sprint(bins.Calibration)},
		{"private prediction on " + params.Name, predict},
	}
	if format == "json" {
		obj := map[string]string{}
		for _, r := range rows[1:] {
			obj[r[0]] = r[1]
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(obj)
	}
	return printRows(format, rows)
}

func printInfer(format string, r inferResult) error {
	if format == "json" {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(jsonSafe(r))
	}
	m := r.Metrics
	if format == "table" {
		fmt.Printf("model %s (sha256 %s…) on dataset %s, label %s, features %s\n", r.Model, r.ModelDigest[:16], r.Dataset, r.Label, strings.Join(r.Features, ","))
		fmt.Printf("data from %s; decrypted with the analyst key (key switch by %s)\n", strings.Join(r.Contributors, ", "), strings.Join(r.KeySwitchers, ", "))
	}
	rows := [][]string{{"metric", "value"}}
	add := func(name string, v, p float64) {
		row := []string{name, formatValue(v)}
		if r.Plaintext != nil {
			row = append(row, formatValue(p))
		}
		rows = append(rows, row)
	}
	if r.Plaintext != nil {
		rows[0] = append(rows[0], "plaintext")
	}
	pt := r.Plaintext
	if pt == nil {
		pt = &model.Metrics{}
	}
	add("records", m.Records, pt.Records)
	add("positives", m.Positives, pt.Positives)
	add("accuracy (threshold 0.5)", m.Accuracy, pt.Accuracy)
	add("true positives", m.TruePositives, pt.TruePositives)
	add("false positives", m.FalsePositives, pt.FalsePositives)
	add("true negatives", m.TrueNegatives, pt.TrueNegatives)
	add("false negatives", m.FalseNegatives, pt.FalseNegatives)
	add("brier score", m.Brier, pt.Brier)
	add("auc (binned roc)", m.AUC, pt.AUC)
	add("expected calibration error", m.ECE, pt.ECE)
	if err := printRows(format, rows); err != nil {
		return err
	}
	if format != "table" {
		return nil
	}
	fmt.Println()
	cal := [][]string{{"score bin", "records", "mean score", "observed rate"}}
	for _, c := range m.Calibration {
		cal = append(cal, []string{fmt.Sprintf("[%.2f, %.2f)", c.Low, c.High), formatValue(c.Count), formatValue(c.MeanScore), formatValue(c.ObservedRate)})
	}
	if err := printRows(format, cal); err != nil {
		return err
	}
	fmt.Printf("promised precision: ±%.2g per released sum (counts are rounded to integers)\n", r.Precision)
	if r.Receipt != nil {
		fmt.Printf("receipt: transcript tx %s at height %d (check it: mpcctl audit verify %s)\n", r.Receipt.TxHash, r.Receipt.Height, r.Session)
	}
	return nil
}

// jsonSafe replaces NaN (undefined metrics: an empty bin, one class only)
// by null: encoding/json refuses NaN.
func jsonSafe(r inferResult) any {
	clean := func(m *model.Metrics) map[string]any {
		if m == nil {
			return nil
		}
		out := map[string]any{}
		f := func(k string, v float64) {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				out[k] = nil
			} else {
				out[k] = v
			}
		}
		f("records", m.Records)
		f("positives", m.Positives)
		f("negatives", m.Negatives)
		f("true_positives", m.TruePositives)
		f("false_positives", m.FalsePositives)
		f("true_negatives", m.TrueNegatives)
		f("false_negatives", m.FalseNegatives)
		f("accuracy", m.Accuracy)
		f("brier", m.Brier)
		f("auc", m.AUC)
		f("ece", m.ECE)
		var cal []map[string]any
		for _, c := range m.Calibration {
			row := map[string]any{"low": c.Low, "high": c.High, "count": c.Count, "positives": c.Positives}
			for k, v := range map[string]float64{"mean_score": c.MeanScore, "observed_rate": c.ObservedRate, "abs_calibration_error": c.AbsCalibError} {
				if math.IsNaN(v) {
					row[k] = nil
				} else {
					row[k] = v
				}
			}
			cal = append(cal, row)
		}
		out["calibration"] = cal
		out["roc"] = m.ROC
		return out
	}
	type alias inferResult
	return struct {
		alias
		Metrics   map[string]any `json:"metrics"`
		Plaintext map[string]any `json:"plaintext,omitempty"`
	}{alias(r), clean(r.Metrics), clean(r.Plaintext)}
}
