package ledger

// The ABCI application: it admits only well-formed, member-signed,
// non-duplicate records, indexes them by session and by tx hash, persists
// them, and answers the session queries.

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	dbm "github.com/cometbft/cometbft-db"
	abci "github.com/cometbft/cometbft/abci/types"
	"go.dedis.ch/kyber/v3"

	"github.com/synod-mpc/synod/ledger/records"
)

// Result codes of CheckTx and FinalizeBlock for a rejected transaction. The
// accompanying log says what is wrong.
const (
	CodeOK           uint32 = 0
	CodeMalformed    uint32 = 1 // does not decode, or fails Tx.Validate
	CodeUnknownKind  uint32 = 2 // kind is not one of records.KindList()
	CodeUnauthorized uint32 = 3 // sender is not a member, or the signature is not the sender's
	CodeDuplicate    uint32 = 4 // same tx hash, or same (kind, session, sender), already recorded
)

// ABCI query paths served by the application. Values are JSON.
const (
	QuerySession  = "session/" // + session id -> []Record, in chain order
	QuerySessions = "sessions" // -> []SessionSummary, sorted by session id
	QueryTx       = "tx/"      // + hex tx hash -> Record
	QueryKind     = "kind/"    // + record kind -> []Record of that kind, in chain order
)

// Record is a transaction the chain accepted, with where and when.
type Record struct {
	Height int64     `json:"height"`
	Index  uint32    `json:"index"` // position of the tx in its block
	Time   time.Time `json:"time"`  // block time (agreed by consensus)
	TxHash []byte    `json:"tx_hash"`
	Tx     Tx        `json:"tx"`
}

// SessionSummary lists what the chain holds about one session.
type SessionSummary struct {
	Session string         `json:"session"`
	Entries []SessionEntry `json:"entries"` // in chain order
}

// SessionEntry is one record of a session, without its body.
type SessionEntry struct {
	Kind   string `json:"kind"`
	Sender string `json:"sender"`
	Height int64  `json:"height"`
	TxHash []byte `json:"tx_hash"`
}

// App is the ledger's ABCI application. It is safe for concurrent use.
type App struct {
	abci.BaseApplication

	mu      sync.Mutex
	members map[string]kyber.Point
	db      dbm.DB
	height  int64
	appHash []byte
	staged  *stagedBlock // between FinalizeBlock and Commit
}

type stagedBlock struct {
	height  int64
	appHash []byte
	records []Record
	hashes  map[string]bool
	keys    map[string]bool
}

// Database keys.
var (
	keyHeight  = []byte("m/height")
	keyAppHash = []byte("m/apphash")
)

func txKey(hash []byte) []byte { return append([]byte("t/"), hash...) }

// uniqueKey identifies the (kind, session, sender) slot a record fills; a
// round record's slot also has its body's digest (a session has a round
// record per round).
func uniqueKey(tx *Tx) []byte {
	h := sha256.New()
	fields := []string{tx.Kind, tx.Session, tx.Sender}
	if tx.Kind == KindRound {
		b := sha256.Sum256(tx.Body)
		fields = append(fields, string(b[:]))
	}
	for _, s := range fields {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	return append([]byte("u/"), h.Sum(nil)...)
}

func sessionPrefix(session string) []byte {
	b := []byte("s/")
	b = binary.BigEndian.AppendUint32(b, uint32(len(session)))
	return append(b, session...)
}

func sessionKey(session string, height int64, index uint32) []byte {
	b := sessionPrefix(session)
	b = binary.BigEndian.AppendUint64(b, uint64(height))
	return binary.BigEndian.AppendUint32(b, index)
}

// NewApp opens (or creates) the application state under dbDir, a goleveldb
// database named "ledger"; an empty dbDir keeps the state in memory only.
// members maps each consortium member's id to its Schnorr public key (Suite).
func NewApp(members map[string]kyber.Point, dbDir string) (*App, error) {
	if len(members) == 0 {
		return nil, errors.New("ledger: new app: no consortium members")
	}
	m := make(map[string]kyber.Point, len(members))
	for id, p := range members {
		if id == "" || p == nil {
			return nil, fmt.Errorf("ledger: new app: member %q has no public key or an empty id", id)
		}
		m[id] = p
	}
	var (
		db  dbm.DB
		err error
	)
	if dbDir == "" {
		db = dbm.NewMemDB()
	} else if db, err = dbm.NewGoLevelDB("ledger", dbDir); err != nil {
		return nil, fmt.Errorf("ledger: new app: open state database: %w", err)
	}
	app := &App{members: m, db: db}
	hb, err := db.Get(keyHeight)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("ledger: new app: read height: %w", err)
	}
	if len(hb) == 8 {
		app.height = int64(binary.BigEndian.Uint64(hb))
	} else if hb != nil {
		db.Close()
		return nil, fmt.Errorf("ledger: new app: corrupt stored height (%d bytes)", len(hb))
	}
	if app.appHash, err = db.Get(keyAppHash); err != nil {
		db.Close()
		return nil, fmt.Errorf("ledger: new app: read app hash: %w", err)
	}
	return app, nil
}

