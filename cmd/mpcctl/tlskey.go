package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/synod-mpc/synod/client/analyst"
	"github.com/synod-mpc/synod/parties/config"
)

// newExportTLSKeyCmd writes the analyst's TLS key, unsealed, for tools that
// read only a plain PEM key (grpcurl).
func newExportTLSKeyCmd(g *globals) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "export-tls-key --out FILE",
		Short: "Write the analyst's TLS key unsealed (PEM, mode 0600) for tools such as grpcurl",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out is required")
			}
			if g.config == "" {
				return fmt.Errorf("no analyst config: pass --config FILE or set SYNOD_CONFIG")
			}
			cfg, err := config.LoadAnalyst(g.config, cmd.Flags())
			if err != nil {
				return err
			}
			creds, err := analyst.LoadCredentials(cfg.TLS, cfg.Keystore)
			if err != nil {
				return err
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			if _, err := f.Write(creds.Key); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write (must not exist)")
	return cmd
}
