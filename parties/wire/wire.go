// Package wire turns protocol messages into signed envelopes and back, and
// moves large serialized messages in chunks. It is the only place that knows
// the canonical byte encoding a signature covers.
package wire

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"

	"go.dedis.ch/kyber/v3"
	"google.golang.org/protobuf/encoding/protowire"

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
	env, _, err := SealDigest(id, m, seq)
	return env, err
}

// SealDigest is Seal that also returns the envelope's transcript digest,
// hashing the payload once for both.
func SealDigest(id *identity.Identity, m protocols.Message, seq uint64) (*synodv1.Envelope, []byte, error) {
	if string(m.From) != id.ID {
		return nil, nil, fmt.Errorf("seal %s: message from %q signed by %q", m.Kind, m.From, id.ID)
	}
	env := &synodv1.Envelope{
		Session: m.Session,
		Kind:    string(m.Kind),
		From:    string(m.From),
		To:      string(m.To),
		Seq:     seq,
		Payload: m.Payload,
	}
	canonical := Canonical(env)
	sig, err := id.Sign(canonical)
	if err != nil {
		return nil, nil, fmt.Errorf("seal %s: sign: %w", m.Kind, err)
	}
	env.Signature = sig
	return env, digestOf(canonical, sig), nil
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
	return SendParts(send, data)
}

// ErrEndOfChunks is returned by a chunk source at the end of the stream.
var ErrEndOfChunks = errors.New("end of chunks")

// Assembler reassembles a chunked message, refusing one that exceeds its
// declared size or MaxMessageSize. With a Budget it also refuses to hold
// more than the Owner's share of memory across all its streams; Release
// gives the reservation back (call it when the stream ends, however).
type Assembler struct {
	Budget *Budget
	Owner  string

	buf      []byte
	total    uint64
	begun    bool
	reserved int64
}

// Budget bounds the bytes that the messages one sender still has in
// reassembly may hold together, so that many slow streams from one peer
// or analyst cannot take a node's memory. A nil Budget bounds nothing.
type Budget struct {
	limit int64
	mu    sync.Mutex
	held  map[string]int64
}

// SenderBudget is the bytes one sender's streams may hold at once: two of
// the largest messages.
const SenderBudget = 2 * MaxMessageSize

// NewBudget returns a budget of limit bytes per sender.
func NewBudget(limit int64) *Budget { return &Budget{limit: limit, held: map[string]int64{}} }

func (b *Budget) reserve(owner string, n int64) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held[owner]+n > b.limit {
		return fmt.Errorf("%s has %d bytes of messages in transit, at the limit of %d: wait for them to finish", owner, b.held[owner], b.limit)
	}
	b.held[owner] += n
	return nil
}

func (b *Budget) release(owner string, n int64) {
	if b == nil || n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held[owner] -= n; b.held[owner] <= 0 {
		delete(b.held, owner)
	}
}

// Held is how many bytes owner's streams hold.
func (b *Budget) Held(owner string) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held[owner]
}

// Release returns the assembler's reservation to its budget. The bytes
// already reassembled stay valid; they are the receiver's from now on.
func (a *Assembler) Release() {
	a.Budget.release(a.Owner, a.reserved)
	a.reserved = 0
}

// Add appends one chunk.
func (a *Assembler) Add(c *synodv1.Chunk) error {
	if !a.begun {
		a.begun = true
		a.total = c.GetTotalSize()
		if a.total > MaxMessageSize {
			return fmt.Errorf("message of %d bytes exceeds the %d-byte limit", a.total, MaxMessageSize)
		}
	} else if c.GetTotalSize() != 0 {
		return fmt.Errorf("chunk after the first declares a total size")
	}
	data := c.GetData()
	need := uint64(len(a.buf)) + uint64(len(data))
	if need > a.total {
		return fmt.Errorf("chunks exceed the declared size of %d bytes", a.total)
	}
	if need > uint64(cap(a.buf)) {
		// Memory follows the bytes that arrived, not the size a sender
		// declared: a peer declaring 256 MiB and sending one byte holds one
		// byte. Doubling keeps the copies linear; the cap stops at total.
		grow := min(a.total, max(need, 2*uint64(cap(a.buf)), ChunkSize))
		more := int64(grow) - int64(cap(a.buf))
		if err := a.Budget.reserve(a.Owner, more); err != nil {
			return err
		}
		a.reserved += more
		buf := make([]byte, len(a.buf), grow)
		copy(buf, a.buf)
		a.buf = buf
	}
	a.buf = append(a.buf, data...)
	return nil
}

