package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/client/analyst"
	"github.com/synod-mpc/synod/configs"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/engine/glm"
	"github.com/synod-mpc/synod/engine/train"
	"github.com/synod-mpc/synod/parties/config"
	"github.com/synod-mpc/synod/parties/datasource"
	"github.com/synod-mpc/synod/parties/query"
	"github.com/synod-mpc/synod/parties/schema"
	"github.com/synod-mpc/synod/protocols/session"
)

// trainFlags are the flags that describe a training.
type trainFlags struct {
	dataset, label, modelKind, mode, where, schemaPath, name string
	features                                                 []string
	l2, epsilon, delta, stepSize, radius                     float64
	mechanism                                                string
	iterations                                               uint32
	momentum, keepEncrypted                                  bool
}

// spec builds the training spec: the ranges come from the consortium
// schema, the row selection from --where (SQL, as in a query's WHERE).
func (f *trainFlags) spec(parties int, params engine.Parameters) (*synodv1.QuerySpec, *train.Plan, error) {
	if f.dataset == "" || f.label == "" {
		return nil, nil, errors.New("--dataset and --label are required")
	}
	sch, err := loadSchema(f.schemaPath)
	if err != nil {
		return nil, nil, err
	}
	ds, ok := sch.Dataset(f.dataset)
	if !ok {
		return nil, nil, fmt.Errorf("the consortium schema has no dataset %q (known: %s)", f.dataset, strings.Join(sch.Names(), ", "))
	}
	if _, ok := ds.Column(f.label); !ok {
		return nil, nil, fmt.Errorf("dataset %s has no column %q", f.dataset, f.label)
	}
	features := f.features
	if len(features) == 0 {
		for _, c := range ds.ColumnNames() {
			if c != f.label {
				features = append(features, c)
			}
		}
	}
	tr := &synodv1.Training{Label: f.label, Features: features, L2: f.l2, Iterations: f.iterations,
		StepSize: f.stepSize, Momentum: f.momentum, Radius: f.radius, KeepEncrypted: f.keepEncrypted, Name: f.name}
	switch f.modelKind {
	case "linear":
		tr.Model = synodv1.Training_LINEAR
	case "logistic":
		tr.Model = synodv1.Training_LOGISTIC
	default:
		return nil, nil, fmt.Errorf("--model %q: want linear or logistic", f.modelKind)
	}
	switch f.mode {
	case "exact":
		tr.Mode = synodv1.Training_EXACT
	case "encrypted":
		tr.Mode = synodv1.Training_ENCRYPTED
	default:
		return nil, nil, fmt.Errorf("--mode %q: want exact or encrypted", f.mode)
	}
	if tr.Iterations == 0 {
		switch {
		case tr.Mode == synodv1.Training_ENCRYPTED:
			tr.Iterations = 10
		case tr.Model == synodv1.Training_LOGISTIC:
			tr.Iterations = 25
		default:
			tr.Iterations = 1
		}
	}
	cols := slices.Clone(features)
	if tr.Model == synodv1.Training_LINEAR {
		cols = append(cols, f.label)
	}
	for _, c := range cols {
		lo, hi, ok := sch.Bounds(f.dataset, c)
		if !ok {
			return nil, nil, fmt.Errorf("the consortium schema declares no range for column %s of %s: training scales every feature by its declared range", c, f.dataset)
		}
		tr.Ranges = append(tr.Ranges, lo, hi)
	}
	spec := &synodv1.QuerySpec{Dataset: f.dataset, Training: tr}
	if f.where != "" {
		sel, err := query.CompileSQL(fmt.Sprintf("SELECT COUNT(*) FROM %s WHERE %s", f.dataset, f.where))
		if err != nil {
			return nil, nil, fmt.Errorf("--where: %w", err)
		}
		spec.Filters, spec.Where = sel.GetFilters(), sel.GetWhere()
	}
	if f.epsilon != 0 {
		spec.Privacy = &synodv1.Privacy{Epsilon: f.epsilon, Delta: f.delta}
		switch f.mechanism {
		case "laplace":
			spec.Privacy.Mechanism = synodv1.Privacy_LAPLACE
		case "gaussian":
			spec.Privacy.Mechanism = synodv1.Privacy_GAUSSIAN
		default:
			return nil, nil, fmt.Errorf("--mechanism %q: want laplace or gaussian", f.mechanism)
		}
	}
	var pl *train.Plan
	if tr.Mode == synodv1.Training_ENCRYPTED {
		// The sigmoid's interval and degree are part of what the parties
		// approve: planned here, checked again by each of them.
		if pl, err = train.NewPlan(params, session.TrainSpec(tr, parties, 0)); err != nil {
			return nil, nil, err
		}
		tr.Interval, tr.Degree = pl.Bound, uint32(pl.Degree)
		if tr.StepSize == 0 {
			tr.StepSize = pl.StepSize
		}
	}
	if _, err := query.ValidateTraining(spec); err != nil {
		return nil, nil, err
	}
	return spec, pl, nil
}

