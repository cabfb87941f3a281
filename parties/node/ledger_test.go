package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.dedis.ch/kyber/v3"

	"github.com/synod-mpc/synod/ledger"
	"github.com/synod-mpc/synod/ledger/records"
	"github.com/synod-mpc/synod/parties/config"
	"github.com/synod-mpc/synod/parties/identity"
)

// blockingChain's Commit waits for its context, as a commit waiting for a
// block does.
type blockingChain struct {
	ledger.Client
	entered chan struct{}
}

func (b *blockingChain) Commit(ctx context.Context, _ *ledger.Tx) (*ledger.Receipt, error) {
	close(b.entered)
	<-ctx.Done()
	return nil, ctx.Err()
}

// At shutdown a commit in flight is cancelled, close waits for it, and
// later calls are refused rather than reaching a stopped validator.
func TestGuardedChainFencesShutdown(t *testing.T) {
	b := &blockingChain{entered: make(chan struct{})}
	g := newGuardedChain(b)
	errc := make(chan error, 1)
	go func() {
		_, err := g.Commit(context.Background(), &ledger.Tx{})
		errc <- err
	}()
	<-b.entered
	closed := make(chan struct{})
	go func() { g.close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("close did not return")
	}
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("commit in flight: %v, want cancelled", err)
	}
	if _, err := g.Commit(context.Background(), &ledger.Tx{}); !errors.Is(err, errLedgerStopped) {
		t.Fatalf("commit after close: %v", err)
	}
	if _, err := g.Records(context.Background(), ledger.KindApproval); !errors.Is(err, errLedgerStopped) {
		t.Fatalf("read after close: %v", err)
	}
}

// countingChain counts the session reads of the chain it wraps, and keeps
// its block watch.
type countingChain struct {
	ledger.Client
	reads atomic.Int64
}

func (c *countingChain) Session(ctx context.Context, id string) ([]ledger.Record, error) {
	c.reads.Add(1)
	return c.Client.Session(ctx, id)
}

func (c *countingChain) WatchBlocks(ctx context.Context) (<-chan int64, func(), error) {
	return c.Client.(ledger.BlockWatcher).WatchBlocks(ctx)
}

// startChain starts a one-validator fast-blocks chain whose only member is
// node n, and connects n to it through a counting, guarded client.
func startChain(t *testing.T, n *Node) (*countingChain, *guardedChain) {
	t.Helper()
	v, err := ledger.GenerateValidator()
	if err != nil {
		t.Fatal(err)
	}
	gen, err := ledger.Genesis("synod-node-test", map[string]ledger.ValidatorFiles{n.cfg.ID: {PubKey: v.PubKey}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	app, err := ledger.NewApp(map[string]kyber.Point{n.cfg.ID: n.id.Public}, filepath.Join(dir, "app"))
	if err != nil {
		t.Fatal(err)
	}
	p2p := ""
	for range 100 { // below the ephemeral range: see ledger's freePort
		addr := fmt.Sprintf("127.0.0.1:%d", 10000+rand.IntN(22000))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			p2p = addr
			break
		}
	}
	emb, err := ledger.StartEmbedded(ledger.EmbeddedConfig{Home: filepath.Join(dir, "home"), Genesis: gen,
		NodeKey: v.NodeKey, PrivValidatorKey: v.PrivValidatorKey, P2PListen: p2p, FastBlocks: true}, app, nil)
	if err != nil {
		app.Close()
		t.Fatal(err)
	}
	counting := &countingChain{Client: emb.Client()}
	g := newGuardedChain(counting)
	n.chain = g
	t.Cleanup(func() {
		g.close()
		emb.Stop()
		app.Close()
	})
	return counting, g
}

func chainTestNode(t *testing.T) *Node {
	t.Helper()
	id, err := identity.Generate("party-1")
	if err != nil {
		t.Fatal(err)
	}
	return &Node{
		cfg: &config.Party{ID: "party-1", Timeouts: config.Timeouts{Peer: 5 * time.Second}},
		id:  id,
		log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// A party waiting for the approval certificate on its embedded validator's
// chain looks again when a block is committed, not on a fixed poll: it
// sees the record as soon as the block is in, with a handful of reads.
func TestApprovalOnChainWakesOnBlocks(t *testing.T) {
	n := chainTestNode(t)
	counting, _ := startChain(t, n)
	cert := []byte("certificate of sess-watch")
	found := make(chan error, 1)
	var foundAt time.Time
	go func() {
		err := n.approvalOnChain("sess-watch", cert)
		foundAt = time.Now()
		found <- err
	}()
	time.Sleep(300 * time.Millisecond) // waiting, on an idle chain
	readsBefore := counting.reads.Load()
	if _, err := n.record(context.Background(), ledger.KindApproval, "sess-watch", records.Approval{Certificate: hex.EncodeToString(cert)}); err != nil {
		t.Fatal(err)
	}
	committed := time.Now()
	select {
	case err := <-found:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("approvalOnChain did not see the committed approval")
	}
	// 300 ms idle: the first look, and a fallback look every 100 ms.
	if readsBefore > 6 {
		t.Errorf("%d chain reads in 300 ms of an idle chain: the wait polls instead of watching blocks", readsBefore)
	}
	t.Logf("approval seen %v after its commit returned; %d reads", foundAt.Sub(committed), counting.reads.Load())
}

// A party waiting for the approval when the node stops gets an error at
// once, and the wait does not hold the shutdown back.
func TestApprovalOnChainEndsAtShutdown(t *testing.T) {
	n := chainTestNode(t)
	_, g := startChain(t, n)
	found := make(chan error, 1)
	go func() { found <- n.approvalOnChain("sess-stop", []byte("never recorded")) }()
	time.Sleep(200 * time.Millisecond)
	closed := make(chan struct{})
	go func() { g.close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("close did not return while a party waited for an approval")
	}
	select {
	case err := <-found:
		if !errors.Is(err, errLedgerStopped) {
			t.Fatalf("wait at shutdown: %v, want %v", err, errLedgerStopped)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the wait went on after the node stopped its ledger")
	}
}
