package query

import (
	"bytes"
	"sync"
	"testing"

	"github.com/synod-mpc/synod/configs/sampledata/patients"
	"github.com/synod-mpc/synod/parties/datasource"
)

// benchSQL is the query of the measurement: 10 aggregates and a
// 20-bucket histogram, grouped by a 2-value column, with a WHERE clause
// every party evaluates on its rows (60 released cells). Its sums of
// squares stay below ValueBound at 10^6 rows per party.
const benchSQL = `SELECT sex, COUNT(*), AVG(age), STDDEV_SAMP(age), AVG(bmi), VAR_SAMP(bmi),
	AVG(systolic_bp), AVG(cholesterol), SUM(diabetic), AVG(smoker), CORR(age, bmi),
	HISTOGRAM(age, 18, 22, 26, 30, 34, 38, 42, 46, 50, 54, 58, 62, 66, 70, 74, 78, 82, 86, 90, 94, 98)
	FROM patients
	WHERE age BETWEEN 25 AND 90 AND (systolic_bp < 180 OR diabetic = 1) AND cholesterol NOT IN (111, 113)
	GROUP BY sex IN (0, 1)`

var (
	benchTableOnce sync.Once
	benchTable     *datasource.Table
	benchTableErr  error
)

// millionRows is party 1's cohort of the sample generator at 10^6 rows.
func millionRows(b *testing.B) *datasource.Table {
	benchTableOnce.Do(func() {
		var buf bytes.Buffer
		if benchTableErr = patients.Write(&buf, 1, 1_000_000, 2026); benchTableErr != nil {
			return
		}
		benchTable, benchTableErr = datasource.ReadCSV("patients", "generated", &buf)
	})
	if benchTableErr != nil {
		b.Fatal(benchTableErr)
	}
	return benchTable
}

// BenchmarkLocalMillionRows is one party's filtering and encoding of the
// benchmark query (CompileSQL's spec) over 10^6 rows: rows/s is what it
// evaluates per second.
func BenchmarkLocalMillionRows(b *testing.B) {
	t := millionRows(b)
	spec, err := CompileSQL(benchSQL)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := Local(t, spec); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(t.Rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(CellCount(spec)), "cells")
}

// BenchmarkLocalReferenceMillionRows is the same work done a row at a time
// (localReference, Local as first written): the ratio to
// BenchmarkLocalMillionRows is what the column-oriented evaluation gains.
func BenchmarkLocalReferenceMillionRows(b *testing.B) {
	t := millionRows(b)
	spec, err := CompileSQL(benchSQL)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := localReference(t, spec); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(t.Rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
