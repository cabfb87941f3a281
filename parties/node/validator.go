package node

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"go.dedis.ch/kyber/v3"

	"github.com/synod-mpc/synod/ledger"
	"github.com/synod-mpc/synod/parties/config"
	"github.com/synod-mpc/synod/parties/consortium"
	"github.com/synod-mpc/synod/parties/keystore"
)

// RunValidator runs a validator-only member of the consortium (a config
// with role: validator) until ctx ends: the embedded CometBFT validator of
// the consortium chain, with the same ABCI application (and so the same
// member checks) as the parties' validators, and nothing else. It holds no
// data and no key share, serves no gRPC and signs no transaction; its
// liveness is its chain RPC's (/status, /health).
func RunValidator(ctx context.Context, cfg *config.Party, log *slog.Logger) error {
	if cfg.Role != config.RoleValidator {
		return fmt.Errorf("config %s: role %q: not a validator-only member", cfg.Path(), cfg.Role)
	}
	cons, err := consortium.Load(cfg.Consortium)
	if err != nil {
		return err
	}
	me, ok := cons.Member(cfg.ID)
	if !ok || me.Role != consortium.RoleValidator {
		return fmt.Errorf("config: id %q is not a validator-only member of consortium %s (%s)", cfg.ID, cons.Name, cfg.Consortium)
	}
	if cons.Chain == nil {
		return fmt.Errorf("ledger: consortium file %s has no chain section (genesis)", cfg.Consortium)
	}
	pass, err := keystore.Passphrase(cfg.Keystore.PassphraseEnv, cfg.Keystore.PassphraseFile)
	if err != nil {
		return fmt.Errorf("keystore passphrase: %w", err)
	}
	members := map[string]kyber.Point{}
	for _, m := range cons.Parties() {
		if members[m.ID], err = cons.IdentityKey(m.ID); err != nil {
			return err
		}
	}
	log = log.With("validator", cfg.ID)
	emb, app, err := startEmbedded(cfg, cons, pass, members, log)
	if err != nil {
		return err
	}
	log.Info("validator-only member: embedded validator started", "chain", cons.Chain.ID, "p2p", cfg.Ledger.P2PListen,
		"rpc", cfg.Ledger.RPCListen, "validators", len(cons.Parties())+len(cons.Validators()))
	<-ctx.Done()
	err = emb.Stop()
	app.Close()
	if err != nil {
		return fmt.Errorf("ledger: stop: %w", err)
	}
	return nil
}

// startEmbedded starts the node's CometBFT validator in process, its keys
// unsealed only in memory, serving the ledger application that admits
// records signed by members (the parties' identity keys).
func startEmbedded(cfg *config.Party, cons *consortium.Consortium, pass []byte, members map[string]kyber.Point, log *slog.Logger) (*ledger.Embedded, *ledger.App, error) {
	lc := cfg.Ledger
	nodeKey, err := keystore.ReadFile(lc.NodeKeyFile, pass, consortium.NodeKeyLabel)
	if err != nil {
		return nil, nil, fmt.Errorf("ledger: node key %s: %w", lc.NodeKeyFile, err)
	}
	valKey, err := keystore.ReadFile(lc.ValidatorKeyFile, pass, consortium.ValidatorKeyLabel)
	if err != nil {
		return nil, nil, fmt.Errorf("ledger: validator key %s: %w", lc.ValidatorKeyFile, err)
	}
	app, err := ledger.NewApp(members, filepath.Join(lc.Home, "app"))
	if err != nil {
		return nil, nil, fmt.Errorf("ledger: %w", err)
	}
	var peers []string
	if lc.Peers != "" {
		peers = strings.Split(lc.Peers, ",")
	}
	emb, err := ledger.StartEmbedded(ledger.EmbeddedConfig{
		Home: lc.Home, Moniker: cfg.ID, ChainID: cons.Chain.ID, Genesis: []byte(cons.Chain.Genesis),
		NodeKey: nodeKey, PrivValidatorKey: valKey, P2PListen: lc.P2PListen, RPCListen: lc.RPCListen,
		PersistentPeers: peers, FastBlocks: lc.FastBlocks,
	}, app, log.With("component", "cometbft"))
	if err != nil {
		app.Close()
		return nil, nil, err
	}
	return emb, app, nil
}
