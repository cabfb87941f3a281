package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// setup writes a party config and the files it names into a temporary
// directory and returns the config path.
func setup(t *testing.T, yaml string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"consortium.yaml", "ca.pem", "p1/tls.pem", "p1/tls-key.pem", "other.pem", "p1/patients.csv", "schema.yaml"} {
		p := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "party-1.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const good = `
id: party-1
listen: 127.0.0.1:7401
consortium: consortium.yaml
schema: schema.yaml
data_dir: p1/data
tls:
  ca: ca.pem
  cert: p1/tls.pem
  key: p1/tls-key.pem
identity:
  key_file: p1/identity.key
keystore:
  passphrase_file: secrets/party-1.pass
datasets:
  patients:
    csv: p1/patients.csv
timeouts:
  peer: 3s
ledger:
  home: p1/chain
  p2p_listen: 127.0.0.1:26656
  rpc_listen: 127.0.0.1:26657
  node_key_file: p1/chain/node_key.sealed
  validator_key_file: p1/chain/validator_key.sealed
`

func TestLoadParty(t *testing.T) {
	path := setup(t, good)
	dir := filepath.Dir(path)
	p, err := LoadParty(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		p.Consortium:               filepath.Join(dir, "consortium.yaml"),
		p.TLS.Cert:                 filepath.Join(dir, "p1/tls.pem"),
		p.DataDir:                  filepath.Join(dir, "p1/data"),
		p.Identity.KeyFile:         filepath.Join(dir, "p1/identity.key"),
		p.Keystore.PassphraseFile:  filepath.Join(dir, "secrets/party-1.pass"),
		p.Datasets["patients"].CSV: filepath.Join(dir, "p1/patients.csv"),
	}
	for got, w := range want {
		if got != w {
			t.Errorf("resolved %q, want %q", got, w)
		}
	}
	if p.ID != "party-1" || p.Listen != "127.0.0.1:7401" || p.Path() != path {
		t.Fatalf("%+v", p)
	}
	if p.Keystore.PassphraseEnv != "SYNOD_PASSPHRASE" || p.Log.Level != "info" || p.Log.Format != "text" {
		t.Fatalf("defaults: %+v", p)
	}
	if p.Timeouts.Peer != 3*time.Second || p.Timeouts.Session != 10*time.Minute {
		t.Fatalf("timeouts %+v", p.Timeouts)
	}
}

func TestEnvOverride(t *testing.T) {
	path := setup(t, good)
	dir := filepath.Dir(path)
	t.Setenv("SYNOD_LISTEN", "0.0.0.0:9000")
	t.Setenv("SYNOD_TLS_CERT", filepath.Join(dir, "other.pem"))
	t.Setenv("SYNOD_LOG_LEVEL", "debug")
	t.Setenv("SYNOD_TIMEOUTS_SESSION", "1m")
	t.Setenv("SYNOD_DATASETS_PATIENTS_CSV", filepath.Join(dir, "other.pem"))
	p, err := LoadParty(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Listen != "0.0.0.0:9000" || p.TLS.Cert != filepath.Join(dir, "other.pem") || p.Log.Level != "debug" || p.Timeouts.Session != time.Minute {
		t.Fatalf("env not applied: %+v", p)
	}
	if p.Datasets["patients"].CSV != filepath.Join(dir, "other.pem") {
		t.Fatalf("dataset env not applied: %+v", p.Datasets)
	}
	// a relative path from the environment is relative to the working directory
	t.Setenv("SYNOD_TLS_CERT", "does-not-exist.pem")
	_, err = LoadParty(path, nil)
	if err == nil || !strings.Contains(err.Error(), `"tls.cert"`) || !strings.Contains(err.Error(), "SYNOD_TLS_CERT") {
		t.Fatalf("want error naming tls.cert and its env source, got %v", err)
	}
}

func TestFlagOverride(t *testing.T) {
	path := setup(t, good)
	fs := pflag.NewFlagSet("mpcnode", pflag.ContinueOnError)
	fs.String("listen", "", "")
	fs.String("log-level", "", "") // not a key: log.level has a dot
	fs.String("log.format", "", "")
	fs.String("config", "", "") // unrelated flag
	fs.Duration("timeouts.peer", time.Second, "")
	if err := fs.Parse([]string{"--listen", "127.0.0.1:1", "--log.format", "json"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SYNOD_LISTEN", "0.0.0.0:9000")
	p, err := LoadParty(path, fs)
	if err != nil {
		t.Fatal(err)
	}
	if p.Listen != "127.0.0.1:1" || p.Log.Format != "json" {
		t.Fatalf("flags not applied: %+v", p)
	}
	if p.Timeouts.Peer != 3*time.Second {
		t.Fatalf("unchanged flag default overrode the file: %v", p.Timeouts.Peer)
	}
}

func TestErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"missing id", strings.Replace(good, "id: party-1", "", 1), []string{`missing required key "id"`, "party-1.yaml"}},
		{"missing listen", strings.Replace(good, "listen: 127.0.0.1:7401", "", 1), []string{`"listen"`}},
		{"bad listen", strings.Replace(good, "127.0.0.1:7401", "nowhere", 1), []string{`"listen"`, "host:port"}},
		{"missing consortium", strings.Replace(good, "consortium: consortium.yaml", "", 1), []string{`"consortium"`}},
		{"consortium file absent", strings.Replace(good, "consortium: consortium.yaml", "consortium: nope.yaml", 1), []string{`"consortium"`, "nope.yaml", "no such file"}},
		{"tls key absent", strings.Replace(good, "key: p1/tls-key.pem", "key: p1/missing.pem", 1), []string{`"tls.key"`, "missing.pem"}},
		{"unknown top", good + "colour: blue\nshade: {}\n", []string{"unknown key(s) colour, shade"}},
		{"unknown policy key", good + "policy:\n  min_cohort: 5\n  dp: {budget: 1, epsilon: 2}\n  quorum: 3\n", []string{"policy.dp.epsilon", "policy.quorum"}},
		{"policy columns not a list", good + "policy:\n  columns: {patients: age}\n", []string{`"policy.columns.patients"`, "list of column names"}},
		{"negative min cohort", good + "policy:\n  min_cohort: -1\n", []string{"policy.min_cohort", "negative"}},
		{"negative budget", good + "policy:\n  dp: {budget: -2}\n", []string{"policy.dp.budget", "negative"}},
		{"unknown nested", strings.Replace(good, "  ca: ca.pem", "  ca: ca.pem\n  ciphers: all", 1), []string{"tls.ciphers"}},
		{"unknown dataset key", strings.Replace(good, "    csv: p1/patients.csv", "    csv: p1/patients.csv\n    sql: x", 1), []string{"datasets.patients.sql"}},
		{"bad level", good + "log:\n  level: loud\n", []string{`"log.level"`, "loud"}},
		{"bad yaml", "id: [", []string{"not valid YAML"}},
		{"bad timeout", strings.Replace(good, "peer: 3s", "peer: -1s", 1), []string{`"timeouts.peer"`}},
		{"bad ledger mode", strings.Replace(good, "ledger:\n", "ledger:\n  mode: sideways\n", 1), []string{`"ledger.mode"`}},
		{"missing ledger home", strings.Replace(good, "  home: p1/chain\n", "", 1), []string{`"ledger.home"`}},
		{"bad rpc listen", strings.Replace(good, "127.0.0.1:26657", "rpc", 1), []string{`"ledger.rpc_listen"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadParty(setup(t, c.yaml), nil)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := LoadParty(filepath.Join(t.TempDir(), "absent.yaml"), nil); err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Fatalf("absent file: %v", err)
	}
}

