package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/client/analyst"
	"github.com/synod-mpc/synod/parties/config"
)

func newModelCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "model", Short: "Encrypted models for private prediction"}
	cmd.AddCommand(newModelUploadCmd(g), newModelListCmd(g))
	return cmd
}

func newModelUploadCmd(g *globals) *cobra.Command {
	var path, name string
	var parties []string
	cmd := &cobra.Command{
		Use:   "upload --model M [--name NAME]",
		Short: "Encrypt a model's weights under the collective key and store them at the parties",
		Long: `Encrypt a model's weights here, under the consortium's collective public key
(fetched from the node), and store the encrypted model at every reachable
party under a name; the upload is recorded on the chain. Nobody can decrypt
the weights. Parties then predict their own records with it (mpcctl predict).
The model must fit the consortium's parameters with one level to spare.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				return fmt.Errorf("--model is required")
			}
			m, err := loadModel(path)
			if err != nil {
				return err
			}
			if name == "" {
				name = m.Name
			}
			a, err := connect(g, cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			ctx := context.Background()
			key, err := a.CollectiveKey(ctx)
			if err != nil {
				return grpcErr(err)
			}
			began := time.Now()
			em, err := analyst.EncryptModel(key, m)
			if err != nil {
				return err
			}
			if g.output == "table" {
				fmt.Fprintf(os.Stderr, "encrypted %s: %d ciphertexts, %d bytes in %s\n", m, em.Ciphertexts, len(em.Blob), time.Since(began).Round(time.Millisecond))
			}
			resp, err := a.UploadModel(ctx, name, parties, em)
			if err != nil {
				return grpcErr(err)
			}
			out := map[string]any{"name": name, "session": resp.GetSession(), "digest": fmt.Sprintf("%x", resp.GetDigest()),
				"parties": resp.GetParties(), "bytes": len(em.Blob), "height": resp.GetReceipt().GetHeight(), "tx_hash": fmt.Sprintf("%X", resp.GetReceipt().GetTxHash())}
			if g.output == "json" {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			return printRows(g.output, [][]string{{"item", "value"}, {"model", name}, {"digest", fmt.Sprint(out["digest"])},
				{"stored by", strings.Join(resp.GetParties(), ", ")}, {"recorded", fmt.Sprintf("height %d, tx %s", resp.GetReceipt().GetHeight(), out["tx_hash"])}})
		},
	}
	cmd.Flags().StringVar(&path, "model", "", "model file: JSON model format or .onnx (required)")
	cmd.Flags().StringVar(&name, "name", "", "name to store the model under (default: the model's name)")
	cmd.Flags().StringSliceVar(&parties, "parties", nil, "parties allowed to predict with it (default: every party)")
	return cmd
}

func newModelListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the encrypted models the node stores",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := connect(g, cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			models, err := a.Models(context.Background())
			if err != nil {
				return grpcErr(err)
			}
			return writeModels(os.Stdout, g.output, models)
		},
	}
}

// writeModels writes the stored models as a table, CSV or JSON (one object
// per model; "parties" is empty when every party may predict with it).
func writeModels(w io.Writer, format string, models []*synodv1.ModelInfo) error {
	if format == "json" {
		type modelJSON struct {
			Name    string   `json:"name"`
			Owner   string   `json:"owner"`
			Digest  string   `json:"digest"`
			Bytes   uint64   `json:"bytes"`
			Parties []string `json:"parties"`
		}
		out := []modelJSON{}
		for _, m := range models {
			out = append(out, modelJSON{Name: m.GetHeader().GetName(), Owner: m.GetOwner(), Digest: fmt.Sprintf("%x", m.GetDigest()),
				Bytes: m.GetBytes(), Parties: append([]string{}, m.GetHeader().GetParties()...)})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	rows := [][]string{{"name", "owner", "digest", "bytes", "allowed parties"}}
	for _, m := range models {
		allowed := strings.Join(m.GetHeader().GetParties(), ",")
		if allowed == "" {
			allowed = "all"
		}
		rows = append(rows, []string{m.GetHeader().GetName(), m.GetOwner(), fmt.Sprintf("%x", m.GetDigest()), fmt.Sprint(m.GetBytes()), allowed})
	}
	return writeRows(w, format, rows)
}

func newPredictCmd(g *globals) *cobra.Command {
	var partyConfig, name, dataset, output string
	var features []string
	cmd := &cobra.Command{
		Use:   "predict --party-config party.yaml --model NAME --dataset D --features c1,c2,...",
		Short: "Predict a party's own records with an encrypted model (run by the party's operator)",
		Long: `Predict a party's own records with an encrypted model stored at the parties.

Run by the party's operator with the party's own config and certificate: the
party evaluates the encrypted weights on its records, t parties switch the
encrypted predictions to a fresh key of this party alone, and the party
decrypts them and writes them to a CSV file in its data directory. Nobody
else sees the predictions; the model owner never sees the records.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if partyConfig == "" || name == "" || dataset == "" || len(features) == 0 {
				return fmt.Errorf("--party-config, --model, --dataset and --features are required")
			}
			cfg, err := config.LoadParty(partyConfig, nil)
			if err != nil {
				return err
			}
			creds, err := analyst.LoadCredentials(cfg.TLS, cfg.Keystore)
			if err != nil {
				return err
			}
			c, err := analyst.Dial(cfg.Listen, cfg.ID, creds)
			if err != nil {
				return err
			}
			defer c.Close()
			ev, took, err := c.Predict(context.Background(),
				&synodv1.PredictRequest{Model: name, Dataset: dataset, Features: features, Output: output}, printEvents(g.output != "table"))
			if err != nil {
				return grpcErr(err)
			}
			if ev.GetFailed() {
				return fmt.Errorf("prediction failed: %s", ev.GetMessage())
			}
			if g.output == "json" {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"session": ev.GetSession(), "party": cfg.ID, "seconds": took.Seconds(), "message": ev.GetMessage()})
			}
			fmt.Printf("prediction session %s done in %s; predictions are in %s's data directory\n", ev.GetSession(), took.Round(time.Millisecond), cfg.ID)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&partyConfig, "party-config", "", "the party's config file (its certificate is used)")
	f.StringVar(&name, "model", "", "stored model name")
	f.StringVar(&dataset, "dataset", "", "the party's dataset")
	f.StringSliceVar(&features, "features", nil, "feature columns, one per model input, in order")
	f.StringVar(&output, "file", "", "file name in the party's data directory the predictions are written to (default predictions-SESSION.csv)")
	return cmd
}
