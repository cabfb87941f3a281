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
	"time"

	rpcclient "github.com/cometbft/cometbft/rpc/client"
	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
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
	c rpcclient.Client
}

// NewClient returns a Client over any CometBFT RPC client.
func NewClient(c rpcclient.Client) Client { return &rpcClient{c: c} }

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
	wait := 5 * time.Millisecond
	start := time.Now()
	for {
		got, err := r.c.Tx(ctx, hash, false)
		if err == nil {
			if got.TxResult.Code != CodeOK {
				return nil, &RejectedError{Code: got.TxResult.Code, Log: got.TxResult.Log, Height: got.Height}
			}
			return &Receipt{Height: got.Height, TxHash: hash, Tx: raw}, nil
		}
		if !strings.Contains(err.Error(), "not found") {
			return nil, fmt.Errorf("ledger: commit: look up tx %X: %w", hash, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("ledger: commit: tx %X accepted but not in a block before the deadline: %w", hash, ctx.Err())
		case <-time.After(wait):
		}
		// Blocks come every few tens of milliseconds on a consortium LAN:
		// poll often at first (a commit is usually there within 100 ms),
		// then back off.
		if elapsed := time.Since(start); elapsed > time.Second && wait < 200*time.Millisecond {
			wait = wait * 3 / 2
		}
	}
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
