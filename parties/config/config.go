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
// policy.columns.patients=age,sex) and --dataset NAME=FILE.csv is short for
// --set datasets.NAME.csv=FILE.csv. Precedence: flag, environment, file,
// default.
//
// Relative paths in the file (and defaults) are resolved against the
// directory of the configuration file; relative paths given by a flag or an
// environment variable are resolved against the working directory.
//
// Dataset names, like every viper key, are case-insensitive and normalised to
// lower case. A dataset is read from a CSV file (datasets.<name>.csv) or from
// PostgreSQL (datasets.<name>.postgres: dsn or dsn_env, table with optional
// columns, or query); the optional top-level key schema names the
// consortium schema the node checks its datasets against.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
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

// Defaults.
const (
	DefaultPassphraseEnv  = "SYNOD_PASSPHRASE"
	DefaultLogLevel       = "info"
	DefaultLogFormat      = "text"
	DefaultPeerTimeout    = 10 * time.Second
	DefaultSessionTimeout = 10 * time.Minute
	DefaultDataDir        = "data"
)

// TLSFiles names the PEM files of a member's mutual-TLS setup.
type TLSFiles struct {
	CA   string `mapstructure:"ca" yaml:"ca"`
	Cert string `mapstructure:"cert" yaml:"cert"`
	Key  string `mapstructure:"key" yaml:"key"`
}

// IdentityFiles names the member's sealed identity key.
type IdentityFiles struct {
	KeyFile string `mapstructure:"key_file" yaml:"key_file"`
}

// KeystoreSource says where the passphrase of the sealed secrets comes from:
// the environment variable PassphraseEnv if set and non-empty, otherwise the
// file PassphraseFile (see keystore.Passphrase).
type KeystoreSource struct {
	PassphraseEnv  string `mapstructure:"passphrase_env" yaml:"passphrase_env"`
	PassphraseFile string `mapstructure:"passphrase_file" yaml:"passphrase_file,omitempty"`
}

// Dataset is where the party's copy of a dataset lives: a CSV file
// (datasets.<name>.csv) or a PostgreSQL database (datasets.<name>.postgres),
// exactly one of the two.
type Dataset struct {
	CSV      string    `mapstructure:"csv" yaml:"csv,omitempty"`
	Postgres *Postgres `mapstructure:"postgres" yaml:"postgres,omitempty"`
}

// Postgres is a dataset read from PostgreSQL (datasets.<name>.postgres.*):
// the connection string is DSN or, to keep a password out of the file, the
// value of the environment variable named DSNEnv (exactly one of the two);
// the rows come from Table, with Columns mapping each dataset column to an
// SQL column or expression of that table (none: the table's columns as
// they are), or from Query, whose result columns are named as the dataset's
// columns (exactly one of Table and Query). Column names keep their case.
type Postgres struct {
	DSN     string            `mapstructure:"dsn" yaml:"dsn,omitempty"`
	DSNEnv  string            `mapstructure:"dsn_env" yaml:"dsn_env,omitempty"`
	Table   string            `mapstructure:"table" yaml:"table,omitempty"`
	Columns map[string]string `mapstructure:"columns" yaml:"columns,omitempty"`
	Query   string            `mapstructure:"query" yaml:"query,omitempty"`
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
	Level  string `mapstructure:"level" yaml:"level"`
	Format string `mapstructure:"format" yaml:"format"`
}

// Timeouts bounds waiting for a peer and for a whole session.
type Timeouts struct {
	Peer    time.Duration `mapstructure:"peer" yaml:"peer"`
	Session time.Duration `mapstructure:"session" yaml:"session"`
}

// Ledger says where the node records its audit trail. In "embedded" mode
// (the default) the node runs a CometBFT validator in process, with its
// home directory, keys and listen addresses below; in "remote" mode it
// submits to an existing chain through the RPC address Remote.
type Ledger struct {
	Mode             string `mapstructure:"mode" yaml:"mode"`
	Home             string `mapstructure:"home" yaml:"home,omitempty"`
	P2PListen        string `mapstructure:"p2p_listen" yaml:"p2p_listen,omitempty"`
	RPCListen        string `mapstructure:"rpc_listen" yaml:"rpc_listen,omitempty"`
	Peers            string `mapstructure:"peers" yaml:"peers,omitempty"` // comma-separated nodeid@host:port
	NodeKeyFile      string `mapstructure:"node_key_file" yaml:"node_key_file,omitempty"`
	ValidatorKeyFile string `mapstructure:"validator_key_file" yaml:"validator_key_file,omitempty"`
	Remote           string `mapstructure:"remote" yaml:"remote,omitempty"`
	FastBlocks       bool   `mapstructure:"fast_blocks" yaml:"fast_blocks,omitempty"`
}

