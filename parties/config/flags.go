package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/pflag"
)

// Flags that set keys whose names are not known in advance (dataset names).
// LoadParty reads them from the flag set it is given; each is repeatable.
const (
	// SetFlag is --set KEY=VALUE: any party key, including
	// datasets.<name>.{csv,postgres.dsn,postgres.dsn_env,postgres.table,postgres.query}
	// and policy.columns.<dataset> (a comma-separated list).
	SetFlag = "set"
	// DatasetFlag is --dataset NAME=FILE.csv, short for
	// --set datasets.NAME.csv=FILE.csv.
	DatasetFlag = "dataset"
)

type flagKey struct{ key, help string }

var partyFlagKeys = []flagKey{
	{"id", "party id"},
	{"role", "party (default) or validator: a validator-only member runs the consortium chain's validator and nothing else"},
	{"listen", "address to serve gRPC on (host:port)"},
	{"data_dir", "directory for the node's state"},
	{"consortium", "consortium file"},
	{"schema", "consortium schema file; every dataset is checked against it at start"},
	{"tls.ca", "consortium CA certificate (PEM)"},
	{"tls.cert", "this node's certificate (PEM)"},
	{"tls.key", "this node's TLS key (sealed)"},
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
}

var partyBoolFlagKeys = []flagKey{
	{"policy.dp.require", "contribute only to differentially private queries"},
	{"ledger.fast_blocks", "commit blocks as fast as loopback allows (local demos and tests)"},
}

var analystFlagKeys = []flagKey{
	{"id", "analyst id"},
	{"node", "address of the node to talk to (host:port)"},
	{"node_id", "party id of that node, checked against its certificate"},
	{"data_dir", "directory for the analyst's own keys and results"},
	{"consortium", "consortium file"},
	{"tls.ca", "consortium CA certificate (PEM)"},
	{"tls.cert", "the analyst's certificate (PEM)"},
	{"tls.key", "the analyst's TLS key (sealed)"},
	{"identity.key_file", "sealed identity key"},
	{"keystore.passphrase_env", "environment variable holding the keystore passphrase"},
	{"keystore.passphrase_file", "file holding the keystore passphrase"},
}

// PartyFlags defines on fs one flag per party configuration key (named as
// the key), plus the repeatable --set and --dataset, and makes fs accept '-'
// for '_' in key flags (--data-dir). A flag overrides the environment and
// the file only when it is given.
func PartyFlags(fs *pflag.FlagSet) {
	for _, k := range partyFlagKeys {
		fs.String(k.key, "", k.help)
	}
	for _, k := range partyBoolFlagKeys {
		fs.Bool(k.key, false, k.help)
	}
	fs.StringArray(SetFlag, nil, "KEY=VALUE: set any config key, including datasets.<name>.csv, datasets.<name>.postgres.{dsn,dsn_env,table,query} and policy.columns.<dataset>=col1,col2 (repeatable)")
	fs.StringArray(DatasetFlag, nil, "NAME=FILE: a CSV dataset, short for --set datasets.NAME.csv=FILE (repeatable)")
	fs.SetNormalizeFunc(NormalizeFlagName)
}

// AnalystFlags defines on fs one flag per analyst configuration key, and
// makes fs accept '-' for '_' in them (--node-id, --data-dir).
func AnalystFlags(fs *pflag.FlagSet) {
	for _, k := range analystFlagKeys {
		fs.String(k.key, "", k.help)
	}
	fs.SetNormalizeFunc(NormalizeFlagName)
}

// NormalizeFlagName is a pflag normalization function under which a flag
// named after a configuration key answers to the key with '-' for '_'
// (--data-dir and --data_dir, --identity.key-file). Other flag names are
// left as they are, so --party-config stays --party-config.
func NormalizeFlagName(_ *pflag.FlagSet, name string) pflag.NormalizedName {
	key := strings.ReplaceAll(name, "-", "_")
	if _, ok := partySchema.defaults[key]; ok {
		return pflag.NormalizedName(key)
	}
	if _, ok := analystSchema.defaults[key]; ok {
		return pflag.NormalizedName(key)
	}
	return pflag.NormalizedName(name)
}

// setting is one KEY=VALUE of --set or --dataset.
type setting struct {
	key, value string
	name       string // the dataset name as written, for policy.columns.<dataset>
	flag       *pflag.Flag
}

// settings reads the --set and --dataset flags of flags (those of a party
// configuration) and checks each key against the schema.
func settings(path string, flags *pflag.FlagSet, s schema) ([]setting, error) {
	if flags == nil || !s.open["datasets"] {
		return nil, nil
	}
	var out []setting
	for _, name := range []string{SetFlag, DatasetFlag} {
		f := flags.Lookup(name)
		if f == nil || !f.Changed {
			continue
		}
		vals, err := flags.GetStringArray(name)
		if err != nil {
			return nil, fmt.Errorf("config %s: flag --%s: %w", path, name, err)
		}
		for _, kv := range vals {
			k, v, ok := strings.Cut(kv, "=")
			k = strings.TrimSpace(k)
			if !ok || k == "" {
				return nil, fmt.Errorf("config %s: flag --%s %q: want %s", path, name, kv, map[string]string{SetFlag: "KEY=VALUE", DatasetFlag: "NAME=FILE"}[name])
			}
			if name == DatasetFlag {
				k = "datasets." + k + ".csv"
			}
			st := setting{key: strings.ToLower(k), value: v, flag: f}
			switch {
			case strings.HasPrefix(st.key, "policy.columns."):
				st.name = k[len("policy.columns."):]
				if st.name == "" || strings.Contains(st.name, ".") {
					return nil, fmt.Errorf("config %s: flag --%s %q: want policy.columns.<dataset>=col1,col2", path, name, kv)
				}
			case isDatasetKey(st.key, s):
				if ds := strings.SplitN(st.key, ".", 3)[1]; strings.TrimSpace(ds) == "" {
					return nil, fmt.Errorf("config %s: flag --%s %q: empty dataset name", path, name, kv)
				}
			default:
				if _, known := s.defaults[st.key]; !known {
					return nil, fmt.Errorf("config %s: flag --%s %q: unknown key %q (known: %s)", path, name, kv, k, strings.Join(knownList(s), ", "))
				}
			}
			if i := slices.IndexFunc(out, func(o setting) bool { return o.key == st.key }); i >= 0 {
				return nil, fmt.Errorf("config %s: key %q is set twice (--%s %s=%s and --%s %s=%s)", path, st.key, out[i].flag.Name, out[i].key, out[i].value, name, st.key, v)
			}
			out = append(out, st)
		}
	}
	return out, nil
}
