package test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/synod-mpc/synod/ledger"
	"github.com/synod-mpc/synod/parties/consortium"
	"github.com/synod-mpc/synod/parties/identity"
	"github.com/synod-mpc/synod/parties/keystore"
)

// auditChecks runs `mpcctl audit verify` and returns its output and error.
func (c *cluster) auditVerify(session string) (string, error) {
	return c.ctl("audit", "verify", session)
}

// testAudit: a released result verifies against the chain from the
// consortium file alone, and tampering with the result, the receipt or the
// certificate held by the analyst makes the named check fail.
func testAudit(t *testing.T, c *cluster, session string) {
	out, err := c.auditVerify(session)
	if err != nil {
		t.Fatalf("audit verify of an untouched result failed: %v\n%s", err, out)
	}
	for _, want := range []string{"transcript inclusion", "setup records", "approval certificate", "result hash"} {
		if !strings.Contains(out, "ok    "+want) {
			t.Fatalf("check %q not reported as ok:\n%s", want, out)
		}
	}
	t.Logf("audit verify:\n%s", out)

	metaPath := filepath.Join(c.dir, "analyst", "data", "results", session+".json")
	ctPath := filepath.Join(c.dir, "analyst", "data", "results", session+".ct")
	tamper := func(name, path string, alter func([]byte) []byte, failing string) {
		t.Run("tampered "+name, func(t *testing.T) {
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(path, orig, 0o600)
			if err := os.WriteFile(path, alter(append([]byte(nil), orig...)), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := c.auditVerify(session)
			if err == nil {
				t.Fatalf("audit verify passed with a tampered %s:\n%s", name, out)
			}
			if !strings.Contains(out, "FAIL  "+failing) {
				t.Fatalf("tampered %s: want the %q check to fail:\n%s", name, failing, out)
			}
		})
	}
	tamper("result", ctPath, func(b []byte) []byte { b[len(b)/2] ^= 1; return b }, "result hash")
	tamper("receipt", metaPath, alterReceipt(t, "tx_hash"), "transcript inclusion")
	tamper("certificate", metaPath, alterReceipt(t, "certificate"), "approval certificate")

	t.Run("audit log lists the session", func(t *testing.T) {
		out, err := c.ctl("audit", "log")
		if err != nil || !strings.Contains(out, session) || !strings.Contains(out, "transcript by party-1") {
			t.Fatalf("audit log: %v\n%s", err, out)
		}
	})
}

// alterReceipt flips one bit of a base64 field of the stored receipt.
func alterReceipt(t *testing.T, field string) func([]byte) []byte {
	return func(b []byte) []byte {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		rc, _ := m["receipt"].(map[string]any)
		v, _ := rc[field].(string)
		raw, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(raw) == 0 {
			t.Fatalf("receipt field %s: %q %v", field, v, err)
		}
		raw[len(raw)/2] ^= 1
		rc[field] = base64.StdEncoding.EncodeToString(raw)
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
}

// testForeignTxs: transactions signed by a non-member, or by a member in
// another member's name, are refused by the chain.
func testForeignTxs(t *testing.T, c *cluster) {
	cons, err := consortium.Load(filepath.Join(c.dir, "consortium.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	client, err := ledger.NewRemoteClient(cons.RPCAddresses()[0])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	outsider, _ := identity.Generate("outsider")
	tx := &ledger.Tx{Kind: ledger.KindTranscript, Session: "forged", Sender: "outsider", Body: []byte(`{}`), Nonce: 1}
	tx.Sign(ledger.KeySigner{Private: outsider.Secret})
	if _, err := client.Commit(ctx, tx); !errors.Is(err, ledger.ErrRejected) {
		t.Fatalf("non-member tx: want a rejection, got %v", err)
	}
	pass, _ := keystore.Passphrase("", filepath.Join(c.dir, "secrets/party-1.pass"))
	raw, err := keystore.ReadFile(filepath.Join(c.dir, "party-1/identity.key"), pass, "identity")
	if err != nil {
		t.Fatal(err)
	}
	p1, _ := identity.UnmarshalIdentity("party-1", raw)
	tx = &ledger.Tx{Kind: ledger.KindTranscript, Session: "forged", Sender: "party-2", Body: []byte(`{}`), Nonce: 2}
	tx.Sign(ledger.KeySigner{Private: p1.Secret})
	_, err = client.Commit(ctx, tx)
	if !errors.Is(err, ledger.ErrRejected) {
		t.Fatalf("tx in another party's name: want a rejection, got %v", err)
	}
	t.Logf("refused: %v", err)
}
