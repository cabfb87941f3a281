package pki

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealedKey(t *testing.T) {
	caCert, caKey, err := NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := Issue(caCert, caKey, "party-1", RoleParty, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "tls-key.sealed")
	pass := []byte("correct horse")
	if err := WriteSealedKey(path, pass, key, TLSKeyLabel); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("PRIVATE KEY")) || bytes.Contains(raw, key[40:80]) {
		t.Fatal("the sealed key file holds the PEM key in the clear")
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode().Perm())
	}
	got, err := ReadSealedKey(path, pass, TLSKeyLabel)
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("round trip: %v", err)
	}
	for name, c := range map[string]struct {
		pass  string
		label string
	}{
		"wrong passphrase": {"wrong", TLSKeyLabel},
		"wrong label":      {string(pass), CAKeyLabel},
	} {
		_, err := ReadSealedKey(path, []byte(c.pass), c.label)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "cannot open it with the keystore passphrase") {
			t.Errorf("%s: want an error naming %s, got %v", name, path, err)
		}
	}
	plain := filepath.Join(dir, "tls-key.pem")
	if err := os.WriteFile(plain, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSealedKey(plain, pass, TLSKeyLabel); err == nil || !strings.Contains(err.Error(), "unsealed PEM private key") || !strings.Contains(err.Error(), plain) {
		t.Fatalf("plaintext key: %v", err)
	}
	if err := WriteSealedKey(filepath.Join(dir, "x"), pass, []byte("not a key"), TLSKeyLabel); err == nil {
		t.Fatal("sealed something that is not a key")
	}
}
