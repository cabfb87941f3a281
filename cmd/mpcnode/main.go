// Command mpcnode runs one Synod party node: it serves the node-to-node and
// analyst gRPC services with mutual TLS, takes part in the consortium's key
// generation and answers queries over its own data.
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
		Long: `mpcnode runs one party of a Synod consortium.

Every config key can be overridden by an environment variable SYNOD_<KEY>
(dots become underscores, e.g. SYNOD_LISTEN, SYNOD_DATA_DIR, SYNOD_LOG_LEVEL)
or by the flags below. The keystore passphrase comes from the environment
variable named by keystore.passphrase_env (default SYNOD_PASSPHRASE) or the
file named by keystore.passphrase_file; it is never logged.`,
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
			log := newLogger(cfg.Log.Level, cfg.Log.Format)
			n, err := node.New(cfg, log)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return n.Serve(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "party config file (YAML)")
	// One flag per config key; a flag overrides the file and SYNOD_* only
	// when it is given.
	for _, k := range []struct{ key, help string }{
		{"id", "party id"},
		{"listen", "address to serve gRPC on (host:port)"},
		{"data_dir", "directory for the node's state"},
		{"consortium", "consortium file"},
		{"schema", "consortium schema file; every dataset is checked against it at start"},
		{"tls.ca", "consortium CA certificate (PEM)"},
		{"tls.cert", "this node's certificate (PEM)"},
		{"tls.key", "this node's TLS key (PEM)"},
		{"identity.key_file", "sealed identity key"},
		{"keystore.passphrase_env", "environment variable holding the keystore passphrase"},
		{"keystore.passphrase_file", "file holding the keystore passphrase"},
		{"log.level", "log level: debug, info, warn, error"},
		{"log.format", "log format: text or json"},
		{"timeouts.peer", "how long to wait for a peer (e.g. 10s)"},
		{"timeouts.session", "how long a session may take (e.g. 10m)"},
		{"ledger.mode", "embedded (run a validator) or remote"},
		{"ledger.home", "home directory of the embedded validator"},
		{"ledger.p2p_listen", "chain p2p address (host:port)"},
		{"ledger.rpc_listen", "chain RPC address (host:port)"},
		{"ledger.peers", "chain peers, comma-separated nodeid@host:port"},
		{"ledger.node_key_file", "sealed chain node key"},
		{"ledger.validator_key_file", "sealed chain validator key"},
		{"ledger.remote", "chain RPC address in remote mode (host:port)"},
		{"policy.analysts", "analysts allowed to query this party, comma-separated (default: every consortium analyst)"},
		{"policy.min_cohort", "smallest count a released cell may have (0: no minimum)"},
		{"policy.dp.max_epsilon", "largest epsilon one query may spend (0: no limit)"},
		{"policy.dp.budget", "total epsilon each analyst may spend (0: unbounded)"},
	} {
		f.String(k.key, "", k.help)
	}
	f.Bool("policy.dp.require", false, "contribute only to differentially private queries")
	f.Bool("ledger.fast_blocks", false, "commit blocks as fast as loopback allows (local demos and tests)")
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
