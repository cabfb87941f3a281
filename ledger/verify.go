package ledger

// Inclusion verification with CometBFT's light client: an auditor who trusts
// only the genesis checks that a tx is in a block the consortium's
// validators signed, and that the application accepted it.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	dbm "github.com/cometbft/cometbft-db"
	"github.com/cometbft/cometbft/light"
	lighthttp "github.com/cometbft/cometbft/light/provider/http"
	dbs "github.com/cometbft/cometbft/light/store/db"
	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	ctypes "github.com/cometbft/cometbft/rpc/core/types"
	"github.com/cometbft/cometbft/types"
)

// Verified is a transaction proven to be in the chain and accepted by the
// application.
type Verified struct {
	ChainID string
	Height  int64     // block that includes the tx
	Index   uint32    // position in the block
	Time    time.Time // that block's time, signed by the validators
	TxHash  []byte
	Tx      []byte // the tx bytes; decode with DecodeTx
	// DataHash is the verified header's DataHash: the Merkle root of the
	// block's txs, against which VerifyProof checks a stored proof.
	DataHash []byte
}

// Proof is a committed tx's Merkle inclusion proof in its block: CometBFT's
// types.TxProof (RFC 6962) in plain fields, as a receipt carries it. Fetch
// one with InclusionProof, check it with VerifyProof.
type Proof struct {
	Height   int64  // the block
	RootHash []byte // the block's DataHash
	Data     []byte // the tx bytes
	Total    int64  // txs in the block
	Index    int64  // position of the tx
	LeafHash []byte
	Aunts    [][]byte
}

func proofOf(height int64, tp types.TxProof) *Proof {
	p := &Proof{Height: height, RootHash: slices.Clone([]byte(tp.RootHash)), Data: slices.Clone([]byte(tp.Data)),
		Total: tp.Proof.Total, Index: tp.Proof.Index, LeafHash: slices.Clone(tp.Proof.LeafHash)}
	for _, a := range tp.Proof.Aunts {
		p.Aunts = append(p.Aunts, slices.Clone(a))
	}
	return p
}

func (p *Proof) txProof() types.TxProof {
	tp := types.TxProof{RootHash: p.RootHash, Data: p.Data}
	tp.Proof.Total, tp.Proof.Index, tp.Proof.LeafHash, tp.Proof.Aunts = p.Total, p.Index, p.LeafHash, p.Aunts
	return tp
}

// VerifyProof checks a stored inclusion proof (typically a receipt's) of the
// tx v describes: it must be for that tx's bytes, at its height and
// position, and lead to the DataHash of the header the light client
// verified. Run VerifyInclusion first to get v.
func VerifyProof(v *Verified, p *Proof) error {
	if v == nil || p == nil {
		return errors.New("ledger: verify proof: nothing to check")
	}
	header := &types.Header{Height: v.Height, DataHash: v.DataHash}
	if err := checkProof(p.Data, v.Index, p.Height, p.txProof(), v.TxHash, header); err != nil {
		return fmt.Errorf("ledger: stored inclusion proof of tx %X: %w", v.TxHash, err)
	}
	return nil
}

