// Package node is the party node runtime: it loads the node's identity,
// consortium and data, serves the Peer and Analyst gRPC services, and drives
// the session machines of package protocols/session — the sessions it
// coordinates for the analysts who ask it, and its party's side of every
// session — over the transport, the chain and the disk. Session logic lives
// in the machines; this package does I/O: it signs and routes messages,
// commits records, stores keys and models, keeps results, arms timers.
package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.dedis.ch/kyber/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/ledger"
	"github.com/synod-mpc/synod/parties/config"
	"github.com/synod-mpc/synod/parties/consortium"
	"github.com/synod-mpc/synod/parties/datasource"
	"github.com/synod-mpc/synod/parties/identity"
	"github.com/synod-mpc/synod/parties/keystore"
	"github.com/synod-mpc/synod/parties/policy"
	"github.com/synod-mpc/synod/parties/schema"
	"github.com/synod-mpc/synod/parties/transport"
	"github.com/synod-mpc/synod/parties/wire"
)

// Node is one running party.
type Node struct {
	synodv1.UnimplementedPeerServer
	synodv1.UnimplementedAnalystServer

	cfg        *config.Party
	cons       *consortium.Consortium
	id         *identity.Identity
	keys       map[string]kyber.Point // identity keys of the parties
	parties    []string               // sorted party ids
	passphrase []byte
	// inbound bounds the memory each peer's and analyst's streams still
	// in reassembly may hold.
	inbound *wire.Budget
	// sealer seals the setup secrets; its key derivation (scrypt) runs
	// once, when the node starts without keys, rather than in the setup.
	sealer   func() (*keystore.Sealer, error)
	datasets map[string]*datasource.Table
	schema   *schema.Schema // the consortium schema, nil if the config names none
	noise    *mrand.Rand    // differential privacy noise shares (CSPRNG-seeded)
	noiseMu  sync.Mutex
	peers    *transport.Peers
	creds    transport.Credentials
	log      *slog.Logger

	mu       sync.Mutex
	state    *keyState
	sessions map[string]*driver             // this node's party machines, by session
	coords   map[string]*driver             // the sessions this node coordinates
	seen     map[string]map[string]struct{} // per session: (from, to, seq) already delivered
	ended    map[string]bool                // sessions over for this node's party role: never restarted
	seq      atomic.Uint64                  // sequence of every envelope this node signs

	grpc   *grpc.Server
	health *health.Server

	chain    ledger.Client // the consortium chain
	embedded *ledger.Embedded
	app      *ledger.App
}

// New loads everything a node needs and refuses to start on anything wrong:
// the consortium file, its own membership, its sealed identity, its
// certificates and every dataset it declares.
func New(cfg *config.Party, log *slog.Logger) (*Node, error) {
	if cfg.Role == config.RoleValidator {
		return nil, fmt.Errorf("config %s: role %q: a validator-only member runs with RunValidator, not as a party", cfg.Path(), cfg.Role)
	}
	cons, err := consortium.Load(cfg.Consortium)
	if err != nil {
		return nil, err
	}
	me, ok := cons.Member(cfg.ID)
	if ok && me.Role == consortium.RoleValidator {
		return nil, fmt.Errorf("config: %q is a validator-only member of consortium %s (%s): its config needs role: %s", cfg.ID, cons.Name, cfg.Consortium, config.RoleValidator)
	}
	if !ok || me.Role != "party" {
		return nil, fmt.Errorf("config: id %q is not a party of consortium %s (%s)", cfg.ID, cons.Name, cfg.Consortium)
	}
	pass, err := keystore.Passphrase(cfg.Keystore.PassphraseEnv, cfg.Keystore.PassphraseFile)
	if err != nil {
		return nil, fmt.Errorf("keystore passphrase: %w", err)
	}
	sealed, err := keystore.ReadFile(cfg.Identity.KeyFile, pass, "identity")
	if err != nil {
		return nil, fmt.Errorf("identity key %s: %w", cfg.Identity.KeyFile, err)
	}
	id, err := identity.UnmarshalIdentity(cfg.ID, sealed)
	if err != nil {
		return nil, fmt.Errorf("identity key %s: %w", cfg.Identity.KeyFile, err)
	}
	if got := identity.EncodePublic(id.Public); got != me.IdentityKey {
		return nil, fmt.Errorf("identity key %s does not match the consortium file's key for %s", cfg.Identity.KeyFile, cfg.ID)
	}
	creds, err := transport.LoadCredentials(cfg.TLS, pass)
	if err != nil {
		return nil, err
	}
	n := &Node{
		inbound:    wire.NewBudget(wire.SenderBudget),
		cfg:        cfg,
		cons:       cons,
		id:         id,
		keys:       map[string]kyber.Point{},
		passphrase: pass,
		datasets:   map[string]*datasource.Table{},
		noise:      policy.NewNoiseSource(),
		creds:      creds,
		log:        log.With("party", cfg.ID),
		sessions:   map[string]*driver{},
		coords:     map[string]*driver{},
		seen:       map[string]map[string]struct{}{},
		ended:      map[string]bool{},
	}
	addresses := map[string]string{}
	for _, m := range cons.Parties() {
		k, err := cons.IdentityKey(m.ID)
		if err != nil {
			return nil, err
		}
		n.keys[m.ID] = k
		n.parties = append(n.parties, m.ID)
		addresses[m.ID] = m.Address
	}
	slices.Sort(n.parties)
	n.peers = transport.NewPeers(creds, addresses)
	if err := n.loadDatasets(); err != nil {
		return nil, err
	}
	if n.state, err = loadKeyState(cfg.DataDir, pass); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	n.sealer = sync.OnceValues(func() (*keystore.Sealer, error) { return keystore.NewSealer(pass) })
	if n.state != nil {
		n.log.Info("setup keys loaded", "parameters", n.state.Meta.Parameters, "digest", fmt.Sprintf("%x", n.state.Meta.Digest[:8]))
	} else {
		go n.sealer() // ready before a setup needs it
	}
	return n, nil
}

