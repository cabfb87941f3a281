package datasource

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// Postgres says where a dataset lives in a PostgreSQL database: either a
// table (Table, with Columns mapping each dataset column to an SQL column
// name or expression over that table; no Columns means every column of the
// table under its own name), or a query (Query) whose result columns are
// named as the dataset's columns, e.g. a join of an OMOP-style person and
// measurement table:
//
//	SELECT p.year_of_birth AS birth_year, m.value_as_number AS bmi
//	FROM person p JOIN measurement m ON m.person_id = p.person_id
//	WHERE m.measurement_concept_id = 3038553
//
// The connection string is DSN, or else the value of the environment
// variable DSNEnv (so that a password stays out of the config file). Neither
// is ever put in an error or a log line.
type Postgres struct {
	DSN     string
	DSNEnv  string
	Table   string            // a table or view, optionally schema-qualified ("omop.person"); taken literally (quoted)
	Columns map[string]string // dataset column -> SQL column or expression (Table only)
	Query   string
}

// ConnectTimeout bounds connecting to PostgreSQL when the DSN does not set
// connect_timeout.
const ConnectTimeout = 10 * time.Second

// Describe names the source in messages, without the connection string.
func (p Postgres) Describe() string {
	if p.Query != "" {
		return "postgres query"
	}
	return "postgres table " + p.Table
}

// SQL returns the statement LoadPostgres runs.
func (p Postgres) SQL() (string, error) {
	switch {
	case p.Table != "" && p.Query != "":
		return "", errors.New("both a table and a query are given; choose one")
	case p.Query != "":
		if len(p.Columns) > 0 {
			return "", errors.New("a column mapping is only for a table; name the query's result columns with AS instead")
		}
		return p.Query, nil
	case p.Table == "":
		return "", errors.New("neither a table nor a query is given")
	}
	parts := strings.Split(p.Table, ".")
	if slices.Contains(parts, "") {
		return "", fmt.Errorf("table %q is not a name or schema.name", p.Table)
	}
	from := pgx.Identifier(parts).Sanitize()
	if len(p.Columns) == 0 {
		return "SELECT * FROM " + from, nil
	}
	names := make([]string, 0, len(p.Columns))
	for c := range p.Columns {
		names = append(names, c)
	}
	sort.Strings(names)
	sel := make([]string, len(names))
	for i, c := range names {
		expr := strings.TrimSpace(p.Columns[c])
		if c == "" || expr == "" {
			return "", fmt.Errorf("column mapping %q: %q: empty column name or SQL expression", c, p.Columns[c])
		}
		sel[i] = expr + " AS " + pgx.Identifier{c}.Sanitize()
	}
	return "SELECT " + strings.Join(sel, ", ") + " FROM " + from, nil
}

