package analyst

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/parties/config"
	"github.com/synod-mpc/synod/parties/keystore"
)

// RLWEKey returns the analyst's own RLWE key pair for a parameter set,
// creating it on first use. Results are switched to the public key; the
// secret key never leaves the analyst and is sealed at rest
// (DATA_DIR/rlwe-PARAMS.sealed, with the analyst's keystore passphrase).
// The public key is derived anew at each call.
func RLWEKey(cfg *config.Analyst, params engine.Parameters) (*engine.SecretKey, *engine.PublicKey, error) {
	pass, err := keystore.Passphrase(cfg.Keystore.PassphraseEnv, cfg.Keystore.PassphraseFile)
	if err != nil {
		return nil, nil, fmt.Errorf("keystore passphrase: %w", err)
	}
	path := filepath.Join(cfg.DataDir, "rlwe-"+params.Name+".sealed")
	label := "analyst-rlwe-" + params.Name
	if b, err := keystore.ReadFile(path, pass, label); err == nil {
		sk, err := engine.DecodeSecretKey(params, b)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		return sk, engine.GenPublicKey(params, sk), nil
	} else if !os.IsNotExist(err) {
		// A key that is there but does not open is an error, never a
		// reason to make a new one: results switched to it would be lost.
		if _, statErr := os.Stat(path); statErr == nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	sk, pk := engine.GenKeyPair(params)
	b, err := sk.MarshalBinary()
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, nil, err
	}
	if err := keystore.WriteFile(path, pass, b, label); err != nil {
		return nil, nil, fmt.Errorf("store analyst key: %w", err)
	}
	return sk, pk, nil
}
