// Package schema is the consortium schema: the datasets the consortium
// queries, their columns, each column's type and the values it may take.
// Every party holds a copy (configs/schema.yaml is the shipped example) and
// checks its own data against it before serving anything:
//
//	datasets:
//	  patients:
//	    description: one row per patient
//	    columns:
//	      - {name: age, type: integer, unit: years, min: 18, max: 95}
//	      - {name: bmi, type: numeric, min: 15, max: 55}
//	      - {name: smoker, type: boolean}
//	      - name: sex
//	        type: categorical
//	        categories: [{code: 0, label: female}, {code: 1, label: male}]
//
// Types: numeric (a finite real in [min, max]), integer (a whole number in
// [min, max]), boolean (0 or 1), categorical (one of the listed numeric
// codes). min and max are required for numeric and integer columns and
// refused elsewhere; categories are required for categorical columns and
// refused elsewhere. Dataset names are lower case (party configs normalise
// them so); column names are case-sensitive, as in the data sources.
package schema

import (
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/synod-mpc/synod/parties/datasource"
)

// Type is a column type.
type Type string

// Column types.
const (
	Numeric     Type = "numeric"
	Integer     Type = "integer"
	Boolean     Type = "boolean"
	Categorical Type = "categorical"
)

// Schema is a loaded, validated consortium schema.
type Schema struct {
	Datasets map[string]*Dataset `yaml:"datasets"`
	path     string
}

// Dataset is one dataset of the schema; Columns keep the file's order.
type Dataset struct {
	Name        string    `yaml:"-"`
	Description string    `yaml:"description,omitempty"`
	Columns     []*Column `yaml:"columns"`
}

// Column is one column: its type and its admissible values.
type Column struct {
	Name        string     `yaml:"name"`
	Type        Type       `yaml:"type"`
	Description string     `yaml:"description,omitempty"`
	Unit        string     `yaml:"unit,omitempty"`
	Min         *float64   `yaml:"min,omitempty"`
	Max         *float64   `yaml:"max,omitempty"`
	Categories  []Category `yaml:"categories,omitempty"`
}

// Category is one code of a categorical column and its label.
type Category struct {
	Code  float64 `yaml:"code"`
	Label string  `yaml:"label"`
}

// Keys allowed at each level, for errors naming an unknown key.
var (
	topKeys      = []string{"datasets"}
	datasetKeys  = []string{"columns", "description"}
	columnKeys   = []string{"categories", "description", "max", "min", "name", "type", "unit"}
	categoryKeys = []string{"code", "label"}
	datasetName  = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
)

// Load reads and validates a schema file. Errors name the file and the
// dataset, column and field at fault.
func Load(path string) (*Schema, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	s, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", path, err)
	}
	s.path = path
	return s, nil
}