func loadSchema(path string) (*schema.Schema, error) {
	if path != "" {
		return schema.Load(path)
	}
	return schema.Parse(configs.Schema)
}

// trainResult is what mpcctl prints for a training.
type trainResult struct {
	Session      string            `json:"session"`
	Dataset      string            `json:"dataset"`
	Model        string            `json:"model"`
	Mode         string            `json:"mode"`
	Label        string            `json:"label"`
	Features     []string          `json:"features"`
	L2           float64           `json:"l2"`
	Parameters   string            `json:"parameters"`
	Contributors []string          `json:"contributors"`
	KeySwitchers []string          `json:"key_switchers"`
	Rows         float64           `json:"rows,omitempty"`
	Converged    bool              `json:"converged"`
	Iterations   []iterationJSON   `json:"iterations,omitempty"`
	Coefficients []coefficientJSON `json:"coefficients"`
	ModelFile    string            `json:"model_file,omitempty"`
	Receipt      *receiptJSON      `json:"receipt,omitempty"`
	Seconds      float64           `json:"session_seconds"`
	// LedgerSeconds is the part of the last round spent waiting for chain
	// commits.
	LedgerSeconds float64      `json:"ledger_seconds,omitempty"`
	Plaintext     *pooledJSON  `json:"plaintext,omitempty"`
	Privacy       *privacyJSON `json:"privacy,omitempty"`
}

type iterationJSON struct {
	Round     int     `json:"round"`
	Objective float64 `json:"objective"`
	GradNorm  float64 `json:"grad_norm,omitempty"`
	StepNorm  float64 `json:"step_norm,omitempty"`
}

// coefficientJSON is one coefficient in the scaled space the model is
// trained in (features scaled to [-1, 1] by their declared ranges) and in
// the data's own units.
type coefficientJSON struct {
	Name   string  `json:"name"`
	Scaled float64 `json:"scaled"`
	Raw    float64 `json:"raw"`
}

// pooledJSON compares the consortium's model with a fit on the pooled rows
// of the --compare-plaintext configs.
type pooledJSON struct {
	Coefficients []float64 `json:"coefficients"`
	// MaxRelError is max |b - b_pooled| / max(1, |b_pooled|).
	MaxRelError float64 `json:"max_rel_error"`
	// Accuracy and LogLoss (logistic) or RMSE (linear) on the pooled rows,
	// of the consortium's model and of the pooled fit.
	Accuracy, PooledAccuracy float64 `json:",omitempty"`
	LogLoss, PooledLogLoss   float64 `json:",omitempty"`
	RMSE, PooledRMSE         float64 `json:",omitempty"`
}

