package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/encoding/protojson"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/parties/config"
	"github.com/synod-mpc/synod/parties/datasource"
	"github.com/synod-mpc/synod/parties/query"
)

// specFlags are the flags that describe a query.
type specFlags struct {
	dataset   string
	aggs      []string
	filters   []string
	epsilon   float64
	delta     float64
	mechanism string
}

func (s *specFlags) register(f *pflag.FlagSet) {
	f.StringVar(&s.dataset, "dataset", "", "dataset to query (required)")
	f.StringArrayVar(&s.aggs, "agg", nil, "aggregate: count, sum:COLUMN or mean:COLUMN (repeatable)")
	f.StringArrayVar(&s.filters, "where", nil, "filter every party applies locally: COLUMN OP NUMBER, e.g. 'age>=40' (repeatable, ANDed)")
	f.Float64Var(&s.epsilon, "epsilon", 0, "differential privacy: the epsilon the query spends (0: no noise)")
	f.StringVar(&s.mechanism, "mechanism", "laplace", "differential privacy mechanism: laplace or gaussian")
	f.Float64Var(&s.delta, "delta", 0, "differential privacy: delta (gaussian only)")
}

// withPrivacy adds the differential privacy asked for by the flags.
func (s *specFlags) withPrivacy(spec *synodv1.QuerySpec) (*synodv1.QuerySpec, error) {
	if s.epsilon == 0 {
		return spec, nil
	}
	pr := &synodv1.Privacy{Epsilon: s.epsilon, Delta: s.delta}
	switch s.mechanism {
	case "laplace":
		pr.Mechanism = synodv1.Privacy_LAPLACE
	case "gaussian":
		pr.Mechanism = synodv1.Privacy_GAUSSIAN
	default:
		return nil, fmt.Errorf("--mechanism %q: want laplace or gaussian", s.mechanism)
	}
	spec.Privacy = pr
	return spec, query.Validate(spec)
}

// spec compiles the query: the SQL argument if there is one, else the
// legacy flags. Both give a canonical spec (query.Canonicalize).
func (s *specFlags) spec(args []string) (*synodv1.QuerySpec, error) {
	if len(args) > 0 {
		if s.dataset != "" || len(s.aggs) > 0 || len(s.filters) > 0 {
			return nil, fmt.Errorf("give either a SQL query or --dataset/--agg/--where, not both")
		}
		spec, err := query.CompileSQL(args[0])
		if err != nil {
			return nil, err
		}
		return s.withPrivacy(spec)
	}
	spec := &synodv1.QuerySpec{Dataset: s.dataset}
	if len(s.aggs) == 0 {
		return nil, fmt.Errorf("no query: pass SQL (mpcctl query \"SELECT COUNT(*) FROM patients\") or --dataset D --agg count")
	}
	for _, a := range s.aggs {
		agg, err := query.ParseAggregate(a)
		if err != nil {
			return nil, err
		}
		spec.Aggregates = append(spec.Aggregates, agg)
	}
	for _, w := range s.filters {
		f, err := query.ParseFilter(w)
		if err != nil {
			return nil, err
		}
		spec.Filters = append(spec.Filters, f)
	}
	spec = query.Canonicalize(spec)
	if err := query.Validate(spec); err != nil {
		return nil, err
	}
	return s.withPrivacy(spec)
}

// queryResult is what mpcctl prints for a query.
type queryResult struct {
	Session      string       `json:"session"`
	Dataset      string       `json:"dataset"`
	GroupBy      []string     `json:"group_by,omitempty"`
	Parameters   string       `json:"parameters"`
	Contributors []string     `json:"contributors"`
	KeySwitchers []string     `json:"key_switchers"`
	Precision    float64      `json:"precision"`
	Results      []query.Cell `json:"results"`
	Plaintext    []query.Cell `json:"plaintext,omitempty"`
	MaxAbsError  *float64     `json:"max_abs_error,omitempty"`
	// Receipt locates the session's transcript on the consortium chain.
	Receipt *receiptJSON `json:"receipt,omitempty"`
	// SessionSeconds is the time the session took on the coordinator.
	SessionSeconds float64 `json:"session_seconds,omitempty"`
	// LedgerSeconds is the part of it spent waiting for chain commits.
	LedgerSeconds float64 `json:"ledger_seconds,omitempty"`
	// Privacy is the differential privacy the parties applied; NoiseScales
	// the scale of the noise in each released slot (query.Layout order).
	Privacy     *privacyJSON `json:"privacy,omitempty"`
	NoiseScales []float64    `json:"noise_scales,omitempty"`
	// MinCohort is the minimum cohort applied; Suppressed counts the cells
	// withheld below it.
	MinCohort  uint32 `json:"min_cohort,omitempty"`
	Suppressed int    `json:"suppressed,omitempty"`
}

