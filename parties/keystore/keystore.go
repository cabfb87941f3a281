// Package keystore keeps secrets encrypted at rest.
//
// A sealed secret is AES-256-GCM encrypted under a key derived from a
// passphrase with scrypt (N=2^15, r=8, p=1) and a random 16-byte salt. The
// file format is versioned:
//
//	magic   "SYNODKS\x00"  8 bytes
//	version 0x01           1 byte
//	salt                   16 bytes
//	nonce                  12 bytes
//	ciphertext || tag      len(plaintext)+16 bytes
//
// The whole header and the purpose label (for example "identity") are bound
// as GCM associated data, so a file sealed for one purpose does not open as
// another and a tampered header is detected.
package keystore

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/crypto/scrypt"
)

// Magic is the header every sealed file starts with.
const Magic = "SYNODKS\x00"

// Version is the current format version.
const Version byte = 1

const (
	saltSize   = 16
	nonceSize  = 12
	tagSize    = 16
	headerSize = len(Magic) + 1 + saltSize + nonceSize

	scryptN = 1 << 15
	scryptR = 8
	scryptP = 1
	keySize = 32
)

// ErrWrongPassphrase is returned (wrapped) by Open when authentication fails:
// the passphrase is wrong, the label differs, or the data was altered.
var ErrWrongPassphrase = errors.New("wrong passphrase, wrong label, or corrupted data")

func deriveKey(passphrase, salt []byte) ([]byte, error) {
	return scrypt.Key(passphrase, salt, scryptN, scryptR, scryptP, keySize)
}

func aad(header []byte, label string) []byte {
	a := make([]byte, 0, len(header)+len(label))
	a = append(a, header...)
	return append(a, label...)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// IsSealed reports whether b starts like a sealed file (the magic header);
// it says nothing of whether b opens.
func IsSealed(b []byte) bool { return bytes.HasPrefix(b, []byte(Magic)) }

// Seal encrypts plaintext under passphrase, binding label as associated data.
func Seal(passphrase, plaintext []byte, label string) ([]byte, error) {
	s, err := NewSealer(passphrase)
	if err != nil {
		return nil, err
	}
	return s.Seal(plaintext, label)
}

// A Sealer seals any number of secrets under one passphrase with a single
// key derivation: they share one random salt (and so one scrypt run), each
// has its own random nonce. Its output is the same format Seal writes and
// Open reads. A node makes one at start, so that sealing its setup secrets
// does not cost a key derivation in the middle of the setup.
type Sealer struct {
	salt []byte
	aead cipher.AEAD
}

// NewSealer derives the key for passphrase and a fresh salt.
func NewSealer(passphrase []byte) (*Sealer, error) {
	if len(passphrase) == 0 {
		return nil, errors.New("keystore: seal: empty passphrase")
	}
	salt := make([]byte, saltSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("keystore: seal: reading randomness: %w", err)
	}
	key, err := deriveKey(passphrase, salt)
	if err != nil {
		return nil, fmt.Errorf("keystore: seal: deriving key: %w", err)
	}
	g, err := newGCM(key)
	if err != nil {
		return nil, fmt.Errorf("keystore: seal: %w", err)
	}
	return &Sealer{salt: salt, aead: g}, nil
}

// Seal encrypts plaintext, binding label as associated data.
func (s *Sealer) Seal(plaintext []byte, label string) ([]byte, error) {
	out := make([]byte, headerSize, headerSize+len(plaintext)+tagSize)
	copy(out, Magic)
	out[len(Magic)] = Version
	copy(out[len(Magic)+1:], s.salt)
	nonce := out[len(Magic)+1+saltSize : headerSize]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("keystore: seal: reading randomness: %w", err)
	}
	return s.aead.Seal(out, nonce, plaintext, aad(out[:headerSize], label)), nil
}

