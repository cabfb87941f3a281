package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/parties/config"
	"github.com/synod-mpc/synod/parties/datasource"
	"github.com/synod-mpc/synod/parties/query"
	"github.com/synod-mpc/synod/parties/wire"
)

// specFlags are the flags that describe a query.
type specFlags struct {
	dataset string
	aggs    []string
	filters []string
}

func (s *specFlags) register(f *pflag.FlagSet) {
	f.StringVar(&s.dataset, "dataset", "", "dataset to query (required)")
	f.StringArrayVar(&s.aggs, "agg", nil, "aggregate: count, sum:COLUMN or mean:COLUMN (repeatable)")
	f.StringArrayVar(&s.filters, "where", nil, "filter every party applies locally: COLUMN OP NUMBER, e.g. 'age>=40' (repeatable, ANDed)")
}

func (s *specFlags) spec() (*synodv1.QuerySpec, error) {
	spec := &synodv1.QuerySpec{Dataset: s.dataset}
	if len(s.aggs) == 0 {
		return nil, fmt.Errorf("no aggregate: pass --agg count, --agg sum:COLUMN or --agg mean:COLUMN")
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
	return spec, query.Validate(spec)
}

// queryResult is what mpcctl prints for a query.
type queryResult struct {
	Session      string       `json:"session"`
	Dataset      string       `json:"dataset"`
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
}

func newQueryCmd(g *globals) *cobra.Command {
	var sf specFlags
	var compare []string
	cmd := &cobra.Command{
		Use:   "query --dataset D --agg count --agg mean:COLUMN [--where 'COLUMN>=X']",
		Short: "Run an aggregate query; the result is decrypted here with the analyst's key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, err := sf.spec()
			if err != nil {
				return err
			}
			a, err := connect(g, cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			ctx := context.Background()
			parties, err := a.client.ListParties(ctx, &synodv1.ListPartiesRequest{})
			if err != nil {
				return grpcErr(err)
			}
			params, err := engine.ParametersByName(parties.GetParameters())
			if err != nil {
				return err
			}
			sk, pk, err := a.rlweKey(params)
			if err != nil {
				return err
			}
			pkBytes, err := pk.MarshalBinary()
			if err != nil {
				return err
			}
			stream, err := a.client.SubmitQuery(ctx)
			if err != nil {
				return grpcErr(err)
			}
			if err := stream.Send(&synodv1.SubmitQueryRequest{Part: &synodv1.SubmitQueryRequest_Spec{Spec: spec}}); err != nil {
				return grpcErr(err)
			}
			if err := wire.SendChunks(func(c *synodv1.Chunk) error {
				return stream.Send(&synodv1.SubmitQueryRequest{Part: &synodv1.SubmitQueryRequest_AnalystKey{AnalystKey: c}})
			}, pkBytes); err != nil && err != io.EOF {
				return grpcErr(err)
			}
			resp, err := stream.CloseAndRecv()
			if err != nil {
				return grpcErr(err)
			}
			if g.output == "table" {
				fmt.Fprintf(os.Stderr, "session %s\n", resp.GetSession())
			}
			ev, took, err := watch(ctx, a.client, resp.GetSession(), g.output != "table")
			if err != nil {
				return grpcErr(err)
			}
			if ev.GetFailed() {
				return fmt.Errorf("query failed: %s", ev.GetMessage())
			}
			meta, ctBytes, err := fetch(ctx, a.client, resp.GetSession())
			if err != nil {
				return err
			}
			if err := saveResult(a.cfg.DataDir, meta, ctBytes); err != nil {
				return fmt.Errorf("keep the result for audit: %w", err)
			}
			ct, err := engine.DecodeCiphertext(params, ctBytes)
			if err != nil {
				return fmt.Errorf("result ciphertext: %w", err)
			}
			slots, err := engine.DecryptVector(params, sk, ct, len(meta.GetSlots()))
			if err != nil {
				return err
			}
			cells, err := query.Finish(meta.GetSpec(), slots)
			if err != nil {
				return err
			}
			out := queryResult{Session: meta.GetSession(), Dataset: meta.GetSpec().GetDataset(), Parameters: meta.GetParameters(),
				Contributors: meta.GetContributors(), KeySwitchers: meta.GetKeySwitchers(), Precision: meta.GetPrecision(), Results: cells,
				SessionSeconds: took.Seconds(), LedgerSeconds: meta.GetLedgerSeconds()}
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
					if d := math.Abs(cells[i].Value - plain[i].Value); d > worst || math.IsNaN(d) {
						worst = d
					}
				}
				out.MaxAbsError = &worst
			}
			return printQuery(g.output, out)
		},
	}
	sf.register(cmd.Flags())
	cmd.Flags().StringSliceVar(&compare, "compare-plaintext", nil,
		"party config files whose CSV data to read directly and compute the same query in the clear (local demos and tests only)")
	return cmd
}

type receiptJSON struct {
	Height     int64  `json:"height"`
	TxHash     string `json:"tx_hash"`
	ApprovalTx string `json:"approval_tx"`
}

func fetch(ctx context.Context, client synodv1.AnalystClient, session string) (*synodv1.ResultMetadata, []byte, error) {
	stream, err := client.FetchResult(ctx, &synodv1.FetchResultRequest{Session: session})
	if err != nil {
		return nil, nil, grpcErr(err)
	}
	var meta *synodv1.ResultMetadata
	var ct wire.Assembler
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, grpcErr(err)
		}
		switch p := msg.GetPart().(type) {
		case *synodv1.FetchResultResponse_Metadata:
			meta = p.Metadata
		case *synodv1.FetchResultResponse_Ciphertext:
			if err := ct.Add(p.Ciphertext); err != nil {
				return nil, nil, fmt.Errorf("result: %w", err)
			}
		}
	}
	if meta == nil {
		return nil, nil, fmt.Errorf("result without metadata")
	}
	b, err := ct.Bytes()
	if err != nil {
		return nil, nil, fmt.Errorf("result: %w", err)
	}
	return meta, b, nil
}

// plaintextResult computes spec in the clear over the CSV files of the given
// party configs, restricted to the parties whose data the result covers.
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
		t, err := datasource.LoadCSV(spec.GetDataset(), ds.CSV)
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
		Use:   "plaintext --party-config FILE... --dataset D --agg ...",
		Short: "Compute a query in the clear from the parties' own files (local demos and tests only)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, err := sf.spec()
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
			return printQuery(g.output, queryResult{Dataset: spec.GetDataset(), Contributors: ids, Results: cells})
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
	header := []string{"statistic", "value"}
	if r.Plaintext != nil {
		header = []string{"statistic", "encrypted result", "plaintext", "abs error"}
	}
	rows := [][]string{header}
	for i, c := range r.Results {
		row := []string{c.Name, formatValue(c.Value)}
		if r.Plaintext != nil {
			row = append(row, formatValue(r.Plaintext[i].Value), fmt.Sprintf("%.2g", math.Abs(c.Value-r.Plaintext[i].Value)))
		}
		rows = append(rows, row)
	}
	if err := printRows(format, rows); err != nil {
		return err
	}
	if format == "table" && r.Session != "" {
		fmt.Printf("promised precision: ±%.2g per value (noise flooding)\n", r.Precision)
		if r.Receipt != nil {
			fmt.Printf("receipt: transcript tx %s at height %d (check it: mpcctl audit verify %s)\n", r.Receipt.TxHash, r.Receipt.Height, r.Session)
		}
	}
	return nil
}

func formatValue(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.6f", v)
}