// Close closes the state database. Stop the node using the app first.
func (a *App) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.db.Close()
}

// Height returns the last committed height.
func (a *App) Height() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.height
}

// AppHash returns the app hash after the last committed height.
func (a *App) AppHash() []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]byte(nil), a.appHash...)
}

// Info tells CometBFT where the application's persisted state is, so that a
// restarted node replays only the blocks the app has not committed.
func (a *App) Info(context.Context, *abci.RequestInfo) (*abci.ResponseInfo, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return &abci.ResponseInfo{
		Data:             "synod-ledger",
		Version:          "1",
		AppVersion:       1,
		LastBlockHeight:  a.height,
		LastBlockAppHash: a.appHash,
	}, nil
}

// check returns the code and reason for rejecting raw, or CodeOK and the
// decoded tx. staged, when not nil, holds the records of the block being
// finalized.
func (a *App) check(raw []byte, staged *stagedBlock) (uint32, string, *Tx) {
	tx, err := DecodeTx(raw)
	if err != nil {
		var probe Tx
		if len(raw) >= 4 && [4]byte(raw[:4]) == txMagic {
			// Distinguish an unknown kind from other malformations.
			d := decoder{b: raw[4:]}
			probe.Kind = string(d.bytes("kind", MaxKindBytes))
			if d.err == nil && !records.KnownKind(probe.Kind) {
				return CodeUnknownKind, err.Error(), nil
			}
		}
		return CodeMalformed, err.Error(), nil
	}
	if err := tx.Verify(a.members); err != nil {
		return CodeUnauthorized, "ledger: " + err.Error(), nil
	}
	hash := sha256.Sum256(raw)
	if staged != nil && staged.hashes[string(hash[:])] {
		return CodeDuplicate, fmt.Sprintf("ledger: duplicate: tx %X is already in this block", hash[:]), nil
	}
	if rec, err := a.db.Get(txKey(hash[:])); err != nil {
		return CodeMalformed, "ledger: read state: " + err.Error(), nil
	} else if rec != nil {
		return CodeDuplicate, fmt.Sprintf("ledger: duplicate: tx %X is already recorded", hash[:]), nil
	}
	uk := uniqueKey(tx)
	if staged != nil && staged.keys[string(uk)] {
		return CodeDuplicate, fmt.Sprintf("ledger: duplicate: a %s record of session %q by %q is already in this block",
			tx.Kind, tx.Session, tx.Sender), nil
	}
	if prev, err := a.db.Get(uk); err != nil {
		return CodeMalformed, "ledger: read state: " + err.Error(), nil
	} else if prev != nil {
		return CodeDuplicate, fmt.Sprintf("ledger: duplicate: a %s record of session %q by %q is already recorded (tx %X)",
			tx.Kind, tx.Session, tx.Sender, prev), nil
	}
	return CodeOK, "", tx
}

// CheckTx admits to the mempool only transactions FinalizeBlock would accept
// against the committed state.
func (a *App) CheckTx(_ context.Context, req *abci.RequestCheckTx) (*abci.ResponseCheckTx, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	code, log, _ := a.check(req.Tx, nil)
	return &abci.ResponseCheckTx{Code: code, Log: log}, nil
}

