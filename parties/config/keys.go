package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// A key is one configuration key, as the struct field that holds it
// declares it (see the package doc for the tags).
type key struct {
	name string       // dotted, lower case ("log.level"); a name the file gives is <dataset> or <column>
	typ  reflect.Type // the field's type, pointer removed
	def  string       // the default, written as an environment variable would give it
	help string
	path bool // a file or directory, resolved against the config file's directory
}

// value reports whether k holds a value (text, number, bool, duration, list)
// rather than keys (a section or a map of named entries).
func (k key) value() bool { return k.typ.Kind() != reflect.Struct && k.typ.Kind() != reflect.Map }

// named reports whether k exists once per name the configuration gives
// (datasets.<dataset>.csv): it has no flag or environment variable of its
// own, only --set and, for a name in the file, SYNOD_DATASETS_<NAME>_...
func (k key) named() bool { return strings.Contains(k.name, "<") }

// entry reports whether k is an entry of a map of values
// (policy.columns.<dataset>, datasets.<dataset>.postgres.columns.<column>).
// Viper would lower-case the entries' names, so they are read from the file
// as written and set by --set after decoding.
func (k key) entry() bool { return strings.HasSuffix(k.name, ">") && k.value() }

// The keys of each kind of configuration, in the order of their fields.
var (
	partyKeys   = keysOf("", reflect.TypeFor[Party]())
	analystKeys = keysOf("", reflect.TypeFor[Analyst]())
)

// keysOf lists the keys of the configuration struct t below prefix: each
// field with a yaml tag is a key; a struct field is a section, followed by
// its keys; a map field is followed by the keys of one entry, named after
// the field's names tag (datasets.<dataset>.csv, policy.columns.<dataset>).
func keysOf(prefix string, t reflect.Type) []key {
	var keys []key
	for i := range t.NumField() {
		f := t.Field(i)
		name := fieldKey(f)
		if name == "" {
			continue
		}
		k := key{name: prefix + name, typ: deref(f.Type), def: f.Tag.Get("default"), help: f.Tag.Get("help"), path: f.Tag.Get("kind") == "path"}
		keys = append(keys, k)
		switch k.typ.Kind() {
		case reflect.Struct:
			keys = append(keys, keysOf(k.name+".", k.typ)...)
		case reflect.Map:
			entry := key{name: k.name + ".<" + f.Tag.Get("names") + ">", typ: deref(k.typ.Elem())}
			if entry.value() {
				entry.help = k.help // a value entry is set by --set
			}
			keys = append(keys, entry)
			if !entry.value() {
				keys = append(keys, keysOf(entry.name+".", entry.typ)...)
			}
		}
	}
	return keys
}

// fieldKey is the key of a struct field: the name in its yaml tag, "" for
// a field that is not a key.
func fieldKey(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	return name
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// match finds the key that the concrete key name (datasets.Cohort.csv) is
// an instance of, and returns it with the names the concrete key gives in
// place of <dataset> and <column>. Keys match whatever their case; the
// name of an entry, the last segment, may contain dots.
func match(keys []key, name string) (key, []string, bool) {
	segs := strings.Split(name, ".")
next:
	for _, k := range keys {
		pat := strings.Split(k.name, ".")
		if len(segs) < len(pat) || len(segs) > len(pat) && !k.entry() {
			continue
		}
		var names []string
		for i, p := range pat {
			switch {
			case strings.HasPrefix(p, "<") && i == len(pat)-1:
				names = append(names, strings.Join(segs[i:], "."))
			case strings.HasPrefix(p, "<"):
				names = append(names, segs[i])
			case p != strings.ToLower(segs[i]):
				continue next
			}
		}
		return k, names, true
	}
	return key{}, nil, false
}

// canonical writes the concrete key name, an instance of k given by
// match, as configurations know it: in lower case, like every viper key and
// dataset name, but for a column name, which keeps its case.
func canonical(k key, name string) string {
	segs := strings.Split(name, ".")
	n := len(segs)
	if strings.HasSuffix(k.name, ".<column>") {
		n = strings.Count(k.name, ".") // the segments before the column's name
	}
	for i := range n {
		segs[i] = strings.ToLower(segs[i])
	}
	return strings.Join(segs, ".")
}

// knownList is the list of keys in messages about an unknown one.
func knownList(keys []key) []string {
	var names []string
	for _, k := range keys {
		if k.value() {
			names = append(names, k.name)
		}
	}
	slices.Sort(names)
	return names
}

// EnvName returns the environment variable that overrides key.
func EnvName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// decode fills out, a configuration struct, from v: through the yaml
// tags, so that the names a file is written with are the names it is read
// with.
func decode(v *viper.Viper, out any) error {
	return v.Unmarshal(out, func(c *mapstructure.DecoderConfig) { c.TagName = "yaml" })
}

// defaults returns the configuration of type C with its keys' defaults.
func defaults[C any](keys []key) C {
	v := viper.New()
	for _, k := range keys {
		if k.def != "" {
			v.SetDefault(k.name, k.def)
		}
	}
	var c C
	if err := decode(v, &c); err != nil {
		// the defaults are this package's own tags, checked by its tests
		panic(fmt.Sprintf("config: bad default tag: %v", err))
	}
	return c
}
