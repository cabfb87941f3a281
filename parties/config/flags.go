package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/spf13/pflag"
)

// Flags that set keys whose names are not known in advance (dataset names).
// LoadParty reads them from the flag set it is given; each is repeatable.
const (
	// SetFlag is --set KEY=VALUE: any party key, including
	// datasets.<dataset>.{csv,postgres.dsn,postgres.dsn_env,postgres.table,postgres.query},
	// datasets.<dataset>.postgres.columns.<column> (an SQL column or
	// expression) and policy.columns.<dataset> (a comma-separated list).
	SetFlag = "set"
	// DatasetFlag is --dataset NAME=FILE.csv, short for
	// --set datasets.NAME.csv=FILE.csv.
	DatasetFlag = "dataset"
)

// PartyFlags defines on fs one flag per party configuration key (named as
// the key), plus the repeatable --set and --dataset, and makes fs accept '-'
// for '_' in key flags (--data-dir). A flag overrides the environment and
// the file only when it is given.
func PartyFlags(fs *pflag.FlagSet) {
	keyFlags(fs, partyKeys)
	var named []string
	for _, k := range partyKeys {
		if k.value() && k.named() {
			named = append(named, k.name)
		}
	}
	fs.StringArray(SetFlag, nil, "KEY=VALUE: set any config key, including "+strings.Join(named, ", ")+"; a list is comma-separated (repeatable)")
	fs.StringArray(DatasetFlag, nil, "NAME=FILE: a CSV dataset, short for --set datasets.NAME.csv=FILE (repeatable)")
}

// AnalystFlags defines on fs one flag per analyst configuration key, and
// makes fs accept '-' for '_' in them (--node-id, --data-dir).
func AnalystFlags(fs *pflag.FlagSet) { keyFlags(fs, analystKeys) }

// keyFlags defines a flag for every key of keys that is not named after a
// dataset: a bool flag for a bool, a string flag for any other value.
func keyFlags(fs *pflag.FlagSet, keys []key) {
	for _, k := range keys {
		switch {
		case !k.value() || k.named():
		case k.typ.Kind() == reflect.Bool:
			fs.Bool(k.name, false, k.help)
		default:
			fs.String(k.name, "", k.help)
		}
	}
	fs.SetNormalizeFunc(NormalizeFlagName)
}

// NormalizeFlagName is a pflag normalization function under which a flag
// named after a configuration key answers to the key with '-' for '_'
// (--data-dir and --data_dir, --identity.key-file). Other flag names are
// left as they are, so --party-config stays --party-config.
func NormalizeFlagName(_ *pflag.FlagSet, name string) pflag.NormalizedName {
	asKey := strings.ReplaceAll(name, "-", "_")
	for _, keys := range [][]key{partyKeys, analystKeys} {
		if k, _, ok := match(keys, asKey); ok && k.value() && !k.named() {
			return pflag.NormalizedName(asKey)
		}
	}
	return pflag.NormalizedName(name)
}

// setting is one KEY=VALUE of --set or --dataset.
type setting struct {
	key, value string   // key as configurations know it (canonical)
	names      []string // the names it gives for <dataset> and <column>
	entry      bool     // an entry of a map of values (policy.columns.<dataset>)
	flag       *pflag.Flag
}

// settings reads the --set and --dataset flags of flags and checks each
// key against keys.
func settings(path string, flags *pflag.FlagSet, keys []key) ([]setting, error) {
	if flags == nil {
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
			dk, names, known := match(keys, k)
			if !known {
				return nil, fmt.Errorf("config %s: flag --%s %q: unknown key %q (known: %s)", path, name, kv, k, strings.Join(knownList(keys), ", "))
			}
			if !dk.value() {
				return nil, fmt.Errorf("config %s: flag --%s %q: key %q holds keys, not a value: set one of them (known: %s)", path, name, kv, k, strings.Join(knownList(keys), ", "))
			}
			for _, n := range names {
				if strings.TrimSpace(n) == "" {
					return nil, fmt.Errorf("config %s: flag --%s %q: empty name in %s", path, name, kv, dk.name)
				}
			}
			st := setting{key: canonical(dk, k), value: v, names: names, entry: dk.entry(), flag: f}
			if i := slices.IndexFunc(out, func(o setting) bool { return o.key == st.key }); i >= 0 {
				return nil, fmt.Errorf("config %s: key %q is set twice (--%s %s=%s and --%s %s=%s)", path, st.key, out[i].flag.Name, out[i].key, out[i].value, name, st.key, v)
			}
			out = append(out, st)
		}
	}
	return out, nil
}
