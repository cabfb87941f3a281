package config

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/synod-mpc/synod/parties/policy"
)

// The keys of each configuration, written out: renaming a field's yaml tag
// or dropping a kind:"path" changes the configuration format, and must show
// here.
var (
	wantPartyKeys = []string{
		"consortium", "data_dir", "datasets.<dataset>.csv", "datasets.<dataset>.postgres.columns.<column>",
		"datasets.<dataset>.postgres.dsn", "datasets.<dataset>.postgres.dsn_env", "datasets.<dataset>.postgres.query",
		"datasets.<dataset>.postgres.table", "id", "identity.key_file", "keystore.passphrase_env", "keystore.passphrase_file",
		"ledger.fast_blocks", "ledger.home", "ledger.mode", "ledger.node_key_file", "ledger.p2p_listen", "ledger.peers",
		"ledger.remote", "ledger.rpc_listen", "ledger.validator_key_file", "listen", "log.format", "log.level",
		"policy.analysts", "policy.columns.<dataset>", "policy.dp.budget", "policy.dp.max_epsilon", "policy.dp.require",
		"policy.min_cohort", "policy.training.deny_gram", "role", "schema", "timeouts.peer", "timeouts.session", "tls.ca", "tls.cert", "tls.key",
	}
	wantAnalystKeys = []string{
		"consortium", "data_dir", "id", "identity.key_file", "keystore.passphrase_env", "keystore.passphrase_file",
		"node", "node_id", "tls.ca", "tls.cert", "tls.key",
	}
	wantPaths = []string{
		"consortium", "data_dir", "datasets.<dataset>.csv", "identity.key_file", "keystore.passphrase_file",
		"ledger.home", "ledger.node_key_file", "ledger.validator_key_file", "schema", "tls.ca", "tls.cert", "tls.key",
	}
)

func TestKeys(t *testing.T) {
	for _, c := range []struct {
		kind      string
		keys      []key
		want      []string
		flags     func(*pflag.FlagSet)
		wantPaths []string
	}{
		{"party", partyKeys, wantPartyKeys, PartyFlags, wantPaths},
		{"analyst", analystKeys, wantAnalystKeys, AnalystFlags, []string{"consortium", "data_dir", "identity.key_file", "keystore.passphrase_file", "tls.ca", "tls.cert", "tls.key"}},
	} {
		if got := knownList(c.keys); !slices.Equal(got, c.want) {
			t.Errorf("%s keys:\n got %v\nwant %v", c.kind, got, c.want)
		}
		var paths []string
		fs := pflag.NewFlagSet(c.kind, pflag.ContinueOnError)
		c.flags(fs)
		for _, k := range c.keys {
			if k.path {
				paths = append(paths, k.name)
			}
			if strings.Contains(k.name, "<>") {
				t.Errorf("%s key %s: a map without a names tag", c.kind, k.name)
			}
			if !k.value() {
				continue
			}
			if k.help == "" {
				t.Errorf("%s key %s has no help", c.kind, k.name)
			}
			if k.named() {
				if fs.Lookup(k.name) != nil {
					t.Errorf("%s key %s: a flag named after a pattern", c.kind, k.name)
				}
				continue
			}
			// a flag of its own, under both spellings, with the key's help
			for _, name := range []string{k.name, strings.ReplaceAll(k.name, "_", "-")} {
				f := fs.Lookup(name)
				if f == nil || f.Usage != k.help {
					t.Errorf("%s key %s: no flag --%s with its help", c.kind, k.name, name)
				}
			}
		}
		slices.Sort(paths)
		if !slices.Equal(paths, c.wantPaths) {
			t.Errorf("%s paths:\n got %v\nwant %v", c.kind, paths, c.wantPaths)
		}
	}
}

// TestDefaults: the defaults declared by the tags, as DefaultParty and
// DefaultAnalyst give them and as a loaded file without the keys gets them.
func TestDefaults(t *testing.T) {
	p := DefaultParty()
	want := Party{Role: RoleParty, DataDir: "data", Keystore: KeystoreSource{PassphraseEnv: "SYNOD_PASSPHRASE"},
		Log: Logging{Level: "info", Format: "text"}, Timeouts: Timeouts{Peer: 10 * time.Second, Session: 10 * time.Minute},
		Ledger: Ledger{Mode: "embedded"}}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("DefaultParty() = %+v, want %+v", p, want)
	}
	a := DefaultAnalyst()
	if wa := (Analyst{DataDir: "data", Keystore: KeystoreSource{PassphraseEnv: "SYNOD_PASSPHRASE"}}); !reflect.DeepEqual(a, wa) {
		t.Errorf("DefaultAnalyst() = %+v, want %+v", a, wa)
	}
}