// VerifyInclusion proves that the tx with txHash is in the chain described by
// genesis (genesis.json) and that the application accepted it (code 0).
//
// Trust is anchored at the genesis validator set: the block at the initial
// height is fetched from primary and accepted only if the genesis validators
// signed it (+2/3 of the power). From there CometBFT's light client
// (skipping verification, trust level 1/3, in-memory store) verifies the
// header at the tx's height H against primary and cross-checks it with every
// witness (at least one is required). The Merkle proof from primary's
// Tx(hash, prove=true) is then checked against that header's DataHash.
//
// Acceptance is checked against header H+1, whose LastResultsHash commits to
// the results of block H: VerifyInclusion therefore waits (bounded by ctx)
// until block H+1 exists. An accepted tx changes the app hash, which makes
// CometBFT produce block H+1 right away even with empty blocks disabled.
//
// primary and witnesses are RPC addresses ("tcp://host:port" or
// "http://host:port") of different nodes. Every failure says which check
// failed.
func VerifyInclusion(ctx context.Context, genesis []byte, primary string, witnesses []string, txHash []byte) (*Verified, error) {
	fail := func(format string, args ...any) (*Verified, error) {
		return nil, fmt.Errorf("ledger: verify inclusion of tx %X: "+format, append([]any{txHash}, args...)...)
	}
	if len(txHash) != 32 {
		return fail("tx hash has %d bytes, want 32", len(txHash))
	}
	if len(witnesses) == 0 {
		return fail("no witness: the light client needs at least one node besides the primary")
	}
	primary = RPCURL(primary)
	witnesses = slices.Clone(witnesses)
	for i := range witnesses {
		witnesses[i] = RPCURL(witnesses[i])
	}
	gen, err := parseGenesis(genesis)
	if err != nil {
		return fail("%v", err)
	}
	chainID := gen.ChainID

	// Trust anchor: the first block, signed by the genesis validators.
	pp, err := lighthttp.New(chainID, primary)
	if err != nil {
		return fail("primary %s: %v", primary, err)
	}
	anchor, err := pp.LightBlock(ctx, gen.InitialHeight)
	if err != nil {
		return fail("fetch block %d (trust anchor) from primary: %v", gen.InitialHeight, err)
	}
	if err := checkAnchor(anchor, gen); err != nil {
		return fail("trust anchor: %v", err)
	}

	// The tx and its proof from the primary.
	rpc, err := rpchttp.New(primary, "/websocket")
	if err != nil {
		return fail("primary %s: %v", primary, err)
	}
	res, err := rpc.Tx(ctx, txHash, true)
	if err != nil {
		return fail("primary has no such tx: %v", err)
	}
	if res.Height < gen.InitialHeight {
		return fail("primary reports impossible height %d", res.Height)
	}

	// Wait for block H+1 (it carries the results hash of block H).
	for {
		st, err := rpc.Status(ctx)
		if err != nil {
			return fail("primary status: %v", err)
		}
		if st.SyncInfo.LatestBlockHeight > res.Height {
			break
		}
		select {
		case <-ctx.Done():
			return fail("block %d, which commits to the results of block %d, does not exist yet: %v",
				res.Height+1, res.Height, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}

	lc, err := light.NewHTTPClient(ctx, chainID,
		light.TrustOptions{
			// The consortium's validator set is fixed, so the anchor stays
			// trustworthy; the period only has to cover the chain's age.
			Period: time.Since(anchor.Time) + 365*24*time.Hour,
			Height: anchor.Height,
			Hash:   anchor.Hash(),
		},
		primary, witnesses,
		dbs.New(dbm.NewMemDB(), "synod-verify"),
		light.SkippingVerification(light.DefaultTrustLevel),
		light.MaxRetryAttempts(3),
	)
	if err != nil {
		return fail("light client: %v", err)
	}
	defer lc.Cleanup() //nolint:errcheck // in-memory store
	header, err := verifiedBlock(ctx, lc, res.Height)
	if err != nil {
		return fail("light client could not verify header %d: %v", res.Height, err)
	}
	if err := checkTxProof(res, txHash, header.Header); err != nil {
		return fail("%v", err)
	}
	next, err := verifiedBlock(ctx, lc, res.Height+1)
	if err != nil {
		return fail("light client could not verify header %d: %v", res.Height+1, err)
	}
	br, err := rpc.BlockResults(ctx, &res.Height)
	if err != nil {
		return fail("fetch results of block %d from primary: %v", res.Height, err)
	}
	if err := checkTxResult(br, res.Index, next.Header); err != nil {
		return fail("%v", err)
	}
	return &Verified{
		ChainID:  chainID,
		Height:   res.Height,
		Index:    res.Index,
		Time:     header.Time,
		TxHash:   append([]byte(nil), txHash...),
		Tx:       append([]byte(nil), res.Tx...),
		DataHash: append([]byte(nil), header.DataHash...),
	}, nil
}

func verifiedBlock(ctx context.Context, lc *light.Client, height int64) (*types.LightBlock, error) {
	if lb, err := lc.TrustedLightBlock(height); err == nil {
		return lb, nil
	}
	return lc.VerifyLightBlockAtHeight(ctx, height, time.Now())
}

// checkAnchor accepts the first block only if it is of this chain, carries
// the genesis validator set and is signed by it.
func checkAnchor(lb *types.LightBlock, gen *types.GenesisDoc) error {
	if lb == nil || lb.SignedHeader == nil || lb.ValidatorSet == nil {
		return errors.New("primary returned an incomplete block")
	}
	if err := lb.ValidateBasic(gen.ChainID); err != nil {
		return fmt.Errorf("block %d is malformed: %v", lb.Height, err)
	}
	if lb.Height != gen.InitialHeight {
		return fmt.Errorf("primary returned height %d for %d", lb.Height, gen.InitialHeight)
	}
	genVals := types.NewValidatorSet(genesisValidators(gen))
	if !bytes.Equal(lb.ValidatorsHash, genVals.Hash()) {
		return fmt.Errorf("block %d's validator set %X is not the genesis validator set %X", lb.Height, lb.ValidatorsHash, genVals.Hash())
	}
	if err := genVals.VerifyCommitLight(gen.ChainID, lb.Commit.BlockID, lb.Height, lb.Commit); err != nil {
		return fmt.Errorf("block %d is not signed by +2/3 of the genesis validators: %v", lb.Height, err)
	}
	return nil
}

// checkTxProof checks that res is the tx with txHash and that its Merkle
// proof leads to the verified header's DataHash.
func checkTxProof(res *ctypes.ResultTx, txHash []byte, h *types.Header) error {
	return checkProof(res.Tx, res.Index, res.Height, res.Proof, txHash, h)
}

// checkProof checks that tx, reported at (height, index), is the tx with
// txHash and that proof is for it and leads to h's DataHash.
func checkProof(tx types.Tx, index uint32, height int64, proof types.TxProof, txHash []byte, h *types.Header) error {
	if got := tx.Hash(); !bytes.Equal(got, txHash) {
		return fmt.Errorf("the tx returned is a different tx (hash %X)", got)
	}
	if !bytes.Equal(proof.Data, tx) {
		return errors.New("the inclusion proof is for other tx bytes than the tx returned")
	}
	if proof.Proof.Index != int64(index) {
		return fmt.Errorf("the inclusion proof is for position %d, the tx is reported at %d", proof.Proof.Index, index)
	}
	if h.Height != height {
		return fmt.Errorf("verified header is for height %d, the tx is reported at %d", h.Height, height)
	}
	if !bytes.Equal(proof.RootHash, h.DataHash) {
		return fmt.Errorf("inclusion proof root %X is not the verified data hash %X of block %d", []byte(proof.RootHash), []byte(h.DataHash), h.Height)
	}
	if err := proof.Validate(h.DataHash); err != nil {
		return fmt.Errorf("inclusion proof against the verified data hash of block %d: %v", h.Height, err)
	}
	return nil
}

// checkTxResult checks that the results of block next.Height-1 hash to
// next's LastResultsHash and that the tx at index was accepted.
func checkTxResult(br *ctypes.ResultBlockResults, index uint32, next *types.Header) error {
	if br.Height != next.Height-1 {
		return fmt.Errorf("primary returned the results of block %d for %d", br.Height, next.Height-1)
	}
	if got := types.NewResults(br.TxsResults).Hash(); !bytes.Equal(got, next.LastResultsHash) {
		return fmt.Errorf("results of block %d hash to %X, not to the verified LastResultsHash %X of block %d",
			br.Height, got, []byte(next.LastResultsHash), next.Height)
	}
	if int(index) >= len(br.TxsResults) {
		return fmt.Errorf("block %d has %d results, none for tx %d", br.Height, len(br.TxsResults), index)
	}
	if r := br.TxsResults[index]; r.Code != CodeOK {
		return fmt.Errorf("the application rejected the tx in block %d (code %d): %s", br.Height, r.Code, r.Log)
	}
	return nil
}
