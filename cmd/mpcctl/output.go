package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"google.golang.org/grpc/status"
)

// printRows prints a header row and data rows to stdout as an aligned table,
// CSV or JSON (see writeRows).
func printRows(format string, rows [][]string) error {
	return writeRows(os.Stdout, format, rows)
}

// writeRows writes a header row and data rows as an aligned table, CSV, or
// JSON: an array with one object per data row, keyed by the header.
func writeRows(w io.Writer, format string, rows [][]string) error {
	switch format {
	case "csv":
		cw := csv.NewWriter(w)
		cw.WriteAll(rows)
		return cw.Error()
	case "table", "":
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		for _, r := range rows {
			fmt.Fprintln(tw, strings.Join(r, "\t"))
		}
		return tw.Flush()
	case "json":
		objs := []map[string]string{}
		if len(rows) > 0 {
			for _, r := range rows[1:] {
				o := make(map[string]string, len(rows[0]))
				for i, h := range rows[0] {
					if i < len(r) {
						o[h] = r[i]
					}
				}
				objs = append(objs, o)
			}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(objs)
	}
	return fmt.Errorf("unknown output format %q (want table, json or csv)", format)
}

// grpcErr turns a gRPC status into a plain error message.
func grpcErr(err error) error {
	if s, ok := status.FromError(err); ok {
		return fmt.Errorf("%s", s.Message())
	}
	return err
}
