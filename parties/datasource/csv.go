// Package datasource reads a party's own records. A dataset is a table of
// numeric columns; each party declares where its copy lives in its config.
package datasource

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Table is a dataset loaded in memory, column-major.
type Table struct {
	Name    string
	Columns []string
	Values  [][]float64 // Values[c][r] is column c of row r
	Rows    int
}

// Column returns a column's values, or an error naming the dataset's columns.
func (t *Table) Column(name string) ([]float64, error) {
	i := slices.Index(t.Columns, name)
	if i < 0 {
		return nil, fmt.Errorf("dataset %s has no column %q (columns: %s)", t.Name, name, strings.Join(t.Columns, ", "))
	}
	return t.Values[i], nil
}

// LoadCSV reads a CSV file whose first line names the columns and whose
// every other cell is a finite number.
func LoadCSV(name, path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", name, err)
	}
	defer f.Close()
	return ReadCSV(name, path, f)
}

// ReadCSV is LoadCSV on a reader; where names the source in errors.
func ReadCSV(name, where string, r io.Reader) (*Table, error) {
	size := inputSize(r)
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("dataset %s: %s: empty file, expected a header line", name, where)
		}
		return nil, fmt.Errorf("dataset %s: %s: header: %w", name, where, err)
	}
	t := &Table{Name: name, Columns: make([]string, len(header)), Values: make([][]float64, len(header))}
	for i, h := range header {
		if i == 0 {
			// Spreadsheet exports often start with a UTF-8 byte order mark.
			h = strings.TrimPrefix(h, "\ufeff")
		}
		h = strings.TrimSpace(h)
		if h == "" {
			return nil, fmt.Errorf("dataset %s: %s: column %d has an empty name", name, where, i+1)
		}
		if slices.Contains(t.Columns[:i], h) {
			return nil, fmt.Errorf("dataset %s: %s: column %q appears twice", name, where, h)
		}
		t.Columns[i] = h
	}
	// A column of a million values grown by append is copied again and
	// again: when the input's size is known, the first rows' average length
	// sizes every column once.
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("dataset %s: %s: %w", name, where, err)
		}
		for i, cell := range rec {
			// The cell's content stays out of the errors: they reach logs.
			cell = strings.TrimSpace(cell)
			if cell == "" {
				return nil, fmt.Errorf("dataset %s: %s: line %d, column %q: empty cell (missing values are not supported: fill the cell or remove the row)", name, where, line, t.Columns[i])
			}
			v, err := strconv.ParseFloat(cell, 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("dataset %s: %s: line %d, column %q: not a finite number", name, where, line, t.Columns[i])
			}
			t.Values[i] = append(t.Values[i], v)
		}
		t.Rows++
		if t.Rows == sizingRows && size > 0 {
			if read := cr.InputOffset(); read > 0 && size > read {
				// Rows still to come at the average length so far, plus 2%.
				more := int(float64(size-read) / float64(read) * sizingRows * 1.02)
				for i := range t.Values {
					t.Values[i] = slices.Grow(t.Values[i], more)
				}
			}
		}
	}
	return t, nil
}

// sizingRows is how many rows ReadCSV reads before sizing the columns.
const sizingRows = 1024

// inputSize is r's length in bytes when it says (a file, a bytes or strings
// reader), else 0.
func inputSize(r io.Reader) int64 {
	switch r := r.(type) {
	case interface{ Stat() (os.FileInfo, error) }:
		if fi, err := r.Stat(); err == nil && fi.Mode().IsRegular() {
			return fi.Size()
		}
	case interface{ Len() int }:
		return int64(r.Len())
	}
	return 0
}
