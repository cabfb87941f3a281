package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.dedis.ch/kyber/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/ledger"
	"github.com/synod-mpc/synod/parties/config"
	"github.com/synod-mpc/synod/parties/consortium"
	"github.com/synod-mpc/synod/protocols"
)

// The analyst keeps every result it received, to audit it later.
func resultPaths(dataDir, session string) (meta, ct string) {
	dir := filepath.Join(dataDir, "results")
	return filepath.Join(dir, session+".json"), filepath.Join(dir, session+".ct")
}

func saveResult(dataDir string, meta *synodv1.ResultMetadata, ct []byte) error {
	metaPath, ctPath := resultPaths(dataDir, meta.GetSession())
	if err := os.MkdirAll(filepath.Dir(metaPath), 0o700); err != nil {
		return err
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true, Multiline: true}.Marshal(meta)
	if err != nil {
		return err
	}
	if err := os.WriteFile(ctPath, ct, 0o600); err != nil {
		return err
	}
	return os.WriteFile(metaPath, b, 0o600)
}

func loadResult(dataDir, session string) (*synodv1.ResultMetadata, []byte, error) {
	metaPath, ctPath := resultPaths(dataDir, session)
	b, err := os.ReadFile(metaPath)
	if err != nil {
		return nil, nil, fmt.Errorf("no result of session %s here: %w", session, err)
	}
	meta := &synodv1.ResultMetadata{}
	if err := protojson.Unmarshal(b, meta); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", metaPath, err)
	}
	ct, err := os.ReadFile(ctPath)
	if err != nil {
		return nil, nil, err
	}
	return meta, ct, nil
}

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Verify results against the consortium chain"}
	cmd.AddCommand(newAuditVerifyCmd(g), newAuditLogCmd(g))
	return cmd
}

// check is one audit check and its outcome.
type check struct {
	Name   string `json:"check"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// auditor verifies records against the chain, trusting only the consortium
// file: the genesis (validator set) and the parties' identity keys.
type auditor struct {
	cons    *consortium.Consortium
	members map[string]kyberPoint
	rpcs    []string
	checks  []check
}

func (a *auditor) add(name string, err error, detail string, args ...any) bool {
	c := check{Name: name, OK: err == nil, Detail: fmt.Sprintf(detail, args...)}
	if err != nil {
		c.Detail = err.Error()
	}
	a.checks = append(a.checks, c)
	return err == nil
}

// include proves a tx's inclusion, trying each party's RPC as primary with
// the others as witnesses, and returns the decoded, signature-checked tx.
func (a *auditor) include(ctx context.Context, txHash []byte, kind, session string) (*ledger.Tx, *ledger.Verified, error) {
	var lastErr error
	for i, primary := range a.rpcs {
		witnesses := slices.Delete(slices.Clone(a.rpcs), i, i+1)
		v, err := ledger.VerifyInclusion(ctx, []byte(a.cons.Chain.Genesis), primary, witnesses, txHash)
		if err != nil {
			lastErr = err
			if strings.Contains(err.Error(), "connection refused") {
				continue
			}
			return nil, nil, err
		}
		tx, err := ledger.DecodeTx(v.Tx)
		if err != nil {
			return nil, nil, err
		}
		if err := tx.Verify(a.members); err != nil {
			return nil, nil, err
		}
		if tx.Kind != kind || tx.Session != session {
			return nil, nil, fmt.Errorf("tx %X is a %s record of session %s, expected %s of %s", txHash, tx.Kind, tx.Session, kind, session)
		}
		return tx, v, nil
	}
	return nil, nil, fmt.Errorf("no chain RPC reachable: %w", lastErr)
}

type setupBody struct {
	Parameters string   `json:"parameters"`
	Parties    []string `json:"parties"`
	Threshold  int      `json:"threshold"`
	KeyDigest  string   `json:"key_digest"`
	GroupKey   string   `json:"group_key"`
}

type approvalBody struct {
	Analyst     string `json:"analyst"`
	Spec        string `json:"spec"`
	SpecDigest  string `json:"spec_digest"`
	Certificate string `json:"certificate"`
}

type transcriptBody struct {
	Analyst      string   `json:"analyst"`
	SpecDigest   string   `json:"spec_digest"`
	ApprovalTx   string   `json:"approval_tx"`
	SetupID      string   `json:"setup_session"`
	Contributors []string `json:"contributors"`
	Messages     []string `json:"messages"`
	ResultDigest string   `json:"result_hash"`
}

func newAuditVerifyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "verify SESSION",
		Short: "Check a result's receipt, approval certificate and hash against the chain",
		Long: `verify checks, trusting only the consortium file (the chain's genesis and the
parties' identity keys):
  - the transcript's inclusion in a block, with CometBFT's light client,
  - the parties' setup records and the consortium BLS key they agree on,
  - the approval certificate against that key and the query that was run,
  - that the result held here hashes to what the transcript committed.
It prints each check and exits non-zero if any fails.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.LoadAnalyst(g.config, cmd.Flags())
			if err != nil {
				return err
			}
			a, err := newAuditor(cfg)
			if err != nil {
				return err
			}
			a.verify(args[0], cfg.DataDir)
			failed := 0
			for _, c := range a.checks {
				if !c.OK {
					failed++
				}
			}
			if g.output == "json" {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				enc.Encode(map[string]any{"session": args[0], "ok": failed == 0, "checks": a.checks})
			} else {
				for _, c := range a.checks {
					mark := "ok  "
					if !c.OK {
						mark = "FAIL"
					}
					fmt.Printf("%s  %-24s %s\n", mark, c.Name, c.Detail)
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d checks failed", failed, len(a.checks))
			}
			if g.output != "json" {
				fmt.Printf("session %s verified\n", args[0])
			}
			return nil
		},
	}
}