type privacyJSON struct {
	Mechanism string  `json:"mechanism"`
	Epsilon   float64 `json:"epsilon"`
	Delta     float64 `json:"delta,omitempty"`
}

const sqlHelp = `The query is SQL (one dataset, aggregates only):

  SELECT [group columns,] aggregate, ... FROM dataset
    [WHERE condition] [GROUP BY column IN (v1, v2, ...), ...]

Aggregates: COUNT(*), SUM(c), AVG(c), VAR_SAMP(c), STDDEV_SAMP(c),
COVAR_SAMP(a, b), CORR(a, b), HISTOGRAM(c, e0, e1, ..., ek) (buckets
[e0,e1) ... [ek-1,ek); values outside are in no bucket).
GROUP BY columns declare their values: GROUP BY sex IN (0, 1); rows with other
values are in no group. Conditions: = != <> < <= > >= against numbers, AND, OR,
NOT, IN (...), BETWEEN; each party applies them to its own rows.

Or, without SQL: --dataset D --agg count --agg mean:COLUMN --where 'COLUMN>=X'.`

func newQueryCmd(g *globals) *cobra.Command {
	var sf specFlags
	var compare []string
	var explain bool
	var paramsName string
	cmd := &cobra.Command{
		Use:   "query [\"SELECT ... FROM dataset ...\"]",
		Short: "Run an aggregate query; the result is decrypted here with the analyst's key",
		Long:  "Run an aggregate query; the result is decrypted here with the analyst's key.\n\n" + sqlHelp,
		Example: `  mpcctl query "SELECT sex, COUNT(*), AVG(bmi), CORR(age, bmi) FROM patients WHERE age BETWEEN 40 AND 70 GROUP BY sex IN (0, 1)"
  mpcctl query --explain "SELECT HISTOGRAM(age, 0, 40, 60, 120) FROM patients"
  mpcctl query --dataset patients --agg count --agg mean:age --where 'age>=40'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := sf.spec(args)
			if err != nil {
				return err
			}
			if explain {
				params, err := engine.ParametersByName(paramsName)
				if err != nil {
					return err
				}
				plan, err := query.Explain(spec, params)
				if err != nil {
					return err
				}
				return printPlan(g.output, spec, plan)
			}
			r, err := runSession(g, cmd, spec, "query")
			if err != nil {
				return err
			}
			meta, took := r.Meta, r.Took
			cells, err := r.Cells()
			if err != nil {
				return err
			}
			out := queryResult{Session: meta.GetSession(), Dataset: meta.GetSpec().GetDataset(), GroupBy: query.GroupColumns(meta.GetSpec()), Parameters: meta.GetParameters(),
				Contributors: meta.GetContributors(), KeySwitchers: meta.GetKeySwitchers(), Precision: meta.GetPrecision(), Results: cells,
				SessionSeconds: took.Seconds(), LedgerSeconds: meta.GetLedgerSeconds(), MinCohort: meta.GetMinCohort()}
			for _, c := range cells {
				if c.Suppressed {
					out.Suppressed++
				}
			}
			if pr := meta.GetSpec().GetPrivacy(); pr.GetEpsilon() > 0 {
				out.Privacy = &privacyJSON{Mechanism: strings.ToLower(pr.GetMechanism().String()), Epsilon: pr.GetEpsilon(), Delta: pr.GetDelta()}
				for _, sl := range meta.GetSlots() {
					out.NoiseScales = append(out.NoiseScales, sl.GetNoiseScale())
				}
			}
			if rc := meta.GetReceipt(); rc != nil {
				out.Receipt = &receiptJSON{Height: rc.GetHeight(), TxHash: fmt.Sprintf("%X", rc.GetTxHash()), ApprovalTx: fmt.Sprintf("%X", rc.GetApprovalTxHash())}
			}
			if len(compare) > 0 {
				plain, err := plaintextResult(compare, meta.GetContributors(), meta.GetSpec())
				if err != nil {
					return err
				}
				out.Plaintext = plain
				worst := 0.0
				for i := range cells {
					if cells[i].Suppressed {
						continue
					}
					d := math.Abs(cells[i].Value - plain[i].Value)
					if math.IsNaN(cells[i].Value) && math.IsNaN(plain[i].Value) {
						d = 0 // undefined on both sides (an empty group)
					}
					if d > worst || math.IsNaN(d) {
						worst = d
					}
				}
				out.MaxAbsError = &worst
			}
			return printQuery(g.output, out)
		},
	}
	sf.register(cmd.Flags())
	cmd.Flags().BoolVar(&explain, "explain", false, "print the plan (cells, ciphertexts, depth, keys, bytes) without running the query")
	cmd.Flags().StringVar(&paramsName, "parameters", engine.DefaultParameters, "parameter set --explain plans for")
	cmd.Flags().StringSliceVar(&compare, "compare-plaintext", nil,
		"party config files whose datasets (CSV or PostgreSQL) to read directly and compute the same query in the clear (local demos and tests only)")
	return cmd
}

type receiptJSON struct {
	Height     int64  `json:"height"`
	TxHash     string `json:"tx_hash"`
	ApprovalTx string `json:"approval_tx"`
}

// plaintextResult computes spec in the clear over the datasets (CSV or
// PostgreSQL) of the given party configs, restricted to the parties whose
// data the result covers.
func plaintextResult(configs []string, contributors []string, spec *synodv1.QuerySpec) ([]query.Cell, error) {
	var total []float64
	for _, path := range configs {
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
		t, err := datasource.Load(context.Background(), spec.GetDataset(), ds.Source())
		if err != nil {
			return nil, err
		}
		local, err := query.Local(t, spec)
		if err != nil {
			return nil, err
		}
		if total == nil {
			total = make([]float64, len(local))
		}
		for i, v := range local {
			total[i] += v
		}
	}
	if total == nil {
		return nil, fmt.Errorf("none of the --compare-plaintext configs belongs to a contributor (%s)", strings.Join(contributors, ", "))
	}
	return query.Finish(spec, total)
}

func newPlaintextCmd(g *globals) *cobra.Command {
	var sf specFlags
	var configs []string
	cmd := &cobra.Command{
		Use:   "plaintext --party-config FILE... [\"SELECT ...\" | --dataset D --agg ...]",
		Short: "Compute a query in the clear from the parties' own files (local demos and tests only)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := sf.spec(args)
			if err != nil {
				return err
			}
			var ids []string
			for _, c := range configs {
				cfg, err := config.LoadParty(c, nil)
				if err != nil {
					return err
				}
				ids = append(ids, cfg.ID)
			}
			cells, err := plaintextResult(configs, ids, spec)
			if err != nil {
				return err
			}
			return printQuery(g.output, queryResult{Dataset: spec.GetDataset(), GroupBy: query.GroupColumns(spec), Contributors: ids, Results: cells})
		},
	}
	sf.register(cmd.Flags())
	cmd.Flags().StringSliceVar(&configs, "party-config", nil, "party config files (repeatable)")
	return cmd
}

func printQuery(format string, r queryResult) error {
	if format == "json" {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	if format == "table" {
		if r.Session != "" {
			fmt.Printf("dataset %s, data from %s; decrypted with the analyst key (key switch by %s)\n",
				r.Dataset, strings.Join(r.Contributors, ", "), strings.Join(r.KeySwitchers, ", "))
		} else {
			fmt.Printf("dataset %s, plaintext over %s\n", r.Dataset, strings.Join(r.Contributors, ", "))
		}
	}
	var rows [][]string
	if r.Plaintext != nil {
		// One row per cell, beside its plaintext.
		header := append(slices.Clone(r.GroupBy), "statistic", "encrypted result", "plaintext", "abs error")
		rows = append(rows, header)
		for i, c := range r.Results {
			row := groupValues(r.GroupBy, c)
			errCol := fmt.Sprintf("%.2g", math.Abs(c.Value-r.Plaintext[i].Value))
			if c.Suppressed {
				errCol = "-"
			}
			row = append(row, c.Name, cellValue(c), formatValue(r.Plaintext[i].Value), errCol)
			rows = append(rows, row)
		}
	} else if len(r.GroupBy) == 0 && format == "table" {
		rows = append(rows, []string{"statistic", "value"})
		for _, c := range r.Results {
			rows = append(rows, []string{c.Name, cellValue(c)})
		}
	} else {
		// One row per group, one column per statistic.
		var groupRows [][]query.Cell
		header := slices.Clone(r.GroupBy)
		for _, c := range r.Results {
			if len(groupRows) == 0 || !slices.Equal(groupValues(r.GroupBy, groupRows[len(groupRows)-1][0]), groupValues(r.GroupBy, c)) {
				groupRows = append(groupRows, nil)
			}
			groupRows[len(groupRows)-1] = append(groupRows[len(groupRows)-1], c)
			if len(groupRows) == 1 {
				header = append(header, c.Name)
			}
		}
		rows = append(rows, header)
		for _, g := range groupRows {
			row := groupValues(r.GroupBy, g[0])
			for _, c := range g {
				row = append(row, cellValue(c))
			}
			rows = append(rows, row)
		}
	}
	if err := printRows(format, rows); err != nil {
		return err
	}
	if format == "table" && r.Session != "" {
		fmt.Printf("promised precision: ±%.2g per released sum (noise flooding); statistics derived from sums carry it divided by the count\n", r.Precision)
		if r.Privacy != nil {
			fmt.Printf("differential privacy: %s noise, epsilon %g", r.Privacy.Mechanism, r.Privacy.Epsilon)
			if r.Privacy.Delta > 0 {
				fmt.Printf(", delta %g", r.Privacy.Delta)
			}
			fmt.Printf(", added under encryption by the parties (scale per released sum: %s)\n", scaleRange(r.NoiseScales))
		}
		if r.MinCohort > 0 {
			fmt.Printf("minimum cohort %d: %d cell(s) suppressed\n", r.MinCohort, r.Suppressed)
		}
		if r.Receipt != nil {
			fmt.Printf("receipt: transcript tx %s at height %d (check it: mpcctl audit verify %s)\n", r.Receipt.TxHash, r.Receipt.Height, r.Session)
		}
	}
	return nil
}

// groupValues formats a cell's GROUP BY values in column order.
func groupValues(cols []string, c query.Cell) []string {
	out := make([]string, 0, len(cols))
	for _, col := range cols {
		out = append(out, formatValue(c.Group[col]))
	}
	return out
}

func printPlan(format string, spec *synodv1.QuerySpec, p *query.Plan) error {
	if format == "json" {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Spec json.RawMessage `json:"spec"`
			*query.Plan
		}{specJSON(spec), p})
	}
	rows := [][]string{
		{"item", "value"},
		{"dataset", p.Dataset},
		{"parameters", p.Parameters},
		{"groups", fmt.Sprint(p.Groups)},
		{"cells per group", fmt.Sprint(p.CellsPerGroup)},
		{"cells (encrypted values)", fmt.Sprintf("%d of %d slots", p.Cells, p.Slots)},
		{"ciphertexts per party", fmt.Sprint(p.Ciphertexts)},
		{"multiplicative depth", fmt.Sprint(p.Depth)},
		{"keys needed", strings.Join(p.Keys, "; ")},
		{"bytes sent per data party", fmt.Sprintf("%d (+%d per key-switch share)", p.BytesPerParty, p.KeySwitchShareBytes)},
		{"result bytes", fmt.Sprint(p.ResultBytes)},
		{"bound per party and cell", fmt.Sprintf("%.4g (checked by each party before encrypting)", p.ValueBound)},
	}
	if format == "table" {
		rows = append(rows, []string{"layout", strings.Join(p.Layout, " ")})
	}
	return printRows(format, rows)
}

func specJSON(spec *synodv1.QuerySpec) json.RawMessage {
	b, err := protojson.Marshal(spec)
	if err != nil {
		return json.RawMessage("null")
	}
	return b
}

func cellValue(c query.Cell) string {
	if c.Suppressed {
		return "suppressed"
	}
	return formatValue(c.Value)
}

// scaleRange prints the smallest and largest noise scale.
func scaleRange(scales []float64) string {
	if len(scales) == 0 {
		return "none"
	}
	lo, hi := slices.Min(scales), slices.Max(scales)
	if lo == hi {
		return fmt.Sprintf("%.3g", lo)
	}
	return fmt.Sprintf("%.3g to %.3g", lo, hi)
}

func formatValue(v float64) string {
	if math.IsNaN(v) {
		return "NULL"
	}
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.6f", v)
}