// Held is how many bytes the assembler holds so far.
func (a *Assembler) Held() int { return cap(a.buf) }

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

// DecodeEnvelope parses a reassembled envelope and checks its required
// fields. It reads the protobuf encoding itself so that the payload and the
// signature alias b rather than copy it (a key share is tens of
// megabytes): b must not be modified afterwards. Unknown fields are skipped
// as protobuf would; a known field with the wrong wire type, invalid UTF-8
// in a string, or a truncated field is refused.
func DecodeEnvelope(b []byte) (*synodv1.Envelope, error) {
	env := &synodv1.Envelope{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("decode envelope: %w", protowire.ParseError(n))
		}
		b = b[n:]
		want, known := envelopeWireTypes[num]
		if !known {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return nil, fmt.Errorf("decode envelope: field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		if typ != want {
			return nil, fmt.Errorf("decode envelope: field %d has wire type %d, want %d", num, typ, want)
		}
		if typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, fmt.Errorf("decode envelope: field %d: %w", num, protowire.ParseError(n))
			}
			env.Seq, b = v, b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, fmt.Errorf("decode envelope: field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		switch num {
		case 6:
			env.Payload = v[:len(v):len(v)]
			continue
		case 7:
			env.Signature = v[:len(v):len(v)]
			continue
		}
		if !utf8.Valid(v) {
			return nil, fmt.Errorf("decode envelope: field %d is not valid UTF-8", num)
		}
		switch num {
		case 1:
			env.Session = string(v)
		case 2:
			env.Kind = string(v)
		case 3:
			env.From = string(v)
		case 4:
			env.To = string(v)
		}
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

// envelopeWireTypes are the Envelope fields (api/synod/v1/node.proto) and
// their wire types.
var envelopeWireTypes = map[protowire.Number]protowire.Type{
	1: protowire.BytesType, 2: protowire.BytesType, 3: protowire.BytesType, 4: protowire.BytesType,
	5: protowire.VarintType, 6: protowire.BytesType, 7: protowire.BytesType,
}

// EnvelopeParts is an envelope's protobuf encoding in three parts whose
// concatenation DecodeEnvelope (or proto.Unmarshal) reads back: the fields
// before the payload with the payload's tag and length, the payload itself
// (not copied), and the signature field. Sending the parts spares a copy of
// the payload per message.
func EnvelopeParts(env *synodv1.Envelope) [][]byte {
	var head []byte
	for _, f := range []struct {
		num protowire.Number
		v   string
	}{{1, env.GetSession()}, {2, env.GetKind()}, {3, env.GetFrom()}, {4, env.GetTo()}} {
		if f.v != "" {
			head = protowire.AppendTag(head, f.num, protowire.BytesType)
			head = protowire.AppendString(head, f.v)
		}
	}
	if env.GetSeq() != 0 {
		head = protowire.AppendTag(head, 5, protowire.VarintType)
		head = protowire.AppendVarint(head, env.GetSeq())
	}
	var tail []byte
	if len(env.GetSignature()) > 0 {
		tail = protowire.AppendTag(tail, 7, protowire.BytesType)
		tail = protowire.AppendBytes(tail, env.GetSignature())
	}
	if len(env.GetPayload()) == 0 {
		return [][]byte{head, tail}
	}
	head = protowire.AppendTag(head, 6, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(len(env.GetPayload())))
	return [][]byte{head, env.GetPayload(), tail}
}

// SendParts sends the concatenation of parts in chunks of at most
// ChunkSize, without joining them; the first chunk carries the total size.
func SendParts(send func(*synodv1.Chunk) error, parts ...[]byte) error {
	var total uint64
	for _, p := range parts {
		total += uint64(len(p))
	}
	first := true
	for _, p := range parts {
		for off := 0; off < len(p); off += ChunkSize {
			c := &synodv1.Chunk{Data: p[off:min(off+ChunkSize, len(p))]}
			if first {
				c.TotalSize, first = total, false
			}
			if err := send(c); err != nil {
				return err
			}
		}
	}
	if first { // nothing at all to send: one empty chunk declares it
		return send(&synodv1.Chunk{})
	}
	return nil
}