func newTrainCmd(g *globals) *cobra.Command {
	var f trainFlags
	var out, paramsName string
	var compare []string
	var explain bool
	var rows int
	cmd := &cobra.Command{
		Use:   "train --dataset D --label COLUMN [--features a,b,...] [--model linear|logistic] [--mode exact|encrypted]",
		Short: "Fit a linear or logistic regression on every party's rows; nobody sees the others' data",
		Long: `Fit a linear or logistic regression on every party's rows.

Every feature (and a linear regression's label) is scaled into [-1, 1] by
its range in the consortium schema; the coefficients are fitted in that
space, and the model file (engine/model's JSON format, which mpcctl infer
and mpcctl model upload read) carries the scaling as its standardization.

--mode exact (the default): each round, every party encrypts its sufficient
statistics under the collective key: the Gram matrix of its rows Z^T Z and
Z^T y for linear regression; Z^T W Z, Z^T (y - mu), the log-likelihood and
the count at the current coefficients for logistic regression. Their sum is
switched to your key; mpcctl decrypts it and solves (one round for linear
regression, one Newton step per round for logistic regression, the next
coefficients sent back until they converge). What each round releases is
what --explain lists; --epsilon adds differential privacy noise to it.

--mode encrypted: the model stays encrypted under the collective key for the
whole training; the parties compute encrypted gradients on their own rows,
collective refreshes keep the model at the top of the modulus chain, and
only the final model is released to you. Needs --l2 > 0 (the penalty bounds
the weights, hence the sigmoid's interval); the plan (--explain) says which
parameter set fits.`,
		Example: `  mpcctl train --dataset patients --label systolic_bp --features age,bmi,smoker --model linear --out bp.json
  mpcctl train --dataset patients --label diabetic --model logistic --l2 0.001 --where 'age >= 40' --out diabetes.json
  mpcctl train --dataset patients --label diabetic --features age,bmi --model logistic --mode encrypted --l2 0.05 --iterations 10`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var client *analyst.Client
			parties := 0
			params, err := engine.ParametersByName(paramsName)
			if err != nil {
				return err
			}
			if !explain || f.mode == "encrypted" {
				if client, err = connect(g, cmd); err != nil {
					if !explain {
						return err
					}
				} else {
					defer client.Close()
					ps, err := client.Parties(context.Background())
					if err != nil {
						return grpcErr(err)
					}
					parties = len(ps.GetParties())
					if !cmd.Flags().Changed("parameters") && ps.GetParameters() != "" {
						if params, err = engine.ParametersByName(ps.GetParameters()); err != nil {
							return err
						}
					}
				}
			}
			if parties == 0 {
				parties = 3
			}
			spec, pl, err := f.spec(parties, params)
			if err != nil {
				return err
			}
			if explain {
				return printTrainPlan(g.output, spec, pl, params, parties, rows)
			}
			progress := analyst.TrainProgress{Event: printEvents(g.output != "table")}
			if g.output == "table" {
				progress.Submitted = func(s string) { fmt.Fprintf(os.Stderr, "session %s\n", s) }
				progress.Iteration = func(it analyst.Iteration) {
					fmt.Fprintf(os.Stderr, "  round %d: objective %.10g, gradient norm %.3g, step %.3g\n", it.Round, it.Objective, it.GradNorm, it.StepNorm)
				}
			}
			tr, err := client.Train(context.Background(), spec, progress)
			if failed, ok := errors.AsType[*analyst.FailedError](err); ok {
				return fmt.Errorf("training failed: %s", failed.Reason)
			}
			if err != nil {
				return grpcErr(err)
			}
			res := trainResultOf(spec, tr)
			if out != "" && tr.Model != nil {
				b, err := tr.Model.MarshalJSON()
				if err != nil {
					return err
				}
				if err := os.WriteFile(out, b, 0o644); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				res.ModelFile = out
			}
			if len(compare) > 0 {
				if res.Plaintext, err = pooledFit(compare, tr.Meta.GetContributors(), spec, tr); err != nil {
					return err
				}
			}
			return printTrain(g.output, res)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dataset, "dataset", "", "dataset to train on (required)")
	fl.StringVar(&f.label, "label", "", "label column (required): 0 or 1 for logistic regression")
	fl.StringSliceVar(&f.features, "features", nil, "feature columns (default: the schema's columns besides the label)")
	fl.StringVar(&f.modelKind, "model", "linear", "linear or logistic")
	fl.StringVar(&f.mode, "mode", "exact", "exact (statistics released to you each round) or encrypted (only the final model released)")
	fl.Float64Var(&f.l2, "l2", 0, "L2 penalty lambda of the mean loss (features scaled to [-1, 1]; exact mode leaves the intercept unpenalized)")
	fl.Uint32Var(&f.iterations, "iterations", 0, "rounds at most: Newton iterations (exact logistic, default 25) or gradient steps (encrypted, default 10)")
	fl.StringVar(&f.where, "where", "", "SQL condition selecting the training rows, as in a query's WHERE")
	fl.StringVar(&f.schemaPath, "schema", "", "consortium schema for the ranges and default features (default: the shipped schema)")
	fl.StringVar(&f.name, "name", "", "model name (in the model file; with --keep-encrypted, the name it is stored under)")
	fl.StringVar(&out, "out", "", "write the trained model (JSON model format) to this file")
	fl.Float64Var(&f.epsilon, "epsilon", 0, "differential privacy of the whole training (exact mode): noise on every released statistic")
	fl.StringVar(&f.mechanism, "mechanism", "laplace", "differential privacy mechanism: laplace or gaussian")
	fl.Float64Var(&f.delta, "delta", 0, "differential privacy: delta (gaussian only)")
	fl.Float64Var(&f.stepSize, "step-size", 0, "encrypted mode: gradient step (0: the safe 1/L)")
	fl.BoolVar(&f.momentum, "momentum", false, "encrypted mode: Nesterov momentum (the weights' bound is then checked every iteration under encryption)")
	fl.Float64Var(&f.radius, "radius", 0, "encrypted mode: bound on the weights' norm (0: derived from --l2)")
	fl.BoolVar(&f.keepEncrypted, "keep-encrypted", false, "encrypted mode: keep the model encrypted at the parties under --name for mpcctl predict")
	fl.BoolVar(&explain, "explain", false, "print what the training releases, its rounds, ciphertexts and bytes, without running it")
	fl.StringVar(&paramsName, "parameters", engine.DefaultParameters, "parameter set --explain plans for (default: the consortium's when its node answers)")
	fl.IntVar(&rows, "rows", 100000, "--explain: rows per party, for the estimates")
	fl.StringSliceVar(&compare, "compare-plaintext", nil,
		"party config files whose datasets to read directly and fit the same model on the pooled rows (local demos and tests only)")
	return cmd
}

