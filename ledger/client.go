package ledger

// The ledger client: commit a record and read sessions back, over any
// CometBFT RPC client — the embedded node's local one or a remote chain's
// HTTP one.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	cmtpubsub "github.com/cometbft/cometbft/libs/pubsub"
	rpcclient "github.com/cometbft/cometbft/rpc/client"
	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	"github.com/cometbft/cometbft/rpc/client/local"
	"github.com/cometbft/cometbft/types"
)

// DefaultCommitTimeout bounds Commit when its context has no deadline.
const DefaultCommitTimeout = 60 * time.Second

// ErrRejected is wrapped by Commit's error when the chain refused the
// transaction (CheckTx or FinalizeBlock returned a non-zero code).
var ErrRejected = errors.New("ledger: tx rejected")

// Client commits records to the chain and reads them back.
type Client interface {
	// Commit broadcasts tx (BroadcastTxSync) and waits until it is in a
	// committed block. A rejected tx returns an error wrapping ErrRejected
	// with the application's reason.
	Commit(ctx context.Context, tx *Tx) (*Receipt, error)
	// Session returns every record of session id, in chain order.
	Session(ctx context.Context, id string) ([]Record, error)
	// Sessions lists the sessions on the chain.
	Sessions(ctx context.Context) ([]SessionSummary, error)
	// Records returns every record of one kind, in chain order.
	Records(ctx context.Context, kind string) ([]Record, error)
}

// Receipt says where a committed tx is. Verify it with VerifyInclusion.
type Receipt struct {
	Height int64
	TxHash []byte
	Tx     []byte
}

// RejectedError is the error of a transaction the application refused.
type RejectedError struct {
	Code   uint32
	Log    string
	Height int64 // 0 when refused by CheckTx, else the block that recorded the refusal
}

func (e *RejectedError) Error() string {
	if e.Height > 0 {
		return fmt.Sprintf("ledger: tx rejected in block %d (code %d): %s", e.Height, e.Code, e.Log)
	}
	return fmt.Sprintf("ledger: tx rejected (code %d): %s", e.Code, e.Log)
}

// Unwrap makes errors.Is(err, ErrRejected) true.
func (e *RejectedError) Unwrap() error { return ErrRejected }

type rpcClient struct {
	c   rpcclient.Client
	bus *types.EventBus // the node's event bus when c is a local client, else nil
}

// NewClient returns a Client over any CometBFT RPC client. Over the
// embedded node's local client (rpc/client/local), Commit waits on the
// node's event bus for the block that includes the tx; over any other, it
// polls the node's tx index.
func NewClient(c rpcclient.Client) Client {
	r := &rpcClient{c: c}
	if l, ok := c.(*local.Local); ok && l.EventBus != nil {
		r.bus = l.EventBus
	}
	return r
}

// NewRemoteClient returns a Client talking to a CometBFT node's RPC endpoint,
// e.g. "tcp://10.0.0.5:26657" or "http://host:26657".
func NewRemoteClient(rpcAddr string) (Client, error) {
	if rpcAddr == "" {
		return nil, errors.New("ledger: remote client: empty RPC address")
	}
	c, err := rpchttp.New(RPCURL(rpcAddr), "/websocket")
	if err != nil {
		return nil, fmt.Errorf("ledger: remote client for %q: %w", rpcAddr, err)
	}
	return NewClient(c), nil
}

