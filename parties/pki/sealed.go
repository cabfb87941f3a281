package pki

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/synod-mpc/synod/parties/keystore"
)

// Keystore labels of the sealed private keys: a member's TLS key and the
// consortium CA's key. A key sealed under one label does not open as the
// other.
const (
	TLSKeyLabel = "tls-key"
	CAKeyLabel  = "ca-key"
)

// WriteSealedKey seals a PEM private key (as NewCA and Issue return it) with
// passphrase under label and writes it to path, mode 0600.
func WriteSealedKey(path string, passphrase, keyPEM []byte, label string) error {
	if _, err := parseKeyPEM(keyPEM); err != nil {
		return fmt.Errorf("pki: key for %s: %w", path, err)
	}
	return keystore.WriteFile(path, passphrase, keyPEM, label)
}

// ReadSealedKey reads a private key written by WriteSealedKey and returns
// it as PEM. A key file that is not sealed (a plain PEM private key) is
// refused: secret keys are kept sealed at rest. The errors name the file.
func ReadSealedKey(path string, passphrase []byte, label string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if !keystore.IsSealed(b) {
		if blk, _ := pem.Decode(b); blk != nil && bytes.Contains([]byte(blk.Type), []byte("PRIVATE KEY")) {
			return nil, fmt.Errorf("pki: key %s is an unsealed PEM private key; synod keeps private keys sealed at rest (keystore label %q)", path, label)
		}
		return nil, fmt.Errorf("pki: key %s is not a sealed key file", path)
	}
	keyPEM, err := keystore.Open(passphrase, b, label)
	if errors.Is(err, keystore.ErrWrongPassphrase) {
		return nil, fmt.Errorf("pki: key %s: cannot open it with the keystore passphrase (wrong passphrase, or not a %s key): %w", path, label, err)
	}
	if err != nil {
		return nil, fmt.Errorf("pki: key %s: %w", path, err)
	}
	if _, err := parseKeyPEM(keyPEM); err != nil {
		return nil, fmt.Errorf("pki: key %s: %w", path, err)
	}
	return keyPEM, nil
}
