package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/synod-mpc/synod/parties/consortium"
)

func newConsortiumCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "consortium", Short: "Create and inspect a consortium"}
	var opts consortium.InitOptions
	var datasets []string
	initCmd := &cobra.Command{
		Use:   "init --dir DIR --parties N --threshold T",
		Short: "Write a complete local consortium: CA, certificates, identity keys, configs",
		Long: `init writes a consortium CA, one TLS certificate and one identity key per party
and analyst (sealed at rest with a generated passphrase kept in DIR/secrets),
one config per party and for the analyst, and the consortium file.

--dataset NAME=PATTERN declares a CSV dataset for every party; "{i}" in
PATTERN is replaced by the party's number (1..N). Every dataset must be in
the consortium schema (--schema, default the shipped configs/schema.yaml),
which is copied to DIR/schema.yaml; each node checks its data against it.

Every party is a validator of the consortium chain, and a BFT chain of n
validators commits only with more than 2n/3 of them up. --validators K adds
K validator-only members (validator-1..K, config DIR/validator-k.yaml, run
with mpcnode like a party): each runs a validator of the chain and nothing
else (no data, no key share, no part in setup or queries), so that the chain
survives as many parties down as the threshold does.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Datasets = map[string]map[string]string{}
			for _, d := range datasets {
				name, pattern, ok := strings.Cut(d, "=")
				if !ok || name == "" || pattern == "" {
					return fmt.Errorf("--dataset %q: want NAME=PATTERN, e.g. patients=data/patients-{i}.csv", d)
				}
				opts.Datasets[name] = map[string]string{}
				for i := 1; i <= opts.Parties; i++ {
					p := strings.ReplaceAll(pattern, "{i}", strconv.Itoa(i))
					abs, err := filepath.Abs(p)
					if err != nil {
						return err
					}
					if _, err := os.Stat(abs); err != nil {
						return fmt.Errorf("--dataset %s for party-%d: %w", name, i, err)
					}
					opts.Datasets[name][fmt.Sprintf("party-%d", i)] = abs
				}
			}
			if err := consortium.Init(opts); err != nil {
				return err
			}
			n := opts.Parties + opts.Validators
			summary := map[string]any{"dir": opts.Dir, "parties": opts.Parties, "threshold": opts.Threshold, "validators": opts.Validators,
				"chain_validators": n, "chain_quorum": 2*n/3 + 1,
				"consortium": filepath.Join(opts.Dir, "consortium.yaml"), "analyst_config": filepath.Join(opts.Dir, "analyst.yaml")}
			if g.output == "json" {
				return json.NewEncoder(os.Stdout).Encode(summary)
			}
			fmt.Printf("consortium of %d parties (threshold %d) written to %s\n", opts.Parties, opts.Threshold, opts.Dir)
			for i := 1; i <= opts.Parties; i++ {
				fmt.Printf("  start party %d:  mpcnode --config %s\n", i, filepath.Join(opts.Dir, fmt.Sprintf("party-%d.yaml", i)))
			}
			for k := 1; k <= opts.Validators; k++ {
				fmt.Printf("  start validator %d: mpcnode --config %s\n", k, filepath.Join(opts.Dir, fmt.Sprintf("validator-%d.yaml", k)))
			}
			fmt.Printf("  a query needs %d live parties and %d of the chain's %d validators (%d parties + %d validator-only)\n",
				opts.Threshold, 2*n/3+1, n, opts.Parties, opts.Validators)
			fmt.Printf("  analyst:        mpcctl --config %s setup\n", filepath.Join(opts.Dir, "analyst.yaml"))
			return nil
		},
	}
	f := initCmd.Flags()
	f.StringVar(&opts.Dir, "dir", "", "directory to write the consortium into (required)")
	f.IntVar(&opts.Parties, "parties", 3, "number of parties")
	f.IntVar(&opts.Threshold, "threshold", 2, "parties needed to decrypt")
	f.IntVar(&opts.Validators, "validators", 0, "validator-only members of the chain (validator-1..K): no data, no key share")
	f.IntVar(&opts.BasePort, "base-port", 7401, "party i listens on base-port+i-1")
	f.StringVar(&opts.Host, "host", "127.0.0.1", "host the parties listen on")
	f.StringVar(&opts.Parameters, "parameters", "", "parameter set (default ckks-n14)")
	f.BoolVar(&opts.FastBlocks, "fast-blocks", false, "commit chain blocks as fast as loopback allows (local demos and tests)")
	f.StringArrayVar(&datasets, "dataset", nil, "NAME=PATTERN: a CSV dataset per party ({i} = party number)")
	f.StringVar(&opts.Schema, "schema", "", "consortium schema copied to DIR/schema.yaml and named by every party config (default: the shipped configs/schema.yaml)")
	_ = initCmd.MarkFlagRequired("dir")
	cmd.AddCommand(initCmd)
	return cmd
}
