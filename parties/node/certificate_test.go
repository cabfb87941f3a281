package node

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synod-mpc/synod/ledger"
	"github.com/synod-mpc/synod/ledger/records"
	"github.com/synod-mpc/synod/parties/config"
)

// approvalChain is a chain holding given records per session; it counts
// the reads.
type approvalChain struct {
	ledger.Client
	records map[string][]ledger.Record
	reads   atomic.Int64
}

func (c *approvalChain) Session(_ context.Context, id string) ([]ledger.Record, error) {
	c.reads.Add(1)
	return c.records[id], nil
}

func approvalOf(t *testing.T, session string, cert []byte) ledger.Record {
	t.Helper()
	body, err := json.Marshal(records.Approval{Analyst: "analyst", Certificate: hex.EncodeToString(cert)})
	if err != nil {
		t.Fatal(err)
	}
	return ledger.Record{Height: 5, Tx: ledger.Tx{Kind: ledger.KindApproval, Session: session, Sender: "party-2", Body: body}}
}

// The node's half of a party's check of a certificate: the certificate
// must be the one the chain records for the session (the party's machine
// verifies the signature itself: protocols/session's tests).
func TestApprovalOnChainFindsTheRecordedCertificate(t *testing.T) {
	const session = "sess-cert"
	valid, other := []byte("certificate"), []byte("another certificate")
	cases := []struct {
		name    string
		onChain []ledger.Record
		want    string
	}{
		{"not on the chain", nil, "no approval certificate for session sess-cert on the chain"},
		{"the chain records another certificate", []ledger.Record{approvalOf(t, session, other)}, "no approval certificate for session sess-cert on the chain"},
		{"on the chain", []ledger.Record{approvalOf(t, session, valid)}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			chain := &approvalChain{records: map[string][]ledger.Record{session: tc.onChain}}
			n := &Node{cfg: &config.Party{ID: "party-1", Timeouts: config.Timeouts{Peer: 20 * time.Millisecond}}, chain: chain}
			err := n.approvalOnChain(session, valid)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if chain.reads.Load() == 0 {
				t.Fatal("the chain was not read")
			}
		})
	}
}
