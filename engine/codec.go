package engine

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
)

// Ciphertexts and keys arrive from the network, from parties that may be
// faulty. lattigo's UnmarshalBinary trusts its input: a crafted length field
// makes it allocate up to 2^64 elements, a short buffer or a polynomial of
// the wrong size makes later evaluation panic, and coefficients above their
// modulus silently corrupt results. The decoders below therefore walk the
// encoding first, checking every header against the parameter set and every
// coefficient against its modulus, and only then let lattigo decode it, under
// a recover as a last line of defence. Their errors say what was expected and
// what was found, so that a session can abort naming the faulty sender.
//
// lattigo v5 layout (all integers little-endian uint64 unless noted):
//
//	ring.Poly      = rows, then per row: length, length coefficients
//	ringqp.Poly    = ring.Poly over Q, then ring.Poly over P
//	Ciphertext     = uint8 has-metadata, MetaData (fixed-size JSON),
//	                 count, count ring.Poly
//	PublicKey      = count, count ringqp.Poly
//	SecretKey      = one ringqp.Poly

// metaDataSize is the fixed size of an encoded rlwe.MetaData.
var metaDataSize = rlwe.MetaData{}.BinarySize()

// MarshalCiphertext encodes ct for the network (lattigo's binary encoding).
func MarshalCiphertext(ct *rlwe.Ciphertext) ([]byte, error) {
	if ct == nil {
		return nil, errors.New("marshal ciphertext: nil ciphertext")
	}
	b, err := ct.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("marshal ciphertext: %w", err)
	}
	return b, nil
}

// MarshalPublicKey encodes pk for the network.
func MarshalPublicKey(pk *rlwe.PublicKey) ([]byte, error) {
	if pk == nil {
		return nil, errors.New("marshal public key: nil key")
	}
	b, err := pk.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	return b, nil
}

// MarshalSecretKey encodes sk; the caller is responsible for encrypting it at
// rest.
func MarshalSecretKey(sk *rlwe.SecretKey) ([]byte, error) {
	if sk == nil {
		return nil, errors.New("marshal secret key: nil key")
	}
	b, err := sk.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("marshal secret key: %w", err)
	}
	return b, nil
}

// CiphertextBinarySize is the exact size of the encoding of a degree-1
// ciphertext of p at the given level (useful to size transport chunks).
func CiphertextBinarySize(p Parameters, level int) int {
	return 1 + metaDataSize + 8 + 2*polySize(level+1, p.N())
}

// polySize is the encoded size of a ring.Poly with rows rows of n coefficients.
func polySize(rows, n int) int { return 8 + rows*(8+8*n) }

// DecodeCiphertext decodes a degree-1 ciphertext of p received from the
// network. It checks the ring degree, the level (at most p.MaxLevel()), that
// every coefficient is reduced modulo its prime, and the metadata (NTT form,
// slot layout of p, a scale within the modulus); it never panics.
func DecodeCiphertext(p Parameters, b []byte) (*rlwe.Ciphertext, error) {
	if p.N() == 0 {
		return nil, errors.New("decode ciphertext: parameters are not initialised")
	}
	r := &reader{b: b}
	hasMeta, err := r.uint8("metadata flag")
	if err != nil {
		return nil, fmt.Errorf("decode ciphertext: %w", err)
	}
	if hasMeta != 1 {
		return nil, fmt.Errorf("decode ciphertext: metadata flag: expected 1, got %d", hasMeta)
	}
	if err := r.need("metadata", metaDataSize); err != nil {
		return nil, fmt.Errorf("decode ciphertext: %w", err)
	}
	if err := checkMetaDataText(r.b[r.off : r.off+metaDataSize]); err != nil {
		return nil, fmt.Errorf("decode ciphertext: %w", err)
	}
	r.off += metaDataSize
	count, err := r.uint64("polynomial count")
	if err != nil {
		return nil, fmt.Errorf("decode ciphertext: %w", err)
	}
	if count != 2 {
		return nil, fmt.Errorf("decode ciphertext: expected degree 1 (2 polynomials), got %d polynomials", count)
	}
	rows := -1
	for i := range 2 {
		what := fmt.Sprintf("polynomial %d", i)
		got, err := r.poly(what, p.Q(), p.N(), 1, p.MaxLevel()+1)
		if err != nil {
			return nil, fmt.Errorf("decode ciphertext: %w", err)
		}
		if rows >= 0 && got != rows {
			return nil, fmt.Errorf("decode ciphertext: %s: expected level %d like polynomial 0, got level %d", what, rows-1, got-1)
		}
		rows = got
	}
	if err := r.end(); err != nil {
		return nil, fmt.Errorf("decode ciphertext: %w", err)
	}

	ct := new(rlwe.Ciphertext)
	if err := safely(func() error { return ct.UnmarshalBinary(b) }); err != nil {
		return nil, fmt.Errorf("decode ciphertext: %w", err)
	}
	if err := checkCiphertextMetaData(p, ct); err != nil {
		return nil, fmt.Errorf("decode ciphertext: %w", err)
	}
	if err := checkCiphertextShape(p, ct); err != nil {
		return nil, fmt.Errorf("decode ciphertext: %w", err)
	}
	return ct, nil
}