func trainResultOf(spec *synodv1.QuerySpec, tr *analyst.Trained) trainResult {
	t := spec.GetTraining()
	meta := tr.Meta
	r := trainResult{Session: tr.Session, Dataset: spec.GetDataset(), Model: strings.ToLower(t.GetModel().String()), Mode: strings.ToLower(t.GetMode().String()),
		Label: t.GetLabel(), Features: t.GetFeatures(), L2: t.GetL2(), Parameters: meta.GetParameters(), Contributors: meta.GetContributors(),
		KeySwitchers: meta.GetKeySwitchers(), Converged: tr.Converged, Seconds: tr.Took.Seconds(), LedgerSeconds: meta.GetLedgerSeconds()}
	if pr := spec.GetPrivacy(); pr.GetEpsilon() > 0 {
		r.Privacy = &privacyJSON{Mechanism: strings.ToLower(pr.GetMechanism().String()), Epsilon: pr.GetEpsilon(), Delta: pr.GetDelta()}
	}
	for _, it := range tr.Iterations {
		r.Rows = it.Rows
		r.Iterations = append(r.Iterations, iterationJSON{Round: it.Round, Objective: it.Objective, GradNorm: it.GradNorm, StepNorm: it.StepNorm})
	}
	if r.Rows == 0 {
		r.Rows = float64(meta.GetRows())
	}
	if rc := meta.GetReceipt(); rc != nil {
		r.Receipt = &receiptJSON{Height: rc.GetHeight(), TxHash: fmt.Sprintf("%X", rc.GetTxHash()), ApprovalTx: fmt.Sprintf("%X", rc.GetApprovalTxHash())}
	}
	raw := rawCoefficients(tr.Kind, tr.Scaling, tr.Coefficients)
	for i, b := range tr.Coefficients {
		name := "intercept"
		if i > 0 {
			name = t.GetFeatures()[i-1]
		}
		r.Coefficients = append(r.Coefficients, coefficientJSON{Name: name, Scaled: b, Raw: raw[i]})
	}
	return r
}

// rawCoefficients converts scaled-space coefficients to the data's units:
// b_c/half_c, and the intercept b_0 - sum b_c center_c/half_c (times and
// plus the label's scaling for linear regression).
func rawCoefficients(kind glm.Kind, s glm.Scaling, b []float64) []float64 {
	if len(b) == 0 {
		return nil
	}
	out := make([]float64, len(b))
	out[0] = b[0]
	for c, f := range s.Features {
		half, center := (f.Max-f.Min)/2, (f.Max+f.Min)/2
		out[c+1] = b[c+1] / half
		out[0] -= b[c+1] * center / half
	}
	if kind == glm.Linear {
		half, center := (s.Label.Max-s.Label.Min)/2, (s.Label.Max+s.Label.Min)/2
		for i := range out {
			out[i] *= half
		}
		out[0] += center
	}
	return out
}

