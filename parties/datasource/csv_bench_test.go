package datasource

import (
	"bytes"
	"testing"

	"github.com/synod-mpc/synod/configs/sampledata/patients"
)

// BenchmarkReadCSVMillionRows loads a party's 10^6-row patients table (the
// sample generator's), as a node does at start.
func BenchmarkReadCSVMillionRows(b *testing.B) {
	var buf bytes.Buffer
	if err := patients.Write(&buf, 1, 1_000_000, 2026); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		t, err := ReadCSV("patients", "generated", bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		if t.Rows != 1_000_000 {
			b.Fatalf("%d rows", t.Rows)
		}
	}
	b.ReportMetric(1e6*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
