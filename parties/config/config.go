// Package config loads the YAML configuration of a party node (mpcnode) and
// of an analyst client (mpcctl) through viper.
//
// Every key can be overridden by an environment variable named SYNOD_ plus
// the key in upper case with dots replaced by underscores (tls.cert →
// SYNOD_TLS_CERT, datasets.patients.csv → SYNOD_DATASETS_PATIENTS_CSV for a
// dataset named in the file), and by a command-line flag of the same name as
// the key (see PartyFlags and AnalystFlags, whose flag sets accept '-' for
// '_': --data-dir or --data_dir, --tls.cert). Keys named after a dataset
// have no flag of their own: the repeatable --set KEY=VALUE sets any key
// (--set datasets.cohort.postgres.dsn_env=COHORT_DSN, --set
// datasets.cohort.postgres.columns.age=age_years, --set
// policy.columns.patients=age,sex) and --dataset NAME=FILE.csv is short for
// --set datasets.NAME.csv=FILE.csv. Precedence: flag, environment, file,
// default.
//
// Relative paths in the file (and defaults) are resolved against the
// directory of the configuration file; relative paths given by a flag or an
// environment variable are resolved against the working directory.
//
// Dataset names, like every viper key, are case-insensitive and normalised to
// lower case; column names keep their case. A dataset is read from a CSV
// file (datasets.<name>.csv) or from PostgreSQL (datasets.<name>.postgres:
// dsn or dsn_env, table with optional columns, or query). A party with
// datasets names the consortium schema they are checked against (the key
// schema, which consortium init writes), or sets schema: none to load them
// unchecked; a party config without the key and with datasets is refused.
//
// Each key is declared once, by the tags of the struct field that holds it:
// yaml (its name, read and written with it), default (as an environment
// variable would give it), help (its flag's help), kind:"path" (resolved
// as above) and, on a map, names (what its entries are named after:
// dataset, column). The key list, defaults, environment variables, flags,
// the --set keys, the check of the file's keys and the resolution of paths
// are all derived from the structs (keys.go). This is simpler to read than
// a separate table of keys: the structs are what callers use and what
// SaveParty writes, so a key declared on its field cannot drift from the
// field, and a table would need an accessor per key to fill the struct.
// What a key's value must be stays code (LoadParty, LoadAnalyst), because
// it depends on other keys (role, ledger.mode, a dataset's source).
package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/synod-mpc/synod/parties/datasource"
	"github.com/synod-mpc/synod/parties/policy"
)

// EnvPrefix is the prefix of environment variables overriding keys.
const EnvPrefix = "SYNOD"

// TLSFiles names the PEM files of a member's mutual-TLS setup.
type TLSFiles struct {
	CA   string `yaml:"ca" kind:"path" help:"consortium CA certificate (PEM)"`
	Cert string `yaml:"cert" kind:"path" help:"this member's certificate (PEM)"`
	Key  string `yaml:"key" kind:"path" help:"this member's TLS key (sealed)"`
}

// IdentityFiles names the member's sealed identity key.
type IdentityFiles struct {
	KeyFile string `yaml:"key_file" kind:"path" help:"sealed identity key"`
}

// KeystoreSource says where the passphrase of the sealed secrets comes from:
// the environment variable PassphraseEnv if set and non-empty, otherwise the
// file PassphraseFile (see keystore.Passphrase).
type KeystoreSource struct {
	PassphraseEnv  string `yaml:"passphrase_env" default:"SYNOD_PASSPHRASE" help:"environment variable holding the keystore passphrase"`
	PassphraseFile string `yaml:"passphrase_file,omitempty" kind:"path" help:"file holding the keystore passphrase"`
}

// Dataset is where the party's copy of a dataset lives: a CSV file
// (datasets.<name>.csv) or a PostgreSQL database (datasets.<name>.postgres),
// exactly one of the two.
type Dataset struct {
	CSV      string    `yaml:"csv,omitempty" kind:"path" help:"CSV file of the dataset"`
	Postgres *Postgres `yaml:"postgres,omitempty"`
}

