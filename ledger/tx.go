// Package ledger is Synod's audit chain: the ABCI application that records the
// consortium's setup, query approvals, session transcripts and result receipts;
// the CometBFT validator every party node embeds; the client that commits
// records to it (embedded or over RPC); and the light-client verification of a
// record's inclusion that auditors and analysts run.
//
// The ledger never interprets protocol data: a transaction's Body is opaque
// bytes (one of the bodies defined in package records, written by the party
// nodes). What the ledger enforces is who may write (a consortium member,
// signing as itself), what may be written (the record kinds of package
// records), and that nothing is written twice.
package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"

	"go.dedis.ch/kyber/v3"
	"go.dedis.ch/kyber/v3/group/edwards25519"
	"go.dedis.ch/kyber/v3/sign/schnorr"

	"github.com/synod-mpc/synod/ledger/records"
)

// Record kinds, defined with the bodies they carry in package records.
// A transaction of any other kind is rejected.
const (
	// KindSetup records a consortium setup (records.Setup).
	KindSetup = records.KindSetup
	// KindApproval records a query's threshold-BLS approval certificate
	// (records.Approval).
	KindApproval = records.KindApproval
	// KindTranscript records a session's transcript (records.Transcript,
	// records.Model).
	KindTranscript = records.KindTranscript
	// KindReceipt records the release of a result (records.Receipt).
	KindReceipt = records.KindReceipt
	// KindRound records one released round of a multi-round session
	// (records.Transcript with Round set); a session holds many.
	KindRound = records.KindRound
)

// Size limits of a transaction and of its fields.
const (
	MaxTxBytes        = 1 << 20 // whole encoded transaction (CometBFT's default mempool limit)
	MaxKindBytes      = 32
	MaxSessionBytes   = 256
	MaxSenderBytes    = 256
	MaxSignatureBytes = 128
)

// txMagic starts every encoded transaction: "SYN" and the format version.
var txMagic = [4]byte{'S', 'Y', 'N', 1}

// signDomain separates the bytes a member signs for the ledger from anything
// else the same key signs.
const signDomain = "synod/ledger/tx/v1\x00"

// Suite is the group of member signing keys: Schnorr on edwards25519.
var Suite = edwards25519.NewBlakeSHA256Ed25519()

// Tx is one ledger transaction: a record of Kind about Session, written by
// the consortium member Sender and signed by that member's key.
type Tx struct {
	Kind      string
	Session   string
	Sender    string
	Body      []byte
	Nonce     uint64
	Signature []byte
}

// Signer signs ledger transactions with a member's identity key.
type Signer interface {
	Sign(msg []byte) ([]byte, error)
}

// KeySigner signs with a Schnorr private scalar of Suite.
type KeySigner struct{ Private kyber.Scalar }

// Sign returns a Schnorr signature of msg.
func (k KeySigner) Sign(msg []byte) ([]byte, error) {
	if k.Private == nil {
		return nil, errors.New("ledger: KeySigner has no private key")
	}
	return schnorr.Sign(Suite, k.Private, msg)
}

// Hash is the CometBFT transaction hash of the encoded transaction
// (SHA-256 of Encode()), the key under which the chain indexes it.
func (tx *Tx) Hash() []byte {
	h := sha256.Sum256(tx.Encode())
	return h[:]
}

// Encode returns the canonical encoding: magic, then Kind, Session, Sender,
// Body, each as a 4-byte big-endian length and the bytes, then Nonce as 8
// bytes big-endian, then the Signature length-prefixed. Every value has
// exactly one encoding and DecodeTx accepts only that one.
func (tx *Tx) Encode() []byte {
	b := make([]byte, 0, 4+5*4+8+len(tx.Kind)+len(tx.Session)+len(tx.Sender)+len(tx.Body)+len(tx.Signature))
	b = append(b, txMagic[:]...)
	b = tx.appendFields(b)
	return appendBytes(b, tx.Signature)
}

// SignBytes returns the bytes a member signs: a domain separator followed by
// the canonical encoding of every field but the signature.
func (tx *Tx) SignBytes() []byte {
	b := make([]byte, 0, len(signDomain)+4*4+8+len(tx.Kind)+len(tx.Session)+len(tx.Sender)+len(tx.Body))
	b = append(b, signDomain...)
	return tx.appendFields(b)
}

func (tx *Tx) appendFields(b []byte) []byte {
	b = appendBytes(b, []byte(tx.Kind))
	b = appendBytes(b, []byte(tx.Session))
	b = appendBytes(b, []byte(tx.Sender))
	b = appendBytes(b, tx.Body)
	return binary.BigEndian.AppendUint64(b, tx.Nonce)
}

