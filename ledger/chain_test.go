package ledger

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
)

// TestChain runs a 4-validator chain on loopback through commit, queries,
// rejections, light-client verification and a stopped validator.
func TestChain(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 4 validators")
	}
	start := time.Now()
	tn := startNet(t, 4)
	t.Logf("4 validators up in %v", time.Since(start).Round(time.Millisecond))
	ctx := testContext(t, 80*time.Second)
	c0 := tn.nodes[0].Client()
	p0, p1 := tn.members[0], tn.members[1]

	// A signed tx commits and every validator records it.
	tx := signedTx(t, p0, KindTranscript, "sess-1")
	t0 := time.Now()
	rc, err := c0.Commit(ctx, tx)
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	t.Logf("committed at height %d in %v", rc.Height, time.Since(t0).Round(time.Millisecond))
	if !bytes.Equal(rc.TxHash, tx.Hash()) || !bytes.Equal(rc.Tx, tx.Encode()) {
		t.Fatal("receipt does not describe the tx")
	}
	for i, app := range tn.apps {
		deadline := time.Now().Add(10 * time.Second)
		for {
			res, _ := app.Query(ctx, &abci.RequestQuery{Path: QueryTx + hex.EncodeToString(rc.TxHash)})
			if res.Code == CodeOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("validator %d never recorded the tx: %s", i, res.Log)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Session and Sessions, from another node's client.
	recs, err := tn.nodes[2].Client().Session(ctx, "sess-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Height != rc.Height || !bytes.Equal(recs[0].TxHash, rc.TxHash) ||
		recs[0].Tx.Sender != "p0" || !bytes.Equal(recs[0].Tx.Body, tx.Body) || recs[0].Time.IsZero() {
		t.Fatalf("session records: %+v", recs)
	}
	sums, err := c0.Sessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != 1 || sums[0].Session != "sess-1" || len(sums[0].Entries) != 1 ||
		sums[0].Entries[0].Kind != KindTranscript || sums[0].Entries[0].Height != rc.Height {
		t.Fatalf("sessions: %+v", sums)
	}
	if recs, err := c0.Records(ctx, KindTranscript); err != nil || len(recs) != 1 || !bytes.Equal(recs[0].TxHash, rc.TxHash) {
		t.Fatalf("transcript records: %+v %v", recs, err)
	}
	if recs, err := c0.Records(ctx, KindApproval); err != nil || len(recs) != 0 {
		t.Fatalf("approval records: %+v %v", recs, err)
	}
	if _, err := c0.Records(ctx, "gossip"); err == nil || !strings.Contains(err.Error(), `unknown record kind "gossip"`) {
		t.Fatalf("unknown kind: %v", err)
	}
	if recs, err := c0.Session(ctx, "no-such-session"); err != nil || len(recs) != 0 {
		t.Fatalf("unknown session: %v %v", recs, err)
	}

	// The same through a remote client.
	remote, err := NewRemoteClient(tn.rpc[1])
	if err != nil {
		t.Fatal(err)
	}
	if recs, err := remote.Session(ctx, "sess-1"); err != nil || len(recs) != 1 {
		t.Fatalf("remote session: %v %v", recs, err)
	}

	// Light-client verification with one primary and one witness.
	t0 = time.Now()
	v, err := VerifyInclusion(ctx, tn.genesis, tn.rpc[1], []string{tn.rpc[2]}, rc.TxHash)
	if err != nil {
		t.Fatalf("verify inclusion: %v", err)
	}
	t.Logf("verified inclusion in %v", time.Since(t0).Round(time.Millisecond))
	if v.Height != rc.Height || !bytes.Equal(v.Tx, rc.Tx) || v.ChainID != "synod-test" || v.Time.IsZero() {
		t.Fatalf("verified: %+v", v)
	}
	if got, err := DecodeTx(v.Tx); err != nil || got.Session != "sess-1" {
		t.Fatalf("verified tx: %v %v", got, err)
	}

	// Tampered tx hash: nothing to verify.
	bad := append([]byte(nil), rc.TxHash...)
	bad[0] ^= 1
	if _, err := VerifyInclusion(ctx, tn.genesis, tn.rpc[1], []string{tn.rpc[2]}, bad); err == nil ||
		!strings.Contains(err.Error(), "primary has no such tx") {
		t.Fatalf("tampered hash: %v", err)
	}
	// No witness.
	if _, err := VerifyInclusion(ctx, tn.genesis, tn.rpc[1], nil, rc.TxHash); err == nil ||
		!strings.Contains(err.Error(), "no witness") {
		t.Fatalf("no witness: %v", err)
	}
	// Tampered proofs and results, against the real header.
	rpc, err := rpchttp.New(tn.rpc[0], "/websocket")
	if err != nil {
		t.Fatal(err)
	}
	res, err := rpc.Tx(ctx, rc.TxHash, true)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := rpc.Block(ctx, &res.Height)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkTxProof(res, rc.TxHash, &blk.Block.Header); err != nil {
		t.Fatalf("genuine proof: %v", err)
	}
	tampered := *res
	tampered.Proof.RootHash = append([]byte(nil), res.Proof.RootHash...)
	tampered.Proof.RootHash[0] ^= 1
	if err := checkTxProof(&tampered, rc.TxHash, &blk.Block.Header); err == nil ||
		!strings.Contains(err.Error(), "is not the verified data hash") {
		t.Fatalf("tampered root: %v", err)
	}
	tampered = *res
	tampered.Proof.Proof.LeafHash = append([]byte(nil), res.Proof.Proof.LeafHash...)
	tampered.Proof.Proof.LeafHash[0] ^= 1
	if err := checkTxProof(&tampered, rc.TxHash, &blk.Block.Header); err == nil ||
		!strings.Contains(err.Error(), "inclusion proof against the verified data hash") {
		t.Fatalf("tampered leaf: %v", err)
	}
	tampered = *res
	tampered.Tx = append([]byte(nil), res.Tx...)
	tampered.Tx[len(tampered.Tx)-1] ^= 1
	if err := checkTxProof(&tampered, rc.TxHash, &blk.Block.Header); err == nil ||
		!strings.Contains(err.Error(), "different tx") {
		t.Fatalf("tampered tx: %v", err)
	}
	next := res.Height + 1
	nblk, err := rpc.Block(ctx, &next)
	if err != nil {
		t.Fatal(err)
	}
	br, err := rpc.BlockResults(ctx, &res.Height)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkTxResult(br, res.Index, &nblk.Block.Header); err != nil {
		t.Fatalf("genuine results: %v", err)
	}
	br.TxsResults[res.Index].Code = CodeDuplicate
	if err := checkTxResult(br, res.Index, &nblk.Block.Header); err == nil ||
		!strings.Contains(err.Error(), "not to the verified LastResultsHash") {
		t.Fatalf("tampered result: %v", err)
	}

	// Rejections: Commit reports the application's reason.
	outsider := newMember("outsider")
	forged := signedTx(t, p0, KindApproval, "sess-2")
	forged.Sender = "p1"
	if err := forged.Sign(KeySigner{Private: p0.priv}); err != nil {
		t.Fatal(err)
	}
	first := signedTx(t, p1, KindApproval, "sess-3")
	if _, err := c0.Commit(ctx, first); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		tx   *Tx
		code uint32
		want string
	}{
		{"non-member", signedTx(t, outsider, KindReceipt, "sess-2"), CodeUnauthorized, "not a consortium member"},
		{"other sender", forged, CodeUnauthorized, `signature is not by sender "p1"`},
		{"unsigned", &Tx{Kind: KindReceipt, Session: "sess-2", Sender: "p0", Body: []byte{1}}, CodeUnauthorized, "not signed"},
		{"malformed", &Tx{Kind: KindReceipt, Session: "bad session", Sender: "p0", Body: []byte{1}}, CodeMalformed, "space or control"},
		{"unknown kind", signedTx(t, p0, "vote", "sess-2"), CodeUnknownKind, `unknown kind "vote"`},
		{"same bytes again", tx, CodeDuplicate, "already recorded"},
		{"same slot", signedTx(t, p1, KindApproval, "sess-3"), CodeDuplicate, `approval record of session "sess-3" by "p1" is already recorded`},
	}
	for _, tc := range cases {
		_, err := c0.Commit(ctx, tc.tx)
		var rej *RejectedError
		if !errors.As(err, &rej) || !errors.Is(err, ErrRejected) || rej.Code != tc.code || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want code %d and %q", tc.name, err, tc.code, tc.want)
		}
	}
	// Raw garbage through the RPC.
	if res, err := rpc.BroadcastTxSync(ctx, []byte("not a tx")); err != nil || res.Code != CodeMalformed ||
		!strings.Contains(res.Log, "bad magic") {
		t.Errorf("garbage: %+v %v", res, err)
	}

	// With one validator stopped, a tx still commits.
	if err := tn.nodes[3].Stop(); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	for i := 0; i < 3; i++ {
		if _, err := tn.nodes[i%3].Client().Commit(ctx, signedTx(t, p1, KindReceipt, "sess-down-"+string(rune('a'+i)))); err != nil {
			t.Fatalf("commit with a validator down: %v", err)
		}
	}
	t.Logf("3 commits with one validator down in %v", time.Since(t0).Round(time.Millisecond))
	if ctx.Err() != nil {
		t.Fatal(context.Cause(ctx))
	}
}
