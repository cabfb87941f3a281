package protocols

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/ring"
	"github.com/tuneinsight/lattigo/v5/ring/ringqp"
)

// The payloads of this package do not use lattigo's own serialization for
// untrusted input: lattigo's decoders trust the length prefixes they read and
// may allocate (or panic) according to them. Instead every polynomial-valued
// payload has a shape fixed by the parameters; the receiver allocates the
// expected object, checks that the payload has exactly the expected length,
// and reads the coefficients one by one (little-endian uint64), rejecting any
// coefficient that is not reduced modulo its prime.

// polyRef is one polynomial of a structured object together with the moduli
// of its RNS levels.
type polyRef struct {
	poly ring.Poly
	isP  bool // coefficients modulo the P chain rather than Q
}

type shape []polyRef

func (s shape) size() int {
	n := 0
	for _, r := range s {
		for _, c := range r.poly.Coeffs {
			n += 8 * len(c)
		}
	}
	return n
}

// level is one RNS level of one polynomial of a shape: its coefficients,
// its index in its modulus chain and its prime (0 if the chain is shorter
// than the polynomial, which the parameters never produce).
type level struct {
	coeffs []uint64
	index  int
	q      uint64
}

// levels yields the RNS levels of s in encoding order.
func (s shape) levels(params rlwe.Parameters) iter.Seq[level] {
	qs, ps := moduliChains(params)
	return func(yield func(level) bool) {
		for _, r := range s {
			moduli := qs
			if r.isP {
				moduli = ps
			}
			for i, c := range r.poly.Coeffs {
				l := level{coeffs: c, index: i}
				if i < len(moduli) {
					l.q = moduli[i]
				}
				if !yield(l) {
					return
				}
			}
		}
	}
}

var errLevelAboveChain = errors.New("internal: polynomial level above modulus chain")

// encodeRaw appends the coefficients as they are stored.
func (s shape) encodeRaw(out []byte) []byte {
	out, dst := grow(out, s.size())
	off := 0
	for _, r := range s {
		for _, c := range r.poly.Coeffs {
			for _, v := range c {
				binary.LittleEndian.PutUint64(dst[off:], v)
				off += 8
			}
		}
	}
	return out
}

// encode appends the coefficients in canonical form (reduced modulo their
// prime): some lattigo routines leave shares lazily reduced in [0, 2q), and
// the receivers only accept canonical encodings.
func (s shape) encode(params rlwe.Parameters, out []byte) []byte {
	out, dst := grow(out, s.size())
	off := 0
	for l := range s.levels(params) {
		for _, v := range l.coeffs {
			if v >= l.q {
				v %= l.q
			}
			binary.LittleEndian.PutUint64(dst[off:], v)
			off += 8
		}
	}
	return out
}

// writeTo writes encode's output to w through buf, without materialising
// it: hashing tens of megabytes of keys needs no key-sized buffer.
func (s shape) writeTo(params rlwe.Parameters, w io.Writer, buf []byte) {
	buf = buf[:cap(buf)&^7]
	off := 0
	for l := range s.levels(params) {
		for _, v := range l.coeffs {
			if v >= l.q {
				v %= l.q
			}
			binary.LittleEndian.PutUint64(buf[off:], v)
			if off += 8; off == len(buf) {
				w.Write(buf)
				off = 0
			}
		}
	}
	w.Write(buf[:off])
}

// grow extends b by n bytes, allocating once, and returns the extended slice
// and its last n bytes (the encoders' hot loops write in place: appending
// one coefficient at a time cost a reallocation chain per share).
func grow(b []byte, n int) (out, tail []byte) {
	out = slices.Grow(b, n)[:len(b)+n]
	return out, out[len(b):]
}

func moduliChains(params rlwe.Parameters) (qs, ps []uint64) {
	qs = params.RingQ().ModuliChain()
	if params.RingP() != nil {
		ps = params.RingP().ModuliChain()
	}
	return qs, ps
}

// decode fills the polynomials of s from b, which must have exactly s.size()
// bytes and only reduced coefficients.
func (s shape) decode(params rlwe.Parameters, b []byte) error {
	return s.decodeMode(params, b, true)
}

// decodeLenient is decode that reduces unreduced coefficients instead of
// rejecting them (for ciphertexts and keys produced by other components).
func (s shape) decodeLenient(params rlwe.Parameters, b []byte) error {
	return s.decodeMode(params, b, false)
}

func (s shape) decodeMode(params rlwe.Parameters, b []byte, strict bool) error {
	if want := s.size(); len(b) != want {
		return fmt.Errorf("payload has %d bytes, want %d", len(b), want)
	}
	off := 0
	for l := range s.levels(params) {
		if l.q == 0 {
			return errLevelAboveChain
		}
		for i := range l.coeffs {
			v := binary.LittleEndian.Uint64(b[off:])
			if v >= l.q {
				if strict {
					return fmt.Errorf("coefficient not reduced modulo the %d-th prime", l.index)
				}
				v %= l.q
			}
			l.coeffs[i] = v
			off += 8
		}
	}
	return nil
}