// pooledFit fits the same model on the pooled rows of the contributors'
// configs, in the clear, and compares.
func pooledFit(configPaths, contributors []string, spec *synodv1.QuerySpec, tr *analyst.Trained) (*pooledJSON, error) {
	t, err := query.ValidateTraining(spec)
	if err != nil {
		return nil, err
	}
	names := append(slices.Clone(t.Spec.GetFeatures()), t.Spec.GetLabel())
	d := len(t.Spec.GetFeatures())
	pooled := make([][]float64, d+1)
	used := 0
	for _, path := range configPaths {
		cfg, err := config.LoadParty(path, nil)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(contributors, cfg.ID) {
			continue
		}
		ds, ok := cfg.Datasets[spec.GetDataset()]
		if !ok {
			return nil, fmt.Errorf("%s declares no dataset %q", path, spec.GetDataset())
		}
		table, err := datasource.Load(context.Background(), spec.GetDataset(), ds.Source())
		if err != nil {
			return nil, err
		}
		cols, err := query.Select(table, spec, names)
		if err != nil {
			return nil, err
		}
		for i := range pooled {
			pooled[i] = append(pooled[i], cols[i]...)
		}
		used++
	}
	if used == 0 {
		return nil, fmt.Errorf("none of the --compare-plaintext configs belongs to a contributor (%s)", strings.Join(contributors, ", "))
	}
	var ref []float64
	lambda := t.Spec.GetL2()
	switch t.Kind {
	case glm.Linear:
		ref, err = glm.FitLinear(pooled[:d], pooled[d], t.Scaling, lambda)
	case glm.Logistic:
		ref, _, err = glm.FitLogistic(pooled[:d], pooled[d], t.Scaling, lambda, 100)
	}
	if err != nil {
		return nil, fmt.Errorf("pooled fit: %w", err)
	}
	out := &pooledJSON{Coefficients: ref}
	for i := range ref {
		if i < len(tr.Coefficients) {
			out.MaxRelError = math.Max(out.MaxRelError, math.Abs(tr.Coefficients[i]-ref[i])/math.Max(1, math.Abs(ref[i])))
		}
	}
	predict := func(b []float64) ([]float64, error) { return glm.Predict(t.Kind, pooled[:d], t.Scaling, b) }
	ours, err := predict(tr.Coefficients)
	if err != nil {
		return nil, err
	}
	theirs, err := predict(ref)
	if err != nil {
		return nil, err
	}
	y := pooled[d]
	if t.Kind == glm.Logistic {
		out.Accuracy, _ = glm.Accuracy(y, ours)
		out.PooledAccuracy, _ = glm.Accuracy(y, theirs)
		out.LogLoss, _ = glm.LogLoss(y, ours)
		out.PooledLogLoss, _ = glm.LogLoss(y, theirs)
	} else {
		out.RMSE, out.PooledRMSE = rmse(y, ours), rmse(y, theirs)
	}
	return out, nil
}

func rmse(y, pred []float64) float64 {
	var s float64
	for i := range y {
		s += (y[i] - pred[i]) * (y[i] - pred[i])
	}
	return math.Sqrt(s / float64(len(y)))
}