// Postgres is a dataset read from PostgreSQL (datasets.<name>.postgres.*):
// the connection string is DSN or, to keep a password out of the file, the
// value of the environment variable named DSNEnv (exactly one of the two);
// the rows come from Table, with Columns mapping each dataset column to an
// SQL column or expression of that table (none: the table's columns as
// they are), or from Query, whose result columns are named as the dataset's
// columns (exactly one of Table and Query). Column names keep their case.
type Postgres struct {
	DSN     string            `yaml:"dsn,omitempty" help:"PostgreSQL connection string (never logged)"`
	DSNEnv  string            `yaml:"dsn_env,omitempty" help:"environment variable holding the connection string"`
	Table   string            `yaml:"table,omitempty" help:"table the rows come from"`
	Columns map[string]string `yaml:"columns,omitempty" names:"column" help:"dataset column to SQL column or expression of the table"`
	Query   string            `yaml:"query,omitempty" help:"query whose result columns are named as the dataset's columns"`
}

// Source returns the datasource description of d.
func (d Dataset) Source() datasource.Source {
	s := datasource.Source{CSV: d.CSV}
	if p := d.Postgres; p != nil {
		s.Postgres = &datasource.Postgres{DSN: p.DSN, DSNEnv: p.DSNEnv, Table: p.Table, Columns: p.Columns, Query: p.Query}
	}
	return s
}

// Logging configures logs: Level is debug, info, warn or error; Format is
// text or json.
type Logging struct {
	Level  string `yaml:"level" default:"info" help:"log level: debug, info, warn, error"`
	Format string `yaml:"format" default:"text" help:"log format: text or json"`
}

// Timeouts bounds waiting for a peer and for a whole session.
type Timeouts struct {
	Peer    time.Duration `yaml:"peer" default:"10s" help:"how long to wait for a peer (e.g. 10s)"`
	Session time.Duration `yaml:"session" default:"10m" help:"how long a session may take (e.g. 10m)"`
}

// Ledger says where the node records its audit trail. In "embedded" mode
// (the default) the node runs a CometBFT validator in process, with its
// home directory, keys and listen addresses below; in "remote" mode it
// submits to an existing chain through the RPC address Remote.
type Ledger struct {
	Mode             string `yaml:"mode" default:"embedded" help:"embedded (run a validator) or remote"`
	Home             string `yaml:"home,omitempty" kind:"path" help:"home directory of the embedded validator"`
	P2PListen        string `yaml:"p2p_listen,omitempty" help:"chain p2p address (host:port)"`
	RPCListen        string `yaml:"rpc_listen,omitempty" help:"chain RPC address (host:port)"`
	Peers            string `yaml:"peers,omitempty" help:"chain peers, comma-separated nodeid@host:port"`
	NodeKeyFile      string `yaml:"node_key_file,omitempty" kind:"path" help:"sealed chain node key"`
	ValidatorKeyFile string `yaml:"validator_key_file,omitempty" kind:"path" help:"sealed chain validator key"`
	Remote           string `yaml:"remote,omitempty" help:"chain RPC address in remote mode (host:port)"`
	FastBlocks       bool   `yaml:"fast_blocks,omitempty" help:"commit blocks as fast as loopback allows (local demos and tests)"`
}

// Roles of a node's configuration (key role): a party (the default), or a
// validator-only member of the consortium chain, which runs the embedded
// validator and nothing else.
const (
	RoleParty     = "party"
	RoleValidator = "validator"
)

// SchemaNone is the value of the key schema by which a party with datasets
// loads them without checking them against a consortium schema.
const SchemaNone = "none"

// Party is a party node's configuration. With Role RoleValidator it is the
// configuration of a validator-only member: ID, Consortium, Keystore, Log,
// Timeouts and Ledger only.
type Party struct {
	ID         string             `yaml:"id" help:"party id"`
	Role       string             `yaml:"role,omitempty" default:"party" help:"party (default) or validator: a validator-only member runs the consortium chain's validator and nothing else"`
	Listen     string             `yaml:"listen,omitempty" help:"address to serve gRPC on (host:port)"`
	DataDir    string             `yaml:"data_dir" default:"data" kind:"path" help:"directory for the node's state"`
	Consortium string             `yaml:"consortium" kind:"path" help:"consortium file"`
	Schema     string             `yaml:"schema,omitempty" kind:"path" help:"consortium schema file every dataset is checked against at start; required with datasets (none: load them unchecked)"`
	TLS        TLSFiles           `yaml:"tls,omitempty"`
	Identity   IdentityFiles      `yaml:"identity,omitempty"`
	Keystore   KeystoreSource     `yaml:"keystore"`
	Datasets   map[string]Dataset `yaml:"datasets,omitempty" names:"dataset" help:"the party's datasets, by name"`
	Log        Logging            `yaml:"log"`
	Timeouts   Timeouts           `yaml:"timeouts"`
	Ledger     Ledger             `yaml:"ledger"`
	Policy     policy.Policy      `yaml:"policy,omitempty"`

	path string
}

