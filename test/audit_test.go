package test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
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

// auditChecks are the checks `mpcctl audit verify` prints, in order.
var auditChecks = []string{"local result", "transcript inclusion", "receipt height", "receipt proof", "transcript record",
	"setup records", "approval inclusion", "approval reference", "approval certificate", "result hash"}

// testAudit: a released result verifies against the chain from the
// consortium file alone, and tampering with the result, the receipt, its
// inclusion proof or the certificate held by the analyst makes the named
// check fail while every check that does not depend on it still passes.
func testAudit(t *testing.T, c *cluster, session string) {
	out, err := c.auditVerify(session)
	if err != nil {
		t.Fatalf("audit verify of an untouched result failed: %v\n%s", err, out)
	}
	for _, want := range auditChecks {
		if !strings.Contains(out, "ok    "+want) {
			t.Fatalf("check %q not reported as ok:\n%s", want, out)
		}
	}
	t.Logf("audit verify:\n%s", out)

	metaPath := filepath.Join(c.dir, "analyst", "data", "results", session+".json")
	ctPath := filepath.Join(c.dir, "analyst", "data", "results", session+".ct")
	tamper := func(name, path string, alter func([]byte) []byte, failing string, skipped ...string) {
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
			for _, chk := range auditChecks {
				want := "ok    " + chk
				switch {
				case chk == failing:
					want = "FAIL  " + chk
				case slices.Contains(skipped, chk):
					want = "skip  " + chk
				}
				if !strings.Contains(out, want) {
					t.Errorf("tampered %s: want %q:\n%s", name, want, out)
				}
			}
		})
	}
	tamper("result", ctPath, func(b []byte) []byte { b[len(b)/2] ^= 1; return b }, "result hash")
	tamper("receipt", metaPath, alterReceipt(t, "tx_hash"), "transcript inclusion", "receipt height", "receipt proof")
	tamper("inclusion proof", metaPath, alterReceipt(t, "inclusion_proof", "root_hash"), "receipt proof")
	tamper("certificate", metaPath, alterReceipt(t, "certificate"), "approval certificate")

	t.Run("audit log lists the session", func(t *testing.T) {
		out, err := c.ctl("audit", "log")
		if err != nil || !strings.Contains(out, session) || !strings.Contains(out, "transcript by party-1") {
			t.Fatalf("audit log: %v\n%s", err, out)
		}
	})
}

// alterReceipt flips one bit of a base64 field of the stored receipt
// (path: the field, or an object field then its field).
func alterReceipt(t *testing.T, path ...string) func([]byte) []byte {
	return func(b []byte) []byte {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		obj, _ := m["receipt"].(map[string]any)
		for _, p := range path[:len(path)-1] {
			obj, _ = obj[p].(map[string]any)
		}
		field := path[len(path)-1]
		v, _ := obj[field].(string)
		raw, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(raw) == 0 {
			t.Fatalf("receipt field %v: %q %v", path, v, err)
		}
		raw[len(raw)/2] ^= 1
		obj[field] = base64.StdEncoding.EncodeToString(raw)
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
}

// testForeignTxs: transactions signed by a non-member, or by a member in
// another member's name, are refused by every validator, each through its
// own RPC, as unauthorized.
func testForeignTxs(t *testing.T, c *cluster) {
	cons, err := consortium.Load(filepath.Join(c.dir, "consortium.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	outsider, err := identity.Generate("outsider")
	if err != nil {
		t.Fatal(err)
	}
	alien := &ledger.Tx{Kind: ledger.KindTranscript, Session: "forged", Sender: "outsider", Body: []byte(`{}`), Nonce: 1}
	if err := alien.Sign(ledger.KeySigner{Private: outsider.Secret}); err != nil {
		t.Fatal(err)
	}
	pass, err := keystore.Passphrase("", filepath.Join(c.dir, "secrets/party-1.pass"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := keystore.ReadFile(filepath.Join(c.dir, "party-1/identity.key"), pass, "identity")
	if err != nil {
		t.Fatal(err)
	}
	p1, err := identity.UnmarshalIdentity("party-1", raw)
	if err != nil {
		t.Fatal(err)
	}
	forged := &ledger.Tx{Kind: ledger.KindTranscript, Session: "forged", Sender: "party-2", Body: []byte(`{}`), Nonce: 2}
	if err := forged.Sign(ledger.KeySigner{Private: p1.Secret}); err != nil {
		t.Fatal(err)
	}
	rpcs := cons.RPCAddresses()
	if len(rpcs) != len(cons.Parties()) {
		t.Fatalf("%d RPC addresses for %d parties", len(rpcs), len(cons.Parties()))
	}
	for _, addr := range rpcs {
		client, err := ledger.NewRemoteClient(addr)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			tx   *ledger.Tx
			want string
		}{
			{"non-member", alien, "not a consortium member"},
			{"in another party's name", forged, `signature is not by sender "party-2"`},
		} {
			_, err := client.Commit(ctx, tc.tx)
			var rej *ledger.RejectedError
			if !errors.As(err, &rej) || rej.Code != ledger.CodeUnauthorized || !strings.Contains(rej.Log, tc.want) {
				t.Errorf("validator at %s, %s tx: got %v, want code %d (unauthorized) and %q", addr, tc.name, err, ledger.CodeUnauthorized, tc.want)
			}
		}
	}
	if recs, err := ledgerSession(ctx, rpcs[len(rpcs)-1], "forged"); err != nil || len(recs) != 0 {
		t.Fatalf("session forged on the chain: %v %v", recs, err)
	}
}

func ledgerSession(ctx context.Context, rpc, session string) ([]ledger.Record, error) {
	c, err := ledger.NewRemoteClient(rpc)
	if err != nil {
		return nil, err
	}
	return c.Session(ctx, session)
}