// Roles of a node's configuration (key role): a party (the default), or a
// validator-only member of the consortium chain, which runs the embedded
// validator and nothing else.
const (
	RoleParty     = "party"
	RoleValidator = "validator"
)

// Party is a party node's configuration. With Role RoleValidator it is the
// configuration of a validator-only member: ID, Consortium, Keystore, Log,
// Timeouts and Ledger only.
type Party struct {
	ID         string             `mapstructure:"id" yaml:"id"`
	Role       string             `mapstructure:"role" yaml:"role,omitempty"`
	Listen     string             `mapstructure:"listen" yaml:"listen,omitempty"`
	DataDir    string             `mapstructure:"data_dir" yaml:"data_dir"`
	Consortium string             `mapstructure:"consortium" yaml:"consortium"`
	Schema     string             `mapstructure:"schema" yaml:"schema,omitempty"` // consortium schema file; optional
	TLS        TLSFiles           `mapstructure:"tls" yaml:"tls,omitempty"`
	Identity   IdentityFiles      `mapstructure:"identity" yaml:"identity,omitempty"`
	Keystore   KeystoreSource     `mapstructure:"keystore" yaml:"keystore"`
	Datasets   map[string]Dataset `mapstructure:"datasets" yaml:"datasets,omitempty"`
	Log        Logging            `mapstructure:"log" yaml:"log"`
	Timeouts   Timeouts           `mapstructure:"timeouts" yaml:"timeouts"`
	Ledger     Ledger             `mapstructure:"ledger" yaml:"ledger"`
	Policy     policy.Policy      `mapstructure:"policy" yaml:"policy,omitempty"`

	path string
}

// Path returns the configuration file the party was loaded from ("" if it
// was not loaded by LoadParty).
func (p *Party) Path() string { return p.path }

// Analyst is an analyst client's configuration.
type Analyst struct {
	ID         string         `mapstructure:"id" yaml:"id"`
	Node       string         `mapstructure:"node" yaml:"node"`       // host:port of the node to talk to
	NodeID     string         `mapstructure:"node_id" yaml:"node_id"` // that node's party id, checked against its certificate
	DataDir    string         `mapstructure:"data_dir" yaml:"data_dir"`
	Consortium string         `mapstructure:"consortium" yaml:"consortium"`
	TLS        TLSFiles       `mapstructure:"tls" yaml:"tls"`
	Identity   IdentityFiles  `mapstructure:"identity" yaml:"identity"`
	Keystore   KeystoreSource `mapstructure:"keystore" yaml:"keystore"`

	path string
}

// Path returns the configuration file the analyst was loaded from ("" if it
// was not loaded by LoadAnalyst).
func (a *Analyst) Path() string { return a.path }

// schema lists the keys of a configuration kind: scalar keys with their
// defaults (nil = no default), which of them are paths, and the sections.
type schema struct {
	kind     string
	defaults map[string]any
	paths    []string
	sections map[string]bool // top-level keys that hold maps
	open     map[string]bool // sections whose sub-keys are names (datasets)
}

