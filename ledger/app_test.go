package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"go.dedis.ch/kyber/v3"
)

func runBlock(t *testing.T, app *App, height int64, txs ...[]byte) *abci.ResponseFinalizeBlock {
	t.Helper()
	ctx := context.Background()
	res, err := app.FinalizeBlock(ctx, &abci.RequestFinalizeBlock{Height: height, Time: time.Unix(height, 0), Txs: txs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.Commit(ctx, &abci.RequestCommit{}); err != nil {
		t.Fatal(err)
	}
	return res
}

// The state survives a restart, and the app hash depends only on the blocks.
func TestAppPersistsAndHashesDeterministically(t *testing.T) {
	m0, m1 := newMember("p0"), newMember("p1")
	members := map[string]kyber.Point{"p0": m0.pub, "p1": m1.pub}
	dir := t.TempDir()
	a, err := NewApp(members, filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewApp(members, "")
	if err != nil {
		t.Fatal(err)
	}
	tx1 := signedTx(t, m0, KindSetup, "s1").Encode()
	tx2 := signedTx(t, m1, KindSetup, "s1").Encode()
	dup := signedTx(t, m1, KindSetup, "s1").Encode()
	var hashes [][]byte
	for _, app := range []*App{a, b} {
		empty := runBlock(t, app, 1)
		if len(empty.AppHash) != 0 {
			t.Fatal("an empty block must not change the app hash")
		}
		res := runBlock(t, app, 2, tx1, tx2, dup, tx1)
		codes := []uint32{}
		for _, r := range res.TxResults {
			codes = append(codes, r.Code)
		}
		if codes[0] != CodeOK || codes[1] != CodeOK || codes[2] != CodeDuplicate || codes[3] != CodeDuplicate {
			t.Fatalf("codes %v", codes)
		}
		hashes = append(hashes, res.AppHash)
	}
	if !bytes.Equal(hashes[0], hashes[1]) || len(hashes[0]) != 32 {
		t.Fatalf("app hashes differ: %X %X", hashes[0], hashes[1])
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a, err = NewApp(members, filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	info, _ := a.Info(context.Background(), &abci.RequestInfo{})
	if info.LastBlockHeight != 2 || !bytes.Equal(info.LastBlockAppHash, hashes[0]) {
		t.Fatalf("after restart: height %d hash %X", info.LastBlockHeight, info.LastBlockAppHash)
	}
	q, _ := a.Query(context.Background(), &abci.RequestQuery{Path: "session/s1"})
	var recs []Record
	if err := json.Unmarshal(q.Value, &recs); err != nil || len(recs) != 2 || recs[0].Tx.Sender != "p0" || recs[1].Tx.Sender != "p1" {
		t.Fatalf("session after restart: %v %s", err, q.Value)
	}
	if ct, _ := a.CheckTx(context.Background(), &abci.RequestCheckTx{Tx: tx1}); ct.Code != CodeDuplicate {
		t.Fatalf("recheck of a recorded tx: code %d", ct.Code)
	}
	if q, _ := a.Query(context.Background(), &abci.RequestQuery{Path: "nope"}); q.Code == CodeOK {
		t.Fatal("unknown query path accepted")
	}
}

func TestGenesis(t *testing.T) {
	v1, err := GenerateValidator()
	if err != nil {
		t.Fatal(err)
	}
	v2, _ := GenerateValidator()
	gen, err := Genesis("c", map[string]ValidatorFiles{"b": {PrivValidatorKey: v2.PrivValidatorKey}, "a": v1})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := parseGenesis(gen)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Validators) != 2 || doc.Validators[0].Name != "a" || doc.Validators[0].Power != doc.Validators[1].Power ||
		!bytes.Equal(doc.Validators[1].PubKey.Bytes(), v2.PubKey) {
		t.Fatalf("genesis validators: %+v", doc.Validators)
	}
	nk, err := parseNodeKey(v1.NodeKey)
	if err != nil || string(nk.ID()) != v1.NodeID {
		t.Fatalf("node key: %v", err)
	}
	if _, err := Genesis("c", map[string]ValidatorFiles{"a": v1, "b": {PubKey: v1.PubKey}}); err == nil {
		t.Fatal("duplicate validator key accepted")
	}
}
