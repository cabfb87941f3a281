// Command mpcnode runs one Synod party node: it serves the node-to-node and
// analyst gRPC services with mutual TLS, takes part in the consortium's key
// generation and answers queries over its own data. With a config of role
// validator it runs a validator-only member: the consortium chain's
// validator and nothing else.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/synod-mpc/synod/parties/config"
	"github.com/synod-mpc/synod/parties/node"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "mpcnode:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "mpcnode --config party.yaml",
		Short: "Run a Synod party node",
		Long: `mpcnode runs one party of a Synod consortium, or, with a config of
role validator (written by mpcctl consortium init --validators K), one
validator-only member: the consortium chain's validator and nothing else.

Every config key can be overridden by an environment variable SYNOD_<KEY>
(dots become underscores, e.g. SYNOD_LISTEN, SYNOD_DATA_DIR, SYNOD_LOG_LEVEL)
or by the flags below ('-' or '_': --data-dir, --data_dir). Keys named after a
dataset are set with the repeatable --set KEY=VALUE (--set
datasets.cohort.postgres.dsn_env=COHORT_DSN, --set
datasets.cohort.postgres.columns.age=age_years, --set
policy.columns.patients=age,sex) or, for a CSV file, --dataset NAME=FILE.csv.
A party with datasets names the consortium schema they are checked against
(schema, written by consortium init) or sets schema none to load them
unchecked. The keystore passphrase comes from the environment variable named
by keystore.passphrase_env (default SYNOD_PASSPHRASE) or the file named by
keystore.passphrase_file; it is never logged.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				configPath = os.Getenv("SYNOD_CONFIG")
			}
			if configPath == "" {
				return fmt.Errorf("no config: pass --config FILE or set SYNOD_CONFIG")
			}
			cfg, err := config.LoadParty(configPath, cmd.Flags())
			if err != nil {
				return err
			}
			release, err := lockDataDir(cfg.DataDir)
			if err != nil {
				return err
			}
			defer release()
			log := newLogger(cfg.Log.Level, cfg.Log.Format)
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if cfg.Role == config.RoleValidator {
				return node.RunValidator(ctx, cfg, log)
			}
			n, err := node.New(cfg, log)
			if err != nil {
				return err
			}
			return n.Serve(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "party config file (YAML)")
	// One flag per config key (--data-dir or --data_dir), plus the
	// repeatable --set KEY=VALUE and --dataset NAME=FILE.csv for the keys
	// named after a dataset; a flag overrides the file and SYNOD_* only
	// when it is given.
	config.PartyFlags(f)
	return cmd
}

func newLogger(level, format string) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
