package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/client/analyst"
	"github.com/synod-mpc/synod/parties/config"
)

// connect loads the analyst's config (flags over environment over file)
// and connects to its node.
func connect(g *globals, cmd *cobra.Command) (*analyst.Client, error) {
	if g.config == "" {
		return nil, fmt.Errorf("no analyst config: pass --config FILE or set SYNOD_CONFIG")
	}
	cfg, err := config.LoadAnalyst(g.config, cmd.Flags())
	if err != nil {
		return nil, err
	}
	return analyst.Connect(cfg)
}

// printEvents prints a session's progress events to stderr, unless quiet.
func printEvents(quiet bool) analyst.EventFunc {
	if quiet {
		return nil
	}
	return func(ev *synodv1.Event, elapsed time.Duration) {
		fmt.Fprintf(os.Stderr, "  [%6.2fs] %-20s %s\n", float64(elapsed)/1e9, ev.GetStage(), ev.GetMessage())
	}
}

// runSession runs a query or a validation (what names it in errors),
// printing its session id and progress to stderr in table output, and
// keeps the result for audit.
func runSession(g *globals, cmd *cobra.Command, spec *synodv1.QuerySpec, what string) (*analyst.Session, error) {
	a, err := connect(g, cmd)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	progress := analyst.Progress{Event: printEvents(g.output != "table")}
	if g.output == "table" {
		progress.Submitted = func(session string) { fmt.Fprintf(os.Stderr, "session %s\n", session) }
	}
	s, err := a.Run(context.Background(), spec, progress)
	if failed, ok := errors.AsType[*analyst.FailedError](err); ok {
		return nil, fmt.Errorf("%s failed: %s", what, failed.Reason)
	}
	if err != nil {
		return nil, grpcErr(err)
	}
	return s, nil
}
