package ledger

import (
	"bytes"
	"strings"
	"testing"

	"go.dedis.ch/kyber/v3"
)

func TestTxEncodeDecodeSign(t *testing.T) {
	m := newMember("p0")
	tx := signedTx(t, m, KindSetup, "consortium-1")
	raw := tx.Encode()
	got, err := DecodeTx(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Encode(), raw) || got.Kind != tx.Kind || got.Nonce != tx.Nonce {
		t.Fatalf("round trip: %+v", got)
	}
	members := map[string]kyber.Point{"p0": m.pub}
	if err := got.Verify(members); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if bytes.Contains(tx.SignBytes(), tx.Signature) || !bytes.HasPrefix(tx.SignBytes(), []byte(signDomain)) {
		t.Fatal("sign bytes must be domain-separated and exclude the signature")
	}
	got.Nonce++
	if err := got.Verify(members); err == nil || !strings.Contains(err.Error(), "signature is not by sender") {
		t.Fatalf("altered tx: %v", err)
	}
	for name, b := range map[string][]byte{
		"empty":     nil,
		"magic":     append([]byte("XYZ\x01"), raw[4:]...),
		"trailing":  append(append([]byte(nil), raw...), 0),
		"truncated": raw[:len(raw)-1],
		"huge":      make([]byte, MaxTxBytes+1),
	} {
		if _, err := DecodeTx(b); err == nil || !strings.HasPrefix(err.Error(), "ledger: decode tx: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzDecodeTx(f *testing.F) {
	m := newMember("p0")
	f.Add(signedTx(f, m, KindReceipt, "s").Encode())
	f.Add([]byte("SYN\x01\x00\x00\x00\x07receipt"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		tx, err := DecodeTx(b)
		if err != nil {
			return
		}
		if !bytes.Equal(tx.Encode(), b) {
			t.Fatalf("decoded tx re-encodes differently")
		}
		if err := tx.Validate(); err != nil {
			t.Fatalf("decoded tx does not validate: %v", err)
		}
	})
}
