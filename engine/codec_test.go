package engine

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// codecFixture is a valid ciphertext, public key and secret key of ckks-n13
// with their encodings.
type codecFixture struct {
	p             Parameters
	ct            *rlwe.Ciphertext
	ctB, pkB, skB []byte
	ct0B          []byte // a level-0 ciphertext: a smaller fuzzing seed
	ctScaleB      []byte // a level-0 ciphertext with a scale above Q0
	ct14B, pk14B  []byte // ckks-n14 encodings, to decode as ckks-n13
	sk            *rlwe.SecretKey
	values        []float64
}

func newCodecFixture(tb testing.TB) codecFixture {
	tb.Helper()
	p := testParams(tb, "ckks-n13")
	sk, pk := testKeys(tb, p)
	values := []float64{12, 345.5, -6.25}
	ct, err := EncryptVector(p, pk, values)
	if err != nil {
		tb.Fatal(err)
	}
	f := codecFixture{p: p, ct: ct, sk: sk, values: values}
	must := func(b []byte, err error) []byte {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	f.ctB = must(MarshalCiphertext(ct))
	f.pkB = must(MarshalPublicKey(pk))
	f.skB = must(MarshalSecretKey(sk))
	ct0 := ct.CopyNew()
	hefloat.NewEvaluator(p.Parameters, nil).DropLevel(ct0, ct0.Level())
	f.ctScaleB = must(MarshalCiphertext(ct0)) // scale 2^60 above Q0 ~ 2^50
	ct0.Scale = rlwe.NewScale(1 << 40)
	f.ct0B = must(MarshalCiphertext(ct0))

	p14 := testParams(tb, "ckks-n14")
	_, pk14 := testKeys(tb, p14)
	ct14, err := EncryptVector(p14, pk14, values)
	if err != nil {
		tb.Fatal(err)
	}
	f.ct14B = must(MarshalCiphertext(ct14))
	f.pk14B = must(MarshalPublicKey(pk14))
	return f
}

func TestCodecRoundTrip(t *testing.T) {
	f := newCodecFixture(t)
	if got, want := len(f.ctB), CiphertextBinarySize(f.p, f.p.AggregateLevel); got != want {
		t.Fatalf("ciphertext encoding is %d bytes, CiphertextBinarySize says %d", got, want)
	}
	ct, err := DecodeCiphertext(f.p, f.ctB)
	if err != nil {
		t.Fatalf("DecodeCiphertext: %v", err)
	}
	if !ct.Equal(f.ct) {
		t.Fatal("decoded ciphertext differs")
	}
	got, err := DecryptVector(f.p, f.sk, ct, len(f.values))
	if err != nil {
		t.Fatal(err)
	}
	if e := maxAbsError(t, got, f.values); e > 1e-6 {
		t.Fatalf("decoded ciphertext decrypts with error %g", e)
	}
	if _, err := DecodeCiphertext(f.p, f.ct0B); err != nil {
		t.Fatalf("DecodeCiphertext(level 0): %v", err)
	}
	pk, err := DecodePublicKey(f.p, f.pkB)
	if err != nil {
		t.Fatalf("DecodePublicKey: %v", err)
	}
	_, wantPK := testKeys(t, f.p)
	if !pk.Equal(wantPK) {
		t.Fatal("decoded public key differs")
	}
	sk, err := DecodeSecretKey(f.p, f.skB)
	if err != nil {
		t.Fatalf("DecodeSecretKey: %v", err)
	}
	if !sk.Equal(f.sk) {
		t.Fatal("decoded secret key differs")
	}
	// A decoded public key encrypts for the matching secret key.
	ct2, err := EncryptVector(f.p, pk, f.values)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecryptVector(f.p, sk, ct2, len(f.values)); err != nil || maxAbsError(t, got, f.values) > 1e-6 {
		t.Fatalf("decoded keys do not work together: %v %v", got, err)
	}
}

// patch returns a copy of b with the uint64 at off replaced by v.
func patch(b []byte, off int, v uint64) []byte {
	c := bytes.Clone(b)
	binary.LittleEndian.PutUint64(c[off:], v)
	return c
}

func TestDecodeCiphertextRejects(t *testing.T) {
	f := newCodecFixture(t)
	p := f.p
	countOff := 1 + metaDataSize // polynomial count
	rowsOff := countOff + 8      // rows of polynomial 0
	lenOff := rowsOff + 8        // length of row 0
	coeffOff := lenOff + 8       // coefficient 0 of row 0
	poly1 := countOff + 8 + polySize(p.AggregateLevel+1, p.N())
	flag0 := bytes.Clone(f.ctB)
	flag0[0] = 0
	badMeta := bytes.Clone(f.ctB)
	copy(badMeta[1:], "{garbage")
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "metadata flag at byte 0: expected 1 more bytes, got 0"},
		{"no metadata", flag0, "metadata flag: expected 1, got 0"},
		{"truncated metadata", f.ctB[:50], "metadata at byte 1"},
		{"truncated count", f.ctB[:countOff+3], "polynomial count"},
		{"truncated coefficients", f.ctB[:len(f.ctB)-1], "truncated"},
		{"half", f.ctB[:len(f.ctB)/2], "truncated"},
		{"trailing", append(bytes.Clone(f.ctB), 0), "1 trailing"},
		{"degree 2", patch(f.ctB, countOff, 3), "expected degree 1 (2 polynomials), got 3 polynomials"},
		{"huge count", patch(f.ctB, countOff, 1<<62), "got 4611686018427387904 polynomials"},
		{"huge rows", patch(f.ctB, rowsOff, 1<<60), "expected between 1 and 4 moduli"},
		{"zero rows", patch(f.ctB, rowsOff, 0), "expected between 1 and 4 moduli"},
		{"level mismatch", patch(f.ctB, poly1, 2), "polynomial 1: expected level 2 like polynomial 0, got level 1"},
		{"wrong N", patch(f.ctB, lenOff, 1<<14), "expected ring degree N=8192, got 16384"},
		{"huge N", patch(f.ctB, lenOff, 1<<63), "expected ring degree N=8192"},
		{"unreduced", patch(f.ctB, coeffOff, p.Q()[0]), "coefficient 0: expected < modulus"},
		{"all ones", patch(f.ctB, coeffOff, ^uint64(0)), "expected < modulus"},
		{"bad metadata", badMeta, "metadata: invalid character"},
		{"decimal scale", replaceIn(f.ctB, `"0x1.000000000000000000000000000000000000000p+60"`, `"1e99999999"`), "scale: expected a hexadecimal float"},
		{"huge scale modulus", replaceIn(f.ctB, `"0x0.000000000000000000000000000000000000000p+00"`, `"0x1p+2000000000"`), "scale modulus: expected a hexadecimal float"},
		{"bad flag", replaceIn(f.ctB, `"IsNTT":"0x01"`, `"IsNTT":"1e9"`), "IsNTT: expected a byte"},
		{"other parameters", f.ct14B, "expected ring degree N=8192, got 16384"},
		{"public key", f.pkB, "metadata flag: expected 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeCiphertext(p, c.b)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
	if _, err := DecodeCiphertext(Parameters{}, f.ctB); err == nil {
		t.Fatal("zero Parameters accepted")
	}
}

func TestDecodeCiphertextMetaData(t *testing.T) {
	f := newCodecFixture(t)
	mutate := func(change func(*rlwe.Ciphertext)) []byte {
		ct := f.ct.CopyNew()
		change(ct)
		b, err := MarshalCiphertext(ct)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"not NTT", mutate(func(ct *rlwe.Ciphertext) { ct.IsNTT = false }), "expected NTT form"},
		{"Montgomery", mutate(func(ct *rlwe.Ciphertext) { ct.IsMontgomery = true }), "expected standard form"},
		{"zero scale", mutate(func(ct *rlwe.Ciphertext) { ct.Scale = rlwe.NewScale(0) }), "not a positive finite number"},
		{"scale too large", f.ctScaleB, "scale 1.153e+18 outside [1, 2^50] (modulus at level 0)"},
		{"dimensions", mutate(func(ct *rlwe.Ciphertext) { ct.LogDimensions.Cols = 3 }), "expected log dimensions"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeCiphertext(f.p, c.b)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestDecodeKeysReject(t *testing.T) {
	f := newCodecFixture(t)
	p := f.p
	cases := []struct {
		name   string
		decode func(Parameters, []byte) error
		b      []byte
		want   string
	}{
		{"pk empty", decodePK, nil, "component count at byte 0"},
		{"pk truncated", decodePK, f.pkB[:len(f.pkB)-8], "truncated"},
		{"pk trailing", decodePK, append(bytes.Clone(f.pkB), 1, 2), "2 trailing"},
		{"pk count", decodePK, patch(f.pkB, 0, 3), "expected 2 components, got 3"},
		{"pk levels", decodePK, patch(f.pkB, 8, 3), "component 0 over Q: expected 4 moduli (level 3), got 3"},
		{"pk unreduced", decodePK, patch(f.pkB, 24, ^uint64(0)), "expected < modulus"},
		{"pk other parameters", decodePK, f.pk14B, "expected 4 moduli (level 3), got 8"},
		{"pk ciphertext", decodePK, f.ctB, "expected 2 components"},
		{"sk empty", decodeSK, nil, "key over Q row count"},
		{"sk truncated", decodeSK, f.skB[:100], "truncated"},
		{"sk levels", decodeSK, patch(f.skB, 0, 2), "expected 4 moduli"},
		{"sk unreduced", decodeSK, patch(f.skB, 16, ^uint64(0)), "expected < modulus"},
		{"sk public key", decodeSK, f.pkB, "key over Q"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.decode(p, c.b)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func decodePK(p Parameters, b []byte) error { _, err := DecodePublicKey(p, b); return err }
func decodeSK(p Parameters, b []byte) error { _, err := DecodeSecretKey(p, b); return err }

// seedTruncations adds b and truncations of it at the header boundaries and
// at a few points in the coefficients.
func seedTruncations(f *testing.F, b []byte, cuts ...int) {
	f.Add(b)
	for _, c := range cuts {
		if c >= 0 && c < len(b) {
			f.Add(bytes.Clone(b[:c]))
		}
	}
	f.Add(bytes.Clone(b[:len(b)/2]))
	f.Add(bytes.Clone(b[:len(b)-1]))
}

func FuzzDecodeCiphertext(f *testing.F) {
	fx := newCodecFixture(f)
	m := 1 + metaDataSize
	for _, b := range [][]byte{fx.ct0B, fx.ctB} {
		seedTruncations(f, b, 0, 1, 20, m, m+8, m+16, m+24, m+100)
	}
	f.Add(patch(fx.ct0B, m, 1<<62))
	f.Add([]byte{})
	p := fx.p
	f.Fuzz(func(t *testing.T, b []byte) {
		ct, err := DecodeCiphertext(p, b)
		if err != nil {
			if ct != nil {
				t.Fatal("ciphertext returned with an error")
			}
			return
		}
		// Whatever decodes must be usable without panicking.
		if _, err := DecryptVector(p, fx.sk, ct, 4); err != nil {
			t.Fatalf("decoded ciphertext does not decrypt: %v", err)
		}
		if _, err := Sum(p, []*rlwe.Ciphertext{ct, ct}); err != nil {
			t.Fatalf("decoded ciphertext does not add: %v", err)
		}
	})
}

func FuzzDecodePublicKey(f *testing.F) {
	fx := newCodecFixture(f)
	seedTruncations(f, fx.pkB, 0, 7, 8, 16, 24, 32, 1000)
	f.Add(patch(fx.pkB, 8, 1<<40))
	f.Add(fx.ct0B[:200])
	p := fx.p
	f.Fuzz(func(t *testing.T, b []byte) {
		pk, err := DecodePublicKey(p, b)
		if err != nil {
			if pk != nil {
				t.Fatal("key returned with an error")
			}
			return
		}
		if _, err := EncryptVector(p, pk, []float64{1}); err != nil {
			t.Fatalf("decoded key does not encrypt: %v", err)
		}
	})
}

// replaceIn replaces old by new in b, padding new with spaces after the JSON
// value so that the metadata keeps its fixed size.
func replaceIn(b []byte, old, new string) []byte {
	c := bytes.Clone(b)
	i := bytes.Index(c, []byte(old))
	if i < 0 || len(new) > len(old) {
		panic("replaceIn: bad use")
	}
	copy(c[i:], new+strings.Repeat(" ", len(old)-len(new)))
	return c
}
