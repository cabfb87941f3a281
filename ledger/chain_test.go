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
	"github.com/cometbft/cometbft/types"
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

	// The inclusion proof a receipt carries, fetched through the embedded
	// and a remote client, checks against the light-client-verified header;
	// any alteration of it does not.
	proof, err := InclusionProof(ctx, c0, rc.TxHash)
	if err != nil {
		t.Fatal(err)
	}
	if proof.Height != rc.Height || !bytes.Equal(proof.Data, rc.Tx) || len(proof.RootHash) != 32 || !bytes.Equal(proof.RootHash, v.DataHash) {
		t.Fatalf("proof: %+v, verified data hash %X", proof, v.DataHash)
	}
	if err := VerifyProof(v, proof); err != nil {
		t.Fatalf("genuine stored proof: %v", err)
	}
	if rp, err := InclusionProof(ctx, remote, rc.TxHash); err != nil || VerifyProof(v, rp) != nil {
		t.Fatalf("proof from a remote client: %v", err)
	}
	if _, err := InclusionProof(ctx, struct{ Client }{c0}, rc.TxHash); err == nil || !strings.Contains(err.Error(), "cannot fetch proofs") {
		t.Fatalf("client without proofs: %v", err)
	}
	flip := func(b []byte) []byte { b = bytes.Clone(b); b[len(b)/2] ^= 1; return b }
	for name, alter := range map[string]struct {
		f    func(p *Proof)
		want string
	}{
		"root":   {func(p *Proof) { p.RootHash = flip(p.RootHash) }, "is not the verified data hash"},
		"leaf":   {func(p *Proof) { p.LeafHash = flip(p.LeafHash) }, "inclusion proof against the verified data hash"},
		"data":   {func(p *Proof) { p.Data = flip(p.Data) }, "different tx"},
		"index":  {func(p *Proof) { p.Index++ }, "is for position"},
		"height": {func(p *Proof) { p.Height++ }, "verified header is for height"},
		"aunts":  {func(p *Proof) { p.Aunts = append(p.Aunts, make([]byte, 32)) }, "inclusion proof against the verified data hash"},
	} {
		p := *proof
		alter.f(&p)
		if err := VerifyProof(v, &p); err == nil || !strings.Contains(err.Error(), alter.want) {
			t.Errorf("stored proof with a tampered %s: %v, want %q", name, err, alter.want)
		}
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
	if !bytes.Equal(v.DataHash, blk.Block.Header.DataHash) {
		t.Fatalf("verified data hash %X, block's %X", v.DataHash, []byte(blk.Block.Header.DataHash))
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
	alien := signedTx(t, outsider, KindReceipt, "sess-2")
	forged := signedTx(t, p0, KindApproval, "sess-2")
	forged.Sender = "p1"
	if err := forged.Sign(KeySigner{Private: p0.priv}); err != nil {
		t.Fatal(err)
	}
	first := signedTx(t, p1, KindApproval, "sess-3")
	if _, err := c0.Commit(ctx, first); err != nil {
		t.Fatal(err)
	}
	unauthorized := []struct {
		name string
		tx   *Tx
		want string
	}{
		{"non-member", alien, "not a consortium member"},
		{"other sender", forged, `signature is not by sender "p1"`},
	}
	// Every validator refuses them, each through its own RPC (CheckTx).
	for i, addr := range tn.rpc {
		ci, err := NewRemoteClient(addr)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range unauthorized {
			_, err := ci.Commit(ctx, tc.tx)
			var rej *RejectedError
			if !errors.As(err, &rej) || rej.Code != CodeUnauthorized || rej.Height != 0 || !strings.Contains(rej.Log, tc.want) {
				t.Errorf("validator %d, %s tx: got %v, want code %d (unauthorized) from CheckTx and %q", i, tc.name, err, CodeUnauthorized, tc.want)
			}
		}
	}
	cases := []struct {
		name string
		tx   *Tx
		code uint32
		want string
	}{
		{"non-member", alien, CodeUnauthorized, "not a consortium member"},
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
	t.Logf("validator 3 missed %d blocks", tn.apps[0].Height()-tn.apps[3].Height())

	// A faulty proposer's block carrying the unauthorized txs: every
	// validator's FinalizeBlock rejects them and its state does not move.
	// The nodes are stopped first (FinalizeBlock must not race consensus);
	// validator 3 is brought up to date by replaying the blocks it missed,
	// as CometBFT's handshake would.
	hash := waitSameAppHash(t, tn.apps[:3])
	missed := []*abci.RequestFinalizeBlock{}
	for h := tn.apps[3].Height() + 1; h <= tn.apps[0].Height(); h++ {
		b, err := rpc.Block(ctx, &h)
		if err != nil {
			t.Fatal(err)
		}
		missed = append(missed, &abci.RequestFinalizeBlock{Height: h, Time: b.Block.Time, Txs: txBytes(b.Block.Txs)})
	}
	for _, e := range tn.nodes[:3] {
		if err := e.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	for _, req := range missed {
		if _, err := tn.apps[3].FinalizeBlock(ctx, req); err != nil {
			t.Fatal(err)
		}
		if _, err := tn.apps[3].Commit(ctx, &abci.RequestCommit{}); err != nil {
			t.Fatal(err)
		}
	}
	for i, app := range tn.apps {
		before, height := app.AppHash(), app.Height()
		if !bytes.Equal(before, hash) {
			t.Fatalf("validator %d's app hash %X before the faulty block, the others' %X", i, before, hash)
		}
		res, err := app.FinalizeBlock(ctx, &abci.RequestFinalizeBlock{Height: height + 1, Time: time.Now(),
			Txs: [][]byte{alien.Encode(), forged.Encode()}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := app.Commit(ctx, &abci.RequestCommit{}); err != nil {
			t.Fatal(err)
		}
		for j, tc := range unauthorized {
			if r := res.TxResults[j]; r.Code != CodeUnauthorized || !strings.Contains(r.Log, tc.want) || len(r.Events) != 0 {
				t.Errorf("validator %d's FinalizeBlock, %s tx: code %d %q, want %d and %q", i, tc.name, r.Code, r.Log, CodeUnauthorized, tc.want)
			}
		}
		if !bytes.Equal(res.AppHash, before) || !bytes.Equal(app.AppHash(), before) || app.Height() != height+1 {
			t.Errorf("validator %d: app hash %X -> %X (committed %X) at height %d", i, before, res.AppHash, app.AppHash(), app.Height())
		}
		for _, tx := range []*Tx{alien, forged} {
			if q, _ := app.Query(ctx, &abci.RequestQuery{Path: QueryTx + hex.EncodeToString(tx.Hash())}); q.Code == CodeOK {
				t.Errorf("validator %d recorded a rejected tx of %s", i, tx.Sender)
			}
		}
		if q, _ := app.Query(ctx, &abci.RequestQuery{Path: QuerySession + "sess-2"}); q.Code != CodeOK || string(q.Value) != "[]" {
			t.Errorf("validator %d: session sess-2 holds %s", i, q.Value)
		}
	}
	if ctx.Err() != nil {
		t.Fatal(context.Cause(ctx))
	}
}

// waitSameAppHash waits until apps agree on their app hash (each lags the
// last block by its own few milliseconds) and returns it.
func waitSameAppHash(t *testing.T, apps []*App) []byte {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h := apps[0].AppHash()
		same := true
		for _, a := range apps[1:] {
			same = same && bytes.Equal(a.AppHash(), h)
		}
		if same {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatal("the validators' app hashes did not converge within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func txBytes(txs types.Txs) [][]byte {
	out := make([][]byte, len(txs))
	for i, tx := range txs {
		out[i] = tx
	}
	return out
}
