package identity

import (
	"bytes"
	"strings"
	"testing"
)

func TestSignVerify(t *testing.T) {
	id, err := Generate("party-1")
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("hello consortium")
	sig, err := id.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(id.Public, msg, sig); err != nil {
		t.Fatalf("valid signature rejected: %v", err)
	}
	if err := Verify(id.Public, []byte("other"), sig); err == nil {
		t.Fatal("signature accepted for another message")
	}
	other, _ := Generate("party-2")
	if err := Verify(other.Public, msg, sig); err == nil {
		t.Fatal("signature accepted under another key")
	}
	bad := append([]byte(nil), sig...)
	bad[len(bad)-1] ^= 1
	if err := Verify(id.Public, msg, bad); err == nil {
		t.Fatal("tampered signature accepted")
	}
	if err := Verify(id.Public, msg, sig[:10]); err == nil {
		t.Fatal("short signature accepted")
	}
}

func TestEncodeDecodePublic(t *testing.T) {
	id, _ := Generate("a")
	s := EncodePublic(id.Public)
	if len(s) != 64 {
		t.Fatalf("encoded length %d", len(s))
	}
	p, err := DecodePublic(s)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Equal(id.Public) {
		t.Fatal("round trip mismatch")
	}
	cases := map[string]string{
		"zz":                     "not hex",
		"abcd":                   "2 bytes, want 32",
		s + "00":                 "33 bytes",
		strings.Repeat("00", 32): "", // any error
		// identity element (small order)
		"01" + strings.Repeat("00", 31): "small order",
	}
	for in, want := range cases {
		_, err := DecodePublic(in)
		if err == nil {
			t.Errorf("DecodePublic(%q) accepted", in)
			continue
		}
		if want != "" && !strings.Contains(err.Error(), want) {
			t.Errorf("DecodePublic(%q) = %v, want mention of %q", in, err, want)
		}
	}
	// y = 2 is not on the curve
	if _, err := DecodePublic("02" + strings.Repeat("00", 31)); err == nil {
		t.Error("invalid point accepted")
	}
}

func TestMarshalSecret(t *testing.T) {
	id, _ := Generate("p")
	b, err := id.MarshalSecret()
	if err != nil {
		t.Fatal(err)
	}
	id2, err := UnmarshalIdentity("p", b)
	if err != nil {
		t.Fatal(err)
	}
	if !id2.Public.Equal(id.Public) || !id2.Secret.Equal(id.Secret) || id2.ID != "p" {
		t.Fatal("round trip mismatch")
	}
	if _, err := UnmarshalIdentity("p", b[:31]); err == nil || !strings.Contains(err.Error(), "31 bytes") {
		t.Fatalf("short secret: %v", err)
	}
	if _, err := UnmarshalIdentity("p", make([]byte, 32)); err == nil {
		t.Fatal("zero secret accepted")
	}
	if _, err := UnmarshalIdentity("p", bytes.Repeat([]byte{0xff}, 32)); err == nil {
		t.Fatal("non-canonical scalar accepted")
	}
	if _, err := UnmarshalIdentity("", b); err == nil {
		t.Fatal("empty id accepted")
	}
}
