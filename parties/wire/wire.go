// Package wire turns protocol messages into signed envelopes and back, and
// moves large serialized messages in chunks. It is the only place that knows
// the canonical byte encoding a signature covers.
package wire

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"go.dedis.ch/kyber/v3"
	"google.golang.org/protobuf/proto"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/parties/identity"
	"github.com/synod-mpc/synod/protocols"
)

// domain separates envelope signatures from every other use of the identity key.
const domain = "synod/envelope/v1"

// Canonical is the byte string an envelope signature covers: the domain tag
// then every field but the signature, each length-prefixed, the payload by
// its SHA-256 (so verifying never hashes a large payload twice).
func Canonical(env *synodv1.Envelope) []byte {
	payloadHash := sha256.Sum256(env.GetPayload())
	var b []byte
	b = appendField(b, []byte(domain))
	b = appendField(b, []byte(env.GetSession()))
	b = appendField(b, []byte(env.GetKind()))
	b = appendField(b, []byte(env.GetFrom()))
	b = appendField(b, []byte(env.GetTo()))
	b = binary.BigEndian.AppendUint64(b, env.GetSeq())
	b = appendField(b, payloadHash[:])
	return b
}

func appendField(b, field []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(field)))
	return append(b, field...)
}

// Seal wraps a protocol message in an envelope signed by id.
func Seal(id *identity.Identity, m protocols.Message, seq uint64) (*synodv1.Envelope, error) {
	if string(m.From) != id.ID {
		return nil, fmt.Errorf("seal %s: message from %q signed by %q", m.Kind, m.From, id.ID)
	}
	env := &synodv1.Envelope{
		Session: m.Session,
		Kind:    string(m.Kind),
		From:    string(m.From),
		To:      string(m.To),
		Seq:     seq,
		Payload: m.Payload,
	}
	sig, err := id.Sign(Canonical(env))
	if err != nil {
		return nil, fmt.Errorf("seal %s: sign: %w", m.Kind, err)
	}
	env.Signature = sig
	return env, nil
}

// Verify checks env's signature against its sender's identity key.
func Verify(env *synodv1.Envelope, senderKey kyber.Point) error {
	_, err := VerifyDigest(env, senderKey)
	return err
}

// VerifyDigest is Verify that also returns the envelope's transcript
// digest, hashing the payload once for both.
func VerifyDigest(env *synodv1.Envelope, senderKey kyber.Point) ([]byte, error) {
	if len(env.GetSignature()) == 0 {
		return nil, fmt.Errorf("envelope %s from %s: missing signature", env.GetKind(), env.GetFrom())
	}
	canonical := Canonical(env)
	if err := identity.Verify(senderKey, canonical, env.GetSignature()); err != nil {
		return nil, fmt.Errorf("envelope %s from %s: bad signature: %w", env.GetKind(), env.GetFrom(), err)
	}
	return digestOf(canonical, env.GetSignature()), nil
}

// Message is the protocol message an envelope carries.
func Message(env *synodv1.Envelope) protocols.Message {
	return protocols.Message{
		Session: env.GetSession(),
		Kind:    protocols.Kind(env.GetKind()),
		From:    protocols.PartyID(env.GetFrom()),
		To:      protocols.PartyID(env.GetTo()),
		Payload: env.GetPayload(),
	}
}

// Digest is an envelope's transcript digest: SHA-256 of a domain tag, the
// canonical bytes its signature covers (every field, the payload by its
// hash) and the signature. It is defined by this package's encoding alone,
// not by a protobuf serializer, whose output protobuf does not promise to
// keep stable.
func Digest(env *synodv1.Envelope) []byte {
	return digestOf(Canonical(env), env.GetSignature())
}

// digestDomain separates transcript digests from envelope signatures.
const digestDomain = "synod/transcript-message/v1"

func digestOf(canonical, signature []byte) []byte {
	h := sha256.New()
	h.Write(appendField(nil, []byte(digestDomain)))
	h.Write(appendField(nil, canonical))
	h.Write(appendField(nil, signature))
	return h.Sum(nil)
}

// ChunkSize is the size of the chunks large messages travel in; well under
// gRPC's default 4 MiB receive limit.
const ChunkSize = 1 << 20

// MaxMessageSize bounds one reassembled message. The largest legitimate one is
// a relinearization-key share at LogN=15 (~57 MB).
const MaxMessageSize = 256 << 20

// SendChunks sends data in chunks; the first carries the total size.
func SendChunks(send func(*synodv1.Chunk) error, data []byte) error {
	total := uint64(len(data))
	for off := 0; off < len(data) || off == 0; off += ChunkSize {
		end := min(off+ChunkSize, len(data))
		c := &synodv1.Chunk{Data: data[off:end]}
		if off == 0 {
			c.TotalSize = total
		}
		if err := send(c); err != nil {
			return err
		}
		if end == len(data) {
			break
		}
	}
	return nil
}

// ErrEndOfChunks is returned by a chunk source at the end of the stream.
var ErrEndOfChunks = errors.New("end of chunks")

// Assembler reassembles a chunked message, refusing one that exceeds its
// declared size or MaxMessageSize.
type Assembler struct {
	buf   []byte
	total uint64
	begun bool
}

// Add appends one chunk.
func (a *Assembler) Add(c *synodv1.Chunk) error {
	if !a.begun {
		a.begun = true
		a.total = c.GetTotalSize()
		if a.total > MaxMessageSize {
			return fmt.Errorf("message of %d bytes exceeds the %d-byte limit", a.total, MaxMessageSize)
		}
		a.buf = make([]byte, 0, a.total)
	} else if c.GetTotalSize() != 0 {
		return fmt.Errorf("chunk after the first declares a total size")
	}
	if uint64(len(a.buf))+uint64(len(c.GetData())) > a.total {
		return fmt.Errorf("chunks exceed the declared size of %d bytes", a.total)
	}
	a.buf = append(a.buf, c.GetData()...)
	return nil
}

// Bytes returns the reassembled message once complete.
func (a *Assembler) Bytes() ([]byte, error) {
	if !a.begun {
		return nil, fmt.Errorf("no chunks received")
	}
	if uint64(len(a.buf)) != a.total {
		return nil, fmt.Errorf("message truncated: got %d of %d bytes", len(a.buf), a.total)
	}
	return a.buf, nil
}

// DecodeEnvelope parses a reassembled envelope and checks its required fields.
func DecodeEnvelope(b []byte) (*synodv1.Envelope, error) {
	env := &synodv1.Envelope{}
	if err := proto.Unmarshal(b, env); err != nil {
		return nil, fmt.Errorf("decode envelope: %w", err)
	}
	switch {
	case env.Session == "":
		return nil, fmt.Errorf("envelope without session")
	case env.Kind == "":
		return nil, fmt.Errorf("envelope without kind")
	case env.From == "":
		return nil, fmt.Errorf("envelope without sender")
	}
	return env, nil
}

// EncodeEnvelope serializes an envelope.
func EncodeEnvelope(env *synodv1.Envelope) ([]byte, error) {
	return proto.Marshal(env)
}