// Metadata is JSON in lattigo v5, and its decoder hands the scale strings to
// big.Float.SetString and big.Float.Int: a scale written "1e99999999" or
// "0x1p+2000000000" would cost seconds of CPU or gigabytes of memory, and an
// unparsable one a nil dereference. checkMetaDataText therefore accepts only
// the exact shape lattigo writes: hexadecimal floats with a three-digit
// exponent at most, and two-digit hexadecimal flags.
var (
	hexFloatText = regexp.MustCompile(`^0x[0-9a-f](\.[0-9a-f]{0,64})?p[+-][0-9]{1,3}$`)
	hexByteText  = regexp.MustCompile(`^0x[0-9a-f]{2}$`)
)

type metaDataText struct {
	PlaintextMetaData struct {
		Scale struct {
			Value string
			Mod   string
		}
		IsBatched     string
		LogDimensions [2]string
	}
	CiphertextMetaData struct {
		IsNTT        string
		IsMontgomery string
	}
}

func checkMetaDataText(b []byte) error {
	var md metaDataText
	if err := json.Unmarshal(b, &md); err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	pt, ct := md.PlaintextMetaData, md.CiphertextMetaData
	for _, f := range []struct{ name, value string }{{"scale", pt.Scale.Value}, {"scale modulus", pt.Scale.Mod}} {
		if !hexFloatText.MatchString(f.value) {
			return fmt.Errorf("metadata: %s: expected a hexadecimal float like 0x1.0p+40, got %.40q", f.name, f.value)
		}
	}
	for _, f := range []struct{ name, value string }{
		{"IsBatched", pt.IsBatched}, {"LogDimensions rows", pt.LogDimensions[0]}, {"LogDimensions columns", pt.LogDimensions[1]},
		{"IsNTT", ct.IsNTT}, {"IsMontgomery", ct.IsMontgomery},
	} {
		if !hexByteText.MatchString(f.value) {
			return fmt.Errorf("metadata: %s: expected a byte like 0x01, got %.40q", f.name, f.value)
		}
	}
	return nil
}

// checkCiphertextMetaData checks the decoded metadata against what hefloat
// ciphertexts of p carry.
func checkCiphertextMetaData(p Parameters, ct *rlwe.Ciphertext) error {
	md := ct.MetaData
	if md == nil {
		return errors.New("metadata missing")
	}
	if !md.IsNTT {
		return errors.New("metadata: expected NTT form, got coefficient form")
	}
	if md.IsMontgomery {
		return errors.New("metadata: expected standard form, got Montgomery form")
	}
	if !md.IsBatched {
		return errors.New("metadata: expected a batched (slot-encoded) ciphertext")
	}
	// Synod always packs the full slot vector.
	if want := p.LogMaxDimensions(); md.LogDimensions != want {
		return fmt.Errorf("metadata: expected log dimensions %v, got %v", want, md.LogDimensions)
	}
	if md.Scale.Mod != nil && md.Scale.Mod.Sign() != 0 {
		return errors.New("metadata: scale has a modulus (integer scheme?), expected a real scale")
	}
	v := &md.Scale.Value
	if v.IsInf() || v.Sign() <= 0 {
		return fmt.Errorf("metadata: scale %v is not a positive finite number", v)
	}
	f, _ := v.Float64()
	if logScale, limit := math.Log2(f), logQAtLevel(p, ct.Level()); !(logScale >= 0 && logScale <= limit) {
		return fmt.Errorf("metadata: scale %.4g outside [1, 2^%.0f] (modulus at level %d)", f, limit, ct.Level())
	}
	return nil
}

// DecodePublicKey decodes a public key of p (collective or an analyst's): two
// components over the full Q and P chains, every coefficient reduced.
func DecodePublicKey(p Parameters, b []byte) (*rlwe.PublicKey, error) {
	if p.N() == 0 {
		return nil, errors.New("decode public key: parameters are not initialised")
	}
	r := &reader{b: b}
	count, err := r.uint64("component count")
	if err != nil {
		return nil, fmt.Errorf("decode public key: %w", err)
	}
	if count != 2 {
		return nil, fmt.Errorf("decode public key: expected 2 components, got %d", count)
	}
	for i := range 2 {
		if err := r.polyQP(fmt.Sprintf("component %d", i), p); err != nil {
			return nil, fmt.Errorf("decode public key: %w", err)
		}
	}
	if err := r.end(); err != nil {
		return nil, fmt.Errorf("decode public key: %w", err)
	}
	pk := new(rlwe.PublicKey)
	if err := safely(func() error { return pk.UnmarshalBinary(b) }); err != nil {
		return nil, fmt.Errorf("decode public key: %w", err)
	}
	return pk, nil
}

