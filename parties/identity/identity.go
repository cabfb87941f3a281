// Package identity holds a consortium member's long-term identity key: a
// Schnorr key pair on edwards25519 (kyber). Every protocol message a member
// sends is signed with this key so that a relaying coordinator can drop but
// not forge or alter messages.
package identity

import (
	"encoding/hex"
	"errors"
	"fmt"

	"go.dedis.ch/kyber/v3"
	"go.dedis.ch/kyber/v3/group/edwards25519"
	"go.dedis.ch/kyber/v3/sign/schnorr"
)

// suite is the single edwards25519 suite shared by the package.
var suite = edwards25519.NewBlakeSHA256Ed25519()

// Suite returns the edwards25519 suite used for identity keys.
func Suite() *edwards25519.SuiteEd25519 { return suite }

// PublicSize is the length in bytes of an encoded public key.
const PublicSize = 32

// SecretSize is the length in bytes of an encoded secret scalar.
const SecretSize = 32

// Identity is a member's identity key pair.
type Identity struct {
	ID     string
	Secret kyber.Scalar
	Public kyber.Point
}

// Generate creates a fresh identity key pair for member id.
func Generate(id string) (*Identity, error) {
	if id == "" {
		return nil, errors.New("identity: generate: empty member id")
	}
	s := suite.Scalar().Pick(suite.RandomStream())
	return &Identity{ID: id, Secret: s, Public: suite.Point().Mul(s, nil)}, nil
}

// Sign returns a Schnorr signature of msg under the identity's secret key.
func (id *Identity) Sign(msg []byte) ([]byte, error) {
	if id == nil || id.Secret == nil {
		return nil, errors.New("identity: sign: identity has no secret key")
	}
	sig, err := schnorr.Sign(suite, id.Secret, msg)
	if err != nil {
		return nil, fmt.Errorf("identity %q: sign: %w", id.ID, err)
	}
	return sig, nil
}

// Verify checks that sig is a valid signature of msg by pub. It rejects
// non-canonical encodings and small-order keys.
func Verify(pub kyber.Point, msg, sig []byte) error {
	if pub == nil {
		return errors.New("identity: verify: nil public key")
	}
	if err := schnorr.Verify(suite, pub, msg, sig); err != nil {
		return fmt.Errorf("identity: verify: %w", err)
	}
	return nil
}

// EncodePublic returns the lowercase hex encoding of a public key.
func EncodePublic(p kyber.Point) string {
	if p == nil {
		return ""
	}
	b, err := p.MarshalBinary()
	if err != nil {
		return ""
	}
	return hex.EncodeToString(b)
}

// DecodePublic parses a hex-encoded edwards25519 public key. It rejects bad
// hex, wrong lengths, encodings that are not curve points, non-canonical
// encodings and small-order points.
func DecodePublic(s string) (kyber.Point, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("identity: public key %q: not hex: %w", abbrev(s), err)
	}
	if len(b) != PublicSize {
		return nil, fmt.Errorf("identity: public key %q: %d bytes, want %d", abbrev(s), len(b), PublicSize)
	}
	p := suite.Point()
	if err := p.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("identity: public key %q: not an edwards25519 point: %w", abbrev(s), err)
	}
	type checker interface {
		IsCanonical([]byte) bool
		HasSmallOrder() bool
	}
	if c, ok := p.(checker); ok {
		if !c.IsCanonical(b) {
			return nil, fmt.Errorf("identity: public key %q: non-canonical point encoding", abbrev(s))
		}
		if c.HasSmallOrder() {
			return nil, fmt.Errorf("identity: public key %q: point has small order", abbrev(s))
		}
	}
	return p, nil
}

// MarshalSecret returns the 32-byte encoding of the secret scalar. The caller
// is responsible for protecting it at rest (see package keystore).
func (id *Identity) MarshalSecret() ([]byte, error) {
	if id == nil || id.Secret == nil {
		return nil, errors.New("identity: marshal: identity has no secret key")
	}
	b, err := id.Secret.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("identity %q: marshal secret: %w", id.ID, err)
	}
	return b, nil
}

// UnmarshalIdentity rebuilds an identity from its id and the encoding
// produced by MarshalSecret; the public key is recomputed.
func UnmarshalIdentity(id string, b []byte) (*Identity, error) {
	if id == "" {
		return nil, errors.New("identity: unmarshal: empty member id")
	}
	if len(b) != SecretSize {
		return nil, fmt.Errorf("identity %q: secret key is %d bytes, want %d", id, len(b), SecretSize)
	}
	type canon interface{ IsCanonical([]byte) bool }
	s := suite.Scalar()
	if c, ok := s.(canon); ok && !c.IsCanonical(b) {
		return nil, fmt.Errorf("identity %q: secret key is not a canonical scalar", id)
	}
	if err := s.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("identity %q: secret key: %w", id, err)
	}
	if s.Equal(suite.Scalar().Zero()) {
		return nil, fmt.Errorf("identity %q: secret key is zero", id)
	}
	return &Identity{ID: id, Secret: s, Public: suite.Point().Mul(s, nil)}, nil
}

func abbrev(s string) string {
	if len(s) > 16 {
		return s[:16] + "..."
	}
	return s
}