// testValues are three values of a key's type, distinct from each other
// and from its default: for the file, the environment and a flag.
func testValues(t *testing.T, k key) [3]string {
	switch k.typ {
	case reflect.TypeFor[string](), reflect.TypeFor[[]string]():
		return [3]string{"file-value", "env-value", "flag-value"}
	case reflect.TypeFor[bool]():
		return [3]string{"true", "false", "true"}
	case reflect.TypeFor[int]():
		return [3]string{"1", "2", "3"}
	case reflect.TypeFor[float64]():
		return [3]string{"0.5", "1.5", "2.5"}
	case reflect.TypeFor[time.Duration]():
		return [3]string{"1s", "2s", "3s"}
	}
	t.Fatalf("key %s: no test values for %v", k.name, k.typ)
	return [3]string{}
}

// nested is the YAML mapping that sets the dotted key to val.
func nested(key string, val any) map[string]any {
	segs := strings.Split(key, ".")
	m := map[string]any{segs[len(segs)-1]: val}
	for i := len(segs) - 2; i >= 0; i-- {
		m = map[string]any{segs[i]: m}
	}
	return m
}

// written is the value of the dotted key in c written as YAML, as text.
func written(t *testing.T, c any, key string) string {
	b, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	for seg := range strings.SplitSeq(key, ".") {
		m, _ := v.(map[string]any)
		v = m[seg]
	}
	switch v := v.(type) {
	case nil:
		return ""
	case []any:
		return fmt.Sprint(v...)
	}
	return fmt.Sprint(v)
}

// TestEveryKeyOverridable: for every key of both configurations that is
// not named after a dataset, in a table: the default, then the file over
// it, the environment variable SYNOD_<KEY> over the file, its flag over the
// environment (spelt with '-' for '_'), and for a party --set KEY=VALUE as
// well; a relative path is resolved against the file's directory when it
// comes from the file or a default, and against the working directory
// otherwise. The decoded configuration is read back through its YAML, so
// the test does not share the loader's walk of the struct.
func TestEveryKeyOverridable(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		kind  string
		keys  []key
		flags func(*pflag.FlagSet)
		out   func() any
	}{
		{"party", partyKeys, PartyFlags, func() any { return &Party{} }},
		{"analyst", analystKeys, AnalystFlags, func() any { return &Analyst{} }},
	} {
		for _, k := range c.keys {
			if !k.value() || k.named() {
				continue
			}
			t.Run(c.kind+"/"+k.name, func(t *testing.T) {
				vals := testValues(t, k)
				dir := t.TempDir()
				load := func(doc map[string]any, args ...string) string {
					t.Helper()
					path := filepath.Join(dir, "config.yaml")
					b, err := yaml.Marshal(doc)
					if err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, b, 0o644); err != nil {
						t.Fatal(err)
					}
					fs := pflag.NewFlagSet(c.kind, pflag.ContinueOnError)
					c.flags(fs)
					if err := fs.Parse(args); err != nil {
						t.Fatal(err)
					}
					l, err := newLoader(path, c.kind, c.keys, fs)
					if err != nil {
						t.Fatal(err)
					}
					if err := l.set(fs); err != nil {
						t.Fatal(err)
					}
					out := c.out()
					if err := l.fill(out); err != nil {
						t.Fatal(err)
					}
					return written(t, out, k.name)
				}
				want := func(val, base string) string {
					if k.path && val != "" {
						return filepath.Join(base, val)
					}
					return val
				}
				check := func(step, got, want string) {
					t.Helper()
					switch k.typ {
					case reflect.TypeFor[time.Duration](): // 10m is 10m0s
						g, _ := time.ParseDuration(got)
						w, _ := time.ParseDuration(want)
						got, want = g.String(), w.String()
					case reflect.TypeFor[bool](): // false is omitted
						got, want = cmp.Or(got, "false"), cmp.Or(want, "false")
					}
					if got != want {
						t.Errorf("%s: %s = %q, want %q", step, k.name, got, want)
					}
				}
				check("default", load(map[string]any{}), want(k.def, dir))
				file := nested(k.name, vals[0])
				if k.typ.Kind() == reflect.Slice {
					file = nested(k.name, []string{vals[0]})
				}
				check("file", load(file), want(vals[0], dir))
				t.Setenv(EnvName(k.name), vals[1])
				check("environment "+EnvName(k.name), load(file), want(vals[1], wd))
				flag := "--" + strings.ReplaceAll(k.name, "_", "-") + "=" + vals[2]
				check("flag "+flag, load(file, flag), want(vals[2], wd))
				if c.kind == "party" {
					set := k.name + "=" + vals[2]
					check("--set "+set, load(file, "--set", set), want(vals[2], wd))
				}
			})
		}
	}
}

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		name, key, canonical string
		names                []string
	}{
		{"Log.Level", "log.level", "log.level", nil},
		{"Datasets.Cohort.CSV", "datasets.<dataset>.csv", "datasets.cohort.csv", []string{"Cohort"}},
		{"datasets.Cohort.postgres.columns.Age", "datasets.<dataset>.postgres.columns.<column>", "datasets.cohort.postgres.columns.Age", []string{"Cohort", "Age"}},
		{"datasets.d.postgres.columns.visit.Date", "datasets.<dataset>.postgres.columns.<column>", "datasets.d.postgres.columns.visit.Date", []string{"d", "visit.Date"}},
		{"policy.columns.Patients", "policy.columns.<dataset>", "policy.columns.patients", []string{"Patients"}},
		{"tls", "tls", "tls", nil},
		{"datasets.a.b.csv", "", "", nil},
		{"policy.columns", "policy.columns", "policy.columns", nil},
	} {
		k, names, ok := match(partyKeys, c.name)
		if ok != (c.key != "") || ok && (k.name != c.key || !slices.Equal(names, c.names) || canonical(k, c.name) != c.canonical) {
			t.Errorf("match(%q) = %s %q %v (canonical %q), want %s %q %q", c.name, k.name, names, ok, canonical(k, c.name), c.key, c.names, c.canonical)
		}
	}
}

