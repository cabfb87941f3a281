package node

import (
	"fmt"
	"path/filepath"
	"strings"

	"go.dedis.ch/kyber/v3"

	"github.com/synod-mpc/synod/ledger"
	"github.com/synod-mpc/synod/parties/consortium"
	"github.com/synod-mpc/synod/parties/keystore"
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
	nodeKey, err := keystore.ReadFile(lc.NodeKeyFile, n.passphrase, consortium.NodeKeyLabel)
	if err != nil {
		return fmt.Errorf("ledger: node key %s: %w", lc.NodeKeyFile, err)
	}
	valKey, err := keystore.ReadFile(lc.ValidatorKeyFile, n.passphrase, consortium.ValidatorKeyLabel)
	if err != nil {
		return fmt.Errorf("ledger: validator key %s: %w", lc.ValidatorKeyFile, err)
	}
	members := map[string]kyber.Point{}
	for id, k := range n.keys {
		members[id] = k
	}
	app, err := ledger.NewApp(members, filepath.Join(lc.Home, "app"))
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	var peers []string
	if lc.Peers != "" {
		peers = strings.Split(lc.Peers, ",")
	}
	emb, err := ledger.StartEmbedded(ledger.EmbeddedConfig{
		Home: lc.Home, Moniker: n.cfg.ID, ChainID: n.cons.Chain.ID, Genesis: []byte(n.cons.Chain.Genesis),
		NodeKey: nodeKey, PrivValidatorKey: valKey, P2PListen: lc.P2PListen, RPCListen: lc.RPCListen,
		PersistentPeers: peers, FastBlocks: lc.FastBlocks,
	}, app, n.log.With("component", "cometbft"))
	if err != nil {
		app.Close()
		return err
	}
	n.chain, n.embedded, n.app = emb.Client(), emb, app
	n.log.Info("ledger: embedded validator started", "chain", n.cons.Chain.ID, "p2p", lc.P2PListen, "rpc", lc.RPCListen)
	return nil
}

func (n *Node) stopLedger() {
	if n.embedded != nil {
		if err := n.embedded.Stop(); err != nil {
			n.log.Warn("ledger: stop", "error", err)
		}
	}
	if n.app != nil {
		n.app.Close()
	}
}