func TestPolicy(t *testing.T) {
	path := setup(t, good+`
policy:
  analysts: [analyst, auditor]
  columns:
    Patients: [age, bmi]
  min_cohort: 10
  dp: {require: true, max_epsilon: 0.5, budget: 2}
`)
	p, err := LoadParty(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	pol := p.Policy
	if !slices.Equal(pol.Analysts, []string{"analyst", "auditor"}) || pol.MinCohort != 10 || !pol.DP.Require ||
		pol.DP.MaxEpsilon != 0.5 || pol.DP.Budget != 2 || !slices.Equal(pol.Columns["Patients"], []string{"age", "bmi"}) {
		t.Fatalf("policy %+v", pol)
	}
	// Environment variables override scalars; analysts as a comma list.
	t.Setenv("SYNOD_POLICY_ANALYSTS", "alice, bob")
	t.Setenv("SYNOD_POLICY_DP_BUDGET", "3.5")
	t.Setenv("SYNOD_POLICY_MIN_COHORT", "20")
	if p, err = LoadParty(path, nil); err != nil {
		t.Fatal(err)
	}
	if pol := p.Policy; !slices.Equal(pol.Analysts, []string{"alice", "bob"}) || pol.DP.Budget != 3.5 || pol.MinCohort != 20 {
		t.Fatalf("environment not applied: %+v", pol)
	}
}

func TestAnalyst(t *testing.T) {
	path := setup(t, `
id: analyst
node: 127.0.0.1:7401
node_id: party-1
consortium: consortium.yaml
tls: {ca: ca.pem, cert: p1/tls.pem, key: p1/tls-key.pem}
identity: {key_file: analyst/identity.key}
keystore: {passphrase_file: secrets/analyst.pass}
`)
	a, err := LoadAnalyst(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(path)
	if a.Node != "127.0.0.1:7401" || a.NodeID != "party-1" || a.TLS.CA != filepath.Join(dir, "ca.pem") || a.DataDir != filepath.Join(dir, "data") {
		t.Fatalf("%+v", a)
	}
	t.Setenv("SYNOD_NODE", "127.0.0.1:7402")
	t.Setenv("SYNOD_NODE_ID", "party-2")
	a, err = LoadAnalyst(path, nil)
	if err != nil || a.Node != "127.0.0.1:7402" || a.NodeID != "party-2" {
		t.Fatalf("%+v %v", a, err)
	}
	t.Setenv("SYNOD_NODE_ID", "")
	bad := setup(t, "id: analyst\nnode: 127.0.0.1:7401\nlisten: x\n")
	if _, err := LoadAnalyst(bad, nil); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("analyst with listen: %v", err)
	}
}

func TestSaveRoundTrip(t *testing.T) {
	path := setup(t, good)
	dir := filepath.Dir(path)
	p := DefaultParty()
	p.ID, p.Listen, p.Consortium, p.Schema = "party-1", "127.0.0.1:7401", "consortium.yaml", "schema.yaml"
	p.TLS = TLSFiles{CA: "ca.pem", Cert: "p1/tls.pem", Key: "p1/tls-key.pem"}
	p.Identity.KeyFile = "p1/identity.key"
	p.Datasets = map[string]Dataset{"patients": {CSV: "p1/patients.csv"}}
	p.Ledger = Ledger{Mode: "remote", Remote: "127.0.0.1:26657"}
	out := filepath.Join(dir, "saved.yaml")
	if err := SaveParty(out, &p); err != nil {
		t.Fatal(err)
	}
	q, err := LoadParty(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q.Timeouts != p.Timeouts || q.TLS.CA != filepath.Join(dir, "ca.pem") || q.Datasets["patients"].CSV != filepath.Join(dir, "p1/patients.csv") ||
		q.Schema != filepath.Join(dir, "schema.yaml") {
		t.Fatalf("%+v", q)
	}
}

const pgDataset = `
datasets:
  patients:
    postgres:
      dsn_env: HOSPITAL_PG_DSN
      table: omop.person
      columns:
        age: 2026 - year_of_birth
        Systolic_BP: sbp
  visits:
    postgres:
      dsn: postgres://synod@db.example:5432/ehr
      query: |
        SELECT p.age AS age, m.value_as_number AS bmi
        FROM person p JOIN measurement m USING (person_id)
`

func withDatasets(ds string) string {
	return strings.Replace(good, "datasets:\n  patients:\n    csv: p1/patients.csv\n", ds[1:], 1)
}

func TestPostgresDataset(t *testing.T) {
	path := setup(t, withDatasets(pgDataset))
	dir := filepath.Dir(path)
	p, err := LoadParty(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Schema != filepath.Join(dir, "schema.yaml") {
		t.Errorf("schema %q", p.Schema)
	}
	pg := p.Datasets["patients"].Postgres
	if pg == nil || p.Datasets["patients"].CSV != "" || pg.DSNEnv != "HOSPITAL_PG_DSN" || pg.DSN != "" || pg.Table != "omop.person" || pg.Query != "" {
		t.Fatalf("patients %+v", p.Datasets["patients"])
	}
	// column names keep their case (viper would lower-case them)
	if len(pg.Columns) != 2 || pg.Columns["age"] != "2026 - year_of_birth" || pg.Columns["Systolic_BP"] != "sbp" {
		t.Fatalf("columns %v", pg.Columns)
	}
	v := p.Datasets["visits"].Postgres
	if v == nil || v.DSN != "postgres://synod@db.example:5432/ehr" || !strings.HasPrefix(v.Query, "SELECT p.age AS age") || v.Table != "" {
		t.Fatalf("visits %+v", v)
	}
	src := p.Datasets["patients"].Source()
	if src.Postgres == nil || src.Postgres.Table != "omop.person" || src.Postgres.Columns["Systolic_BP"] != "sbp" || src.Describe() != "postgres table omop.person" {
		t.Fatalf("source %+v", src)
	}

	// environment overrides of a postgres source
	t.Setenv("SYNOD_DATASETS_PATIENTS_POSTGRES_TABLE", "omop.person_v2")
	t.Setenv("SYNOD_DATASETS_VISITS_POSTGRES_DSN", "postgres://other/ehr")
	p, err = LoadParty(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Datasets["patients"].Postgres.Table != "omop.person_v2" || p.Datasets["visits"].Postgres.DSN != "postgres://other/ehr" {
		t.Fatalf("env not applied: %+v %+v", p.Datasets["patients"].Postgres, p.Datasets["visits"].Postgres)
	}

	// and back: SaveParty writes the postgres source as it was read
	out := filepath.Join(dir, "saved.yaml")
	if err := SaveParty(out, p); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SYNOD_DATASETS_PATIENTS_POSTGRES_TABLE", "")
	t.Setenv("SYNOD_DATASETS_VISITS_POSTGRES_DSN", "")
	q, err := LoadParty(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q.Datasets["patients"].Postgres.Columns["Systolic_BP"] != "sbp" || q.Datasets["patients"].Postgres.Table != "omop.person_v2" || q.Schema != p.Schema {
		t.Fatalf("round trip %+v", q.Datasets["patients"].Postgres)
	}
}

// TestSchemaRequired: a party with datasets names the consortium schema
// they are checked against, or opts out with schema: none; a forgotten key
// is an error at load time, wherever the datasets come from.
func TestSchemaRequired(t *testing.T) {
	noSchema := strings.Replace(good, "schema: schema.yaml\n", "", 1)
	_, err := LoadParty(setup(t, noSchema), nil)
	for _, w := range []string{`missing key "schema"`, "patients", "SYNOD_SCHEMA", `"none"`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Fatalf("no schema, datasets in the file: want an error mentioning %s, got %v", w, err)
		}
	}
	noData := strings.Replace(noSchema, "datasets:\n  patients:\n    csv: p1/patients.csv\n", "", 1)
	p, err := LoadParty(setup(t, noData), nil)
	if err != nil || p.Schema != "" || p.SchemaFile() != "" {
		t.Fatalf("no schema, no datasets: %v %q", err, p.Schema)
	}
	fs := pflag.NewFlagSet("mpcnode", pflag.ContinueOnError)
	PartyFlags(fs)
	path := setup(t, noData)
	if err := fs.Parse([]string{"--dataset", "patients=" + filepath.Join(filepath.Dir(path), "p1/patients.csv")}); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadParty(path, fs); err == nil || !strings.Contains(err.Error(), `missing key "schema"`) {
		t.Fatalf("no schema, a dataset by flag: %v", err)
	}

	// the opt-out, in the file or by the environment, and kept by SaveParty
	path = setup(t, noSchema+"schema: none\n")
	p, err = LoadParty(path, nil)
	if err != nil || p.Schema != SchemaNone || p.SchemaFile() != "" {
		t.Fatalf("schema: none: %v %q", err, p.Schema)
	}
	out := filepath.Join(filepath.Dir(path), "saved.yaml")
	if err := SaveParty(out, p); err != nil {
		t.Fatal(err)
	}
	if q, err := LoadParty(out, nil); err != nil || q.SchemaFile() != "" {
		t.Fatalf("saved schema: none: %v", err)
	}
	t.Setenv("SYNOD_SCHEMA", "none")
	if p, err = LoadParty(setup(t, noSchema), nil); err != nil || p.SchemaFile() != "" {
		t.Fatalf("SYNOD_SCHEMA=none: %v", err)
	}
	t.Setenv("SYNOD_SCHEMA", "")
	p, err = LoadParty(setup(t, good), nil)
	if err != nil || p.SchemaFile() != p.Schema || !filepath.IsAbs(p.Schema) {
		t.Fatalf("schema file: %v %q", err, p.Schema)
	}
}

func TestDatasetErrors(t *testing.T) {
	pg := func(body string) string {
		return withDatasets("\ndatasets:\n  patients:\n    postgres:\n" + body)
	}
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"both sources", withDatasets("\ndatasets:\n  patients:\n    csv: p1/patients.csv\n    postgres: {dsn: x, table: t}\n"), []string{`"datasets.patients.csv"`, `"datasets.patients.postgres"`, "one source"}},
		{"no source", withDatasets("\ndatasets:\n  patients: {}\n"), []string{`dataset "patients"`, `"datasets.patients.csv" or "datasets.patients.postgres"`}},
		{"empty postgres", pg("      {}\n"), []string{`"datasets.patients.csv" or "datasets.patients.postgres"`}},
		{"no dsn", pg("      table: t\n"), []string{`missing key "datasets.patients.postgres.dsn"`, "dsn_env"}},
		{"dsn and dsn_env", pg("      dsn: x\n      dsn_env: Y\n      table: t\n"), []string{`"datasets.patients.postgres.dsn" and "datasets.patients.postgres.dsn_env" are both set`}},
		{"no table or query", pg("      dsn: x\n"), []string{`missing key "datasets.patients.postgres.table" or "datasets.patients.postgres.query"`}},
		{"table and query", pg("      dsn: x\n      table: t\n      query: SELECT 1\n"), []string{`"datasets.patients.postgres.table" and "datasets.patients.postgres.query" are both set`}},
		{"columns with query", pg("      dsn: x\n      query: SELECT 1 AS a\n      columns: {a: b}\n"), []string{`"datasets.patients.postgres.columns" is only for "datasets.patients.postgres.table"`}},
		{"empty expression", pg("      dsn: x\n      table: t\n      columns: {a: ''}\n"), []string{`column "a"`, "empty"}},
		{"columns not a map", pg("      dsn: x\n      table: t\n      columns: [a, b]\n"), []string{`"datasets.patients.postgres.columns" must be a mapping`}},
		{"expression not a string", pg("      dsn: x\n      table: t\n      columns: {a: {b: c}}\n"), []string{`column "a"`, "a string"}},
		{"unknown postgres key", pg("      dsn: x\n      table: t\n      password: hunter2\n"), []string{"unknown key(s) datasets.patients.postgres.password"}},
		{"postgres not a map", pg("      x\n"), []string{`"datasets.patients.postgres" must be a mapping`}},
		{"schema absent", strings.Replace(good, "schema: schema.yaml", "schema: nope.yaml", 1), []string{`"schema"`, "nope.yaml", "no such file"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadParty(setup(t, c.yaml), nil)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
