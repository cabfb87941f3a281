package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/synod-mpc/synod/parties/config"
)

// TestPartyFlags: mpcnode takes every flag config.PartyFlags defines, under
// both spellings of a key, and the loader reads them from its flag set:
// key flags over the environment, --set down to a dataset's column mapping.
func TestPartyFlags(t *testing.T) {
	ref := pflag.NewFlagSet("reference", pflag.ContinueOnError)
	config.PartyFlags(ref)
	root := newRoot()
	n := 0
	ref.VisitAll(func(f *pflag.Flag) {
		n++
		for _, name := range []string{f.Name, strings.ReplaceAll(f.Name, "_", "-")} {
			if g := root.Flags().Lookup(name); g == nil || g.Value.Type() != f.Value.Type() {
				t.Errorf("mpcnode has no %s flag --%s", f.Value.Type(), name)
			}
		}
	})
	if n == 0 {
		t.Fatal("config.PartyFlags defined no flag")
	}

	dir := t.TempDir()
	for _, f := range []string{"consortium.yaml", "schema.yaml", "ca.pem", "tls.pem", "tls-key.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "party-1.yaml")
	if err := os.WriteFile(path, []byte(`id: party-1
listen: 127.0.0.1:7401
consortium: consortium.yaml
schema: schema.yaml
tls: {ca: ca.pem, cert: tls.pem, key: tls-key.pem}
identity: {key_file: identity.key}
datasets:
  cohort:
    postgres: {dsn_env: COHORT_DSN, table: person, columns: {age: age_years}}
ledger: {home: chain, p2p_listen: 127.0.0.1:7501, rpc_listen: 127.0.0.1:7601, node_key_file: n.key, validator_key_file: v.key}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SYNOD_LISTEN", "127.0.0.1:7402")
	t.Setenv("SYNOD_LOG_LEVEL", "warn")
	root = newRoot()
	if err := root.ParseFlags([]string{"--config", path, "--listen", "127.0.0.1:7403", "--data-dir", dir, "--ledger.fast-blocks",
		"--set", "datasets.cohort.postgres.columns.Systolic_BP=sbp", "--set", "policy.columns.cohort=age,Systolic_BP"}); err != nil {
		t.Fatal(err)
	}
	p, err := config.LoadParty(path, root.Flags())
	if err != nil {
		t.Fatal(err)
	}
	pg := p.Datasets["cohort"].Postgres
	if p.Listen != "127.0.0.1:7403" || p.Log.Level != "warn" || p.DataDir != dir || !p.Ledger.FastBlocks ||
		pg == nil || pg.Columns["age"] != "age_years" || pg.Columns["Systolic_BP"] != "sbp" ||
		strings.Join(p.Policy.Columns["cohort"], ",") != "age,Systolic_BP" {
		t.Fatalf("flags not applied: %+v, postgres %+v", p, pg)
	}
}
