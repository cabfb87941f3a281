package test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.yaml.in/yaml/v3"

	"github.com/synod-mpc/synod/parties/datasource"
)

// postgresDSN is the PostgreSQL the tests use: SYNOD_TEST_POSTGRES_DSN, or
// the local server CI starts (trust authentication, database test).
func postgresDSN() string {
	if d := os.Getenv("SYNOD_TEST_POSTGRES_DSN"); d != "" {
		return d
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// TestPostgresParty runs a 4-party consortium where party-1 reads its
// patients from PostgreSQL (a table under other column names, mapped in its
// config, the DSN given through dsn_env), the others from CSV: the node
// refuses to start on a source that breaks the consortium schema, and
// starts on the right one; the query's result matches the plaintext.
func TestPostgresParty(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, postgresDSN())
	if err != nil {
		t.Fatalf("PostgreSQL is unreachable (%v): this test needs the server CI starts on 127.0.0.1:5432 (database test, trust auth) or SYNOD_TEST_POSTGRES_DSN", err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	ns := "synod_e2e_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+ns+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", ns, err)
		}
		conn.Close(ctx)
	})
	tab, err := datasource.LoadCSV("patients", filepath.Join(repoRoot(), "configs/sample/patients-party-1.csv"))
	if err != nil {
		t.Fatal(err)
	}
	sqlCols := map[string]string{"age": "age_years", "sex": "sex_code", "bmi": "bmi_value", "systolic_bp": "sbp",
		"cholesterol": "chol", "smoker": "is_smoker", "diabetic": "has_diabetes"}
	sqlType := map[string]string{"age": "integer", "sex": "smallint", "bmi": "numeric(4,1)", "systolic_bp": "integer",
		"cholesterol": "double precision", "smoker": "boolean", "diabetic": "boolean"}
	defs, names := []string{"person_id integer PRIMARY KEY"}, []string{"person_id"}
	for _, c := range tab.Columns {
		defs = append(defs, sqlCols[c]+" "+sqlType[c])
		names = append(names, sqlCols[c])
	}
	rows := make([][]any, tab.Rows)
	for r := range rows {
		rows[r] = []any{int32(r + 1)}
		for i, c := range tab.Columns {
			v := tab.Values[i][r]
			switch sqlType[c] {
			case "boolean":
				rows[r] = append(rows[r], v == 1)
			case "integer", "smallint":
				rows[r] = append(rows[r], int32(v))
			default:
				rows[r] = append(rows[r], fmt.Sprint(v))
			}
		}
	}
	for _, s := range []string{"CREATE SCHEMA " + ns, fmt.Sprintf("CREATE TABLE %s.person (%s)", ns, strings.Join(defs, ", "))} {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := conn.CopyFrom(ctx, pgx.Identifier{ns, "person"}, names, pgx.CopyFromRows(rows)); err != nil || int(n) != tab.Rows {
		t.Fatalf("copy: %d rows, %v", n, err)
	}

	c := newCluster(t, 4, 2, "ckks-n13")
	const dsnEnv = "SYNOD_TEST_PARTY1_DSN"
	env := dsnEnv + "=" + postgresDSN()
	usePostgres := func(pg map[string]any) {
		t.Helper()
		raw, err := os.ReadFile(c.partyConfig(1))
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		if doc["schema"] != "schema.yaml" {
			t.Fatalf("consortium init wrote schema %v, want the consortium's schema.yaml", doc["schema"])
		}
		pg["dsn_env"] = dsnEnv
		doc["datasets"] = map[string]any{"patients": map[string]any{"postgres": pg}}
		if raw, err = yaml.Marshal(doc); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(c.partyConfig(1), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c.stop(1)

	// A source breaking the schema (a cholesterol of 400 in row 7): the
	// node refuses to start, naming the dataset and the column.
	usePostgres(map[string]any{"query": fmt.Sprintf(`SELECT age_years AS age, sex_code AS sex, bmi_value AS bmi, sbp AS systolic_bp,
		CASE WHEN person_id = 7 THEN 400 ELSE chol END AS cholesterol, is_smoker AS smoker, has_diabetes AS diabetic
		FROM %s.person ORDER BY person_id`, ns)})
	c.start(1, "mpcnode", env)
	waitExit(t, c, 1)
	for _, w := range []string{"datasets.patients", "postgres query", "does not match the consortium schema", `column "cholesterol": row 7: 400 is out of range [110, 340]`} {
		if !strings.Contains(c.logs[0].String(), w) {
			t.Fatalf("party-1 refused to start without mentioning %q:\n%s", w, c.logs[0])
		}
	}
	t.Logf("party-1 refused to start: %s", strings.TrimSpace(c.logs[0].String()))
	if strings.Contains(c.logs[0].String(), "postgres://") {
		t.Fatalf("party-1's log shows the DSN:\n%s", c.logs[0])
	}

	// The right source: the table with its columns mapped.
	mapping := map[string]any{}
	for k, v := range sqlCols {
		mapping[k] = v
	}
	usePostgres(map[string]any{"table": ns + ".person", "columns": mapping})
	c.start(1, "mpcnode", env)
	c.waitReachable(4)
	if !strings.Contains(c.logs[0].String(), "source=\"postgres table "+ns+".person\"") || !strings.Contains(c.logs[0].String(), "rows=2000") {
		t.Fatalf("party-1 did not log loading its dataset from PostgreSQL:\n%s", c.logs[0])
	}

	if out, err := c.ctl("setup"); err != nil {
		t.Fatalf("setup: %v\n%s", err, out)
	}
	q, err := c.query(demoQuery...)
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Contributors) != 4 || q.Contributors[0] != "party-1" {
		t.Fatalf("contributors %v, want all four", q.Contributors)
	}
	checkAgainstPlaintext(t, q, demoSpec())
}

// waitExit waits for party i's process to end on its own.
func waitExit(t *testing.T, c *cluster, i int) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.nodes[i-1].Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("party-%d exited without an error:\n%s", i, c.logs[i-1])
		}
		c.nodes[i-1] = nil
	case <-time.After(30 * time.Second):
		t.Fatalf("party-%d still running after 30s:\n%s", i, c.logs[i-1])
	}
}
