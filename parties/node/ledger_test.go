package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/synod-mpc/synod/ledger"
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
