package ledger

import (
	"path/filepath"
	"testing"
	"time"

	"go.dedis.ch/kyber/v3"
)

// A restarted node keeps its records and goes on committing.
func TestEmbeddedRestart(t *testing.T) {
	dir := t.TempDir()
	m := newMember("p0")
	members := map[string]kyber.Point{"p0": m.pub}
	v, err := GenerateValidator()
	if err != nil {
		t.Fatal(err)
	}
	gen, err := Genesis("synod-restart", map[string]ValidatorFiles{"p0": v})
	if err != nil {
		t.Fatal(err)
	}
	cfg := EmbeddedConfig{
		Home: filepath.Join(dir, "node"), ChainID: "synod-restart", Genesis: gen,
		NodeKey: v.NodeKey, PrivValidatorKey: v.PrivValidatorKey, P2PListen: freePort(t),
	}
	ctx := testContext(t, 40*time.Second)
	start := func() (*App, *Embedded) {
		app, err := NewApp(members, filepath.Join(dir, "app"))
		if err != nil {
			t.Fatal(err)
		}
		e, err := StartEmbedded(cfg, app, nil)
		if err != nil {
			t.Fatal(err)
		}
		return app, e
	}
	app, e := start()
	if _, err := e.Client().Commit(ctx, signedTx(t, m, KindSetup, "c1")); err != nil {
		t.Fatal(err)
	}
	e.Stop()
	app.Close()

	app, e = start()
	defer app.Close()
	defer e.Stop()
	recs, err := e.Client().Session(ctx, "c1")
	if err != nil || len(recs) != 1 {
		t.Fatalf("after restart: %v %v", recs, err)
	}
	if _, err := e.Client().Commit(ctx, signedTx(t, m, KindSetup, "c1")); err == nil {
		t.Fatal("duplicate slot accepted after restart")
	}
	if _, err := e.Client().Commit(ctx, signedTx(t, m, KindReceipt, "c1")); err != nil {
		t.Fatalf("commit after restart: %v", err)
	}
}