// Parse is Load on the bytes of a schema file.
func Parse(b []byte) (*Schema, error) {
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	if err := checkKeys(raw); err != nil {
		return nil, err
	}
	var s Schema
	if err := yaml.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("not a schema: %w", err)
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Path returns the file the schema was loaded from ("" if parsed).
func (s *Schema) Path() string { return s.path }

// Dataset returns the named dataset of the schema.
func (s *Schema) Dataset(name string) (*Dataset, bool) {
	d, ok := s.Datasets[name]
	return d, ok
}

// Column returns a column of a dataset of the schema.
func (s *Schema) Column(dataset, column string) (*Column, bool) {
	d, ok := s.Dataset(dataset)
	if !ok {
		return nil, false
	}
	return d.Column(column)
}

// Names returns the dataset names, sorted.
func (s *Schema) Names() []string {
	names := make([]string, 0, len(s.Datasets))
	for n := range s.Datasets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Column returns the named column.
func (d *Dataset) Column(name string) (*Column, bool) {
	i := slices.IndexFunc(d.Columns, func(c *Column) bool { return c.Name == name })
	if i < 0 {
		return nil, false
	}
	return d.Columns[i], true
}

// ColumnNames returns the column names in the schema's order.
func (d *Dataset) ColumnNames() []string {
	names := make([]string, len(d.Columns))
	for i, c := range d.Columns {
		names[i] = c.Name
	}
	return names
}

// Check refuses a table that does not match its dataset (table.Name) in the
// schema: see Dataset.Check.
func (s *Schema) Check(t *datasource.Table) error {
	d, ok := s.Dataset(t.Name)
	if !ok {
		return fmt.Errorf("dataset %s is not in the consortium schema (datasets: %s)", t.Name, strings.Join(s.Names(), ", "))
	}
	return d.Check(t)
}

// Check refuses a table whose columns are not exactly the dataset's or
// whose values are not admissible: it reports, for every column at fault,
// the first problem (a missing or undeclared column, a value out of range or
// not in the categorical domain, with its 1-based row).
func (d *Dataset) Check(t *datasource.Table) error {
	var errs []error
	for _, c := range d.Columns {
		vals, err := t.Column(c.Name)
		if err != nil {
			errs = append(errs, fmt.Errorf("dataset %s: column %q of the schema is missing from the source (it has: %s)", d.Name, c.Name, strings.Join(t.Columns, ", ")))
			continue
		}
		if err := c.check(vals); err != nil {
			errs = append(errs, fmt.Errorf("dataset %s: column %q: %w", d.Name, c.Name, err))
		}
	}
	for _, name := range t.Columns {
		if _, ok := d.Column(name); !ok {
			errs = append(errs, fmt.Errorf("dataset %s: column %q of the source is not in the schema (schema columns: %s); remove it from the source or declare it", d.Name, name, strings.Join(d.ColumnNames(), ", ")))
		}
	}
	return errors.Join(errs...)
}

// check returns the first inadmissible value of vals, naming its row.
func (c *Column) check(vals []float64) error {
	var codes map[float64]bool
	if c.Type == Categorical {
		codes = make(map[float64]bool, len(c.Categories))
		for _, k := range c.Categories {
			codes[k.Code] = true
		}
	}
	for r, v := range vals {
		row := r + 1
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("row %d: %v is not a finite number", row, v)
		}
		switch c.Type {
		case Numeric, Integer:
			if c.Type == Integer && v != math.Trunc(v) {
				return fmt.Errorf("row %d: %v is not an integer", row, v)
			}
			if v < *c.Min || v > *c.Max {
				return fmt.Errorf("row %d: %v is out of range [%v, %v]", row, v, *c.Min, *c.Max)
			}
		case Boolean:
			if v != 0 && v != 1 {
				return fmt.Errorf("row %d: %v is not a boolean (0 or 1)", row, v)
			}
		case Categorical:
			if !codes[v] {
				return fmt.Errorf("row %d: %v is not in the categorical domain {%s}", row, v, c.domain())
			}
		}
	}
	return nil
}

func (c *Column) domain() string {
	parts := make([]string, len(c.Categories))
	for i, k := range c.Categories {
		parts[i] = fmt.Sprintf("%v=%s", k.Code, k.Label)
	}
	return strings.Join(parts, ", ")
}

// Label returns the label of a categorical code.
func (c *Column) Label(code float64) (string, bool) {
	for _, k := range c.Categories {
		if k.Code == code {
			return k.Label, true
		}
	}
	return "", false
}

func (s *Schema) validate() error {
	if len(s.Datasets) == 0 {
		return errors.New(`no datasets (want a "datasets" mapping of name to columns)`)
	}
	for _, name := range s.Names() {
		d := s.Datasets[name]
		if d == nil {
			return fmt.Errorf("dataset %s: no columns", name)
		}
		d.Name = name
		if !datasetName.MatchString(name) {
			return fmt.Errorf("dataset %q: a name is lower-case letters, digits, '_' and '-'", name)
		}
		if len(d.Columns) == 0 {
			return fmt.Errorf("dataset %s: no columns", name)
		}
		seen := map[string]bool{}
		for i, c := range d.Columns {
			if c == nil || strings.TrimSpace(c.Name) == "" {
				return fmt.Errorf("dataset %s: column %d: missing field \"name\"", name, i+1)
			}
			if seen[c.Name] {
				return fmt.Errorf("dataset %s: column %q is declared twice", name, c.Name)
			}
			seen[c.Name] = true
			if err := c.validate(); err != nil {
				return fmt.Errorf("dataset %s: column %q: %w", name, c.Name, err)
			}
		}
	}
	return nil
}

func (c *Column) validate() error {
	finite := func(field string, v *float64) error {
		if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
			return fmt.Errorf("field %q: %v is not a finite number", field, *v)
		}
		return nil
	}
	if err := finite("min", c.Min); err != nil {
		return err
	}
	if err := finite("max", c.Max); err != nil {
		return err
	}
	switch c.Type {
	case Numeric, Integer:
		if c.Min == nil || c.Max == nil {
			return fmt.Errorf("fields \"min\" and \"max\" are required for a %s column", c.Type)
		}
		if *c.Min > *c.Max {
			return fmt.Errorf("field \"min\" (%v) is above field \"max\" (%v)", *c.Min, *c.Max)
		}
		if c.Type == Integer && (*c.Min != math.Trunc(*c.Min) || *c.Max != math.Trunc(*c.Max)) {
			return fmt.Errorf("fields \"min\" and \"max\" of an integer column must be integers (%v, %v)", *c.Min, *c.Max)
		}
		if len(c.Categories) > 0 {
			return fmt.Errorf("field \"categories\" is only for categorical columns, this one is %s", c.Type)
		}
	case Boolean, Categorical:
		if c.Min != nil || c.Max != nil {
			return fmt.Errorf("fields \"min\" and \"max\" are only for numeric and integer columns, this one is %s", c.Type)
		}
		if c.Type == Boolean {
			if len(c.Categories) > 0 {
				return errors.New("field \"categories\" is only for categorical columns, this one is boolean")
			}
			return nil
		}
		if len(c.Categories) == 0 {
			return errors.New("field \"categories\" is required for a categorical column (a list of {code, label})")
		}
		codes, labels := map[float64]bool{}, map[string]bool{}
		for i, k := range c.Categories {
			if math.IsNaN(k.Code) || math.IsInf(k.Code, 0) {
				return fmt.Errorf("field \"categories\": entry %d: code %v is not a finite number", i+1, k.Code)
			}
			if strings.TrimSpace(k.Label) == "" {
				return fmt.Errorf("field \"categories\": code %v has no label", k.Code)
			}
			if codes[k.Code] {
				return fmt.Errorf("field \"categories\": code %v appears twice", k.Code)
			}
			if labels[k.Label] {
				return fmt.Errorf("field \"categories\": label %q appears twice", k.Label)
			}
			codes[k.Code], labels[k.Label] = true, true
		}
	case "":
		return errors.New("missing field \"type\" (numeric, integer, boolean or categorical)")
	default:
		return fmt.Errorf("field \"type\": %q is not one of numeric, integer, boolean, categorical", c.Type)
	}
	return nil
}

