package patients

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestShippedSample checks that the generator still writes the files shipped
// in configs/sample (make sample-data: 5 parties, 2000 rows, seed 2026).
func TestShippedSample(t *testing.T) {
	for p := 1; p <= 5; p++ {
		want, err := os.ReadFile(filepath.Join("..", "..", "sample", fmt.Sprintf("patients-party-%d.csv", p)))
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := Write(&got, p, 2000, 2026); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("party %d: the generator no longer writes configs/sample/patients-party-%d.csv (make sample-data)", p, p)
		}
	}
}