func (r *rpcClient) Commit(ctx context.Context, tx *Tx) (*Receipt, error) {
	if tx == nil {
		return nil, errors.New("ledger: commit: nil tx")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCommitTimeout)
		defer cancel()
	}
	raw := tx.Encode()
	hash := types.Tx(raw).Hash()
	// On the embedded node, hear of the tx's block from the node itself:
	// subscribed before the broadcast, so that the event cannot be missed.
	var included <-chan cmtpubsub.Message
	var canceled <-chan struct{}
	if r.bus != nil {
		if sub, unsubscribe, err := r.subscribeTx(ctx, raw); err == nil {
			defer unsubscribe()
			included, canceled = sub.Out(), sub.Canceled()
		}
	}
	res, err := r.c.BroadcastTxSync(ctx, raw)
	switch {
	case err != nil && strings.Contains(err.Error(), "tx already exists in cache"):
		// The node has seen these exact bytes: committed already, or pending.
		if prev, terr := r.c.Tx(ctx, hash, false); terr == nil {
			return nil, &RejectedError{Code: CodeDuplicate, Height: prev.Height,
				Log: fmt.Sprintf("ledger: duplicate: tx %X is already recorded at height %d", hash, prev.Height)}
		}
		// Pending in the mempool: wait for it like any other.
	case err != nil:
		return nil, fmt.Errorf("ledger: commit %s tx of session %q: broadcast: %w", tx.Kind, tx.Session, err)
	case res.Code != CodeOK:
		return nil, &RejectedError{Code: res.Code, Log: res.Log}
	}
	// Polling the tx index is the remote client's way, and the embedded
	// one's fallback (a subscription the node cancelled, a tx committed
	// before the subscription but indexed after the look-up above): often
	// at first, since blocks come every few tens of milliseconds on a
	// consortium LAN, then backing off.
	wait := 5 * time.Millisecond
	if included != nil {
		wait = 100 * time.Millisecond
	}
	start := time.Now()
	poll := time.NewTimer(wait)
	defer poll.Stop()
	for {
		select {
		case msg := <-included:
			if ev, ok := msg.Data().(types.EventDataTx); ok {
				r.awaitIndexed(ctx, hash)
				return receipt(hash, raw, ev.Height, &ev.Result)
			}
			continue
		case <-canceled:
			included, canceled = nil, nil
			wait = 5 * time.Millisecond
			poll.Reset(0)
			continue
		case <-ctx.Done():
			return nil, fmt.Errorf("ledger: commit: tx %X accepted but not in a block before the deadline: %w", hash, ctx.Err())
		case <-poll.C:
		}
		got, err := r.c.Tx(ctx, hash, false)
		if err == nil {
			return receipt(hash, raw, got.Height, &got.TxResult)
		}
		if !strings.Contains(err.Error(), "not found") {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("ledger: commit: tx %X accepted but not in a block before the deadline: %w", hash, ctx.Err())
			}
			return nil, fmt.Errorf("ledger: commit: look up tx %X: %w", hash, err)
		}
		if elapsed := time.Since(start); elapsed > time.Second && wait < 200*time.Millisecond {
			wait = wait * 3 / 2
		}
		poll.Reset(wait)
	}
}

// receipt is the outcome of a tx found in block height with result res: a
// receipt, or the application's refusal recorded in that block.
func receipt(hash, raw []byte, height int64, res *abci.ExecTxResult) (*Receipt, error) {
	if res.Code != CodeOK {
		return nil, &RejectedError{Code: res.Code, Log: res.Log, Height: height}
	}
	return &Receipt{Height: height, TxHash: hash, Tx: raw}, nil
}

var subscriberSeq atomic.Uint64

// subscribeTx subscribes to the node's event for the tx raw, published once
// the block that includes it is committed (and the App has committed its
// state). unsubscribe must always be called.
func (r *rpcClient) subscribeTx(ctx context.Context, raw types.Tx) (types.Subscription, func(), error) {
	subscriber := fmt.Sprintf("synod-ledger-commit-%d", subscriberSeq.Add(1))
	q := types.EventQueryTxFor(raw)
	sub, err := r.bus.Subscribe(ctx, subscriber, q, 1)
	if err != nil {
		return nil, nil, err
	}
	return sub, func() { r.unsubscribe(subscriber, q) }, nil
}

// unsubscribe ends a subscription, even when the caller's context is over.
func (r *rpcClient) unsubscribe(subscriber string, q cmtpubsub.Query) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.bus.Unsubscribe(ctx, subscriber, q)
}

// awaitIndexed waits, briefly, until the node's tx index answers for hash:
// the node indexes a block's txs just after it announces them, and a
// receipt should be readable from this node (Tx, VerifyInclusion) as soon
// as Commit returns, as it is when Commit finds the tx by polling the index.
func (r *rpcClient) awaitIndexed(ctx context.Context, hash []byte) {
	deadline := time.Now().Add(100 * time.Millisecond)
	for {
		if _, err := r.c.Tx(ctx, hash, false); err == nil || !strings.Contains(err.Error(), "not found") || time.Now().After(deadline) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Microsecond):
		}
	}
}

// ErrNoEvents is returned by WatchBlocks when the client hears of no
// events (a remote client): the caller polls instead.
var ErrNoEvents = errors.New("ledger: this client receives no block events")