// check validates b as a strict encoding of s (exact length, every
// coefficient reduced) without writing anything.
func (s shape) check(params rlwe.Parameters, b []byte) error {
	if want := s.size(); len(b) != want {
		return fmt.Errorf("payload has %d bytes, want %d", len(b), want)
	}
	off := 0
	for l := range s.levels(params) {
		if l.q == 0 {
			return errLevelAboveChain
		}
		for range l.coeffs {
			if binary.LittleEndian.Uint64(b[off:]) >= l.q {
				return fmt.Errorf("coefficient not reduced modulo the %d-th prime", l.index)
			}
			off += 8
		}
	}
	return nil
}

// addChecked adds the polynomials encoded in b, which check accepted, into
// s coefficient-wise modulo each prime: a share is summed into an aggregate
// straight from its payload, with no share-sized allocation.
func (s shape) addChecked(params rlwe.Parameters, b []byte) {
	off := 0
	for l := range s.levels(params) {
		q, c := l.q, l.coeffs
		for i := range c {
			// x < 2^62 + 2^61: no overflow. Subtract q without a branch
			// (x >= q half of the time: a branch mispredicts).
			x := c[i] + binary.LittleEndian.Uint64(b[off:])
			d := x - q
			x = d + q&uint64(int64(d)>>63)
			if x >= q { // only if the aggregate was lazily reduced
				x %= q
			}
			c[i] = x
			off += 8
		}
	}
}

// addEncoded checks b as an encoding of s and adds it into s.
func (s shape) addEncoded(params rlwe.Parameters, b []byte) error {
	if err := s.check(params, b); err != nil {
		return err
	}
	s.addChecked(params, b)
	return nil
}

func qpPoly(p ringqp.Poly) shape {
	s := shape{}
	if p.Q.Coeffs != nil {
		s = append(s, polyRef{poly: p.Q})
	}
	if p.P.Coeffs != nil {
		s = append(s, polyRef{poly: p.P, isP: true})
	}
	return s
}

func gadgetShape(g *rlwe.GadgetCiphertext) shape {
	s := shape{}
	for i := range g.Value {
		for j := range g.Value[i] {
			for k := range g.Value[i][j] {
				s = append(s, qpPoly(g.Value[i][j][k])...)
			}
		}
	}
	return s
}

func publicKeyShape(pk *rlwe.PublicKey) shape {
	s := shape{}
	for i := range pk.Value {
		s = append(s, qpPoly(pk.Value[i])...)
	}
	return s
}

func elementShape(polys []ring.Poly) shape {
	s := shape{}
	for _, p := range polys {
		s = append(s, polyRef{poly: p})
	}
	return s
}

// decodeGuard turns a panic inside a decoder into an error: decoders are fed
// untrusted bytes and must never take the process down.
func decodeGuard(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("malformed payload: %v", r)
	}
}

// reader is a small bounds-checked cursor over a byte slice.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, a...)
	}
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.fail("truncated payload")
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u8() int {
	b := r.bytes(1)
	if b == nil {
		return 0
	}
	return int(b[0])
}

func (r *reader) u16() int {
	b := r.bytes(2)
	if b == nil {
		return 0
	}
	return int(binary.BigEndian.Uint16(b))
}

func (r *reader) u32() int {
	b := r.bytes(4)
	if b == nil {
		return 0
	}
	return int(binary.BigEndian.Uint32(b))
}

func (r *reader) u64() uint64 {
	b := r.bytes(8)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// str reads a u16-length-prefixed string of at most max bytes.
func (r *reader) str(max int) string {
	n := r.u16()
	if n > max {
		r.fail("string of %d bytes exceeds %d", n, max)
		return ""
	}
	return string(r.bytes(n))
}

// blob reads a u32-length-prefixed byte string of at most max bytes.
func (r *reader) blob(max int) []byte {
	n := r.u32()
	if n > max {
		r.fail("field of %d bytes exceeds %d", n, max)
		return nil
	}
	return r.bytes(n)
}

func (r *reader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	return r.err
}

func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendBlob(b []byte, p []byte) []byte {
	b = slices.Grow(b, 4+len(p))
	b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
	return append(b, p...)
}

// writeShapeBlob writes to h what appendBlob(b, prefix+s.encode(...))
// would append, streaming the coefficients through buf.
func writeShapeBlob(h io.Writer, params rlwe.Parameters, prefix []byte, s shape, buf []byte) {
	h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(prefix)+s.size())))
	h.Write(prefix)
	s.writeTo(params, h, buf)
}

// Limits on identifiers carried in payloads.
const (
	maxIDLen      = 256
	maxGroupSize  = 1024
	maxMetaDataSz = 4096
)