// Path returns the configuration file the party was loaded from ("" if it
// was not loaded by LoadParty).
func (p *Party) Path() string { return p.path }

// SchemaFile returns the consortium schema file the party's datasets are
// checked against: "" if the party names none (it has no datasets) or opts
// out with schema: none.
func (p *Party) SchemaFile() string {
	if p.Schema == SchemaNone {
		return ""
	}
	return p.Schema
}

// Analyst is an analyst client's configuration.
type Analyst struct {
	ID         string         `yaml:"id" help:"analyst id"`
	Node       string         `yaml:"node" help:"address of the node to talk to (host:port)"`
	NodeID     string         `yaml:"node_id" help:"party id of that node, checked against its certificate"`
	DataDir    string         `yaml:"data_dir" default:"data" kind:"path" help:"directory for the analyst's own keys and results"`
	Consortium string         `yaml:"consortium" kind:"path" help:"consortium file"`
	TLS        TLSFiles       `yaml:"tls"`
	Identity   IdentityFiles  `yaml:"identity"`
	Keystore   KeystoreSource `yaml:"keystore"`

	path string
}

// Path returns the configuration file the analyst was loaded from ("" if it
// was not loaded by LoadAnalyst).
func (a *Analyst) Path() string { return a.path }

type loader struct {
	path string         // as given, for messages
	dir  string         // absolute directory of the file
	doc  map[string]any // the file as parsed, keys with their case
	keys []key
	v    *viper.Viper
	// flags maps a key to the flag that set it: its own, --set or --dataset
	flags map[string]*pflag.Flag
	// The maps of values, whose names viper would lower-case: as written in
	// the file (policyColumns, and columns by dataset), and the --set
	// entries (policy.columns.<dataset>,
	// datasets.<dataset>.postgres.columns.<column>), applied over them.
	policyColumns map[string][]string
	columns       map[string]map[string]string
	entries       []setting
}

