package ledger

// The CometBFT validator a party node runs in its own process, with the
// ledger App as its local ABCI application.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	dbm "github.com/cometbft/cometbft-db"
	cfg "github.com/cometbft/cometbft/config"
	cmtjson "github.com/cometbft/cometbft/libs/json"
	cmtlog "github.com/cometbft/cometbft/libs/log"
	"github.com/cometbft/cometbft/node"
	"github.com/cometbft/cometbft/privval"
	"github.com/cometbft/cometbft/proxy"
	"github.com/cometbft/cometbft/rpc/client/local"
	"github.com/cometbft/cometbft/types"
)

// EmbeddedConfig configures an in-process CometBFT validator.
//
// Home receives CometBFT's files: config/genesis.json, config/node_key.json,
// config/priv_validator_key.json (rewritten from this config at every start),
// data/priv_validator_state.json (kept across restarts: it is the
// double-signing guard) and the block store, state and tx index databases
// under data/. The App's own database is separate (NewApp's dbDir).
//
// P2PListen and RPCListen are "host:port" (a "tcp://" prefix is accepted).
// An empty RPCListen runs no RPC server: Client still works in process, but
// remote clients, witnesses and light clients cannot reach this node.
//
// FastBlocks is for tests, benchmarks and local demos on one machine or a
// LAN: short consensus timeouts and 1 ms gossip and flush intervals, so that
// a tx is committed in a few milliseconds plus the machine's scheduling
// delays. Otherwise the node uses CometBFT's default timeouts and
// intervals. Either way it makes no empty blocks: a block is made when there
// are transactions, plus the one following block that carries their app
// hash.
type EmbeddedConfig struct {
	Home             string
	Moniker          string
	ChainID          string
	Genesis          []byte // genesis.json
	NodeKey          []byte // node_key.json
	PrivValidatorKey []byte // priv_validator_key.json
	P2PListen        string
	RPCListen        string
	PersistentPeers  []string // "nodeid@host:port"
	FastBlocks       bool
}

// Embedded is a running in-process validator.
type Embedded struct {
	node     *node.Node
	dbs      *dbTracker
	client   Client
	stopOnce sync.Once
	stopErr  error
}

func tcpAddr(a string) string {
	if a == "" || strings.Contains(a, "://") {
		return a
	}
	return "tcp://" + a
}