// checkKeys refuses keys the schema does not know, naming where they are.
func checkKeys(raw map[string]any) error {
	if err := unknown("", raw, topKeys); err != nil {
		return err
	}
	if raw["datasets"] == nil {
		return nil // validate reports it
	}
	ds, ok := raw["datasets"].(map[string]any)
	if !ok {
		return fmt.Errorf("field \"datasets\" must be a mapping of dataset name to dataset, got %T", raw["datasets"])
	}
	for name, dv := range ds {
		d, ok := dv.(map[string]any)
		if !ok {
			if dv == nil {
				continue
			}
			return fmt.Errorf("dataset %s: must be a mapping with \"columns\", got %T", name, dv)
		}
		if err := unknown("dataset "+name, d, datasetKeys); err != nil {
			return err
		}
		cols, ok := d["columns"].([]any)
		if !ok {
			if d["columns"] == nil {
				continue
			}
			return fmt.Errorf("dataset %s: field \"columns\" must be a list, got %T", name, d["columns"])
		}
		for i, cv := range cols {
			c, ok := cv.(map[string]any)
			if !ok {
				return fmt.Errorf("dataset %s: column %d must be a mapping, got %T", name, i+1, cv)
			}
			where := fmt.Sprintf("dataset %s: column %d", name, i+1)
			if n, ok := c["name"].(string); ok {
				where = fmt.Sprintf("dataset %s: column %q", name, n)
			}
			if err := unknown(where, c, columnKeys); err != nil {
				return err
			}
			cats, ok := c["categories"].([]any)
			if !ok {
				if c["categories"] != nil {
					return fmt.Errorf("%s: field \"categories\" must be a list of {code, label}, got %T", where, c["categories"])
				}
				continue
			}
			for j, kv := range cats {
				k, ok := kv.(map[string]any)
				if !ok {
					return fmt.Errorf("%s: field \"categories\": entry %d must be a mapping {code, label}, got %T", where, j+1, kv)
				}
				if err := unknown(fmt.Sprintf("%s: categories entry %d", where, j+1), k, categoryKeys); err != nil {
					return err
				}
				if _, ok := k["code"]; !ok {
					return fmt.Errorf("%s: categories entry %d: missing field \"code\"", where, j+1)
				}
			}
		}
	}
	return nil
}

func unknown(where string, m map[string]any, known []string) error {
	var bad []string
	for k := range m {
		if !slices.Contains(known, k) {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	msg := fmt.Sprintf("unknown field(s) %s (known: %s)", strings.Join(bad, ", "), strings.Join(known, ", "))
	if where != "" {
		msg = where + ": " + msg
	}
	return errors.New(msg)
}

// Bounds is the declared value range of a column: [0, 1] for a boolean,
// the smallest and largest code of a categorical, [min, max] otherwise; ok
// is false for a column the schema does not declare. It bounds the
// sensitivity of differentially private sums and scales training features.
func (s *Schema) Bounds(dataset, column string) (lo, hi float64, ok bool) {
	c, found := s.Column(dataset, column)
	if !found {
		return 0, 0, false
	}
	switch {
	case c.Type == Boolean:
		return 0, 1, true
	case len(c.Categories) > 0:
		lo, hi = math.Inf(1), math.Inf(-1)
		for _, cat := range c.Categories {
			lo, hi = math.Min(lo, cat.Code), math.Max(hi, cat.Code)
		}
		return lo, hi, true
	case c.Min != nil && c.Max != nil:
		return *c.Min, *c.Max, true
	}
	return 0, 0, false
}