// WriteFile seals plaintext and writes it to path as the package's
// WriteFile does.
func (s *Sealer) WriteFile(path string, plaintext []byte, label string) error {
	sealed, err := s.Seal(plaintext, label)
	if err != nil {
		return fmt.Errorf("keystore %s: %w", path, err)
	}
	return writeSealed(path, sealed)
}

// Open decrypts data produced by Seal with the same passphrase and label.
// It never panics on malformed input.
func Open(passphrase, sealed []byte, label string) ([]byte, error) {
	if len(passphrase) == 0 {
		return nil, errors.New("keystore: open: empty passphrase")
	}
	if len(sealed) < len(Magic) || !bytes.Equal(sealed[:len(Magic)], []byte(Magic)) {
		return nil, errors.New("keystore: open: not a synod keystore file (bad magic header)")
	}
	if len(sealed) < len(Magic)+1 {
		return nil, errors.New("keystore: open: truncated header (no version)")
	}
	if v := sealed[len(Magic)]; v != Version {
		return nil, fmt.Errorf("keystore: open: unsupported format version %d (this build reads version %d)", v, Version)
	}
	if len(sealed) < headerSize+tagSize {
		return nil, fmt.Errorf("keystore: open: truncated: %d bytes, at least %d needed", len(sealed), headerSize+tagSize)
	}
	salt := sealed[len(Magic)+1 : len(Magic)+1+saltSize]
	nonce := sealed[len(Magic)+1+saltSize : headerSize]
	key, err := deriveKey(passphrase, salt)
	if err != nil {
		return nil, fmt.Errorf("keystore: open: deriving key: %w", err)
	}
	g, err := newGCM(key)
	if err != nil {
		return nil, fmt.Errorf("keystore: open: %w", err)
	}
	pt, err := g.Open(nil, nonce, sealed[headerSize:], aad(sealed[:headerSize], label))
	if err != nil {
		return nil, fmt.Errorf("keystore: open (label %q): %w", label, ErrWrongPassphrase)
	}
	return pt, nil
}

// WriteFile seals plaintext and writes it to path with mode 0600, atomically
// (temporary file in the same directory, then rename).
func WriteFile(path string, passphrase, plaintext []byte, label string) error {
	sealed, err := Seal(passphrase, plaintext, label)
	if err != nil {
		return fmt.Errorf("keystore %s: %w", path, err)
	}
	return writeSealed(path, sealed)
}

func writeSealed(path string, sealed []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("keystore %s: creating temporary file: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("keystore %s: chmod: %w", path, err)
	}
	if _, err := f.Write(sealed); err != nil {
		return fmt.Errorf("keystore %s: write: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("keystore %s: sync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keystore %s: close: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("keystore %s: rename: %w", path, err)
	}
	ok = true
	return nil
}

// ReadFile reads and opens a file written by WriteFile.
func ReadFile(path string, passphrase []byte, label string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	pt, err := Open(passphrase, b, label)
	if err != nil {
		return nil, fmt.Errorf("keystore %s: %w", path, err)
	}
	return pt, nil
}

// Passphrase returns the passphrase from the environment variable envVar if
// it is set and non-empty, otherwise from file (contents with surrounding
// whitespace trimmed). Either source may be empty to skip it. The error names
// the sources that were tried.
func Passphrase(envVar, file string) ([]byte, error) {
	envNote := "no environment variable configured"
	if envVar != "" {
		if v := os.Getenv(envVar); v != "" {
			return []byte(v), nil
		}
		envNote = fmt.Sprintf("environment variable %s is unset or empty", envVar)
	}
	if file == "" {
		return nil, fmt.Errorf("keystore: passphrase: %s and no passphrase file is configured", envNote)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("keystore: passphrase: %s, and reading passphrase file failed: %w", envNote, err)
	}
	p := bytes.TrimSpace(b)
	if len(p) == 0 {
		return nil, fmt.Errorf("keystore: passphrase: %s, and passphrase file %s is empty", envNote, file)
	}
	return p, nil
}