// TestSetColumns: --set datasets.D.postgres.columns.COL=EXPR adds or
// replaces one column of a dataset's mapping, the column name keeping its
// case, over the file's mapping; it can declare a postgres dataset with
// the other --set keys; it is refused where columns are.
func TestSetColumns(t *testing.T) {
	path := setup(t, withDatasets(pgDataset))
	parse := func(args ...string) *pflag.FlagSet {
		fs := pflag.NewFlagSet("mpcnode", pflag.ContinueOnError)
		PartyFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return fs
	}
	p, err := LoadParty(path, parse(
		"--set", "datasets.Patients.postgres.columns.Systolic_BP=sbp_mmhg",
		"--set", "datasets.patients.postgres.columns.BMI=weight / height^2",
		"--set", "datasets.patients.postgres.columns.bmi=bmi",
		"--set", "datasets.cohort.postgres.dsn_env=COHORT_DSN",
		"--set", "datasets.cohort.postgres.table=omop.person",
		"--set", "datasets.cohort.postgres.columns.Age=2026 - year_of_birth",
	))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"age": "2026 - year_of_birth", "Systolic_BP": "sbp_mmhg", "BMI": "weight / height^2", "bmi": "bmi"}
	if got := p.Datasets["patients"].Postgres.Columns; !reflect.DeepEqual(got, want) {
		t.Errorf("patients columns %v, want %v", got, want)
	}
	if pg := p.Datasets["cohort"].Postgres; pg == nil || pg.Table != "omop.person" || !reflect.DeepEqual(pg.Columns, map[string]string{"Age": "2026 - year_of_birth"}) {
		t.Errorf("cohort %+v", pg)
	}
	for args, want := range map[string]string{
		"--set datasets.patients.postgres.columns=age":                                                    `key "datasets.patients.postgres.columns" holds keys`,
		"--set datasets.visits.postgres.columns.age=age":                                                  `"datasets.visits.postgres.columns" is only for`,
		"--set datasets.new.postgres.columns.age=age":                                                     `missing key "datasets.new.postgres.dsn"`,
		"--set datasets.patients.postgres.columns.Age=a --set datasets.Patients.postgres.columns.Age=b":   `"datasets.patients.postgres.columns.Age" is set twice`,
		"--set datasets.patients.postgres.columns.=a":                                                     "empty name",
		"--dataset extra=p1/patients.csv --set datasets.extra.postgres.columns.age=age":                   "one source",
		"--set policy.columns.Patients=age --set policy.columns.patients=sex":                             "set twice",
		"--set datasets.patients.postgres.columns.age=":                                                   "empty column name or SQL expression",
		"--set datasets.patients.postgres.columns.age=x --set datasets.patients.postgres.dsn=postgres://": "dsn_env",
	} {
		_, err := LoadParty(path, parse(strings.Fields(args)...))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: want an error containing %q, got %v", args, want, err)
		}
	}
}

// TestPolicyColumnsEmpty: an empty list of columns for a dataset releases
// none of them, from the file as from --set; a dataset absent from the map
// releases all.
func TestPolicyColumnsEmpty(t *testing.T) {
	path := setup(t, good+"policy:\n  columns:\n    patients: []\n")
	p, err := LoadParty(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	cols, ok := p.Policy.Columns["patients"]
	if !ok || len(cols) != 0 {
		t.Fatalf("columns %#v", p.Policy.Columns)
	}
	err = p.Policy.Check(policy.Request{Analyst: "analyst", Dataset: "patients", Columns: []string{"age"}})
	if err == nil || !strings.Contains(err.Error(), "columns") {
		t.Fatalf("an empty list released a column: %v", err)
	}
	if err := p.Policy.Check(policy.Request{Analyst: "analyst", Dataset: "visits", Columns: []string{"age"}}); err != nil {
		t.Fatalf("a dataset absent from policy.columns: %v", err)
	}
}
