// Command mpcctl is the analyst's and operator's tool: it creates a local
// consortium, asks the consortium to generate its keys, runs queries and
// decrypts their results locally with the analyst's own key.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/synod-mpc/synod/parties/config"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "mpcctl:", err)
		os.Exit(1)
	}
}

type globals struct {
	config string
	output string
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "mpcctl",
		Short:         "Analyst and operator tool for a Synod consortium",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.config, "config", os.Getenv("SYNOD_CONFIG"), "analyst config file (YAML; default $SYNOD_CONFIG)")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table, json or csv")
	// One flag per analyst config key (--node, --node-id, --tls.cert...),
	// read by config.LoadAnalyst: flag over SYNOD_* over the file.
	config.AnalystFlags(pf)
	root.AddCommand(newConsortiumCmd(g), newSetupCmd(g), newPartiesCmd(g), newQueryCmd(g), newPlaintextCmd(g), newAuditCmd(g),
		newInferCmd(g), newTrainCmd(g), newModelCmd(g), newPredictCmd(g), newExportTLSKeyCmd(g))
	// --data-dir as well as --data_dir on every subcommand
	root.SetGlobalNormalizationFunc(config.NormalizeFlagName)
	return root
}