// BlockWatcher is implemented by the Clients that hear of each block as
// their node commits it: NewClient's over a local client, i.e. the embedded
// validator's.
type BlockWatcher interface {
	// WatchBlocks returns a channel that receives the height of the blocks
	// the node commits from now on, each sent once the App has committed
	// the block's state (so a read that follows sees it). A slow reader
	// misses heights but always gets the latest. The channel is closed
	// when ctx ends or the node stops. stop ends the watch; it must be
	// called, and may be called more than once.
	WatchBlocks(ctx context.Context) (blocks <-chan int64, stop func(), err error)
}

// WatchBlocks implements BlockWatcher; it returns ErrNoEvents when the
// client is not a local one.
func (r *rpcClient) WatchBlocks(ctx context.Context) (<-chan int64, func(), error) {
	if r.bus == nil {
		return nil, nil, ErrNoEvents
	}
	subscriber := fmt.Sprintf("synod-ledger-blocks-%d", subscriberSeq.Add(1))
	q := types.EventQueryNewBlockHeader
	sub, err := r.bus.Subscribe(ctx, subscriber, q, 8)
	if err != nil {
		return nil, nil, fmt.Errorf("ledger: watch blocks: %w", err)
	}
	out := make(chan int64, 1)
	done := make(chan struct{})
	go func() {
		defer close(out)
		for {
			select {
			case msg := <-sub.Out():
				h, ok := msg.Data().(types.EventDataNewBlockHeader)
				if !ok {
					continue
				}
				select { // keep only the latest height; this is the only sender
				case <-out:
				default:
				}
				out <- h.Header.Height
			case <-sub.Canceled():
				return
			case <-ctx.Done():
				return
			case <-done:
				return
			}
		}
	}()
	return out, sync.OnceFunc(func() {
		close(done)
		r.unsubscribe(subscriber, q)
	}), nil
}

func (r *rpcClient) query(ctx context.Context, path string, v any) error {
	res, err := r.c.ABCIQuery(ctx, path, nil)
	if err != nil {
		return fmt.Errorf("ledger: query %q: %w", path, err)
	}
	if res.Response.Code != CodeOK {
		return fmt.Errorf("ledger: query %q: code %d: %s", path, res.Response.Code, res.Response.Log)
	}
	if err := json.Unmarshal(res.Response.Value, v); err != nil {
		return fmt.Errorf("ledger: query %q: decode answer: %w", path, err)
	}
	return nil
}

func (r *rpcClient) Session(ctx context.Context, id string) ([]Record, error) {
	if id == "" {
		return nil, errors.New("ledger: session: empty session id")
	}
	var recs []Record
	if err := r.query(ctx, QuerySession+id, &recs); err != nil {
		return nil, err
	}
	return recs, nil
}

func (r *rpcClient) Records(ctx context.Context, kind string) ([]Record, error) {
	var recs []Record
	if err := r.query(ctx, QueryKind+kind, &recs); err != nil {
		return nil, err
	}
	return recs, nil
}

func (r *rpcClient) Sessions(ctx context.Context) ([]SessionSummary, error) {
	var out []SessionSummary
	if err := r.query(ctx, QuerySessions, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// RPCURL turns a CometBFT RPC address given as host:port (as the consortium
// file lists them) into the URL its clients expect.
func RPCURL(addr string) string {
	if strings.Contains(addr, "://") {
		return addr
	}
	return "http://" + addr
}

// Prover is implemented by the Clients that can fetch a committed tx's
// Merkle inclusion proof (NewClient's and NewRemoteClient's).
type Prover interface {
	InclusionProof(ctx context.Context, txHash []byte) (*Proof, error)
}

// InclusionProof fetches the inclusion proof of the committed tx with
// txHash (CometBFT's Tx(hash, prove=true)). It is not verified: check it
// with VerifyProof against a light-client-verified header.
func (r *rpcClient) InclusionProof(ctx context.Context, txHash []byte) (*Proof, error) {
	res, err := r.c.Tx(ctx, txHash, true)
	if err != nil {
		return nil, fmt.Errorf("ledger: inclusion proof of tx %X: %w", txHash, err)
	}
	return proofOf(res.Height, res.Proof), nil
}

// InclusionProof fetches a committed tx's inclusion proof through c, which
// must implement Prover.
func InclusionProof(ctx context.Context, c Client, txHash []byte) (*Proof, error) {
	p, ok := c.(Prover)
	if !ok {
		return nil, fmt.Errorf("ledger: inclusion proof of tx %X: client %T cannot fetch proofs", txHash, c)
	}
	return p.InclusionProof(ctx, txHash)
}