func printTrain(format string, r trainResult) error {
	if format == "json" {
		return json.NewEncoder(os.Stdout).Encode(r)
	}
	rows := [][]string{{"coefficient", "scaled", "raw", "pooled (scaled)"}}
	for i, c := range r.Coefficients {
		pooled := ""
		if r.Plaintext != nil {
			pooled = fmt.Sprintf("%.10g", r.Plaintext.Coefficients[i])
		}
		rows = append(rows, []string{c.Name, fmt.Sprintf("%.10g", c.Scaled), fmt.Sprintf("%.6g", c.Raw), pooled})
	}
	if format == "csv" {
		return printRows(format, rows)
	}
	fmt.Printf("%s %s regression of %s on %s (dataset %s, %.0f rows, data from %s; key switch by %s)\n", r.Mode, r.Model, r.Label,
		strings.Join(r.Features, ", "), r.Dataset, r.Rows, strings.Join(r.Contributors, ", "), strings.Join(r.KeySwitchers, ", "))
	if err := printRows(format, rows); err != nil {
		return err
	}
	if n := len(r.Iterations); n > 1 {
		last := r.Iterations[n-1]
		fmt.Printf("%d Newton rounds, converged: %v (last gradient norm %.3g, step %.3g)\n", n, r.Converged, last.GradNorm, last.StepNorm)
	}
	if p := r.Plaintext; p != nil {
		fmt.Printf("pooled fit in the clear: max relative difference of the coefficients %.3g", p.MaxRelError)
		if r.Model == "logistic" {
			fmt.Printf("; accuracy %.4f (pooled %.4f), log-loss %.6f (pooled %.6f)", p.Accuracy, p.PooledAccuracy, p.LogLoss, p.PooledLogLoss)
		} else {
			fmt.Printf("; RMSE %.6g (pooled %.6g)", p.RMSE, p.PooledRMSE)
		}
		fmt.Println()
	}
	if r.Privacy != nil {
		fmt.Printf("differential privacy: %s noise, epsilon %g over every released statistic\n", r.Privacy.Mechanism, r.Privacy.Epsilon)
	}
	if r.ModelFile != "" {
		fmt.Printf("model written to %s (mpcctl infer --model %s ...)\n", r.ModelFile, r.ModelFile)
	}
	if r.Receipt != nil {
		fmt.Printf("receipt: tx %s at height %d (check it: mpcctl audit verify %s)\n", r.Receipt.TxHash, r.Receipt.Height, r.Session)
	}
	return nil
}

// printTrainPlan prints what a training releases and costs.
func printTrainPlan(format string, spec *synodv1.QuerySpec, pl *train.Plan, params engine.Parameters, parties, rows int) error {
	t, err := query.ValidateTraining(spec)
	if err != nil {
		return err
	}
	type planJSON struct {
		Mode        string   `json:"mode"`
		Rounds      int      `json:"rounds"`
		Released    []string `json:"released_per_round,omitempty"`
		Ciphertexts int      `json:"ciphertexts_per_party_per_round"`
		Bytes       int      `json:"bytes_per_party_per_round"`
		Plan        string   `json:"plan,omitempty"`
	}
	var pj planJSON
	if pl == nil {
		labels := t.Labels()
		ctBytes := engine.CiphertextBinarySize(params, params.AggregateLevel)
		pj = planJSON{Mode: "exact", Rounds: t.Rounds, Released: labels, Ciphertexts: 1, Bytes: ctBytes}
		if format == "json" {
			return json.NewEncoder(os.Stdout).Encode(pj)
		}
		fmt.Printf("exact %s regression on %s: %d features scaled by their declared ranges, %d coefficients\n", t.Kind, spec.GetDataset(), len(t.Spec.GetFeatures()), t.Scaling.P())
		fmt.Printf("each round releases to the analyst %d sums over the selected rows of every party (one %s ciphertext of %d bytes per party):\n  %s\n",
			len(labels), params.Name, ctBytes, strings.Join(labels, " "))
		fmt.Printf("rounds: at most %d (one Newton step each for logistic regression; the analyst sends the next coefficients)\n", t.Rounds)
		if spec.GetPrivacy().GetEpsilon() > 0 {
			scales, _ := t.NoiseScales(spec)
			fmt.Printf("differential privacy: epsilon %g split over %d cells x %d rounds; noise scale %.3g to %.3g\n", spec.GetPrivacy().GetEpsilon(), len(labels), t.Rounds, slices.Min(scales), slices.Max(scales))
		}
		fmt.Println("keys: the collective public key, the analyst's key switch (t parties, flooded shares); no rotation, no relinearization")
		return nil
	}
	spec2 := session.TrainSpec(t.Spec, parties, parties*rows)
	if p2, err := train.NewPlan(params, spec2); err == nil {
		pl = p2
	}
	pj = planJSON{Mode: "encrypted", Rounds: int(t.Spec.GetIterations()), Ciphertexts: pl.Coefficients, Bytes: pl.PointBytes + pl.GradientBytes, Plan: pl.Explain()}
	if format == "json" {
		return json.NewEncoder(os.Stdout).Encode(pj)
	}
	fmt.Printf("encrypted training with %d parties of %d rows each; released: the final model only (%d coefficients)\n", parties, rows, pl.Coefficients)
	fmt.Print(pl.Explain())
	fmt.Printf("the parties' row counts are released to the coordinator (the learning rate is divided by their sum)\n")
	return nil
}
