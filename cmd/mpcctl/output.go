package main

import (
	"encoding/csv"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"google.golang.org/grpc/status"
)

// printRows prints a header row and data rows as an aligned table or CSV.
func printRows(format string, rows [][]string) error {
	switch format {
	case "csv":
		w := csv.NewWriter(os.Stdout)
		w.WriteAll(rows)
		return w.Error()
	case "table", "":
		tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
		for _, r := range rows {
			fmt.Fprintln(tw, strings.Join(r, "\t"))
		}
		return tw.Flush()
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
