package config

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

const analystYAML = `
id: analyst
node: 127.0.0.1:7401
node_id: party-1
consortium: consortium.yaml
tls: {ca: ca.pem, cert: p1/tls.pem, key: p1/tls-key.pem}
identity: {key_file: analyst/identity.key}
keystore: {passphrase_file: secrets/analyst.pass}
`

// TestAnalystFlags: every analyst key has a flag, and a flag wins over the
// environment, which wins over the file.
func TestAnalystFlags(t *testing.T) {
	path := setup(t, analystYAML)
	dir := filepath.Dir(path)
	fs := pflag.NewFlagSet("mpcctl", pflag.ContinueOnError)
	AnalystFlags(fs)
	parse := func(args ...string) *pflag.FlagSet {
		fs := pflag.NewFlagSet("mpcctl", pflag.ContinueOnError)
		AnalystFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return fs
	}

	a, err := LoadAnalyst(path, parse())
	if err != nil || a.Node != "127.0.0.1:7401" || a.NodeID != "party-1" {
		t.Fatalf("file: %+v %v", a, err)
	}
	t.Setenv("SYNOD_NODE", "127.0.0.1:7402")
	t.Setenv("SYNOD_NODE_ID", "party-2")
	a, err = LoadAnalyst(path, parse())
	if err != nil || a.Node != "127.0.0.1:7402" || a.NodeID != "party-2" {
		t.Fatalf("env over file: %+v %v", a, err)
	}
	a, err = LoadAnalyst(path, parse("--node", "127.0.0.1:7403", "--node-id", "party-3", "--data-dir", "elsewhere",
		"--tls.cert", filepath.Join(dir, "other.pem"), "--identity.key-file", "id.key", "--keystore.passphrase_env", "MY_PASS"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Node != "127.0.0.1:7403" || a.NodeID != "party-3" || a.TLS.Cert != filepath.Join(dir, "other.pem") || a.Keystore.PassphraseEnv != "MY_PASS" {
		t.Fatalf("flag over env: %+v", a)
	}
	// relative paths from a flag are relative to the working directory
	if wd, _ := filepath.Abs("."); a.DataDir != filepath.Join(wd, "elsewhere") || a.Identity.KeyFile != filepath.Join(wd, "id.key") {
		t.Fatalf("flag paths: data_dir %q, identity.key_file %q", a.DataDir, a.Identity.KeyFile)
	}
	// an error names the flag it came from
	_, err = LoadAnalyst(path, parse("--tls.ca", "missing.pem"))
	if err == nil || !strings.Contains(err.Error(), "flag --tls.ca") {
		t.Fatalf("want an error naming the flag, got %v", err)
	}
}

// TestPartyFlags: --data-dir and --data_dir, --set for any key including
// dataset and policy.columns keys, --dataset for a CSV dataset.
func TestPartyFlags(t *testing.T) {
	path := setup(t, good)
	dir := filepath.Dir(path)
	parse := func(args ...string) *pflag.FlagSet {
		fs := pflag.NewFlagSet("mpcnode", pflag.ContinueOnError)
		PartyFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return fs
	}
	for _, flag := range []string{"--data-dir", "--data_dir"} {
		p, err := LoadParty(path, parse(flag, "/srv/p1"))
		if err != nil || p.DataDir != "/srv/p1" {
			t.Fatalf("%s: %+v %v", flag, p, err)
		}
	}
	p, err := LoadParty(path, parse("--ledger.p2p-listen", "127.0.0.1:1", "--policy.dp.require", "--timeouts.session", "2m"))
	if err != nil || p.Ledger.P2PListen != "127.0.0.1:1" || !p.Policy.DP.Require || p.Timeouts.Session.String() != "2m0s" {
		t.Fatalf("%+v %v", p, err)
	}

	other := filepath.Join(dir, "other.pem")
	t.Setenv("SYNOD_DATASETS_PATIENTS_CSV", filepath.Join(dir, "missing.csv"))
	p, err = LoadParty(path, parse(
		"--dataset", "patients="+other, // over the environment and the file
		"--dataset", "Extra="+filepath.Join(dir, "p1/patients.csv"),
		"--set", "datasets.cohort.postgres.dsn_env=COHORT_DSN",
		"--set", "datasets.cohort.postgres.table=omop.person",
		"--set", "policy.columns.Patients=age, sex",
		"--set", "listen=127.0.0.1:9",
		"--set", "log.level=debug",
	))
	if err != nil {
		t.Fatal(err)
	}
	if p.Datasets["patients"].CSV != other || p.Datasets["extra"].CSV != filepath.Join(dir, "p1/patients.csv") {
		t.Fatalf("--dataset: %+v", p.Datasets)
	}
	if pg := p.Datasets["cohort"].Postgres; pg == nil || pg.DSNEnv != "COHORT_DSN" || pg.Table != "omop.person" {
		t.Fatalf("--set datasets.cohort.postgres: %+v", p.Datasets["cohort"])
	}
	if cols := p.Policy.Columns["Patients"]; strings.Join(cols, ",") != "age,sex" {
		t.Fatalf("--set policy.columns: %+v", p.Policy.Columns)
	}
	if p.Listen != "127.0.0.1:9" || p.Log.Level != "debug" {
		t.Fatalf("--set scalar: %+v", p)
	}
	t.Setenv("SYNOD_DATASETS_PATIENTS_CSV", "")

	for args, want := range map[string]string{
		"--set nokey":                                   "want KEY=VALUE",
		"--set colour=blue":                             `unknown key "colour"`,
		"--set datasets.x.postgres.port=5432":           "unknown key",
		"--dataset =x.csv":                              "want NAME=FILE",
		"--set listen=127.0.0.1:1 --listen 127.0.0.1:2": "set twice",
		"--dataset a=x.csv --set datasets.a.csv=y.csv":  "set twice",
		"--set datasets.patients.postgres.dsn=postgres://x --set datasets.patients.postgres.table=t": "both set",
	} {
		_, err := LoadParty(path, parse(strings.Fields(args)...))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: want an error containing %q, got %v", args, want, err)
		}
	}
}
