package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.dedis.ch/kyber/v3"

	"github.com/synod-mpc/synod/ledger"
	"github.com/synod-mpc/synod/ledger/records"
)

// startLedger connects the node to the consortium chain: in embedded mode
// it starts this party's CometBFT validator in process (its keys unsealed
// only in memory); in remote mode it talks to an existing chain's RPC.
func (n *Node) startLedger() error {
	lc := n.cfg.Ledger
	switch lc.Mode {
	case "remote":
		c, err := ledger.NewRemoteClient(lc.Remote)
		if err != nil {
			return fmt.Errorf("ledger: %w", err)
		}
		n.chain = c
		n.log.Info("ledger: remote chain", "rpc", lc.Remote)
		return nil
	case "embedded":
	default:
		return fmt.Errorf("ledger: unknown mode %q", lc.Mode)
	}
	if n.cons.Chain == nil {
		return fmt.Errorf("ledger: consortium file %s has no chain section (genesis)", n.cfg.Consortium)
	}
	members := map[string]kyber.Point{}
	for id, k := range n.keys {
		members[id] = k
	}
	emb, app, err := startEmbedded(n.cfg, n.cons, n.passphrase, members, n.log)
	if err != nil {
		return err
	}
	n.chain, n.embedded, n.app = newGuardedChain(emb.Client()), emb, app
	n.log.Info("ledger: embedded validator started", "chain", n.cons.Chain.ID, "p2p", lc.P2PListen, "rpc", lc.RPCListen)
	return nil
}

func (n *Node) stopLedger() {
	if g, ok := n.chain.(*guardedChain); ok {
		g.close()
	}
	if n.embedded != nil {
		if err := n.embedded.Stop(); err != nil {
			n.log.Warn("ledger: stop", "error", err)
		}
	}
	if n.app != nil {
		n.app.Close()
	}
}

// errLedgerStopped is returned by chain calls made while the node stops.
var errLedgerStopped = errors.New("ledger: the node is stopping")

// guardedChain fences the embedded validator's client at shutdown: once
// close begins, calls in flight are cancelled and new ones refused, and
// close returns only when none is left. CometBFT's stores panic when read
// after the node stopped, and a background record (the release receipt)
// could otherwise race the shutdown.
type guardedChain struct {
	c      ledger.Client
	mu     sync.RWMutex
	closed bool
	ctx    context.Context
	cancel context.CancelFunc
}

func newGuardedChain(c ledger.Client) *guardedChain {
	ctx, cancel := context.WithCancel(context.Background())
	return &guardedChain{c: c, ctx: ctx, cancel: cancel}
}

// enter admits one call and returns its context (cancelled at close) and
// the function that ends it.
func (g *guardedChain) enter(ctx context.Context) (context.Context, func(), error) {
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return nil, nil, errLedgerStopped
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(g.ctx, cancel)
	return ctx, func() { stop(); cancel(); g.mu.RUnlock() }, nil
}

func (g *guardedChain) close() {
	g.cancel()
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

func (g *guardedChain) Commit(ctx context.Context, tx *ledger.Tx) (*ledger.Receipt, error) {
	ctx, done, err := g.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	return g.c.Commit(ctx, tx)
}

func (g *guardedChain) Session(ctx context.Context, id string) ([]ledger.Record, error) {
	ctx, done, err := g.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	return g.c.Session(ctx, id)
}

func (g *guardedChain) Sessions(ctx context.Context) ([]ledger.SessionSummary, error) {
	ctx, done, err := g.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	return g.c.Sessions(ctx)
}

func (g *guardedChain) Records(ctx context.Context, kind string) ([]ledger.Record, error) {
	ctx, done, err := g.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	return g.c.Records(ctx, kind)
}

// WatchBlocks implements ledger.BlockWatcher over the embedded validator's
// client (ledger.ErrNoEvents otherwise). The watch is ended by close like
// any call, but does not hold close back: it reads no store, and a reader
// holding it may still call the chain's other methods.
func (g *guardedChain) WatchBlocks(ctx context.Context) (<-chan int64, func(), error) {
	w, ok := g.c.(ledger.BlockWatcher)
	if !ok {
		return nil, nil, ledger.ErrNoEvents
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return nil, nil, errLedgerStopped
	}
	ctx, cancel := context.WithCancel(ctx)
	unlink := context.AfterFunc(g.ctx, cancel)
	blocks, stop, err := w.WatchBlocks(ctx)
	if err != nil {
		unlink()
		cancel()
		return nil, nil, err
	}
	return blocks, func() { stop(); unlink(); cancel() }, nil
}

// approvalOnChain waits until the session's approval certificate is
// recorded on this node's chain: its validator may be a block behind the
// coordinator's. It looks again at every block its validator commits
// (embedded validator), or every 10 ms (remote chain), for at most two peer
// timeouts.
func (n *Node) approvalOnChain(session string, cert []byte) error {
	wait := 2 * n.cfg.Timeouts.Peer
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	// Watch first, then look, so that a block committed in between wakes
	// the wait.
	var blocks <-chan int64
	poll := 10 * time.Millisecond
	if w, ok := n.chain.(ledger.BlockWatcher); ok {
		if b, stop, err := w.WatchBlocks(ctx); err == nil {
			defer stop()
			blocks, poll = b, 100*time.Millisecond // polling only as a fallback
		}
	}
	want := hex.EncodeToString(cert)
	var lastErr error
	for {
		recs, err := n.chain.Session(ctx, session)
		if err == nil {
			for _, r := range recs {
				if r.Tx.Kind != ledger.KindApproval {
					continue
				}
				if a, err := records.DecodeApproval(r.Tx.Body); err == nil && a.Certificate == want {
					return nil
				}
			}
		} else if errors.Is(err, errLedgerStopped) {
			return fmt.Errorf("no approval certificate for session %s: %w", session, err)
		} else if ctx.Err() == nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no approval certificate for session %s on the chain within %v (last error: %v)", session, wait, lastErr)
		case _, ok := <-blocks:
			if !ok {
				blocks, poll = nil, 10*time.Millisecond
			}
		case <-time.After(poll):
		}
	}
}