// StartEmbedded writes the node's files under cfg.Home, starts a CometBFT
// node serving app, and returns once it runs (it joins consensus as soon as
// it has connected to its peers and, when behind, caught up). logger receives
// CometBFT's errors, and all of its output when logger is enabled at debug
// level; nil discards everything.
func StartEmbedded(c EmbeddedConfig, app *App, logger *slog.Logger) (*Embedded, error) {
	if app == nil {
		return nil, errors.New("ledger: start embedded: nil app")
	}
	if c.Home == "" {
		return nil, errors.New("ledger: start embedded: empty Home")
	}
	if c.P2PListen == "" {
		return nil, errors.New("ledger: start embedded: empty P2PListen")
	}
	gen, err := parseGenesis(c.Genesis)
	if err != nil {
		return nil, fmt.Errorf("ledger: start embedded: %w", err)
	}
	if c.ChainID != "" && c.ChainID != gen.ChainID {
		return nil, fmt.Errorf("ledger: start embedded: ChainID %q but genesis chain id is %q", c.ChainID, gen.ChainID)
	}
	nodeKey, err := parseNodeKey(c.NodeKey)
	if err != nil {
		return nil, fmt.Errorf("ledger: start embedded: %w", err)
	}
	pvKey, err := parsePrivValidatorKey(c.PrivValidatorKey)
	if err != nil {
		return nil, fmt.Errorf("ledger: start embedded: %w", err)
	}
	if idx, _ := types.NewValidatorSet(genesisValidators(gen)).GetByAddress(pvKey.Address); idx < 0 {
		return nil, fmt.Errorf("ledger: start embedded: validator key %X is not in the genesis validator set", pvKey.Address)
	}
	for _, p := range c.PersistentPeers {
		if !strings.Contains(p, "@") {
			return nil, fmt.Errorf("ledger: start embedded: persistent peer %q is not nodeid@host:port", p)
		}
	}

	conf := cfg.DefaultConfig()
	conf.SetRoot(c.Home)
	conf.Moniker = c.Moniker
	if conf.Moniker == "" {
		conf.Moniker = string(nodeKey.ID())
	}
	conf.P2P.ListenAddress = tcpAddr(c.P2PListen)
	conf.P2P.PersistentPeers = strings.Join(c.PersistentPeers, ",")
	conf.P2P.AddrBookStrict = false // loopback and private addresses are fine
	conf.P2P.AllowDuplicateIP = true
	// A consortium's validators are its members, listed as persistent
	// peers: no peer exchange with strangers. (Without the PEX reactor the
	// address book is also never started, so nothing writes it after Stop.)
	conf.P2P.PexReactor = false
	conf.RPC.ListenAddress = tcpAddr(c.RPCListen)
	// Production keeps CometBFT's defaults, made for validators across a
	// WAN: 3 s propose timeout, 1 s commit timeout (at most a block a
	// second), 100 ms gossip sleep and 100 ms flush throttle (a tx takes a
	// few hundred milliseconds to commit); an idle chain makes no block.
	conf.Consensus.CreateEmptyBlocks = false
	if c.FastBlocks {
		cc := conf.Consensus
		cc.TimeoutPropose = 400 * time.Millisecond
		cc.TimeoutProposeDelta = 100 * time.Millisecond
		cc.TimeoutPrevote = 100 * time.Millisecond
		cc.TimeoutPrevoteDelta = 50 * time.Millisecond
		cc.TimeoutPrecommit = 100 * time.Millisecond
		cc.TimeoutPrecommitDelta = 50 * time.Millisecond
		// With SkipTimeoutCommit the next height starts as soon as every
		// precommit is in; the timeout only bounds the wait for a late
		// one, during which a new tx would wait too.
		cc.TimeoutCommit = 10 * time.Millisecond
		cc.SkipTimeoutCommit = true
		// Every hop of a block (proposal and parts, prevotes, precommits)
		// waits for the sending peer's gossip routine, which sleeps this
		// long when it has nothing to send, and then for the connection's
		// flush throttle: 10 ms each made a block ~50 ms on loopback. At
		// 1 ms an idle 4-validator chain costs a few percent of a core.
		cc.PeerGossipSleepDuration = 1 * time.Millisecond
		cc.PeerQueryMaj23SleepDuration = 250 * time.Millisecond
		conf.P2P.FlushThrottleTimeout = 1 * time.Millisecond
		// No empty blocks here either: a tx is proposed as soon as it
		// reaches the proposer's mempool whether or not empty blocks are
		// on (CometBFT waits for txs unless the interval is 0, which would
		// make blocks back to back), and the block after a tx's block,
		// which carries the new app hash, is made at once regardless.
		// Empty blocks only cost CPU and sometimes made a tx wait for one.
		cc.CreateEmptyBlocks = false
	}
	if err := conf.ValidateBasic(); err != nil {
		return nil, fmt.Errorf("ledger: start embedded: config: %w", err)
	}

	for _, d := range []string{filepath.Dir(conf.GenesisFile()), filepath.Dir(conf.PrivValidatorStateFile())} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("ledger: start embedded: %w", err)
		}
	}
	if err := os.WriteFile(conf.GenesisFile(), c.Genesis, 0o600); err != nil {
		return nil, fmt.Errorf("ledger: start embedded: write %s: %w", filepath.Base(conf.GenesisFile()), err)
	}
	// The node and validator keys stay in memory: the caller keeps them
	// sealed at rest, and nothing here writes them (the FilePV below only
	// ever saves its last-sign state).
	for _, f := range []string{conf.NodeKeyFile(), conf.PrivValidatorKeyFile()} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("ledger: start embedded: %w", err)
		}
	}
	pv := privval.NewFilePV(pvKey.PrivKey, conf.PrivValidatorKeyFile(), conf.PrivValidatorStateFile())
	if st, err := os.ReadFile(conf.PrivValidatorStateFile()); err == nil {
		var last privval.FilePVLastSignState
		if err := cmtjson.Unmarshal(st, &last); err != nil {
			return nil, fmt.Errorf("ledger: start embedded: priv_validator_state.json does not parse: %w", err)
		}
		pv.LastSignState.Height, pv.LastSignState.Round, pv.LastSignState.Step = last.Height, last.Round, last.Step
		pv.LastSignState.Signature, pv.LastSignState.SignBytes = last.Signature, last.SignBytes
	} else if errors.Is(err, os.ErrNotExist) {
		pv.LastSignState.Save()
	} else {
		return nil, fmt.Errorf("ledger: start embedded: read priv_validator_state.json: %w", err)
	}

	dbs := &dbTracker{}
	n, err := node.NewNode(conf, pv, nodeKey,
		proxy.NewLocalClientCreator(app),
		func() (*types.GenesisDoc, error) { return gen, nil },
		dbs.provide,
		node.DefaultMetricsProvider(conf.Instrumentation),
		newCometLogger(logger),
	)
	if err != nil {
		dbs.closeAll()
		return nil, fmt.Errorf("ledger: start embedded: create node: %w", err)
	}
	if err := n.Start(); err != nil {
		dbs.closeAll()
		return nil, fmt.Errorf("ledger: start embedded: start node: %w", err)
	}
	return &Embedded{node: n, dbs: dbs, client: NewClient(local.New(n))}, nil
}

