package test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/synod-mpc/synod/parties/consortium"
)

// TestRemoteLedger: a party may record through another node's chain RPC
// instead of running its own validator (ledger.mode: remote), set here by
// SYNOD_* environment variables over its config file. With 3 of the 4
// validators running, setup, a query and its audit still go through.
func TestRemoteLedger(t *testing.T) {
	c := newCluster(t, 4, 2, "ckks-n13")
	cons, err := consortium.Load(filepath.Join(c.dir, "consortium.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c.stop(4)
	c.start(4, "mpcnode", "SYNOD_LEDGER_MODE=remote", "SYNOD_LEDGER_REMOTE="+cons.RPCAddresses()[0])
	c.waitReachable(4)
	if out, err := c.ctl("setup"); err != nil {
		t.Fatalf("setup: %v\n%s", err, out)
	}
	q, err := c.query(demoQuery...)
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Contributors) != 4 {
		t.Fatalf("contributors %v, want all four", q.Contributors)
	}
	checkAgainstPlaintext(t, q, demoSpec())
	if out, err := c.auditVerify(q.Session); err != nil {
		t.Fatalf("audit: %v\n%s", err, out)
	}
	if log := c.logs[3].String(); !strings.Contains(log, "ledger: remote chain") {
		t.Fatalf("party-4 did not use the remote chain:\n%s", log)
	}
}
