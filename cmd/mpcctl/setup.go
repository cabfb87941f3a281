package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
)

func newSetupCmd(g *globals) *cobra.Command {
	var params string
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Make the consortium generate its threshold keys",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := connect(g, cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			ev, took, err := a.Setup(context.Background(), params, printEvents(g.output == "json"))
			if err != nil {
				return grpcErr(err)
			}
			if g.output == "json" {
				json.NewEncoder(os.Stdout).Encode(map[string]any{"session": ev.GetSession(), "ok": !ev.GetFailed(), "message": ev.GetMessage(),
					"party": ev.GetParty(), "session_seconds": took.Seconds()})
			}
			if ev.GetFailed() {
				return fmt.Errorf("setup failed: %s", ev.GetMessage())
			}
			if g.output != "json" {
				fmt.Println("setup complete")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&params, "parameters", "", "parameter set (default: the consortium's, ckks-n14)")
	return cmd
}

func newPartiesCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "parties",
		Short: "List the consortium's parties and whether each is up",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := connect(g, cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			resp, err := a.Parties(context.Background())
			if err != nil {
				return grpcErr(err)
			}
			if g.output == "json" {
				b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(resp)
				if err != nil {
					return err
				}
				fmt.Println(string(b))
				return nil
			}
			fmt.Printf("threshold %d, parameters %s\n", resp.GetThreshold(), resp.GetParameters())
			rows := [][]string{{"party", "address", "reachable", "set up", "bytes sent"}}
			for _, p := range resp.GetParties() {
				rows = append(rows, []string{p.GetId(), p.GetAddress(), fmt.Sprint(p.GetReachable()), fmt.Sprint(p.GetSetupDone()), fmt.Sprint(p.GetBytesSent())})
			}
			return printRows(g.output, rows)
		},
	}
}