// dbTracker remembers every database the node opens: CometBFT v0.38's
// Node.Stop leaves the evidence and tx index databases open, which would keep
// their locks and make a restart in the same process fail. It also hands the
// node fenced databases (fencedDB): Node.Stop closes the block store while
// the consensus reactor's per-peer query routine, which Stop does not wait
// for, may still read it and panic on "leveldb: closed".
type dbTracker struct {
	mu  sync.Mutex
	dbs []*fencedDB
}

func (t *dbTracker) provide(ctx *cfg.DBContext) (dbm.DB, error) {
	db, err := cfg.DefaultDBProvider(ctx)
	if err != nil {
		return nil, err
	}
	f := &fencedDB{DB: db}
	t.mu.Lock()
	t.dbs = append(t.dbs, f)
	t.mu.Unlock()
	return f, nil
}

// closeAll closes the databases, once the node has stopped.
func (t *dbTracker) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, db := range t.dbs {
		db.closeForGood()
	}
	t.dbs = nil
}

// fencedDB defers the node's Close to closeForGood and, after that, answers
// reads with nothing (CometBFT's stores treat a missing key as "not found"
// and a read error as a reason to panic).
type fencedDB struct {
	dbm.DB
	mu     sync.RWMutex
	closed bool
}

// Close is the node's close: a no-op until closeForGood.
func (f *fencedDB) Close() error { return nil }

func (f *fencedDB) closeForGood() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		_ = f.DB.Close()
	}
}

func (f *fencedDB) Get(key []byte) ([]byte, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return nil, nil
	}
	return f.DB.Get(key)
}

func (f *fencedDB) Has(key []byte) (bool, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return false, nil
	}
	return f.DB.Has(key)
}

func genesisValidators(gen *types.GenesisDoc) []*types.Validator {
	vals := make([]*types.Validator, len(gen.Validators))
	for i, v := range gen.Validators {
		vals[i] = types.NewValidator(v.PubKey, v.Power)
	}
	return vals
}

// Client returns a Client served by this node in process.
func (e *Embedded) Client() Client { return e.client }

// NodeID returns the node's p2p id (for "nodeid@host:port").
func (e *Embedded) NodeID() string { return string(e.node.NodeInfo().ID()) }

// Stop stops the node and waits for it to finish. It does not close the App.
func (e *Embedded) Stop() error {
	e.stopOnce.Do(func() {
		if err := e.node.Stop(); err != nil {
			e.stopErr = fmt.Errorf("ledger: stop embedded node: %w", err)
		}
		e.node.Wait()
		e.dbs.closeAll()
	})
	return e.stopErr
}

// cometLogger adapts CometBFT's logger to slog: errors always (as warnings,
// CometBFT reports every lost peer as an error), the rest only when the slog
// logger is enabled at debug level.
type cometLogger struct {
	l     *slog.Logger
	debug bool
}

func newCometLogger(l *slog.Logger) cmtlog.Logger {
	if l == nil {
		return cmtlog.NewNopLogger()
	}
	return cometLogger{l: l.With("component", "cometbft"), debug: l.Enabled(context.Background(), slog.LevelDebug)}
}

func (c cometLogger) Debug(msg string, kv ...any) {
	if c.debug {
		c.l.Debug(msg, kv...)
	}
}

func (c cometLogger) Info(msg string, kv ...any) {
	if c.debug {
		c.l.Debug(msg, kv...)
	}
}

func (c cometLogger) Error(msg string, kv ...any) { c.l.Warn(msg, kv...) }

func (c cometLogger) With(kv ...any) cmtlog.Logger {
	return cometLogger{l: c.l.With(kv...), debug: c.debug}
}