func newAuditor(cfg *config.Analyst) (*auditor, error) {
	cons, err := consortium.Load(cfg.Consortium)
	if err != nil {
		return nil, err
	}
	if cons.Chain == nil {
		return nil, fmt.Errorf("consortium file %s has no chain section", cfg.Consortium)
	}
	a := &auditor{cons: cons, members: map[string]kyberPoint{}, rpcs: cons.RPCAddresses()}
	for _, m := range cons.Parties() {
		k, err := cons.IdentityKey(m.ID)
		if err != nil {
			return nil, err
		}
		a.members[m.ID] = k
	}
	if len(a.rpcs) < 2 {
		return nil, fmt.Errorf("consortium file lists %d chain RPC addresses; a light client needs a primary and a witness", len(a.rpcs))
	}
	return a, nil
}

func (a *auditor) verify(session, dataDir string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	meta, ct, err := loadResult(dataDir, session)
	if !a.add("local result", err, "result and receipt of session %s", session) {
		return
	}
	rc := meta.GetReceipt()
	if rc == nil {
		a.add("receipt", errors.New("the result has no receipt"), "")
		return
	}
	// 1. The transcript is in the chain, at the height the receipt says.
	ttx, v, err := a.include(ctx, rc.GetTxHash(), ledger.KindTranscript, session)
	if !a.add("transcript inclusion", err, "tx %X in block %d (%s), light-client verified from genesis", rc.GetTxHash(), heightOf(v), timeOf(v)) {
		return
	}
	if v.Height != rc.GetHeight() {
		err = fmt.Errorf("receipt says height %d, the chain has the transcript at %d", rc.GetHeight(), v.Height)
	}
	a.add("receipt height", err, "height %d", v.Height)
	var tr transcriptBody
	if err := json.Unmarshal(ttx.Body, &tr); !a.add("transcript record", err, "recorded by %s: %d messages, data from %s", ttx.Sender, len(tr.Messages), strings.Join(tr.Contributors, ", ")) {
		return
	}
	// 2. The setup: every party recorded the same consortium key.
	groupKey, err := a.setupKey(ctx, tr.SetupID)
	if !a.add("setup records", err, "all %d parties recorded the same keys (setup %s)", len(a.cons.Parties()), tr.SetupID) {
		return
	}
	// 3. The approval certificate, on chain and held here, verifies.
	approvalHash, _ := hex.DecodeString(tr.ApprovalTx)
	if !bytes.Equal(approvalHash, rc.GetApprovalTxHash()) {
		a.add("approval reference", fmt.Errorf("transcript names approval %s, the receipt %X", tr.ApprovalTx, rc.GetApprovalTxHash()), "")
		return
	}
	atx, av, err := a.include(ctx, approvalHash, ledger.KindApproval, session)
	if !a.add("approval inclusion", err, "tx %X in block %d", approvalHash, heightOf(av)) {
		return
	}
	a.add("approval certificate", a.checkApproval(session, atx, tr, meta, groupKey), "threshold-BLS certificate verifies under the consortium key; same query and analyst")
	// 4. The result held here is the one the transcript committed.
	got := sha256.Sum256(ct)
	err = nil
	if hex.EncodeToString(got[:]) != tr.ResultDigest {
		err = fmt.Errorf("local result hashes to %x, the transcript committed %s", got, tr.ResultDigest)
	}
	a.add("result hash", err, "SHA-256 %x matches the transcript", got)
}