// loadDatasets loads every dataset the config declares, from a CSV file or
// from PostgreSQL, and checks each against the consortium schema unless the
// config opts out (schema: none, warned about): the node refuses to start on
// a dataset that does not match, naming the dataset and the column.
func (n *Node) loadDatasets() error {
	cfg := n.cfg
	var sch *schema.Schema
	if file := cfg.SchemaFile(); file != "" {
		var err error
		if sch, err = schema.Load(file); err != nil {
			return fmt.Errorf("config %s: schema: %w", cfg.Path(), err)
		}
	} else if len(cfg.Datasets) > 0 {
		n.log.Warn("datasets are not checked against a consortium schema", "schema", cfg.Schema)
	}
	names := make([]string, 0, len(cfg.Datasets))
	for name := range cfg.Datasets {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		src := cfg.Datasets[name].Source()
		start := time.Now()
		t, err := datasource.Load(context.Background(), name, src)
		if err != nil {
			return fmt.Errorf("config %s: datasets.%s: %w", cfg.Path(), name, err)
		}
		if sch != nil {
			if err := sch.Check(t); err != nil {
				return fmt.Errorf("config %s: datasets.%s (%s) does not match the consortium schema %s:\n%w", cfg.Path(), name, src.Describe(), cfg.SchemaFile(), err)
			}
		}
		n.datasets[name] = t
		n.schema = sch
		n.log.Info("dataset loaded", "dataset", name, "source", src.Describe(), "rows", t.Rows, "columns", len(t.Columns),
			"schema_checked", sch != nil, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// Serve runs the gRPC server until ctx ends.
func (n *Node) Serve(ctx context.Context) error {
	srv, hs, err := transport.NewServer(n.creds)
	if err != nil {
		return err
	}
	n.grpc, n.health = srv, hs
	if err := n.startLedger(); err != nil {
		return err
	}
	defer n.stopLedger()
	synodv1.RegisterPeerServer(srv, n)
	synodv1.RegisterAnalystServer(srv, n)
	l, err := transport.Listen(n.cfg.Listen)
	if err != nil {
		return err
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	n.log.Info("serving", "address", l.Addr().String(), "consortium", n.cons.Name, "threshold", n.cons.Threshold)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case <-ctx.Done():
		hs.Shutdown()
		stopped := make(chan struct{})
		go func() { srv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			srv.Stop()
		}
		n.peers.Close()
		return nil
	case err := <-errc:
		if errors.Is(err, grpc.ErrServerStopped) {
			return nil
		}
		return err
	}
}

func (n *Node) keyState() *keyState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state
}

var cryptoRand = rand.Reader
