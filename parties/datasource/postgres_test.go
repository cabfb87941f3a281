package datasource_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/synod-mpc/synod/parties/datasource"
	"github.com/synod-mpc/synod/parties/schema"
)

// testDSN is the PostgreSQL the tests use: SYNOD_TEST_POSTGRES_DSN, or the
// local server CI starts (trust authentication, database test).
func testDSN() string {
	if d := os.Getenv("SYNOD_TEST_POSTGRES_DSN"); d != "" {
		return d
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// pgSchema creates a uniquely named PostgreSQL schema, runs the setup
// statements in it and drops it when the test ends. An unreachable server
// fails the test: the PostgreSQL source is never skipped.
func pgSchema(t testing.TB, setup ...string) (conn *pgx.Conn, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, testDSN())
	if err != nil {
		t.Fatalf("PostgreSQL is unreachable (%v): these tests need the server CI starts on 127.0.0.1:5432 (database test, trust auth) or SYNOD_TEST_POSTGRES_DSN", err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name = "synod_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+name+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
		conn.Close(ctx)
	})
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatal(err)
	}
	for _, s := range setup {
		if _, err := conn.Exec(context.Background(), strings.ReplaceAll(s, "$SCHEMA", name)); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return conn, name
}

func sample(t testing.TB) *datasource.Table {
	_, file, _, _ := runtime.Caller(0)
	tab, err := datasource.LoadCSV("patients", filepath.Join(filepath.Dir(file), "..", "..", "configs/sample/patients-party-1.csv"))
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func loadSchema(t testing.TB) *schema.Schema {
	_, file, _, _ := runtime.Caller(0)
	s, err := schema.Load(filepath.Join(filepath.Dir(file), "..", "..", "configs/schema.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sameTable checks that got holds exactly want's columns and values (in any
// column order).
func sameTable(t *testing.T, got, want *datasource.Table) {
	t.Helper()
	if got.Rows != want.Rows || len(got.Columns) != len(want.Columns) {
		t.Fatalf("got %d rows x %v, want %d rows x %v", got.Rows, got.Columns, want.Rows, want.Columns)
	}
	for _, c := range want.Columns {
		w, _ := want.Column(c)
		g, err := got.Column(c)
		if err != nil {
			t.Fatal(err)
		}
		for r := range w {
			if g[r] != w[r] {
				t.Fatalf("column %s row %d: got %v, want %v", c, r+1, g[r], w[r])
			}
		}
	}
}

// patientsTable creates $SCHEMA.<table> with the sample's rows, under the
// given SQL column names and types, in the CSV's row order (id).
func patientsTable(t *testing.T, conn *pgx.Conn, ns, table string, cols []string, types []string, tab *datasource.Table) {
	t.Helper()
	defs := []string{"id integer PRIMARY KEY"}
	for i, c := range cols {
		defs = append(defs, c+" "+types[i])
	}
	ctx := context.Background()
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE TABLE %s.%s (%s)", ns, table, strings.Join(defs, ", "))); err != nil {
		t.Fatal(err)
	}
	rows := make([][]any, tab.Rows)
	for r := range rows {
		rows[r] = []any{r + 1}
		for c := range tab.Columns {
			v := tab.Values[c][r]
			switch types[c] {
			case "boolean":
				rows[r] = append(rows[r], v == 1)
			case "integer", "smallint":
				rows[r] = append(rows[r], int32(v))
			default:
				rows[r] = append(rows[r], fmt.Sprint(v)) // numeric and floats from their decimal text
			}
		}
	}
	n, err := conn.CopyFrom(ctx, pgx.Identifier{ns, table}, append([]string{"id"}, cols...), pgx.CopyFromRows(rows))
	if err != nil || int(n) != tab.Rows {
		t.Fatalf("copy: %d rows, %v", n, err)
	}
}

func TestPostgresTableWithMapping(t *testing.T) {
	want := sample(t)
	conn, ns := pgSchema(t)
	// SQL names differ from the dataset's and every numeric SQL type occurs.
	sqlCols := []string{"age_years", "sex_code", "bmi_value", "sbp", "chol", "is_smoker", "has_diabetes"}
	types := []string{"integer", "smallint", "numeric(4,1)", "double precision", "real", "boolean", "boolean"}
	patientsTable(t, conn, ns, "person", sqlCols, types, want)
	mapping := map[string]string{}
	for i, c := range want.Columns {
		mapping[c] = sqlCols[i]
	}
	mapping["cholesterol"] = "chol::float8" // an expression; real -> double
	got, err := datasource.LoadPostgres(context.Background(), "patients", datasource.Postgres{DSN: testDSN(), Table: ns + ".person", Columns: mapping})
	if err != nil {
		t.Fatal(err)
	}
	sameTable(t, got, want)
	if err := loadSchema(t).Check(got); err != nil {
		t.Fatal(err)
	}

	// No mapping: the table's own columns; the DSN from the environment.
	if _, err := conn.Exec(context.Background(), fmt.Sprintf(`CREATE VIEW %s.patients AS SELECT age_years AS age, sex_code AS sex, bmi_value AS bmi, sbp AS systolic_bp,
		chol::float8 AS cholesterol, is_smoker AS smoker, has_diabetes AS diabetic FROM %s.person ORDER BY id`, ns, ns)); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SYNOD_TEST_PG_DSN", testDSN())
	got, err = datasource.Load(context.Background(), "patients", datasource.Source{Postgres: &datasource.Postgres{DSNEnv: "SYNOD_TEST_PG_DSN", Table: ns + ".patients"}})
	if err != nil {
		t.Fatal(err)
	}
	sameTable(t, got, want)
}

// TestPostgresOMOPQuery loads the dataset from an OMOP-style layout: one
// person table, one measurement table (one row per person and measured
// concept), joined and pivoted by the query.
func TestPostgresOMOPQuery(t *testing.T) {
	want := sample(t)
	conn, ns := pgSchema(t,
		`CREATE TABLE $SCHEMA.person (person_id bigint PRIMARY KEY, year_of_birth integer NOT NULL, gender_concept_id integer NOT NULL)`,
		`CREATE TABLE $SCHEMA.measurement (measurement_id bigserial PRIMARY KEY, person_id bigint NOT NULL REFERENCES $SCHEMA.person,
			measurement_concept_id integer NOT NULL, value_as_number numeric)`,
		`CREATE TABLE $SCHEMA.observation (person_id bigint NOT NULL REFERENCES $SCHEMA.person, observation_concept_id integer NOT NULL, value_as_boolean boolean NOT NULL)`,
		`CREATE INDEX ON $SCHEMA.measurement (person_id, measurement_concept_id)`,
		`CREATE INDEX ON $SCHEMA.observation (person_id, observation_concept_id)`,
	)
	const year = 2026
	// OMOP concept ids: gender 8507 male / 8532 female; BMI 3038553, systolic
	// BP 3004249, total cholesterol 3027114; smoker 4298794, diabetes 201820.
	col := func(name string) []float64 { v, _ := want.Column(name); return v }
	var persons, meas, obs [][]any
	for r := 0; r < want.Rows; r++ {
		id := int64(1000 + r)
		gender := 8532
		if col("sex")[r] == 1 {
			gender = 8507
		}
		persons = append(persons, []any{id, int32(year - col("age")[r]), int32(gender)})
		for concept, c := range map[int32]string{3038553: "bmi", 3004249: "systolic_bp", 3027114: "cholesterol"} {
			meas = append(meas, []any{id, concept, fmt.Sprint(col(c)[r])})
		}
		obs = append(obs, []any{id, int32(4298794), col("smoker")[r] == 1}, []any{id, int32(201820), col("diabetic")[r] == 1})
	}
	ctx := context.Background()
	for _, c := range []struct {
		table string
		cols  []string
		rows  [][]any
	}{{"person", []string{"person_id", "year_of_birth", "gender_concept_id"}, persons},
		{"measurement", []string{"person_id", "measurement_concept_id", "value_as_number"}, meas},
		{"observation", []string{"person_id", "observation_concept_id", "value_as_boolean"}, obs}} {
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{ns, c.table}, c.cols, pgx.CopyFromRows(c.rows)); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "ANALYZE "+ns+"."+c.table); err != nil {
			t.Fatal(err)
		}
	}
	q := strings.ReplaceAll(`
		SELECT 2026 - p.year_of_birth AS age,
		       CASE p.gender_concept_id WHEN 8507 THEN 1 WHEN 8532 THEN 0 END AS sex,
		       bmi.value_as_number AS bmi,
		       sbp.value_as_number AS systolic_bp,
		       chol.value_as_number AS cholesterol,
		       smk.value_as_boolean AS smoker,
		       dia.value_as_boolean AS diabetic
		FROM $S.person p
		JOIN $S.measurement bmi  ON bmi.person_id  = p.person_id AND bmi.measurement_concept_id  = 3038553
		JOIN $S.measurement sbp  ON sbp.person_id  = p.person_id AND sbp.measurement_concept_id  = 3004249
		JOIN $S.measurement chol ON chol.person_id = p.person_id AND chol.measurement_concept_id = 3027114
		JOIN $S.observation smk  ON smk.person_id  = p.person_id AND smk.observation_concept_id  = 4298794
		JOIN $S.observation dia  ON dia.person_id  = p.person_id AND dia.observation_concept_id  = 201820
		ORDER BY p.person_id`, "$S", ns)
	got, err := datasource.LoadPostgres(ctx, "patients", datasource.Postgres{DSN: testDSN(), Query: q})
	if err != nil {
		t.Fatal(err)
	}
	sameTable(t, got, want)
	if err := loadSchema(t).Check(got); err != nil {
		t.Fatal(err)
	}

	// A source that does not match the schema is refused, naming the column.
	if _, err := conn.Exec(ctx, fmt.Sprintf(`UPDATE %s.measurement SET value_as_number = 400 WHERE person_id = 1004 AND measurement_concept_id = 3027114`, ns)); err != nil {
		t.Fatal(err)
	}
	got, err = datasource.LoadPostgres(ctx, "patients", datasource.Postgres{DSN: testDSN(), Query: q})
	if err != nil {
		t.Fatal(err)
	}
	err = loadSchema(t).Check(got)
	if err == nil || !strings.Contains(err.Error(), `column "cholesterol": row 5: 400 is out of range [110, 340]`) {
		t.Fatalf("want the out-of-range cholesterol of row 5 refused, got %v", err)
	}
	// A query missing a column of the schema.
	got, err = datasource.LoadPostgres(ctx, "patients", datasource.Postgres{DSN: testDSN(),
		Query: fmt.Sprintf("SELECT 2026 - year_of_birth AS age FROM %s.person", ns)})
	if err != nil {
		t.Fatal(err)
	}
	if err := loadSchema(t).Check(got); err == nil || !strings.Contains(err.Error(), `column "sex" of the schema is missing`) {
		t.Fatalf("want missing sex, got %v", err)
	}
}

func TestPostgresErrors(t *testing.T) {
	conn, ns := pgSchema(t,
		`CREATE TABLE $SCHEMA.t (id integer, x double precision, label text, big bigint)`,
		`INSERT INTO $SCHEMA.t VALUES (1, 1.5, 'a', 1), (2, NULL, 'b', 9007199254740993), (3, 'NaN', 'c', 3)`)
	_ = conn
	table := ns + ".t"
	cases := []struct {
		name string
		src  datasource.Postgres
		want []string
	}{
		{"null", datasource.Postgres{Table: table, Columns: map[string]string{"x": "x"}}, []string{"dataset d", "postgres table " + table, `row 2, column "x": NULL`}},
		{"nan", datasource.Postgres{Query: fmt.Sprintf("SELECT x FROM %s WHERE id = 3", table)}, []string{"postgres query", `row 1, column "x"`, "not a finite number"}},
		{"text", datasource.Postgres{Table: table, Columns: map[string]string{"label": "label"}}, []string{`column "label"`, "SQL type text is not a number", "cast"}},
		{"bigint", datasource.Postgres{Query: fmt.Sprintf("SELECT big FROM %s ORDER BY id", table)}, []string{`row 2, column "big"`, "not exactly representable"}},
		{"unnamed", datasource.Postgres{Query: fmt.Sprintf("SELECT x + 1 FROM %s", table)}, []string{"result column 1 has no name"}},
		{"duplicate", datasource.Postgres{Query: fmt.Sprintf("SELECT id AS a, x AS a FROM %s", table)}, []string{`column "a" appears twice`}},
		{"no table", datasource.Postgres{Table: ns + ".absent"}, []string{"postgres table " + ns + ".absent", "does not exist"}},
		{"bad sql column", datasource.Postgres{Table: table, Columns: map[string]string{"y": "nosuch"}}, []string{"nosuch", "does not exist"}},
		{"both", datasource.Postgres{Table: table, Query: "SELECT 1"}, []string{"choose one"}},
		{"neither", datasource.Postgres{}, []string{"neither a table nor a query"}},
		{"query with mapping", datasource.Postgres{Query: "SELECT 1 AS a", Columns: map[string]string{"a": "b"}}, []string{"only for a table"}},
	}
	for _, c := range cases {
		c.src.DSN = testDSN()
		_, err := datasource.LoadPostgres(context.Background(), "d", c.src)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, w)
			}
		}
	}
}