func newLoader(path, kind string, keys []key, flags *pflag.FlagSet) (*loader, error) {
	if path == "" {
		return nil, fmt.Errorf("%s config: no configuration file given", kind)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	l := &loader{path: path, dir: filepath.Dir(abs), keys: keys, v: viper.New(), flags: map[string]*pflag.Flag{}}
	if err := yaml.Unmarshal(raw, &l.doc); err != nil {
		return nil, fmt.Errorf("config %s: not valid YAML: %w", path, err)
	}
	if err := l.checkFile(); err != nil {
		return nil, err
	}
	if err := l.readEntries(); err != nil {
		return nil, err
	}
	v := l.v
	v.SetConfigFile(path)
	v.SetConfigType("yaml")
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for _, k := range keys {
		if !k.value() || k.entry() {
			continue
		}
		names := []string{k.name}
		if k.named() {
			// one key per name the file gives: datasets.<dataset>.csv
			// is datasets.patients.csv for a dataset patients
			names = nil
			mapKey, rest, _ := strings.Cut(k.name, ".<")
			_, rest, _ = strings.Cut(rest, ">")
			for name := range fileMap(l.doc, mapKey) {
				names = append(names, mapKey+"."+strings.ToLower(name)+rest)
			}
		} else if k.def != "" {
			v.SetDefault(k.name, k.def)
		}
		for _, name := range names {
			if err := v.BindEnv(name); err != nil {
				return nil, fmt.Errorf("config %s: key %q: %w", path, name, err)
			}
		}
	}
	if err := v.ReadInConfig(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if flags != nil {
		var ferr error
		flags.VisitAll(func(f *pflag.Flag) {
			name := strings.ReplaceAll(f.Name, "-", "_")
			k, _, ok := match(keys, name)
			if !ok || !k.value() || k.entry() {
				return // a flag for something else (--config, --verbose...)
			}
			name = canonical(k, name)
			if err := v.BindPFlag(name, f); err != nil && ferr == nil {
				ferr = fmt.Errorf("config %s: flag --%s: %w", path, f.Name, err)
			}
			if f.Changed {
				l.flags[name] = f
			}
		})
		if ferr != nil {
			return nil, ferr
		}
	}
	return l, nil
}

// set applies the --set and --dataset flags of flags (those of a party
// configuration) over the key flags, the environment and the file.
func (l *loader) set(flags *pflag.FlagSet) error {
	sets, err := settings(l.path, flags, l.keys)
	if err != nil {
		return err
	}
	for _, st := range sets {
		if f, dup := l.flags[st.key]; dup {
			return fmt.Errorf("config %s: key %q is set twice (--%s and --%s %s=%s)", l.path, st.key, f.Name, st.flag.Name, st.key, st.value)
		}
		l.flags[st.key] = st.flag
		if st.entry {
			l.entries = append(l.entries, st)
			continue
		}
		l.v.Set(st.key, st.value)
	}
	return nil
}

// checkFile rejects keys of the file that the configuration does not
// declare, and a section or a map that is not a mapping.
func (l *loader) checkFile() error {
	var unknown []string
	var walk func(prefix string, m map[string]any) error
	walk = func(prefix string, m map[string]any) error {
		for name, val := range m {
			full := prefix + name
			k, _, ok := match(l.keys, full)
			if !ok {
				unknown = append(unknown, full)
				continue
			}
			if val == nil || k.value() {
				continue // values are checked when they are decoded
			}
			sub, ok := val.(map[string]any)
			if !ok {
				if k.help != "" {
					return fmt.Errorf("config %s: key %q must be a mapping (%s), got %T", l.path, full, k.help, val)
				}
				return fmt.Errorf("config %s: key %q must be a mapping, got %T", l.path, full, val)
			}
			if err := walk(full+".", sub); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk("", l.doc); err != nil {
		return err
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("config %s: unknown key(s) %s (known: %s)", l.path, strings.Join(unknown, ", "), strings.Join(knownList(l.keys), ", "))
	}
	return nil
}

// fileMap returns the mapping at the dotted key in the file, its keys as
// written (the key's segments match whatever their case); nil if there is
// none.
func fileMap(doc map[string]any, key string) map[string]any {
	m := doc
	for seg := range strings.SplitSeq(key, ".") {
		var next map[string]any
		for k, v := range m {
			if strings.EqualFold(k, seg) {
				next, _ = v.(map[string]any)
			}
		}
		if next == nil {
			return nil
		}
		m = next
	}
	return m
}

// readEntries reads the maps of values of the file as written
// (policy.columns, datasets.<dataset>.postgres.columns), refusing an entry
// of the wrong type; decoding would lower-case their names.
func (l *loader) readEntries() error {
	if pm := fileMap(l.doc, "policy.columns"); pm != nil {
		l.policyColumns = map[string][]string{}
		for ds, list := range pm {
			key := "policy.columns." + ds
			items, ok := list.([]any)
			if !ok {
				return fmt.Errorf("config %s: key %q: want a list of column names, got %T", l.path, key, list)
			}
			cols := []string{} // an empty list releases no column; an absent one, all
			for i, c := range items {
				s, ok := c.(string)
				if !ok {
					return fmt.Errorf("config %s: key %q: item %d: want a column name, got %T", l.path, key, i, c)
				}
				cols = append(cols, s)
			}
			l.policyColumns[ds] = cols
		}
	}
	for ds := range fileMap(l.doc, "datasets") {
		key := "datasets." + ds + ".postgres.columns"
		cm := fileMap(l.doc, key)
		if len(cm) == 0 {
			continue
		}
		cols := make(map[string]string, len(cm))
		for col, expr := range cm {
			s, ok := expr.(string)
			if !ok {
				return fmt.Errorf("config %s: key %q: column %q: want an SQL column or expression (a string), got %T", l.path, key, col, expr)
			}
			cols[col] = s
		}
		if l.columns == nil {
			l.columns = map[string]map[string]string{}
		}
		l.columns[strings.ToLower(ds)] = cols
	}
	return nil
}

// source describes where the value of key comes from, for messages and for
// deciding how to resolve a relative path.
func (l *loader) source(key string) (desc string, fromFile bool) {
	if f, ok := l.flags[key]; ok {
		return "flag --" + f.Name, false
	}
	if os.Getenv(EnvName(key)) != "" {
		return "environment " + EnvName(key), false
	}
	if l.v.InConfig(key) {
		return "file", true
	}
	return "default", true
}

func (l *loader) errf(key, format string, a ...any) error {
	src, _ := l.source(key)
	return fmt.Errorf("config %s: key %q (from %s): %s", l.path, key, src, fmt.Sprintf(format, a...))
}

// resolve makes a relative path from the file (or a default) relative to the
// file's directory.
func (l *loader) resolve(key, p string) string {
	if p == "" || filepath.IsAbs(p) || key == "schema" && p == SchemaNone {
		return p
	}
	if _, fromFile := l.source(key); fromFile {
		return filepath.Join(l.dir, p)
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// resolvePaths resolves every path (a field tagged kind:"path") of the
// configuration v, whose key is prefix, datasets' included.
func (l *loader) resolvePaths(prefix string, v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			l.resolvePaths(prefix, v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			name := fieldKey(f)
			switch {
			case name == "":
			case f.Tag.Get("kind") == "path":
				v.Field(i).SetString(l.resolve(prefix+name, v.Field(i).String()))
			default:
				l.resolvePaths(prefix+name+".", v.Field(i))
			}
		}
	case reflect.Map:
		if deref(v.Type().Elem()).Kind() != reflect.Struct {
			return
		}
		for _, name := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(name))
			l.resolvePaths(prefix+name.String()+".", e)
			v.SetMapIndex(name, e)
		}
	}
}

func (l *loader) required(key, val string) error {
	if strings.TrimSpace(val) == "" {
		return fmt.Errorf("config %s: missing required key %q (set it in the file, with %s, or with --%s)", l.path, key, EnvName(key), key)
	}
	return nil
}

func (l *loader) existingFile(key, val string) error {
	if err := l.required(key, val); err != nil {
		return err
	}
	st, err := os.Stat(val)
	if err != nil {
		return l.errf(key, "file %s: %v", val, errors.Unwrap(err))
	}
	if st.IsDir() {
		return l.errf(key, "%s is a directory, want a file", val)
	}
	return nil
}

func (l *loader) hostPort(key, val string) error {
	if err := l.required(key, val); err != nil {
		return err
	}
	_, port, err := net.SplitHostPort(val)
	if err != nil {
		return l.errf(key, "%q is not host:port: %v", val, err)
	}
	if port == "" {
		return l.errf(key, "%q has no port", val)
	}
	return nil
}

// fill decodes the configuration out (a pointer to a Party or an Analyst)
// from the flags, the environment, the file and the defaults, and resolves
// its paths.
func (l *loader) fill(out any) error {
	if err := decode(l.v, out); err != nil {
		return fmt.Errorf("config %s: %w", l.path, err)
	}
	l.resolvePaths("", reflect.ValueOf(out).Elem())
	return nil
}

func (l *loader) common(id string, t TLSFiles, idf IdentityFiles, dataDir, consortium string, ks KeystoreSource) error {
	if err := l.membership(id, consortium); err != nil {
		return err
	}
	if err := l.existingFile("tls.ca", t.CA); err != nil {
		return err
	}
	if err := l.existingFile("tls.cert", t.Cert); err != nil {
		return err
	}
	if err := l.existingFile("tls.key", t.Key); err != nil {
		return err
	}
	if err := l.required("identity.key_file", idf.KeyFile); err != nil {
		return err
	}
	if err := l.required("data_dir", dataDir); err != nil {
		return err
	}
	return l.passphraseSource(ks)
}

// membership checks the id and the consortium file every member's config
// has.
func (l *loader) membership(id, consortium string) error {
	if err := l.required("id", id); err != nil {
		return err
	}
	if strings.ContainsAny(id, " \t\n/\\") {
		return l.errf("id", "%q contains whitespace or a path separator", id)
	}
	return l.existingFile("consortium", consortium)
}

// passphraseSource checks that the keystore passphrase has a source.
func (l *loader) passphraseSource(ks KeystoreSource) error {
	if ks.PassphraseEnv == "" && ks.PassphraseFile == "" {
		return fmt.Errorf("config %s: keys %q and %q are both empty: no source for the keystore passphrase", l.path, "keystore.passphrase_env", "keystore.passphrase_file")
	}
	return nil
}

// LoadParty reads a party configuration file, applies SYNOD_* environment
// variables and the flags of flags (may be nil), resolves relative paths and
// validates the result.
func LoadParty(path string, flags *pflag.FlagSet) (*Party, error) {
	l, err := newLoader(path, "party", partyKeys, flags)
	if err != nil {
		return nil, err
	}
	if err := l.set(flags); err != nil {
		return nil, err
	}
	p := Party{path: path}
	if err := l.fill(&p); err != nil {
		return nil, err
	}
	// viper drops a dataset declared with nothing under it: keep it, to
	// refuse it below; a dataset with only --set columns is a postgres one
	for name := range fileMap(l.doc, "datasets") {
		l.declare(&p, strings.ToLower(name))
	}
	for _, st := range l.entries {
		if strings.HasPrefix(st.key, "datasets.") {
			l.declare(&p, strings.ToLower(st.names[0]))
		}
	}
	switch p.Role {
	case RoleParty:
	case RoleValidator:
		if err := l.validator(&p); err != nil {
			return nil, err
		}
		return &p, nil
	default:
		return nil, l.errf("role", "%q is not one of %s, %s", p.Role, RoleParty, RoleValidator)
	}
	if err := l.common(p.ID, p.TLS, p.Identity, p.DataDir, p.Consortium, p.Keystore); err != nil {
		return nil, err
	}
	if err := l.hostPort("listen", p.Listen); err != nil {
		return nil, err
	}
	if err := l.schema(&p); err != nil {
		return nil, err
	}
	for name, d := range p.Datasets {
		if err := l.dataset(name, &d); err != nil {
			return nil, err
		}
		p.Datasets[name] = d
	}
	if err := l.runtime(&p); err != nil {
		return nil, err
	}
	if err := l.policy(&p.Policy); err != nil {
		return nil, err
	}
	return &p, nil
}

// declare makes sure p has the dataset name.
func (l *loader) declare(p *Party, name string) {
	if _, ok := p.Datasets[name]; ok {
		return
	}
	if p.Datasets == nil {
		p.Datasets = map[string]Dataset{}
	}
	p.Datasets[name] = Dataset{}
}

// schema checks the key schema: a party with datasets names the consortium
// schema they are checked against at start, or opts out explicitly with
// schema: none, so that a forgotten key does not pass unchecked data off as
// checked.
func (l *loader) schema(p *Party) error {
	switch {
	case p.Schema == SchemaNone:
		return nil
	case p.Schema != "":
		return l.existingFile("schema", p.Schema)
	case len(p.Datasets) > 0:
		names := slices.Sorted(maps.Keys(p.Datasets))
		return fmt.Errorf("config %s: missing key %q: datasets %s are checked at start against the consortium schema it names "+
			"(consortium init writes schema: %s; set it in the file, with %s, or with --schema), or set it to %q to load them unchecked",
			l.path, "schema", strings.Join(names, ", "), "schema.yaml", EnvName("schema"), SchemaNone)
	}
	return nil
}

// validator resolves and checks the configuration of a validator-only
// member (role: validator): it runs the embedded chain validator and
// nothing else, so it needs its id, the consortium file, the keystore
// passphrase and the ledger section, and refuses the keys of a party's
// data, policy, identity and gRPC service.
func (l *loader) validator(p *Party) error {
	if err := l.membership(p.ID, p.Consortium); err != nil {
		return err
	}
	if err := l.passphraseSource(p.Keystore); err != nil {
		return err
	}
	for _, k := range []struct{ key, val string }{
		{"listen", p.Listen}, {"schema", p.Schema}, {"tls.ca", p.TLS.CA}, {"tls.cert", p.TLS.Cert}, {"tls.key", p.TLS.Key},
		{"identity.key_file", p.Identity.KeyFile},
	} {
		if k.val != "" {
			return l.errf(k.key, "set, but a validator-only member (role: %s) serves no gRPC, holds no data and signs nothing: remove it", RoleValidator)
		}
	}
	if _, ok := l.doc["datasets"]; ok || len(p.Datasets) > 0 {
		return fmt.Errorf("config %s: key \"datasets\": a validator-only member (role: %s) holds no data: remove it", l.path, RoleValidator)
	}
	if err := l.policy(&p.Policy); err != nil {
		return err
	}
	if pol := p.Policy; len(pol.Analysts) > 0 || len(pol.Columns) > 0 || pol.MinCohort != 0 || pol.DP != (policy.DP{}) {
		return fmt.Errorf("config %s: key \"policy\": a validator-only member (role: %s) answers no query: remove it", l.path, RoleValidator)
	}
	if p.Ledger.Mode != "embedded" {
		return l.errf("ledger.mode", "%q: a validator-only member runs the embedded validator, want embedded", p.Ledger.Mode)
	}
	return l.runtime(p)
}

// runtime checks the keys every node has, party or validator: logging,
// timeouts and the ledger section.
func (l *loader) runtime(p *Party) error {
	switch p.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return l.errf("log.level", "%q is not one of debug, info, warn, error", p.Log.Level)
	}
	switch p.Log.Format {
	case "text", "json":
	default:
		return l.errf("log.format", "%q is not one of text, json", p.Log.Format)
	}
	if p.Timeouts.Peer <= 0 {
		return l.errf("timeouts.peer", "%v must be positive", p.Timeouts.Peer)
	}
	if p.Timeouts.Session <= 0 {
		return l.errf("timeouts.session", "%v must be positive", p.Timeouts.Session)
	}
	switch p.Ledger.Mode {
	case "embedded":
		// In a fixed order, so that the first missing key is always the
		// one reported.
		for _, kv := range [][2]string{{"ledger.home", p.Ledger.Home}, {"ledger.node_key_file", p.Ledger.NodeKeyFile},
			{"ledger.validator_key_file", p.Ledger.ValidatorKeyFile}} {
			if err := l.required(kv[0], kv[1]); err != nil {
				return err
			}
		}
		for _, kv := range [][2]string{{"ledger.p2p_listen", p.Ledger.P2PListen}, {"ledger.rpc_listen", p.Ledger.RPCListen}} {
			if err := l.hostPort(kv[0], kv[1]); err != nil {
				return err
			}
		}
	case "remote":
		if err := l.hostPort("ledger.remote", p.Ledger.Remote); err != nil {
			return err
		}
	default:
		return l.errf("ledger.mode", "%q is not one of embedded, remote", p.Ledger.Mode)
	}
	return nil
}

// policy normalizes and checks the policy section: analysts given as one
// comma-separated string (an environment variable or a flag) become a
// list, and the column lists keep the dataset names' case as written, a
// --set list replacing the file's list of its dataset.
func (l *loader) policy(p *policy.Policy) error {
	var analysts []string
	for _, a := range p.Analysts {
		for _, part := range strings.Split(a, ",") {
			if part = strings.TrimSpace(part); part != "" {
				analysts = append(analysts, part)
			}
		}
	}
	p.Analysts = analysts
	p.Columns = maps.Clone(l.policyColumns)
	for _, st := range l.entries {
		if !strings.HasPrefix(st.key, "policy.columns.") {
			continue
		}
		ds := st.names[0]
		if p.Columns == nil {
			p.Columns = map[string][]string{}
		}
		maps.DeleteFunc(p.Columns, func(name string, _ []string) bool { return strings.EqualFold(name, ds) })
		p.Columns[ds] = nil
		for _, c := range strings.Split(st.value, ",") {
			if c = strings.TrimSpace(c); c != "" {
				p.Columns[ds] = append(p.Columns[ds], c)
			}
		}
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("config %s: %w", l.path, err)
	}
	return nil
}

// dataset checks datasets.<name>: exactly one of csv and postgres; for
// postgres exactly one of dsn and dsn_env, exactly one of table and query,
// columns only with table. The columns mapping is the file's as written,
// with the --set entries over it.
func (l *loader) dataset(name string, d *Dataset) error {
	key := "datasets." + name
	csvKey := key + ".csv"
	cols := maps.Clone(l.columns[name])
	for _, st := range l.entries {
		if strings.HasPrefix(st.key, key+".postgres.columns.") {
			if cols == nil {
				cols = map[string]string{}
			}
			cols[st.names[1]] = st.value
		}
	}
	pg := d.Postgres
	if pg == nil && len(cols) > 0 {
		d.Postgres = &Postgres{}
		pg = d.Postgres
	}
	if pg != nil && pg.DSN == "" && pg.DSNEnv == "" && pg.Table == "" && pg.Query == "" && len(cols) == 0 {
		pg, d.Postgres = nil, nil // "postgres:" with nothing under it
	}
	switch {
	case d.CSV != "" && pg != nil:
		return fmt.Errorf("config %s: dataset %q: keys %q and %q are both set; a dataset has one source", l.path, name, csvKey, key+".postgres")
	case d.CSV == "" && pg == nil:
		return fmt.Errorf("config %s: dataset %q: missing key %q or %q", l.path, name, csvKey, key+".postgres")
	case pg == nil:
		return nil
	}
	pk := key + ".postgres."
	pg.Columns = cols
	switch {
	case pg.DSN != "" && pg.DSNEnv != "":
		return fmt.Errorf("config %s: dataset %q: keys %q and %q are both set; choose one", l.path, name, pk+"dsn", pk+"dsn_env")
	case pg.DSN == "" && pg.DSNEnv == "":
		return fmt.Errorf("config %s: dataset %q: missing key %q (or %q, the name of an environment variable holding it)", l.path, name, pk+"dsn", pk+"dsn_env")
	case strings.TrimSpace(pg.Table) != "" && strings.TrimSpace(pg.Query) != "":
		return fmt.Errorf("config %s: dataset %q: keys %q and %q are both set; choose one", l.path, name, pk+"table", pk+"query")
	case strings.TrimSpace(pg.Table) == "" && strings.TrimSpace(pg.Query) == "":
		return fmt.Errorf("config %s: dataset %q: missing key %q or %q", l.path, name, pk+"table", pk+"query")
	case pg.Query != "" && len(pg.Columns) > 0:
		return fmt.Errorf("config %s: dataset %q: key %q is only for %q; name the query's result columns with AS", l.path, name, pk+"columns", pk+"table")
	}
	for col, expr := range pg.Columns {
		if strings.TrimSpace(col) == "" || strings.TrimSpace(expr) == "" {
			return fmt.Errorf("config %s: dataset %q: key %q: column %q: empty column name or SQL expression", l.path, name, pk+"columns", col)
		}
	}
	return nil
}

// LoadAnalyst reads an analyst configuration file like LoadParty.
func LoadAnalyst(path string, flags *pflag.FlagSet) (*Analyst, error) {
	l, err := newLoader(path, "analyst", analystKeys, flags)
	if err != nil {
		return nil, err
	}
	a := Analyst{path: path}
	if err := l.fill(&a); err != nil {
		return nil, err
	}
	if err := l.common(a.ID, a.TLS, a.Identity, a.DataDir, a.Consortium, a.Keystore); err != nil {
		return nil, err
	}
	if err := l.hostPort("node", a.Node); err != nil {
		return nil, err
	}
	if err := l.required("node_id", a.NodeID); err != nil {
		return nil, err
	}
	return &a, nil
}

func save(path string, v any) error {
	b, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Errorf("config %s: encoding: %w", path, err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// SaveParty writes p as YAML to path, paths as they are in p (so relative
// paths stay relative to the file's directory).
func SaveParty(path string, p *Party) error { return save(path, p) }

// SaveAnalyst writes a as YAML to path, paths as they are in a.
func SaveAnalyst(path string, a *Analyst) error { return save(path, a) }

// DefaultParty returns a party configuration with the defaults filled in.
func DefaultParty() Party { return defaults[Party](partyKeys) }

// DefaultAnalyst returns an analyst configuration with the defaults filled
// in.
func DefaultAnalyst() Analyst { return defaults[Analyst](analystKeys) }
