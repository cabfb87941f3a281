package ledger

// Key and genesis generation for a new consortium chain (`mpcctl consortium
// init`): one validator per party and per validator-only member, all with
// the same voting power.

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/cometbft/cometbft/crypto"
	"github.com/cometbft/cometbft/crypto/ed25519"
	cmtjson "github.com/cometbft/cometbft/libs/json"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/privval"
	"github.com/cometbft/cometbft/types"
)

// ValidatorPower is the voting power of every validator (party or
// validator-only member).
const ValidatorPower = 10

// ValidatorFiles are one validator's CometBFT identities (a party's or a
// validator-only member's).
//
//   - NodeKey: node_key.json as CometBFT writes it (the p2p identity);
//     secret, stays with the party.
//   - PrivValidatorKey: priv_validator_key.json as CometBFT writes it (the
//     consensus signing key); secret, stays with the party.
//   - PubKey: the raw 32-byte ed25519 consensus public key; public, goes into
//     the genesis.
//   - NodeID: the hex p2p node id derived from NodeKey; public, used in
//     "nodeid@host:port" peer addresses.
type ValidatorFiles struct {
	NodeID           string
	NodeKey          []byte
	PrivValidatorKey []byte
	PubKey           []byte
}

// GenerateValidator creates a fresh node key and validator key.
func GenerateValidator() (ValidatorFiles, error) {
	nk := p2p.NodeKey{PrivKey: ed25519.GenPrivKey()}
	nodeKey, err := cmtjson.Marshal(nk)
	if err != nil {
		return ValidatorFiles{}, fmt.Errorf("ledger: generate validator: encode node key: %w", err)
	}
	priv := ed25519.GenPrivKey()
	pub := priv.PubKey()
	pvKey, err := cmtjson.MarshalIndent(privval.FilePVKey{Address: pub.Address(), PubKey: pub, PrivKey: priv}, "", "  ")
	if err != nil {
		return ValidatorFiles{}, fmt.Errorf("ledger: generate validator: encode validator key: %w", err)
	}
	return ValidatorFiles{
		NodeID:           string(nk.ID()),
		NodeKey:          nodeKey,
		PrivValidatorKey: pvKey,
		PubKey:           pub.Bytes(),
	}, nil
}

// Genesis returns a genesis.json for chainID with one validator per entry
// of validators (named by its member id, sorted by it: parties and
// validator-only members alike), all of power ValidatorPower, default
// consensus parameters and the current time as genesis time. A validator's
// key is taken from PubKey, or from PrivValidatorKey when PubKey is
// empty, so the genesis can be built from public keys alone.
func Genesis(chainID string, validators map[string]ValidatorFiles) ([]byte, error) {
	if chainID == "" {
		return nil, errors.New("ledger: genesis: empty chain id")
	}
	if len(validators) == 0 {
		return nil, errors.New("ledger: genesis: no validators")
	}
	ids := make([]string, 0, len(validators))
	for id := range validators {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	doc := &types.GenesisDoc{
		GenesisTime:     time.Now().UTC().Truncate(time.Millisecond),
		ChainID:         chainID,
		InitialHeight:   1,
		ConsensusParams: types.DefaultConsensusParams(),
	}
	seen := map[string]string{}
	for _, id := range ids {
		pub, err := validatorPubKey(validators[id])
		if err != nil {
			return nil, fmt.Errorf("ledger: genesis: member %q: %w", id, err)
		}
		if other, dup := seen[string(pub.Bytes())]; dup {
			return nil, fmt.Errorf("ledger: genesis: members %q and %q have the same validator key", other, id)
		}
		seen[string(pub.Bytes())] = id
		doc.Validators = append(doc.Validators, types.GenesisValidator{
			Address: pub.Address(), PubKey: pub, Power: ValidatorPower, Name: id,
		})
	}
	if err := doc.ValidateAndComplete(); err != nil {
		return nil, fmt.Errorf("ledger: genesis: %w", err)
	}
	out, err := cmtjson.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("ledger: genesis: encode: %w", err)
	}
	return out, nil
}

func validatorPubKey(v ValidatorFiles) (crypto.PubKey, error) {
	if len(v.PubKey) > 0 {
		if len(v.PubKey) != ed25519.PubKeySize {
			return nil, fmt.Errorf("validator public key has %d bytes, want %d (raw ed25519)", len(v.PubKey), ed25519.PubKeySize)
		}
		return ed25519.PubKey(append([]byte(nil), v.PubKey...)), nil
	}
	if len(v.PrivValidatorKey) == 0 {
		return nil, errors.New("neither PubKey nor PrivValidatorKey is set")
	}
	k, err := parsePrivValidatorKey(v.PrivValidatorKey)
	if err != nil {
		return nil, err
	}
	return k.PubKey, nil
}

// parsePrivValidatorKey decodes priv_validator_key.json.
func parsePrivValidatorKey(b []byte) (privval.FilePVKey, error) {
	var k privval.FilePVKey
	if err := cmtjson.Unmarshal(b, &k); err != nil {
		return k, fmt.Errorf("priv_validator_key.json does not parse: %w", err)
	}
	if k.PrivKey == nil {
		return k, errors.New("priv_validator_key.json has no priv_key")
	}
	k.PubKey = k.PrivKey.PubKey()
	k.Address = k.PubKey.Address()
	return k, nil
}

// parseNodeKey decodes node_key.json.
func parseNodeKey(b []byte) (*p2p.NodeKey, error) {
	var k p2p.NodeKey
	if err := cmtjson.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("node_key.json does not parse: %w", err)
	}
	if k.PrivKey == nil {
		return nil, errors.New("node_key.json has no priv_key")
	}
	return &k, nil
}

// parseGenesis decodes and validates genesis.json.
func parseGenesis(b []byte) (*types.GenesisDoc, error) {
	doc, err := types.GenesisDocFromJSON(b)
	if err != nil {
		return nil, fmt.Errorf("genesis.json is invalid: %w", err)
	}
	return doc, nil
}