// Connection problems are clear and never show the connection string.
func TestPostgresConnectionErrors(t *testing.T) {
	const secret = "s3cr3t-pw"
	t.Setenv("SYNOD_TEST_EMPTY_DSN", "")
	for _, c := range []struct {
		name string
		src  datasource.Postgres
		want []string
	}{
		{"unreachable", datasource.Postgres{DSN: "postgres://postgres:" + secret + "@127.0.0.1:1/test?connect_timeout=5", Table: "person"},
			[]string{"dataset patients", "postgres table person", "cannot connect to PostgreSQL at 127.0.0.1:1", "refused"}},
		{"bad dsn", datasource.Postgres{DSN: "postgres://postgres:" + secret + "@127.0.0.1:notaport/test", Table: "person"},
			[]string{"dataset patients", "invalid connection string"}},
		{"bad key", datasource.Postgres{DSN: "host=127.0.0.1 password=" + secret + " sslmode=sometimes", Table: "person"},
			[]string{"invalid connection string"}},
		{"env unset", datasource.Postgres{DSNEnv: "SYNOD_TEST_EMPTY_DSN", Table: "person"},
			[]string{"environment variable SYNOD_TEST_EMPTY_DSN (dsn_env) is unset or empty"}},
	} {
		start := time.Now()
		_, err := datasource.LoadPostgres(context.Background(), "patients", c.src)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error shows the password: %v", c.name, err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, w)
			}
		}
		t.Logf("%s (%s): %v", c.name, time.Since(start).Round(time.Millisecond), err)
	}
}

