package node

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.dedis.ch/kyber/v3"
	"go.dedis.ch/kyber/v3/pairing/bn256"
	"go.dedis.ch/kyber/v3/sign/bls"
	"go.dedis.ch/kyber/v3/util/random"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/ledger"
	"github.com/synod-mpc/synod/parties/config"
	"github.com/synod-mpc/synod/parties/consortium"
	"github.com/synod-mpc/synod/parties/identity"
	"github.com/synod-mpc/synod/protocols"
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
	body, err := json.Marshal(approvalRecord{Analyst: "analyst", Certificate: hex.EncodeToString(cert)})
	if err != nil {
		t.Fatal(err)
	}
	return ledger.Record{Height: 5, Tx: ledger.Tx{Kind: ledger.KindApproval, Session: session, Sender: "party-2", Body: body}}
}

// A party answers a query request only with a certificate that verifies
// under the consortium's BLS key for this very session, analyst and query,
// and that is recorded on the chain; otherwise it refuses (query.refused to
// the coordinator) before reading its data. The node here is party-1
// coordinating its own session, so the refusal lands in the coordinator's
// inbox.
func TestPartyRefusesUncertifiedQuery(t *testing.T) {
	suite := bn256.NewSuite()
	groupSecret, groupKey := bls.NewKeyPair(suite, random.New())
	otherSecret, _ := bls.NewKeyPair(suite, random.New())
	gk, err := protocols.MarshalGroupKey(groupKey)
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.Generate("party-1")
	if err != nil {
		t.Fatal(err)
	}
	const session = "sess-cert"
	spec := []byte("the canonical query spec")
	sign := func(secret kyber.Scalar, session, analyst string, spec []byte) []byte {
		sig, err := bls.Sign(suite, secret, protocols.ApprovalMessage(session, analyst, digest(spec)))
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	valid := sign(groupSecret, session, "analyst", spec)
	otherValid := sign(groupSecret, session, "analyst", []byte("another query"))

	cases := []struct {
		name      string
		cert      []byte
		onChain   []ledger.Record
		want      string
		readChain bool
	}{
		{"signed by another key", sign(otherSecret, session, "analyst", spec), []ledger.Record{approvalOf(t, session, valid)},
			"approval certificate does not verify", false},
		{"for another session", sign(groupSecret, "sess-other", "analyst", spec), nil, "approval certificate does not verify", false},
		{"for another analyst", sign(groupSecret, session, "mallory", spec), nil, "approval certificate does not verify", false},
		{"for another query", otherValid, nil, "approval certificate does not verify", false},
		{"garbage", []byte("not a signature"), nil, "approval certificate does not verify", false},
		{"valid, not on the chain", valid, nil, "no approval certificate for session sess-cert on the chain", true},
		{"valid, the chain records another certificate", valid, []ledger.Record{approvalOf(t, session, otherValid)},
			"no approval certificate for session sess-cert on the chain", true},
		// Control: verified and on the chain, the request passes both
		// checks and is refused only by the next one (this test node's
		// consortium lists no analyst).
		{"valid and on the chain", valid, []ledger.Record{approvalOf(t, session, valid)}, "analyst is not an analyst of the consortium", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			chain := &approvalChain{records: map[string][]ledger.Record{session: tc.onChain}}
			n := &Node{
				cfg:    &config.Party{ID: "party-1", Timeouts: config.Timeouts{Peer: 20 * time.Millisecond}},
				cons:   &consortium.Consortium{},
				id:     id,
				keys:   map[string]kyber.Point{"party-1": id.Public},
				log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
				state:  &keyState{Meta: setupMeta{Session: "setup", GroupKey: gk}},
				chain:  chain,
				coords: map[string]*coordSession{},
				seen:   map[string]map[string]struct{}{},
			}
			cs := &coordSession{n: n, id: session, participants: []string{"party-1"}, inbox: make(chan *synodv1.Envelope, 4)}
			n.coords[session] = cs
			ps := &partySession{id: session, coordinator: "party-1"}
			payload, err := json.Marshal(queryRequest{Spec: spec, Analyst: "analyst", Certificate: tc.cert})
			if err != nil {
				t.Fatal(err)
			}
			if err := n.answerQuery(ps, &synodv1.Envelope{Kind: kindQueryRequest, From: "party-1", Session: session, Payload: payload}); err != nil {
				t.Fatal(err)
			}
			select {
			case env := <-cs.inbox:
				if env.GetKind() != kindQueryRefused || env.GetFrom() != "party-1" || !strings.Contains(string(env.GetPayload()), tc.want) {
					t.Fatalf("coordinator got %s %q, want a refusal with %q", env.GetKind(), env.GetPayload(), tc.want)
				}
			default:
				t.Fatal("the party sent nothing")
			}
			if ps.queried {
				t.Fatal("the party marked the session as queried")
			}
			if got := chain.reads.Load() > 0; got != tc.readChain {
				t.Fatalf("chain read: %v, want %v", got, tc.readChain)
			}
		})
	}
}
