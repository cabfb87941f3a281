package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/synod-mpc/synod/client/analyst"
	"github.com/synod-mpc/synod/client/audit"
	"github.com/synod-mpc/synod/parties/config"
)

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Verify results against the consortium chain"}
	cmd.AddCommand(newAuditVerifyCmd(g), newAuditLogCmd(g))
	return cmd
}

// checkJSON is a check as `audit verify -o json` prints it.
type checkJSON struct {
	Name   string `json:"check"`
	OK     bool   `json:"ok"`
	Status string `json:"status"` // "ok", "FAIL" or "skipped"
	Detail string `json:"detail"`
}

// checkMarks are the status columns of the table output.
var checkMarks = map[audit.Status]string{audit.OK: "ok  ", audit.Fail: "FAIL", audit.Skip: "skip"}

func newAuditVerifyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "verify SESSION",
		Short: "Check a result's receipt, approval certificate and hash against the chain",
		Long: `verify checks, trusting only the consortium file (the chain's genesis and the
parties' identity keys):
  - the transcript's inclusion in a block, with CometBFT's light client,
    at the receipt's height, and the receipt's Merkle inclusion proof
    against that block's light-client-verified data hash,
  - the parties' setup records and the consortium BLS key they agree on,
  - the approval certificate against that key and the query that was run,
  - that the result held here hashes to what the transcript committed.
Every check runs unless one it depends on did not pass (it is then
reported as skipped, naming it). It prints each check as ok, FAIL or skip
and exits non-zero if any fails.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.LoadAnalyst(g.config, cmd.Flags())
			if err != nil {
				return err
			}
			a, err := audit.New(cfg.Consortium)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			checks := a.Verify(ctx, args[0], analyst.Results{DataDir: cfg.DataDir})
			failed, skipped := 0, 0
			for _, c := range checks {
				switch c.Status {
				case audit.Fail:
					failed++
				case audit.Skip:
					skipped++
				}
			}
			if g.output == "json" {
				out := make([]checkJSON, 0, len(checks))
				for _, c := range checks {
					out = append(out, checkJSON{Name: c.Name, OK: c.Status == audit.OK, Status: c.Status.String(), Detail: c.Detail})
				}
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				enc.Encode(map[string]any{"session": args[0], "ok": failed == 0 && skipped == 0, "checks": out})
			} else {
				for _, c := range checks {
					fmt.Printf("%s  %-24s %s\n", checkMarks[c.Status], c.Name, c.Detail)
				}
			}
			if failed > 0 || skipped > 0 {
				return fmt.Errorf("%d of %d checks failed, %d skipped", failed, len(checks), skipped)
			}
			if g.output != "json" {
				fmt.Printf("session %s verified\n", args[0])
			}
			return nil
		},
	}
}

func newAuditLogCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "log",
		Short: "List the sessions recorded on the chain",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.LoadAnalyst(g.config, cmd.Flags())
			if err != nil {
				return err
			}
			a, err := audit.New(cfg.Consortium)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			sessions, err := a.Log(ctx)
			if err != nil {
				return err
			}
			if g.output == "json" {
				return json.NewEncoder(os.Stdout).Encode(sessions)
			}
			rows := [][]string{{"session", "height", "outcome", "records"}}
			for _, s := range sessions {
				var kinds []string
				var height int64
				for _, e := range s.Entries {
					kinds = append(kinds, e.Kind+" by "+e.Sender)
					height = max(height, e.Height)
				}
				rows = append(rows, []string{s.Session, fmt.Sprint(height), audit.Outcome(s), strings.Join(kinds, "; ")})
			}
			return printRows(g.output, rows)
		},
	}
}