func (a *auditor) setupKey(ctx context.Context, setupSession string) (kyberPoint, error) {
	var recs []ledger.Record
	err := a.read(func(c ledger.Client) (err error) {
		recs, err = c.Session(ctx, setupSession)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read setup records: %w", err)
	}
	var ref *setupBody
	signers := map[string]bool{}
	for _, r := range recs {
		if r.Tx.Kind != ledger.KindSetup {
			continue
		}
		tx, _, err := a.include(ctx, r.TxHash, ledger.KindSetup, setupSession)
		if err != nil {
			return nil, err
		}
		var b setupBody
		if err := json.Unmarshal(tx.Body, &b); err != nil {
			return nil, fmt.Errorf("setup record of %s: %w", tx.Sender, err)
		}
		if ref == nil {
			ref = &b
		} else if b.GroupKey != ref.GroupKey || b.KeyDigest != ref.KeyDigest {
			return nil, fmt.Errorf("%s recorded other keys than the other parties", tx.Sender)
		}
		signers[tx.Sender] = true
	}
	for _, p := range a.cons.PartyIDs() {
		if !signers[p] {
			return nil, fmt.Errorf("no setup record from %s", p)
		}
	}
	raw, err := hex.DecodeString(ref.GroupKey)
	if err != nil {
		return nil, err
	}
	return protocols.UnmarshalGroupKey(raw)
}

// read runs an unverified read against the first party RPC that answers.
// What it returns is only a pointer into the chain: everything that
// matters is then proven with include.
func (a *auditor) read(f func(ledger.Client) error) error {
	var lastErr error
	for _, rpc := range a.rpcs {
		c, err := ledger.NewRemoteClient(rpc)
		if err == nil {
			if err = f(c); err == nil {
				return nil
			}
		}
		lastErr = err
	}
	return lastErr
}

func (a *auditor) checkApproval(session string, atx *ledger.Tx, tr transcriptBody, meta *synodv1.ResultMetadata, groupKey kyberPoint) error {
	var ap approvalBody
	if err := json.Unmarshal(atx.Body, &ap); err != nil {
		return fmt.Errorf("approval record: %w", err)
	}
	spec, err := hex.DecodeString(ap.Spec)
	if err != nil {
		return fmt.Errorf("approval record: spec: %w", err)
	}
	specDigest := sha256.Sum256(spec)
	if hex.EncodeToString(specDigest[:]) != ap.SpecDigest || ap.SpecDigest != tr.SpecDigest {
		return fmt.Errorf("the approved query and the transcript's query differ")
	}
	local, err := proto.MarshalOptions{Deterministic: true}.Marshal(meta.GetSpec())
	if err != nil || !bytes.Equal(local, spec) {
		return fmt.Errorf("the query held here is not the one approved")
	}
	if ap.Analyst != tr.Analyst {
		return fmt.Errorf("approved for %s, transcript names %s", ap.Analyst, tr.Analyst)
	}
	cert, err := hex.DecodeString(ap.Certificate)
	if err != nil {
		return fmt.Errorf("approval record: certificate: %w", err)
	}
	if !bytes.Equal(cert, meta.GetReceipt().GetCertificate()) {
		return fmt.Errorf("the certificate held here differs from the one on the chain")
	}
	if err := protocols.VerifyCertificate(groupKey, protocols.ApprovalMessage(session, ap.Analyst, specDigest[:]), cert); err != nil {
		return fmt.Errorf("certificate does not verify under the consortium key: %w", err)
	}
	return nil
}

func heightOf(v *ledger.Verified) int64 {
	if v == nil {
		return 0
	}
	return v.Height
}

func timeOf(v *ledger.Verified) string {
	if v == nil {
		return ""
	}
	return v.Time.UTC().Format(time.RFC3339)
}

func newAuditLogCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "log",
		Short: "List the sessions recorded on the chain",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.LoadAnalyst(g.config, cmd.Flags())
			if err != nil {
				return err
			}
			a, err := newAuditor(cfg)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var sessions []ledger.SessionSummary
			if err := a.read(func(c ledger.Client) (err error) {
				sessions, err = c.Sessions(ctx)
				return err
			}); err != nil {
				return fmt.Errorf("read the chain: %w", err)
			}
			if g.output == "json" {
				return json.NewEncoder(os.Stdout).Encode(sessions)
			}
			rows := [][]string{{"session", "height", "records"}}
			for _, s := range sessions {
				var kinds []string
				var height int64
				for _, e := range s.Entries {
					kinds = append(kinds, e.Kind+" by "+e.Sender)
					height = max(height, e.Height)
				}
				rows = append(rows, []string{s.Session, fmt.Sprint(height), strings.Join(kinds, "; ")})
			}
			return printRows(g.output, rows)
		},
	}
}

type kyberPoint = kyber.Point