var partySchema = schema{
	kind: "party",
	defaults: map[string]any{
		"id": nil, "role": RoleParty, "listen": nil, "data_dir": DefaultDataDir, "consortium": nil, "schema": nil,
		"tls.ca": nil, "tls.cert": nil, "tls.key": nil,
		"identity.key_file":         nil,
		"keystore.passphrase_env":   DefaultPassphraseEnv,
		"keystore.passphrase_file":  nil,
		"log.level":                 DefaultLogLevel,
		"log.format":                DefaultLogFormat,
		"timeouts.peer":             DefaultPeerTimeout,
		"timeouts.session":          DefaultSessionTimeout,
		"ledger.mode":               "embedded",
		"ledger.home":               nil,
		"ledger.p2p_listen":         nil,
		"ledger.rpc_listen":         nil,
		"ledger.peers":              nil,
		"ledger.node_key_file":      nil,
		"ledger.validator_key_file": nil,
		"ledger.remote":             nil,
		"ledger.fast_blocks":        false,
		"policy.analysts":           nil,
		"policy.min_cohort":         0,
		"policy.dp.require":         false,
		"policy.dp.max_epsilon":     0.0,
		"policy.dp.budget":          0.0,
	},
	paths: []string{"data_dir", "consortium", "schema", "tls.ca", "tls.cert", "tls.key", "identity.key_file", "keystore.passphrase_file",
		"ledger.home", "ledger.node_key_file", "ledger.validator_key_file"},
	sections: map[string]bool{"tls": true, "identity": true, "keystore": true, "log": true, "timeouts": true, "datasets": true, "ledger": true, "policy": true},
	open:     map[string]bool{"datasets": true},
}

var analystSchema = schema{
	kind: "analyst",
	defaults: map[string]any{
		"id": nil, "node": nil, "node_id": nil, "data_dir": DefaultDataDir, "consortium": nil,
		"tls.ca": nil, "tls.cert": nil, "tls.key": nil,
		"identity.key_file":        nil,
		"keystore.passphrase_env":  DefaultPassphraseEnv,
		"keystore.passphrase_file": nil,
	},
	paths:    []string{"data_dir", "consortium", "tls.ca", "tls.cert", "tls.key", "identity.key_file", "keystore.passphrase_file"},
	sections: map[string]bool{"tls": true, "identity": true, "keystore": true},
}

// datasetKeys are the keys allowed inside datasets.<name>; postgresKeys
// those inside datasets.<name>.postgres (columns is a mapping of names).
var (
	datasetKeys  = map[string]bool{"csv": true, "postgres": true}
	postgresKeys = map[string]bool{"dsn": true, "dsn_env": true, "table": true, "columns": true, "query": true}
)

// datasetScalarKeys are the per-dataset keys that an environment variable or
// a flag can set (SYNOD_DATASETS_<NAME>_POSTGRES_TABLE, ...).
var datasetScalarKeys = []string{"csv", "postgres.dsn", "postgres.dsn_env", "postgres.table", "postgres.query"}

// EnvName returns the environment variable that overrides key.
func EnvName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

type loader struct {
	path  string         // as given, for messages
	dir   string         // absolute directory of the file
	doc   map[string]any // the file as parsed, keys with their case
	v     *viper.Viper
	flags map[string]*pflag.Flag // key -> changed flag
	// columns are the policy.columns.<dataset> given by --set, dataset
	// names as written
	columns []setting
}