// TestPostgresLoadSpeed loads a million rows of seven columns and reports
// the rate; it fails only if loading is pathologically slow.
func TestPostgresLoadSpeed(t *testing.T) {
	const n = 1_000_000
	_, ns := pgSchema(t,
		`CREATE UNLOGGED TABLE $SCHEMA.big (age integer, sex smallint, bmi double precision, systolic_bp double precision, cholesterol numeric(5,1), smoker boolean, diabetic boolean)`,
		fmt.Sprintf(`INSERT INTO $SCHEMA.big SELECT 18 + i %% 78, i %% 2, 15 + (i %% 400) / 10.0, 85 + i %% 125, 110 + (i %% 2300) / 10.0, i %% 5 = 0, i %% 7 = 0 FROM generate_series(1, %d) i`, n),
		`VACUUM ANALYZE $SCHEMA.big`) // as a table at rest: visibility and hint bits set
	start := time.Now()
	tab, err := datasource.LoadPostgres(context.Background(), "patients", datasource.Postgres{DSN: testDSN(), Table: ns + ".big"})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if tab.Rows != n {
		t.Fatalf("%d rows", tab.Rows)
	}
	if err := loadSchema(t).Check(tab); err != nil {
		t.Fatal(err)
	}
	t.Logf("loaded %d rows x %d columns in %s: %.0f rows/s (schema check %s)", n, len(tab.Columns), took.Round(time.Millisecond),
		n/took.Seconds(), (time.Since(start) - took).Round(time.Millisecond))
	if took > time.Minute {
		t.Fatalf("loading %d rows took %s", n, took)
	}
}

// Numerics decode to the float64 nearest their decimal value, the same as
// PostgreSQL's own conversion to double precision.
func TestPostgresNumericDecoding(t *testing.T) {
	_, ns := pgSchema(t,
		`CREATE TABLE $SCHEMA.n (x numeric)`,
		`INSERT INTO $SCHEMA.n SELECT round(((random() - 0.5) * 10 ^ (random() * 30 - 12))::numeric, (random() * 20)::int) FROM generate_series(1, 20000)`,
		`INSERT INTO $SCHEMA.n VALUES (0), (-0.0), (25.3), (0.1), (1e-30), (123456789012345678901234567890), (9007199254740993), (-1.5e20), (0.30000000000000004)`)
	tab, err := datasource.LoadPostgres(context.Background(), "n", datasource.Postgres{DSN: testDSN(),
		Query: fmt.Sprintf("SELECT x, x::float8 AS f FROM %s.n", ns)})
	if err != nil {
		t.Fatal(err)
	}
	x, _ := tab.Column("x")
	f, _ := tab.Column("f")
	for i := range x {
		if x[i] != f[i] {
			t.Errorf("row %d: numeric decoded as %v, PostgreSQL's float8 is %v", i+1, x[i], f[i])
		}
	}
}