// DecodeSecretKey decodes a secret key of p (from the key store; the same
// checks apply since storage can be corrupted).
func DecodeSecretKey(p Parameters, b []byte) (*rlwe.SecretKey, error) {
	if p.N() == 0 {
		return nil, errors.New("decode secret key: parameters are not initialised")
	}
	r := &reader{b: b}
	if err := r.polyQP("key", p); err != nil {
		return nil, fmt.Errorf("decode secret key: %w", err)
	}
	if err := r.end(); err != nil {
		return nil, fmt.Errorf("decode secret key: %w", err)
	}
	sk := new(rlwe.SecretKey)
	if err := safely(func() error { return sk.UnmarshalBinary(b) }); err != nil {
		return nil, fmt.Errorf("decode secret key: %w", err)
	}
	return sk, nil
}

// safely runs a lattigo decoder, turning a panic into an error.
func safely(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed encoding: %v", r)
		}
	}()
	if err := f(); err != nil {
		return fmt.Errorf("malformed encoding: %w", err)
	}
	return nil
}

// reader walks an encoding without allocating, checking every length against
// what remains before trusting it.
type reader struct {
	b   []byte
	off int
}

func (r *reader) need(what string, n int) error {
	if n < 0 || len(r.b)-r.off < n {
		return fmt.Errorf("%s at byte %d: expected %d more bytes, got %d (truncated)", what, r.off, n, len(r.b)-r.off)
	}
	return nil
}

func (r *reader) uint8(what string) (uint8, error) {
	if err := r.need(what, 1); err != nil {
		return 0, err
	}
	v := r.b[r.off]
	r.off++
	return v, nil
}

func (r *reader) uint64(what string) (uint64, error) {
	if err := r.need(what, 8); err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint64(r.b[r.off:])
	r.off += 8
	return v, nil
}

func (r *reader) skip(what string, n int) error {
	if err := r.need(what, n); err != nil {
		return err
	}
	r.off += n
	return nil
}

func (r *reader) end() error {
	if rest := len(r.b) - r.off; rest != 0 {
		return fmt.Errorf("expected %d bytes, got %d (%d trailing)", r.off, len(r.b), rest)
	}
	return nil
}

// poly walks a ring.Poly of between minRows and maxRows rows of n
// coefficients, row i reduced modulo moduli[i]; it returns the row count.
func (r *reader) poly(what string, moduli []uint64, n, minRows, maxRows int) (int, error) {
	rows, err := r.uint64(what + " row count")
	if err != nil {
		return 0, err
	}
	if rows < uint64(minRows) || rows > uint64(maxRows) {
		if minRows == maxRows {
			return 0, fmt.Errorf("%s: expected %d moduli (level %d), got %d", what, maxRows, maxRows-1, rows)
		}
		return 0, fmt.Errorf("%s: expected between %d and %d moduli (level at most %d), got %d", what, minRows, maxRows, maxRows-1, rows)
	}
	for i := range int(rows) {
		length, err := r.uint64(fmt.Sprintf("%s row %d length", what, i))
		if err != nil {
			return 0, err
		}
		if length != uint64(n) {
			return 0, fmt.Errorf("%s row %d: expected ring degree N=%d, got %d", what, i, n, length)
		}
		if err := r.need(fmt.Sprintf("%s row %d coefficients", what, i), 8*n); err != nil {
			return 0, err
		}
		q := moduli[i]
		for j := range n {
			if c := binary.LittleEndian.Uint64(r.b[r.off+8*j:]); c >= q {
				return 0, fmt.Errorf("%s row %d coefficient %d: expected < modulus %d, got %d", what, i, j, q, c)
			}
		}
		r.off += 8 * n
	}
	return int(rows), nil
}

// polyQP walks a ringqp.Poly over the full Q and P chains of p.
func (r *reader) polyQP(what string, p Parameters) error {
	if _, err := r.poly(what+" over Q", p.Q(), p.N(), p.QCount(), p.QCount()); err != nil {
		return err
	}
	if _, err := r.poly(what+" over P", p.P(), p.N(), p.PCount(), p.PCount()); err != nil {
		return err
	}
	return nil
}