func newLoader(path string, flags *pflag.FlagSet, s schema) (*loader, error) {
	if path == "" {
		return nil, fmt.Errorf("%s config: no configuration file given", s.kind)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	l := &loader{path: path, dir: filepath.Dir(abs), v: viper.New(), flags: map[string]*pflag.Flag{}}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("config %s: not valid YAML: %w", path, err)
	}
	if err := checkKeys(path, doc, s); err != nil {
		return nil, err
	}
	l.doc = doc
	v := l.v
	v.SetConfigFile(path)
	v.SetConfigType("yaml")
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for k, d := range s.defaults {
		if d != nil {
			v.SetDefault(k, d)
		}
		if err := v.BindEnv(k); err != nil {
			return nil, fmt.Errorf("config %s: key %q: %w", path, k, err)
		}
	}
	if err := v.ReadInConfig(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if s.open["datasets"] {
		if ds, ok := doc["datasets"].(map[string]any); ok {
			for name := range ds {
				for _, sub := range datasetScalarKeys {
					k := "datasets." + strings.ToLower(name) + "." + sub
					if err := v.BindEnv(k); err != nil {
						return nil, fmt.Errorf("config %s: key %q: %w", path, k, err)
					}
				}
			}
		}
	}
	if flags != nil {
		var ferr error
		flags.VisitAll(func(f *pflag.Flag) {
			key := strings.ReplaceAll(f.Name, "-", "_")
			if _, known := s.defaults[key]; !known && !isDatasetKey(key, s) {
				return // a flag for something else (--config, --verbose...)
			}
			if err := v.BindPFlag(key, f); err != nil && ferr == nil {
				ferr = fmt.Errorf("config %s: flag --%s: %w", path, f.Name, err)
			}
			if f.Changed {
				l.flags[key] = f
			}
		})
		if ferr != nil {
			return nil, ferr
		}
	}
	sets, err := settings(path, flags, s)
	if err != nil {
		return nil, err
	}
	for _, st := range sets {
		if strings.HasPrefix(st.key, "policy.columns.") {
			l.columns = append(l.columns, st)
			continue
		}
		if f, dup := l.flags[st.key]; dup {
			return nil, fmt.Errorf("config %s: key %q is set twice (--%s and --%s %s=%s)", path, st.key, f.Name, st.flag.Name, st.key, st.value)
		}
		v.Set(st.key, st.value)
		l.flags[st.key] = st.flag
	}
	return l, nil
}

func isDatasetKey(key string, s schema) bool {
	if !s.open["datasets"] {
		return false
	}
	name, sub, ok := strings.Cut(strings.TrimPrefix(key, "datasets."), ".")
	return ok && strings.HasPrefix(key, "datasets.") && name != "" && slices.Contains(datasetScalarKeys, sub)
}

// checkKeys rejects keys of the file that the schema does not know.
func checkKeys(path string, doc map[string]any, s schema) error {
	known := map[string]bool{}
	for k := range s.defaults {
		known[k] = true
	}
	var unknown []string
	for top, val := range doc {
		t := strings.ToLower(top)
		if !s.sections[t] {
			if !known[t] {
				unknown = append(unknown, top)
			}
			continue
		}
		if val == nil {
			continue
		}
		m, ok := val.(map[string]any)
		if !ok {
			return fmt.Errorf("config %s: key %q must be a mapping, got %T", path, top, val)
		}
		for sub, sv := range m {
			if t == "policy" {
				bad, err := checkPolicyKey(path, top+"."+sub, sv, known)
				if err != nil {
					return err
				}
				unknown = append(unknown, bad...)
				continue
			}
			if s.open[t] {
				dm, ok := sv.(map[string]any)
				if !ok {
					return fmt.Errorf("config %s: key %q must be a mapping, got %T", path, top+"."+sub, sv)
				}
				for dk, dv := range dm {
					if !datasetKeys[strings.ToLower(dk)] {
						unknown = append(unknown, top+"."+sub+"."+dk)
						continue
					}
					if strings.ToLower(dk) != "postgres" || dv == nil {
						continue
					}
					pm, ok := dv.(map[string]any)
					if !ok {
						return fmt.Errorf("config %s: key %q must be a mapping, got %T", path, top+"."+sub+"."+dk, dv)
					}
					for pk, pv := range pm {
						if !postgresKeys[strings.ToLower(pk)] {
							unknown = append(unknown, top+"."+sub+"."+dk+"."+pk)
							continue
						}
						if strings.ToLower(pk) != "columns" || pv == nil {
							continue
						}
						cm, ok := pv.(map[string]any)
						if !ok {
							return fmt.Errorf("config %s: key %q must be a mapping of dataset column to SQL column or expression, got %T", path, top+"."+sub+"."+dk+"."+pk, pv)
						}
						for col, expr := range cm {
							if _, ok := expr.(string); !ok {
								return fmt.Errorf("config %s: key %q: column %q: want an SQL column or expression (a string), got %T", path, top+"."+sub+"."+dk+"."+pk, col, expr)
							}
						}
					}
				}
				continue
			}
			if !known[t+"."+strings.ToLower(sub)] {
				unknown = append(unknown, top+"."+sub)
			}
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("config %s: unknown key(s) %s (known: %s)", path, strings.Join(unknown, ", "), strings.Join(knownList(s), ", "))
	}
	return nil
}

// checkPolicyKey checks policy.<sub>: policy.dp holds scalar keys and
// policy.columns maps a dataset to a list of column names.
func checkPolicyKey(path, key string, val any, known map[string]bool) ([]string, error) {
	switch strings.ToLower(key) {
	case "policy.dp":
		if val == nil {
			return nil, nil
		}
		m, ok := val.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("config %s: key %q must be a mapping, got %T", path, key, val)
		}
		var unknown []string
		for k := range m {
			if !known["policy.dp."+strings.ToLower(k)] {
				unknown = append(unknown, key+"."+k)
			}
		}
		return unknown, nil
	case "policy.columns":
		if val == nil {
			return nil, nil
		}
		m, ok := val.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("config %s: key %q must map each dataset to the list of columns analysts may use, got %T", path, key, val)
		}
		for ds, cols := range m {
			list, ok := cols.([]any)
			if !ok {
				return nil, fmt.Errorf("config %s: key %q: want a list of column names, got %T", path, key+"."+ds, cols)
			}
			for i, c := range list {
				if _, ok := c.(string); !ok {
					return nil, fmt.Errorf("config %s: key %q: item %d: want a column name, got %T", path, key+"."+ds, i, c)
				}
			}
		}
		return nil, nil
	}
	if !known[strings.ToLower(key)] {
		return []string{key}, nil
	}
	return nil, nil
}

