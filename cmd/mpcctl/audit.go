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

// check is one audit check and its outcome: ok, FAIL, or skipped because a
// check it depends on did not pass.
type check struct {
	Name   string `json:"check"`
	OK     bool   `json:"ok"`
	Status string `json:"status"` // "ok", "FAIL" or "skipped"
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

const (
	statusOK      = "ok"
	statusFail    = "FAIL"
	statusSkipped = "skipped"
)

// run runs the check name unless one of the checks it needs did not pass,
// in which case it is recorded as skipped, naming them. f returns the
// detail printed on success.
func (a *auditor) run(name string, needs []string, f func() (string, error)) bool {
	var missing []string
	for _, n := range needs {
		if st := a.status(n); st != statusOK {
			if st == "" {
				st = "not run"
			}
			missing = append(missing, fmt.Sprintf("%s (%s)", n, st))
		}
	}
	if len(missing) > 0 {
		a.checks = append(a.checks, check{Name: name, Status: statusSkipped,
			Detail: "skipped: needs " + strings.Join(missing, ", ")})
		return false
	}
	detail, err := f()
	c := check{Name: name, OK: err == nil, Status: statusOK, Detail: detail}
	if err != nil {
		c.Status, c.Detail = statusFail, err.Error()
	}
	a.checks = append(a.checks, c)
	return err == nil
}

// status is the outcome of the check name, "" if it has not run.
func (a *auditor) status(name string) string {
	for _, c := range a.checks {
		if c.Name == name {
			return c.Status
		}
	}
	return ""
}

// include proves a tx's inclusion, trying each party's RPC in turn as
// primary with the others as witnesses, and returns the decoded,
// signature-checked tx. A primary or witness that is down or misbehaves
// makes it move on to the next primary; the error lists every attempt.
func (a *auditor) include(ctx context.Context, txHash []byte, kind, session string) (*ledger.Tx, *ledger.Verified, error) {
	var errs []string
	for i, primary := range a.rpcs {
		witnesses := slices.Delete(slices.Clone(a.rpcs), i, i+1)
		v, err := ledger.VerifyInclusion(ctx, []byte(a.cons.Chain.Genesis), primary, witnesses, txHash)
		if err != nil {
			errs = append(errs, fmt.Sprintf("primary %s: %v", primary, err))
			if ctx.Err() != nil {
				break
			}
			continue
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
	return nil, nil, fmt.Errorf("no chain RPC proved tx %X (%d tried): %s", txHash, len(errs), strings.Join(errs, "; "))
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
    at the receipt's height, and the receipt's Merkle inclusion proof
    against that block's light-client-verified data hash,
  - the parties' setup records and the consortium BLS key they agree on,
  - the approval certificate against that key and the query that was run,
  - that the result held here hashes to what the transcript committed.
Every check runs unless one it depends on did not pass (it is then
reported as skipped, naming it). It prints each check as ok, FAIL or skip
and exits non-zero if any fails.`,
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
			failed, skipped := 0, 0
			for _, c := range a.checks {
				switch c.Status {
				case statusFail:
					failed++
				case statusSkipped:
					skipped++
				}
			}
			if g.output == "json" {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				enc.Encode(map[string]any{"session": args[0], "ok": failed == 0 && skipped == 0, "checks": a.checks})
			} else {
				for _, c := range a.checks {
					mark := map[string]string{statusOK: "ok  ", statusFail: "FAIL", statusSkipped: "skip"}[c.Status]
					fmt.Printf("%s  %-24s %s\n", mark, c.Name, c.Detail)
				}
			}
			if failed > 0 || skipped > 0 {
				return fmt.Errorf("%d of %d checks failed, %d skipped", failed, len(a.checks), skipped)
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

// Names of the checks verify runs.
const (
	chkLocal       = "local result"
	chkTranscript  = "transcript inclusion"
	chkHeight      = "receipt height"
	chkProof       = "receipt proof"
	chkRecord      = "transcript record"
	chkSetup       = "setup records"
	chkApproval    = "approval inclusion"
	chkApprovalRef = "approval reference"
	chkCertificate = "approval certificate"
	chkResult      = "result hash"
)

// verify runs every check; a check runs unless one it depends on did not
// pass, so that one tampered item does not hide the state of the others.
func (a *auditor) verify(session, dataDir string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var (
		meta *synodv1.ResultMetadata
		ct   []byte
	)
	a.run(chkLocal, nil, func() (string, error) {
		var err error
		if meta, ct, err = loadResult(dataDir, session); err != nil {
			return "", err
		}
		if meta.GetReceipt() == nil {
			return "", errors.New("the result has no receipt")
		}
		return fmt.Sprintf("result and receipt of session %s", session), nil
	})
	rc := meta.GetReceipt()

	// 1. The transcript the receipt points at is in the chain, at the
	// height it says, and the receipt's inclusion proof leads to the
	// light-client-verified block.
	var (
		ttx *ledger.Tx
		tv  *ledger.Verified
	)
	a.run(chkTranscript, []string{chkLocal}, func() (string, error) {
		var err error
		if ttx, tv, err = a.include(ctx, rc.GetTxHash(), ledger.KindTranscript, session); err != nil {
			return "", err
		}
		return fmt.Sprintf("tx %X in block %d (%s), light-client verified from genesis", rc.GetTxHash(), tv.Height, timeOf(tv)), nil
	})
	a.run(chkHeight, []string{chkTranscript}, func() (string, error) {
		if tv.Height != rc.GetHeight() {
			return "", fmt.Errorf("receipt says height %d, the chain has the transcript at %d", rc.GetHeight(), tv.Height)
		}
		return fmt.Sprintf("height %d", tv.Height), nil
	})
	a.run(chkProof, []string{chkTranscript}, func() (string, error) {
		p := rc.GetInclusionProof()
		if p == nil {
			return "", errors.New("the receipt carries no inclusion proof")
		}
		err := ledger.VerifyProof(tv, &ledger.Proof{Height: rc.GetHeight(), RootHash: p.GetRootHash(), Data: p.GetData(),
			Total: p.GetTotal(), Index: p.GetIndex(), LeafHash: p.GetLeafHash(), Aunts: p.GetAunts()})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("Merkle proof (tx %d of %d) leads to the verified data hash %X of block %d", p.GetIndex()+1, p.GetTotal(), tv.DataHash, tv.Height), nil
	})

	// 2. The transcript's content. When the receipt does not lead to it,
	// the session's transcript is looked up on the chain by session id
	// (an unverified pointer) and proven like any other record.
	var tr transcriptBody
	a.run(chkRecord, []string{chkLocal}, func() (string, error) {
		how := "reached through the receipt"
		if ttx == nil {
			var err error
			if ttx, err = a.sessionTranscript(ctx, session); err != nil {
				return "", fmt.Errorf("the receipt does not lead to the transcript, and by session id: %w", err)
			}
			how = "found by session id (light-client verified)"
		}
		if err := json.Unmarshal(ttx.Body, &tr); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s; recorded by %s: %d messages, data from %s", how, ttx.Sender, len(tr.Messages), strings.Join(tr.Contributors, ", ")), nil
	})

	// 3. The setup: every party recorded the same consortium key.
	var groupKey kyberPoint
	setupID := rc.GetSetupSession()
	if a.status(chkRecord) == statusOK {
		setupID = tr.SetupID
	}
	a.run(chkSetup, []string{chkLocal}, func() (string, error) {
		var err error
		if groupKey, err = a.setupKey(ctx, setupID); err != nil {
			return "", err
		}
		return fmt.Sprintf("all %d parties recorded the same keys (setup %s)", len(a.cons.Parties()), setupID), nil
	})

	// 4. The approval the receipt names is on the chain, it is the one the
	// transcript names, and its certificate verifies.
	var ap approvalBody
	a.run(chkApproval, []string{chkLocal}, func() (string, error) {
		tx, av, err := a.include(ctx, rc.GetApprovalTxHash(), ledger.KindApproval, session)
		if err != nil {
			return "", err
		}
		if err := json.Unmarshal(tx.Body, &ap); err != nil {
			return "", fmt.Errorf("approval record: %w", err)
		}
		return fmt.Sprintf("tx %X in block %d", rc.GetApprovalTxHash(), av.Height), nil
	})
	a.run(chkApprovalRef, []string{chkRecord, chkApproval}, func() (string, error) {
		approvalHash, _ := hex.DecodeString(tr.ApprovalTx)
		switch {
		case !bytes.Equal(approvalHash, rc.GetApprovalTxHash()):
			return "", fmt.Errorf("transcript names approval %s, the receipt %X", tr.ApprovalTx, rc.GetApprovalTxHash())
		case tr.SetupID != rc.GetSetupSession():
			return "", fmt.Errorf("transcript names setup %s, the receipt %s", tr.SetupID, rc.GetSetupSession())
		case ap.SpecDigest != tr.SpecDigest:
			return "", errors.New("the approved query and the transcript's query differ")
		case ap.Analyst != tr.Analyst:
			return "", fmt.Errorf("approved for %s, transcript names %s", ap.Analyst, tr.Analyst)
		}
		return "the transcript and the receipt name the same approval, query, analyst and setup", nil
	})
	a.run(chkCertificate, []string{chkApproval, chkSetup}, func() (string, error) {
		if err := a.checkApproval(session, ap, meta, groupKey); err != nil {
			return "", err
		}
		return "threshold-BLS certificate verifies under the consortium key; same query as held here", nil
	})

	// 5. The result held here is the one the transcript committed.
	a.run(chkResult, []string{chkRecord}, func() (string, error) {
		got := sha256.Sum256(ct)
		if hex.EncodeToString(got[:]) != tr.ResultDigest {
			return "", fmt.Errorf("local result hashes to %x, the transcript committed %s", got, tr.ResultDigest)
		}
		return fmt.Sprintf("SHA-256 %x matches the transcript", got), nil
	})
}

// sessionTranscript finds the session's transcript record on the chain and
// proves its inclusion.
func (a *auditor) sessionTranscript(ctx context.Context, session string) (*ledger.Tx, error) {
	var recs []ledger.Record
	if err := a.read(func(c ledger.Client) (err error) {
		recs, err = c.Session(ctx, session)
		return err
	}); err != nil {
		return nil, fmt.Errorf("read session records: %w", err)
	}
	var hashes [][]byte
	for _, r := range recs {
		if r.Tx.Kind == ledger.KindTranscript {
			hashes = append(hashes, r.TxHash)
		}
	}
	if len(hashes) != 1 {
		return nil, fmt.Errorf("the chain has %d transcript records of session %s", len(hashes), session)
	}
	tx, _, err := a.include(ctx, hashes[0], ledger.KindTranscript, session)
	return tx, err
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

// checkApproval checks the approval record's certificate against the
// consortium key and the query and certificate held here.
func (a *auditor) checkApproval(session string, ap approvalBody, meta *synodv1.ResultMetadata, groupKey kyberPoint) error {
	spec, err := hex.DecodeString(ap.Spec)
	if err != nil {
		return fmt.Errorf("approval record: spec: %w", err)
	}
	specDigest := sha256.Sum256(spec)
	if hex.EncodeToString(specDigest[:]) != ap.SpecDigest {
		return fmt.Errorf("the approval record's query does not hash to its digest")
	}
	local, err := proto.MarshalOptions{Deterministic: true}.Marshal(meta.GetSpec())
	if err != nil || !bytes.Equal(local, spec) {
		return fmt.Errorf("the query held here is not the one approved")
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