// FinalizeBlock records the block's acceptable transactions (staged until
// Commit) and returns a result for every transaction. The app hash changes
// only when the block records something: H' = SHA-256(domain || H ||
// height || hashes of the accepted txs), so that with empty blocks disabled
// an idle chain does not keep producing blocks.
func (a *App) FinalizeBlock(_ context.Context, req *abci.RequestFinalizeBlock) (*abci.ResponseFinalizeBlock, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := &stagedBlock{height: req.Height, hashes: map[string]bool{}, keys: map[string]bool{}}
	results := make([]*abci.ExecTxResult, len(req.Txs))
	for i, raw := range req.Txs {
		code, log, tx := a.check(raw, st)
		results[i] = &abci.ExecTxResult{Code: code, Log: log}
		if code != CodeOK {
			continue
		}
		hash := sha256.Sum256(raw)
		st.hashes[string(hash[:])] = true
		st.keys[string(uniqueKey(tx))] = true
		st.records = append(st.records, Record{
			Height: req.Height, Index: uint32(i), Time: req.Time.UTC(), TxHash: hash[:], Tx: *tx,
		})
		results[i].Events = []abci.Event{{Type: "synod", Attributes: []abci.EventAttribute{
			{Key: "kind", Value: tx.Kind, Index: true},
			{Key: "session", Value: tx.Session, Index: true},
			{Key: "sender", Value: tx.Sender, Index: true},
		}}}
	}
	st.appHash = a.appHash
	if len(st.records) > 0 {
		h := sha256.New()
		h.Write([]byte("synod/ledger/apphash/v1\x00"))
		h.Write(a.appHash)
		var hb [8]byte
		binary.BigEndian.PutUint64(hb[:], uint64(req.Height))
		h.Write(hb[:])
		for _, r := range st.records {
			h.Write(r.TxHash)
		}
		st.appHash = h.Sum(nil)
	}
	a.staged = st
	return &abci.ResponseFinalizeBlock{TxResults: results, AppHash: st.appHash}, nil
}

// Commit persists the block staged by FinalizeBlock atomically.
func (a *App) Commit(context.Context, *abci.RequestCommit) (*abci.ResponseCommit, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.staged
	if st == nil {
		return nil, errors.New("ledger: commit without a finalized block")
	}
	batch := a.db.NewBatch()
	defer batch.Close()
	for _, r := range st.records {
		rec, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("ledger: commit: encode record: %w", err)
		}
		entry, _ := json.Marshal(SessionEntry{Kind: r.Tx.Kind, Sender: r.Tx.Sender, Height: r.Height, TxHash: r.TxHash})
		tx := r.Tx
		for _, kv := range [][2][]byte{
			{txKey(r.TxHash), rec},
			{uniqueKey(&tx), r.TxHash},
			{sessionKey(r.Tx.Session, r.Height, r.Index), entry},
		} {
			if err := batch.Set(kv[0], kv[1]); err != nil {
				return nil, fmt.Errorf("ledger: commit: %w", err)
			}
		}
	}
	var hb [8]byte
	binary.BigEndian.PutUint64(hb[:], uint64(st.height))
	if err := batch.Set(keyHeight, hb[:]); err != nil {
		return nil, fmt.Errorf("ledger: commit: %w", err)
	}
	if len(st.appHash) > 0 {
		if err := batch.Set(keyAppHash, st.appHash); err != nil {
			return nil, fmt.Errorf("ledger: commit: %w", err)
		}
	}
	if err := batch.WriteSync(); err != nil {
		return nil, fmt.Errorf("ledger: commit height %d: write state: %w", st.height, err)
	}
	a.height, a.appHash, a.staged = st.height, st.appHash, nil
	return &abci.ResponseCommit{}, nil
}