func knownList(s schema) []string {
	var ks []string
	for k := range s.defaults {
		ks = append(ks, k)
	}
	if s.open["datasets"] {
		ks = append(ks, "datasets.<name>.csv", "datasets.<name>.postgres.{dsn,dsn_env,table,columns,query}")
	}
	if s.sections["policy"] {
		ks = append(ks, "policy.columns.<dataset>")
	}
	sort.Strings(ks)
	return ks
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
	if p == "" || filepath.IsAbs(p) {
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

func (l *loader) unmarshal(out any) error {
	if err := l.v.Unmarshal(out); err != nil {
		return fmt.Errorf("config %s: %w", l.path, err)
	}
	return nil
}

func (l *loader) common(id *string, dataDir, consortium *string, t *TLSFiles, idf *IdentityFiles, ks *KeystoreSource) error {
	t.CA = l.resolve("tls.ca", t.CA)
	t.Cert = l.resolve("tls.cert", t.Cert)
	t.Key = l.resolve("tls.key", t.Key)
	idf.KeyFile = l.resolve("identity.key_file", idf.KeyFile)
	if err := l.membership(*id, dataDir, consortium, ks); err != nil {
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
	if err := l.required("data_dir", *dataDir); err != nil {
		return err
	}
	return l.passphraseSource(*ks)
}

// membership resolves the paths every member's config has and checks its
// id and consortium file.
func (l *loader) membership(id string, dataDir, consortium *string, ks *KeystoreSource) error {
	*dataDir = l.resolve("data_dir", *dataDir)
	*consortium = l.resolve("consortium", *consortium)
	ks.PassphraseFile = l.resolve("keystore.passphrase_file", ks.PassphraseFile)
	if err := l.required("id", id); err != nil {
		return err
	}
	if strings.ContainsAny(id, " \t\n/\\") {
		return l.errf("id", "%q contains whitespace or a path separator", id)
	}
	return l.existingFile("consortium", *consortium)
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
	l, err := newLoader(path, flags, partySchema)
	if err != nil {
		return nil, err
	}
	p := Party{path: path}
	if err := l.unmarshal(&p); err != nil {
		return nil, err
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
	if err := l.common(&p.ID, &p.DataDir, &p.Consortium, &p.TLS, &p.Identity, &p.Keystore); err != nil {
		return nil, err
	}
	if err := l.hostPort("listen", p.Listen); err != nil {
		return nil, err
	}
	p.Schema = l.resolve("schema", p.Schema)
	if p.Schema != "" {
		if err := l.existingFile("schema", p.Schema); err != nil {
			return nil, err
		}
	}
	// viper drops a dataset declared with nothing under it: keep it, to
	// refuse it below
	if ds, ok := l.doc["datasets"].(map[string]any); ok {
		for name := range ds {
			if _, ok := p.Datasets[strings.ToLower(name)]; !ok {
				if p.Datasets == nil {
					p.Datasets = map[string]Dataset{}
				}
				p.Datasets[strings.ToLower(name)] = Dataset{}
			}
		}
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

// validator resolves and checks the configuration of a validator-only
// member (role: validator): it runs the embedded chain validator and
// nothing else, so it needs its id, the consortium file, the keystore
// passphrase and the ledger section, and refuses the keys of a party's
// data, policy, identity and gRPC service.
func (l *loader) validator(p *Party) error {
	if err := l.membership(p.ID, &p.DataDir, &p.Consortium, &p.Keystore); err != nil {
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
	if pol := p.Policy; len(pol.Analysts) > 0 || len(pol.Columns) > 0 || pol.MinCohort != 0 || pol.DP != (policy.DP{}) {
		return fmt.Errorf("config %s: key \"policy\": a validator-only member (role: %s) answers no query: remove it", l.path, RoleValidator)
	}
	if p.Ledger.Mode != "embedded" {
		return l.errf("ledger.mode", "%q: a validator-only member runs the embedded validator, want embedded", p.Ledger.Mode)
	}
	return l.runtime(p)
}

// runtime checks the keys every node has, party or validator: logging,
// timeouts and the ledger section (paths resolved).
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
	p.Ledger.Home = l.resolve("ledger.home", p.Ledger.Home)
	p.Ledger.NodeKeyFile = l.resolve("ledger.node_key_file", p.Ledger.NodeKeyFile)
	p.Ledger.ValidatorKeyFile = l.resolve("ledger.validator_key_file", p.Ledger.ValidatorKeyFile)
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
// list, and the column lists keep the dataset names' case as written.
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
	if pm, ok := l.doc["policy"].(map[string]any); ok {
		for k, v := range pm {
			if strings.ToLower(k) != "columns" {
				continue
			}
			cols, _ := v.(map[string]any)
			p.Columns = map[string][]string{}
			for ds, list := range cols {
				for _, c := range list.([]any) {
					p.Columns[ds] = append(p.Columns[ds], c.(string))
				}
			}
		}
	}
	for _, st := range l.columns {
		if p.Columns == nil {
			p.Columns = map[string][]string{}
		}
		for ds := range p.Columns {
			if strings.EqualFold(ds, st.name) {
				delete(p.Columns, ds) // the flag replaces the file's list
			}
		}
		p.Columns[st.name] = nil
		for _, c := range strings.Split(st.value, ",") {
			if c = strings.TrimSpace(c); c != "" {
				p.Columns[st.name] = append(p.Columns[st.name], c)
			}
		}
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("config %s: %w", l.path, err)
	}
	return nil
}

// dataset resolves and validates datasets.<name>: exactly one of csv and
// postgres; for postgres exactly one of dsn and dsn_env, exactly one of
// table and query, columns only with table. The columns mapping is taken
// from the file as written (viper would lower-case its keys).
func (l *loader) dataset(name string, d *Dataset) error {
	key := "datasets." + name
	csvKey := key + ".csv"
	d.CSV = l.resolve(csvKey, d.CSV)
	pg := d.Postgres
	if pg != nil && pg.DSN == "" && pg.DSNEnv == "" && pg.Table == "" && pg.Query == "" && len(l.rawColumns(name)) == 0 {
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
	pg.Columns = l.rawColumns(name)
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

// rawColumns returns datasets.<name>.postgres.columns as written in the file.
func (l *loader) rawColumns(name string) map[string]string {
	get := func(m map[string]any, key string) map[string]any {
		for k, v := range m {
			if strings.EqualFold(k, key) {
				if sub, ok := v.(map[string]any); ok {
					return sub
				}
			}
		}
		return nil
	}
	cols := get(get(get(get(l.doc, "datasets"), name), "postgres"), "columns")
	if len(cols) == 0 {
		return nil
	}
	out := make(map[string]string, len(cols))
	for k, v := range cols {
		out[k], _ = v.(string)
	}
	return out
}

// LoadAnalyst reads an analyst configuration file like LoadParty.
func LoadAnalyst(path string, flags *pflag.FlagSet) (*Analyst, error) {
	l, err := newLoader(path, flags, analystSchema)
	if err != nil {
		return nil, err
	}
	a := Analyst{path: path}
	if err := l.unmarshal(&a); err != nil {
		return nil, err
	}
	if err := l.common(&a.ID, &a.DataDir, &a.Consortium, &a.TLS, &a.Identity, &a.Keystore); err != nil {
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
func DefaultParty() Party {
	return Party{
		DataDir:  DefaultDataDir,
		Keystore: KeystoreSource{PassphraseEnv: DefaultPassphraseEnv},
		Log:      Logging{Level: DefaultLogLevel, Format: DefaultLogFormat},
		Timeouts: Timeouts{Peer: DefaultPeerTimeout, Session: DefaultSessionTimeout},
		Ledger:   Ledger{Mode: "embedded"},
	}
}
