package keystore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	pass := []byte("correct horse")
	pt := []byte("secret key material")
	s, err := Seal(pass, pt, "identity")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(s, []byte(Magic)) {
		t.Fatal("missing magic")
	}
	got, err := Open(pass, s, "identity")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, pt) {
		t.Fatal("plaintext mismatch")
	}
	if _, err := Open([]byte("wrong"), s, "identity"); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, err := Open(pass, s, "rlwe-share"); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong label: %v", err)
	}
	// tampering with the salt changes the key; with the version, the format check.
	for _, i := range []int{len(Magic) + 1, headerSize - 1, len(s) - 1} {
		b := append([]byte(nil), s...)
		b[i] ^= 1
		if _, err := Open(pass, b, "identity"); err == nil {
			t.Fatalf("tamper at %d accepted", i)
		}
	}
	b := append([]byte(nil), s...)
	b[len(Magic)] = 9
	if _, err := Open(pass, b, "identity"); err == nil || !strings.Contains(err.Error(), "version 9") {
		t.Fatalf("bad version: %v", err)
	}
	if _, err := Open(pass, []byte("garbage"), "identity"); err == nil || !strings.Contains(err.Error(), "magic") {
		t.Fatalf("garbage: %v", err)
	}
	if _, err := Open(pass, s[:headerSize+3], "identity"); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("truncated: %v", err)
	}
	if _, err := Seal(nil, pt, "x"); err == nil {
		t.Fatal("empty passphrase accepted")
	}
	s2, _ := Seal(pass, pt, "identity")
	if bytes.Equal(s, s2) {
		t.Fatal("sealing is deterministic")
	}
}

func TestFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "identity.key")
	if err := WriteFile(p, []byte("pw"), []byte("abc"), "identity"); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	got, err := ReadFile(p, []byte("pw"), "identity")
	if err != nil || string(got) != "abc" {
		t.Fatalf("%q %v", got, err)
	}
	if _, err := ReadFile(p, []byte("nope"), "identity"); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("error should name the file: %v", err)
	}
	// overwrite works and leaves no temporary files
	if err := WriteFile(p, []byte("pw"), []byte("def"), "identity"); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("leftover files: %v", ents)
	}
}

func TestPassphrase(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "p.pass")
	os.WriteFile(f, []byte("  from-file\n"), 0o600)
	t.Setenv("SYNOD_TEST_PASS", "")
	p, err := Passphrase("SYNOD_TEST_PASS", f)
	if err != nil || string(p) != "from-file" {
		t.Fatalf("%q %v", p, err)
	}
	t.Setenv("SYNOD_TEST_PASS", "from-env")
	p, err = Passphrase("SYNOD_TEST_PASS", f)
	if err != nil || string(p) != "from-env" {
		t.Fatalf("%q %v", p, err)
	}
	t.Setenv("SYNOD_TEST_PASS", "")
	_, err = Passphrase("SYNOD_TEST_PASS", filepath.Join(dir, "missing"))
	if err == nil || !strings.Contains(err.Error(), "SYNOD_TEST_PASS") || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("error should name both sources: %v", err)
	}
	_, err = Passphrase("SYNOD_TEST_PASS", "")
	if err == nil || !strings.Contains(err.Error(), "no passphrase file") {
		t.Fatalf("%v", err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	if _, err := Passphrase("", empty); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("%v", err)
	}
}

func FuzzOpen(f *testing.F) {
	s, _ := Seal([]byte("pw"), []byte("hello"), "identity")
	f.Add(s)
	f.Add([]byte(Magic))
	f.Add([]byte(Magic + "\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		pt, err := Open([]byte("pw"), b, "identity")
		if err == nil && !bytes.Equal(b, s) && string(pt) != "hello" {
			// Only authentic ciphertexts may open.
			t.Fatalf("forged input opened: %q", pt)
		}
	})
}

// A Sealer derives its key once and seals many secrets, each of which the
// plain Open reads back; they share the salt but never a nonce.
func TestSealerSealsManyWithOneDerivation(t *testing.T) {
	pass := []byte("correct horse")
	s, err := NewSealer(pass)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	nonces := map[string]bool{}
	for i, secret := range []string{"one", "two", "three"} {
		path := filepath.Join(dir, fmt.Sprint(i))
		if err := s.WriteFile(path, []byte(secret), "label"); err != nil {
			t.Fatal(err)
		}
		got, err := ReadFile(path, pass, "label")
		if err != nil || string(got) != secret {
			t.Fatalf("secret %d: %q, %v", i, got, err)
		}
		if _, err := ReadFile(path, []byte("wrong"), "label"); !errors.Is(err, ErrWrongPassphrase) {
			t.Fatalf("secret %d opened with a wrong passphrase: %v", i, err)
		}
		if _, err := ReadFile(path, pass, "other"); !errors.Is(err, ErrWrongPassphrase) {
			t.Fatalf("secret %d opened under another label: %v", i, err)
		}
		b, _ := os.ReadFile(path)
		nonce := string(b[len(Magic)+1+saltSize : headerSize])
		if nonces[nonce] {
			t.Fatal("nonce reused")
		}
		nonces[nonce] = true
	}
	if _, err := NewSealer(nil); err == nil {
		t.Fatal("sealer with an empty passphrase")
	}
}