// Query serves QuerySession, QuerySessions and QueryTx against the committed
// state. Unknown paths and unknown tx hashes get a non-zero code.
func (a *App) Query(_ context.Context, req *abci.RequestQuery) (*abci.ResponseQuery, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fail := func(code uint32, format string, args ...any) (*abci.ResponseQuery, error) {
		return &abci.ResponseQuery{Code: code, Log: fmt.Sprintf(format, args...), Height: a.height}, nil
	}
	var (
		v   any
		err error
	)
	switch p := strings.TrimPrefix(req.Path, "/"); {
	case strings.HasPrefix(p, QuerySession):
		v, err = a.session(strings.TrimPrefix(p, QuerySession))
	case p == QuerySessions:
		v, err = a.sessions()
	case strings.HasPrefix(p, QueryKind):
		v, err = a.recordsOfKind(strings.TrimPrefix(p, QueryKind))
	case strings.HasPrefix(p, QueryTx):
		hash, herr := hex.DecodeString(strings.TrimPrefix(p, QueryTx))
		if herr != nil {
			return fail(CodeMalformed, "ledger: query %q: tx hash is not hex: %v", req.Path, herr)
		}
		raw, gerr := a.db.Get(txKey(hash))
		if gerr != nil {
			return fail(CodeMalformed, "ledger: query %q: %v", req.Path, gerr)
		}
		if raw == nil {
			return fail(CodeMalformed, "ledger: query %q: no record with tx hash %X", req.Path, hash)
		}
		return &abci.ResponseQuery{Key: hash, Value: raw, Height: a.height}, nil
	default:
		return fail(CodeMalformed, "ledger: unknown query path %q (want session/<id>, sessions, kind/<kind> or tx/<hex hash>)", req.Path)
	}
	if err != nil {
		return fail(CodeMalformed, "ledger: query %q: %v", req.Path, err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return fail(CodeMalformed, "ledger: query %q: encode: %v", req.Path, err)
	}
	return &abci.ResponseQuery{Value: out, Height: a.height}, nil
}

func (a *App) session(id string) ([]Record, error) {
	prefix := sessionPrefix(id)
	it, err := dbm.IteratePrefix(a.db, prefix)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	recs := []Record{}
	for ; it.Valid(); it.Next() {
		var e SessionEntry
		if err := json.Unmarshal(it.Value(), &e); err != nil {
			return nil, fmt.Errorf("corrupt session index entry: %w", err)
		}
		r, err := a.record(e.TxHash)
		if err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	return recs, it.Error()
}

// record loads the record of an indexed transaction.
func (a *App) record(hash []byte) (Record, error) {
	var r Record
	raw, err := a.db.Get(txKey(hash))
	if err != nil {
		return r, err
	}
	if raw == nil {
		return r, fmt.Errorf("session index points at missing tx %X", hash)
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, fmt.Errorf("corrupt record %X: %w", hash, err)
	}
	return r, nil
}

// recordsOfKind returns every record of one kind, in chain order: what a
// party reads to add up an analyst's spent privacy budget.
func (a *App) recordsOfKind(kind string) ([]Record, error) {
	if !records.KnownKind(kind) {
		return nil, fmt.Errorf("unknown record kind %q", kind)
	}
	sums, err := a.sessions()
	if err != nil {
		return nil, err
	}
	recs := []Record{}
	for _, s := range sums {
		for _, e := range s.Entries {
			if e.Kind != kind {
				continue
			}
			r, err := a.record(e.TxHash)
			if err != nil {
				return nil, err
			}
			recs = append(recs, r)
		}
	}
	sort.Slice(recs, func(i, j int) bool {
		if recs[i].Height != recs[j].Height {
			return recs[i].Height < recs[j].Height
		}
		return recs[i].Index < recs[j].Index
	})
	return recs, nil
}

func (a *App) sessions() ([]SessionSummary, error) {
	it, err := dbm.IteratePrefix(a.db, []byte("s/"))
	if err != nil {
		return nil, err
	}
	defer it.Close()
	bySession := map[string]*SessionSummary{}
	for ; it.Valid(); it.Next() {
		k := it.Key()[2:]
		if len(k) < 4 {
			return nil, errors.New("corrupt session index key")
		}
		n := binary.BigEndian.Uint32(k)
		if uint64(len(k)) < 4+uint64(n) {
			return nil, errors.New("corrupt session index key")
		}
		id := string(k[4 : 4+n])
		var e SessionEntry
		if err := json.Unmarshal(it.Value(), &e); err != nil {
			return nil, fmt.Errorf("corrupt session index entry: %w", err)
		}
		s := bySession[id]
		if s == nil {
			s = &SessionSummary{Session: id}
			bySession[id] = s
		}
		s.Entries = append(s.Entries, e)
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	out := make([]SessionSummary, 0, len(bySession))
	for _, s := range bySession {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Session < out[j].Session })
	return out, nil
}