// checkCiphertext checks that ct is a degree-1 ciphertext of params.
func checkCiphertext(params rlwe.Parameters, ct *rlwe.Ciphertext) error {
	if ct == nil || ct.MetaData == nil || len(ct.Value) != 2 {
		return errors.New("ciphertext must have degree 1")
	}
	lvl := ct.Value[0].Level()
	if lvl < 0 || lvl > params.MaxLevelQ() || ct.Value[1].Level() != lvl {
		return errors.New("ciphertext level does not match the parameters")
	}
	for _, p := range ct.Value {
		for _, c := range p.Coeffs {
			if len(c) != params.N() {
				return errors.New("ciphertext ring degree does not match the parameters")
			}
		}
	}
	return nil
}

// encodeCiphertext encodes a degree-1 ciphertext: level, metadata, coefficients.
func encodeCiphertext(ct *rlwe.Ciphertext) ([]byte, error) {
	if ct == nil || ct.MetaData == nil || len(ct.Value) != 2 || ct.Value[0].Level() != ct.Value[1].Level() || ct.Level() > 255 {
		return nil, errors.New("ciphertext must have degree 1")
	}
	meta, err := ct.MetaData.MarshalBinary()
	if err != nil {
		return nil, err
	}
	b := []byte{byte(ct.Level())}
	b = appendBlob(b, meta)
	return elementShape(ct.Value).encodeRaw(b), nil
}

// decodeCiphertext decodes and validates a ciphertext produced by
// encodeCiphertext; all of b must be consumed.
func decodeCiphertext(params rlwe.Parameters, b []byte) (ct *rlwe.Ciphertext, err error) {
	defer decodeGuard(&err)
	r := &reader{b: b}
	level := r.u8()
	meta := r.blob(maxMetaDataSz)
	if r.err != nil {
		return nil, r.err
	}
	if level > params.MaxLevelQ() {
		return nil, fmt.Errorf("ciphertext level %d exceeds the parameters' %d", level, params.MaxLevelQ())
	}
	md := &rlwe.MetaData{}
	if err := md.UnmarshalBinary(meta); err != nil {
		return nil, fmt.Errorf("ciphertext metadata: %w", err)
	}
	if md.LogDimensions.Rows < 0 || md.LogDimensions.Cols < 0 || md.LogDimensions.Rows+md.LogDimensions.Cols > params.LogN() {
		return nil, errors.New("ciphertext metadata: invalid dimensions")
	}
	if s := md.Scale.Float64(); !(s >= 1) || s > 1e300 {
		return nil, errors.New("ciphertext metadata: invalid scale")
	}
	ct = rlwe.NewCiphertext(params, 1, level)
	*ct.MetaData = *md
	if err := elementShape(ct.Value).decodeLenient(params, r.b); err != nil {
		return nil, fmt.Errorf("ciphertext: %w", err)
	}
	return ct, nil
}

func checkPublicKey(params rlwe.Parameters, pk *rlwe.PublicKey) error {
	if pk == nil || len(pk.Value) != 2 {
		return errors.New("public key must have two components")
	}
	for _, v := range pk.Value {
		if err := checkQPShape(params, v); err != nil {
			return fmt.Errorf("public key: %w", err)
		}
	}
	return nil
}

func encodePublicKey(pk *rlwe.PublicKey) ([]byte, error) {
	if pk == nil || len(pk.Value) != 2 {
		return nil, errors.New("public key must have two components")
	}
	return publicKeyShape(pk).encodeRaw(nil), nil
}

func decodePublicKey(params rlwe.Parameters, b []byte) (pk *rlwe.PublicKey, err error) {
	defer decodeGuard(&err)
	pk = rlwe.NewPublicKey(params)
	if err := publicKeyShape(pk).decodeLenient(params, b); err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	return pk, nil
}

// validGaloisElement reports whether g is a Galois element of Z[X]/(X^N+1).
func validGaloisElement(params rlwe.Parameters, g uint64) bool {
	return g&1 == 1 && g < params.RingQ().NthRoot()
}

func encodeGaloisKey(params rlwe.Parameters, gk *rlwe.GaloisKey) []byte {
	b := binary.BigEndian.AppendUint64(nil, gk.GaloisElement)
	return gadgetShape(&gk.GadgetCiphertext).encode(params, b)
}

func decodeGaloisKey(params rlwe.Parameters, b []byte) (gk *rlwe.GaloisKey, err error) {
	defer decodeGuard(&err)
	r := &reader{b: b}
	g := r.u64()
	if r.err != nil {
		return nil, r.err
	}
	if !validGaloisElement(params, g) {
		return nil, fmt.Errorf("invalid Galois element %d", g)
	}
	gk = rlwe.NewGaloisKey(params)
	gk.GaloisElement = g
	gk.NthRoot = params.RingQ().NthRoot()
	if err := gadgetShape(&gk.GadgetCiphertext).decode(params, r.b); err != nil {
		return nil, fmt.Errorf("galois key: %w", err)
	}
	return gk, nil
}