func appendBytes(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// Sign sets tx.Signature to the signer's signature over SignBytes.
func (tx *Tx) Sign(s Signer) error {
	if s == nil {
		return errors.New("ledger: sign: nil signer")
	}
	sig, err := s.Sign(tx.SignBytes())
	if err != nil {
		return fmt.Errorf("ledger: sign %s tx of session %q: %w", tx.Kind, tx.Session, err)
	}
	tx.Signature = sig
	return nil
}

// Validate checks the transaction's form without its signature: a known
// kind, non-empty printable session and sender ids, a non-empty body, and the
// size limits.
func (tx *Tx) Validate() error {
	if !records.KnownKind(tx.Kind) {
		return fmt.Errorf("unknown kind %q (want %s)", truncate(tx.Kind), records.KindList())
	}
	if err := checkID("session", tx.Session, MaxSessionBytes); err != nil {
		return err
	}
	if err := checkID("sender", tx.Sender, MaxSenderBytes); err != nil {
		return err
	}
	if len(tx.Body) == 0 {
		return errors.New("empty body")
	}
	if len(tx.Signature) > MaxSignatureBytes {
		return fmt.Errorf("signature of %d bytes exceeds %d", len(tx.Signature), MaxSignatureBytes)
	}
	if n := tx.encodedLen(); n > MaxTxBytes {
		return fmt.Errorf("encoded tx of %d bytes exceeds %d", n, MaxTxBytes)
	}
	return nil
}

func (tx *Tx) encodedLen() int {
	return 4 + 5*4 + 8 + len(tx.Kind) + len(tx.Session) + len(tx.Sender) + len(tx.Body) + len(tx.Signature)
}

func checkID(what, id string, max int) error {
	if id == "" {
		return fmt.Errorf("empty %s id", what)
	}
	if len(id) > max {
		return fmt.Errorf("%s id of %d bytes exceeds %d", what, len(id), max)
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("%s id is not valid UTF-8", what)
	}
	for _, r := range id {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return fmt.Errorf("%s id %q contains a space or control character", what, truncate(id))
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// Verify checks the form of tx and that its signature is by the member whose
// id is tx.Sender, under that member's key in members.
func (tx *Tx) Verify(members map[string]kyber.Point) error {
	if err := tx.Validate(); err != nil {
		return err
	}
	pub, ok := members[tx.Sender]
	if !ok || pub == nil {
		return fmt.Errorf("sender %q is not a consortium member", truncate(tx.Sender))
	}
	if len(tx.Signature) == 0 {
		return fmt.Errorf("tx is not signed (sender %q)", tx.Sender)
	}
	if err := schnorr.Verify(Suite, pub, tx.SignBytes(), tx.Signature); err != nil {
		return fmt.Errorf("signature is not by sender %q's key: %v", tx.Sender, err)
	}
	return nil
}

// DecodeTx parses a canonical encoding produced by Encode. It rejects
// anything else (wrong magic, truncated or oversized fields, trailing bytes,
// fields that fail Validate) with an error saying what is wrong, and never
// panics.
func DecodeTx(b []byte) (*Tx, error) {
	if len(b) > MaxTxBytes {
		return nil, fmt.Errorf("ledger: decode tx: %d bytes exceeds %d", len(b), MaxTxBytes)
	}
	if len(b) < len(txMagic) || [4]byte(b[:4]) != txMagic {
		return nil, errors.New("ledger: decode tx: not a Synod ledger tx (bad magic or version)")
	}
	d := decoder{b: b[4:]}
	tx := &Tx{}
	tx.Kind = string(d.bytes("kind", MaxKindBytes))
	tx.Session = string(d.bytes("session", MaxSessionBytes))
	tx.Sender = string(d.bytes("sender", MaxSenderBytes))
	tx.Body = d.bytes("body", MaxTxBytes)
	tx.Nonce = d.uint64("nonce")
	tx.Signature = d.bytes("signature", MaxSignatureBytes)
	if d.err != nil {
		return nil, fmt.Errorf("ledger: decode tx: %w", d.err)
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("ledger: decode tx: %d trailing bytes", len(d.b))
	}
	if err := tx.Validate(); err != nil {
		return nil, fmt.Errorf("ledger: decode tx: %w", err)
	}
	return tx, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) bytes(field string, max int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < 4 {
		d.err = fmt.Errorf("truncated before %s length", field)
		return nil
	}
	n := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	if uint64(n) > uint64(max) {
		d.err = fmt.Errorf("%s length %d exceeds %d", field, n, max)
		return nil
	}
	if uint64(n) > uint64(len(d.b)) {
		d.err = fmt.Errorf("%s length %d exceeds the %d bytes left", field, n, len(d.b))
		return nil
	}
	v := append([]byte(nil), d.b[:n]...)
	d.b = d.b[n:]
	return v
}

func (d *decoder) uint64(field string) uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.err = fmt.Errorf("truncated in %s", field)
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}
