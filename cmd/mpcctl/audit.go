package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/synod-mpc/synod/client/analyst"
	"github.com/synod-mpc/synod/client/audit"
	"github.com/synod-mpc/synod/client/auditweb"
	"github.com/synod-mpc/synod/parties/config"
	"github.com/synod-mpc/synod/parties/consortium"
)

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Verify results against the consortium chain"}
	cmd.AddCommand(newAuditVerifyCmd(g), newAuditLogCmd(g), newAuditServeCmd(g))
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
			failed, skipped := audit.Tally(checks)
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

// consortiumFile is the auditor's trust anchor: --consortium when no
// analyst config is given (an auditor need not be an analyst), else the
// analyst config's consortium (which --consortium overrides).
func consortiumFile(g *globals, cmd *cobra.Command) (string, error) {
	if f := cmd.Flags().Lookup("consortium"); f != nil && f.Changed && g.config == "" {
		return f.Value.String(), nil
	}
	cfg, err := config.LoadAnalyst(g.config, cmd.Flags())
	if err != nil {
		return "", err
	}
	return cfg.Consortium, nil
}

func newAuditServeCmd(g *globals) *cobra.Command {
	var (
		listen    string
		maxUpload int64
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve a read-only web page of the sessions on the chain and their verification",
		Long: `serve serves, on --listen, a read-only web page that lists the sessions on
the consortium chain (time, kind, analyst, the parties that approved,
contributors, outcome, epsilon) and shows, for each, the checks of
'mpcctl audit verify': without a result, what the chain alone proves (the
transcript's and the approval's inclusion, the setup records, the approval
certificate); with the analyst's result uploaded through the page (the
files results/SESSION.json and results/SESSION.ct of the analyst's data
directory), every check. The page trusts only the consortium file
(--consortium, or the analyst config's). It prints its address and serves
until interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			file, err := consortiumFile(g, cmd)
			if err != nil {
				return err
			}
			a, err := audit.New(file)
			if err != nil {
				return err
			}
			raw, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			cons, err := consortium.Load(file)
			if err != nil {
				return err
			}
			digest := sha256.Sum256(raw)
			anchor := auditweb.Anchor{File: file, Digest: hex.EncodeToString(digest[:]), Name: cons.Name,
				ChainID: cons.Chain.ID, Parties: cons.PartyIDs(), Threshold: cons.Threshold}
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("audit page: %w", err)
			}
			srv := &http.Server{
				Handler:           auditweb.New(a, auditweb.Options{Anchor: anchor, MaxUpload: maxUpload << 20, Log: log}),
				ReadHeaderTimeout: 10 * time.Second,
				ReadTimeout:       2 * time.Minute,
				// A verification may take auditweb.DefaultVerifyTimeout.
				WriteTimeout:   auditweb.DefaultVerifyTimeout + time.Minute,
				IdleTimeout:    2 * time.Minute,
				MaxHeaderBytes: 64 << 10,
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			fmt.Printf("audit page at http://%s/\n", ln.Addr())
			log.Info("serving the audit page", "addr", ln.Addr().String(), "consortium", file)
			select {
			case err := <-served:
				return fmt.Errorf("audit page: %w", err)
			case <-ctx.Done():
			}
			shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("audit page: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8480", "address to serve the page on (host:port; port 0 picks one)")
	cmd.Flags().Int64Var(&maxUpload, "max-upload", auditweb.DefaultMaxUpload>>20, "largest result upload, in MiB")
	return cmd
}