// LoadPostgres loads dataset name from PostgreSQL into a Table. Every result
// column must be of a numeric type (smallint, integer, bigint, real, double
// precision, numeric) or boolean (read as 0/1); any other type must be cast
// in the SQL. A NULL is an error naming its row and column. Rows are
// streamed in PostgreSQL's binary format straight into the columns.
func LoadPostgres(ctx context.Context, name string, p Postgres) (*Table, error) {
	where := p.Describe()
	fail := func(format string, a ...any) error {
		return fmt.Errorf("dataset %s: %s: %s", name, where, fmt.Sprintf(format, a...))
	}
	stmt, err := p.SQL()
	if err != nil {
		return nil, fail("%v", err)
	}
	dsn := p.DSN
	if dsn == "" {
		if p.DSNEnv == "" {
			return nil, fail("no connection string: set dsn or dsn_env")
		}
		if dsn = os.Getenv(p.DSNEnv); dsn == "" {
			return nil, fail("environment variable %s (dsn_env) is unset or empty", p.DSNEnv)
		}
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// The parse error quotes the connection string (redacted on a best
		// effort basis): keep only its cause.
		return nil, fail("invalid connection string%s", parseReason(err))
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = ConnectTimeout
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fail("cannot connect to PostgreSQL at %s:%d: %v", cfg.Host, cfg.Port, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	rows, err := conn.Query(ctx, stmt)
	if err != nil {
		return nil, fail("%v", err)
	}
	defer rows.Close()
	fields := rows.FieldDescriptions()
	t := &Table{Name: name, Columns: make([]string, len(fields)), Values: make([][]float64, len(fields))}
	decode := make([]decoder, len(fields))
	for i, f := range fields {
		if f.Name == "" || f.Name == "?column?" {
			return nil, fail("result column %d has no name; name it as the dataset column with AS", i+1)
		}
		if slices.Contains(t.Columns[:i], f.Name) {
			return nil, fail("column %q appears twice in the result", f.Name)
		}
		t.Columns[i] = f.Name
		if decode[i], err = decoderFor(conn.TypeMap(), f); err != nil {
			return nil, fail("column %q: %v", f.Name, err)
		}
	}
	for rows.Next() {
		raw := rows.RawValues()
		row := t.Rows + 1
		for i, b := range raw {
			if b == nil {
				return nil, fail("row %d, column %q: NULL (a dataset has no missing values; filter or impute them in SQL)", row, t.Columns[i])
			}
			v, err := decode[i](b)
			if err != nil {
				return nil, fail("row %d, column %q: %v", row, t.Columns[i], err)
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fail("row %d, column %q: %v is not a finite number", row, t.Columns[i], v)
			}
			t.Values[i] = append(t.Values[i], v)
		}
		t.Rows++
	}
	if err := rows.Err(); err != nil {
		return nil, fail("%v", err)
	}
	return t, nil
}

// parseReason returns why pgx refused a connection string, without the
// string itself: pgx's message is "cannot parse `<redacted dsn>`: reason".
func parseReason(err error) string {
	var pe *pgconn.ParseConfigError
	if !errors.As(err, &pe) {
		return ""
	}
	msg := pe.Error()
	i := strings.LastIndex(msg, "`: ")
	if i < 0 {
		return ""
	}
	reason := msg[i+3:]
	if pe.ConnString != "" && strings.Contains(reason, pe.ConnString) {
		return ""
	}
	return ": " + reason
}

// decoder turns one non-NULL value of a result column into a float64.
type decoder func([]byte) (float64, error)

// maxExact is the largest integer every float64 below it represents exactly.
const maxExact = 1 << 53

func decoderFor(m *pgtype.Map, f pgconn.FieldDescription) (decoder, error) {
	typeName := fmt.Sprintf("type oid %d", f.DataTypeOID)
	if t, ok := m.TypeForOID(f.DataTypeOID); ok {
		typeName = t.Name
	}
	if f.Format == pgx.BinaryFormatCode {
		size := func(n int, b []byte) error {
			if len(b) != n {
				return fmt.Errorf("%s value of %d bytes, want %d", typeName, len(b), n)
			}
			return nil
		}
		switch f.DataTypeOID {
		case pgtype.BoolOID:
			return func(b []byte) (float64, error) {
				if err := size(1, b); err != nil {
					return 0, err
				}
				if b[0] != 0 {
					return 1, nil
				}
				return 0, nil
			}, nil
		case pgtype.Int2OID:
			return func(b []byte) (float64, error) {
				if err := size(2, b); err != nil {
					return 0, err
				}
				return float64(int16(binary.BigEndian.Uint16(b))), nil
			}, nil
		case pgtype.Int4OID:
			return func(b []byte) (float64, error) {
				if err := size(4, b); err != nil {
					return 0, err
				}
				return float64(int32(binary.BigEndian.Uint32(b))), nil
			}, nil
		case pgtype.Int8OID:
			return func(b []byte) (float64, error) {
				if err := size(8, b); err != nil {
					return 0, err
				}
				v := int64(binary.BigEndian.Uint64(b))
				if v > maxExact || v < -maxExact {
					return 0, fmt.Errorf("bigint %d is not exactly representable as a float64", v)
				}
				return float64(v), nil
			}, nil
		case pgtype.Float4OID:
			return func(b []byte) (float64, error) {
				if err := size(4, b); err != nil {
					return 0, err
				}
				return float64(math.Float32frombits(binary.BigEndian.Uint32(b))), nil
			}, nil
		case pgtype.Float8OID:
			return func(b []byte) (float64, error) {
				if err := size(8, b); err != nil {
					return 0, err
				}
				return math.Float64frombits(binary.BigEndian.Uint64(b)), nil
			}, nil
		}
	}
	switch f.DataTypeOID {
	case pgtype.BoolOID, pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.Float4OID, pgtype.Float8OID, pgtype.NumericOID:
	default:
		return nil, fmt.Errorf("SQL type %s is not a number; cast it in SQL (e.g. x::double precision)", typeName)
	}
	if f.DataTypeOID == pgtype.NumericOID && f.Format == pgx.BinaryFormatCode {
		return func(b []byte) (float64, error) {
			if v, ok := fastNumeric(b); ok {
				return v, nil
			}
			var v float64
			if err := m.Scan(pgtype.NumericOID, pgx.BinaryFormatCode, b, &v); err != nil {
				return 0, fmt.Errorf("%s value: %v", typeName, err)
			}
			return v, nil
		}, nil
	}
	// Any value pgx sent in text format: pgx's own decoding.
	oid, format := f.DataTypeOID, f.Format
	return func(b []byte) (float64, error) {
		if oid == pgtype.BoolOID {
			var v bool
			if err := m.Scan(oid, format, b, &v); err != nil {
				return 0, err
			}
			if v {
				return 1, nil
			}
			return 0, nil
		}
		var v float64
		if err := m.Scan(oid, format, b, &v); err != nil {
			return 0, fmt.Errorf("%s value: %v", typeName, err)
		}
		return v, nil
	}, nil
}

// pow10 are the powers of ten a float64 holds exactly.
var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// fastNumeric decodes a binary numeric (ndigits, weight, sign, dscale, then
// ndigits base-10000 digits) whose digits form an integer below 2^53 and
// whose power of ten is exact: the result, one IEEE multiplication or
// division of exact operands, is then correctly rounded. Other values
// (NaN, infinities, long or huge numbers) report false.
func fastNumeric(b []byte) (float64, bool) {
	if len(b) < 8 {
		return 0, false
	}
	ndigits := int(binary.BigEndian.Uint16(b))
	weight := int(int16(binary.BigEndian.Uint16(b[2:])))
	sign := binary.BigEndian.Uint16(b[4:])
	if len(b) != 8+2*ndigits || ndigits > 4 || (sign != 0 && sign != 0x4000) {
		return 0, false
	}
	var n int64
	for i := 0; i < ndigits; i++ {
		d := int64(binary.BigEndian.Uint16(b[8+2*i:]))
		if d >= 10000 {
			return 0, false
		}
		n = n*10000 + d
	}
	if n >= maxExact {
		return 0, false
	}
	v := float64(n)
	switch exp := 4 * (weight - ndigits + 1); {
	case ndigits == 0:
		v = 0
	case exp >= 0 && exp < len(pow10):
		v *= pow10[exp]
	case exp < 0 && -exp < len(pow10):
		v /= pow10[-exp]
	default:
		return 0, false
	}
	if sign == 0x4000 {
		v = -v
	}
	return v, true
}
