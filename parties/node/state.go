package node

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/parties/keystore"
	"github.com/synod-mpc/synod/protocols"
	"github.com/synod-mpc/synod/protocols/session"
)

// keyState is what a node keeps from the consortium setup: the collective
// public keys (on disk in the clear) and its own secret shares (sealed).
type keyState struct {
	Meta   setupMeta
	Params engine.Parameters
	Result *protocols.SetupResult
	DKG    *protocols.DKGResult // this party's share of the consortium BLS key
}

// keys are the setup's keys as the session machines take them.
func (st *keyState) keys() *session.Keys {
	return &session.Keys{Params: st.Params, Setup: st.Result, DKG: st.DKG, SetupSession: st.Meta.Session}
}

// setupMeta is the readable summary stored beside the keys.
type setupMeta struct {
	Session    string   `json:"session"`
	Parameters string   `json:"parameters"`
	Parties    []string `json:"parties"`
	Threshold  int      `json:"threshold"`
	Digest     []byte   `json:"digest"`
	GroupKey   []byte   `json:"group_key"` // consortium threshold-BLS public key
}

const (
	setupMetaFile   = "setup.json"
	setupPublicFile = "setup-public.bin"
	// setupSecretFile holds the party's RLWE secret, its Shamir share and
	// its share of the consortium BLS key, sealed together: one key
	// derivation (scrypt) per setup rather than one per secret.
	setupSecretFile = "setup-secret.sealed"
	setupLabel      = "setup-secrets+bls-share"
)

// secretsBundle joins the RLWE secrets and the BLS share: a 4-byte
// big-endian length, the secrets, then the share.
func secretsBundle(sec, dkg []byte) []byte {
	b := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(sec)+len(dkg)), uint32(len(sec)))
	return append(append(b, sec...), dkg...)
}

func splitSecretsBundle(b []byte) (sec, dkg []byte, err error) {
	if len(b) < 4 || uint64(binary.BigEndian.Uint32(b)) > uint64(len(b)-4) {
		return nil, nil, fmt.Errorf("sealed secrets of %d bytes: bad length prefix", len(b))
	}
	n := binary.BigEndian.Uint32(b)
	return b[4 : 4+n], b[4+n:], nil
}

func saveKeyState(dir string, sealer *keystore.Sealer, st *keyState) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	pub, err := st.Result.MarshalPublic()
	if err != nil {
		return fmt.Errorf("encode public keys: %w", err)
	}
	sec, err := st.Result.MarshalSecrets()
	if err != nil {
		return fmt.Errorf("encode secret shares: %w", err)
	}
	meta, err := json.MarshalIndent(st.Meta, "", "  ")
	if err != nil {
		return err
	}
	dkg, err := st.DKG.MarshalBinary()
	if err != nil {
		return fmt.Errorf("encode BLS key share: %w", err)
	}
	if err := sealer.WriteFile(filepath.Join(dir, setupSecretFile), secretsBundle(sec, dkg), setupLabel); err != nil {
		return fmt.Errorf("seal secret shares: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, setupPublicFile), pub, 0o644); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, setupMetaFile), meta, 0o644)
}

// loadKeyState returns nil, nil when the node has not been set up.
func loadKeyState(dir string, passphrase []byte) (*keyState, error) {
	metaBytes, err := os.ReadFile(filepath.Join(dir, setupMetaFile))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	st := &keyState{}
	if err := json.Unmarshal(metaBytes, &st.Meta); err != nil {
		return nil, fmt.Errorf("%s: %w", setupMetaFile, err)
	}
	if st.Params, err = engine.ParametersByName(st.Meta.Parameters); err != nil {
		return nil, fmt.Errorf("%s: %w", setupMetaFile, err)
	}
	pub, err := os.ReadFile(filepath.Join(dir, setupPublicFile))
	if err != nil {
		return nil, err
	}
	bundle, err := keystore.ReadFile(filepath.Join(dir, setupSecretFile), passphrase, setupLabel)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setupSecretFile, err)
	}
	sec, dkg, err := splitSecretsBundle(bundle)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setupSecretFile, err)
	}
	st.Result = &protocols.SetupResult{}
	if err := st.Result.UnmarshalPublic(st.Params, pub); err != nil {
		return nil, fmt.Errorf("%s: %w", setupPublicFile, err)
	}
	if err := st.Result.UnmarshalSecrets(st.Params, sec); err != nil {
		return nil, fmt.Errorf("%s: %w", setupSecretFile, err)
	}
	if st.DKG, err = protocols.UnmarshalDKGResult(dkg); err != nil {
		return nil, fmt.Errorf("%s: BLS key share: %w", setupSecretFile, err)
	}
	return st, nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
