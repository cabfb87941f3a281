package transport

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/synod-mpc/synod/parties/config"
	"github.com/synod-mpc/synod/parties/pki"
)

// TestLoadCredentialsSealed: the TLS key is read sealed and opened with the
// member's passphrase; a wrong passphrase or a plaintext key is refused
// naming the file.
func TestLoadCredentialsSealed(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey, err := pki.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := pki.Issue(caCert, caKey, "party-1", pki.RoleParty, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	files := config.TLSFiles{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "tls.pem"), Key: filepath.Join(dir, "tls-key.sealed")}
	os.WriteFile(files.CA, caCert, 0o644)
	os.WriteFile(files.Cert, cert, 0o644)
	pass := []byte("s3cret")
	if err := pki.WriteSealedKey(files.Key, pass, key, pki.TLSKeyLabel); err != nil {
		t.Fatal(err)
	}
	c, err := LoadCredentials(files, pass)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Key, key) || !bytes.Equal(c.Cert, cert) || !bytes.Equal(c.CA, caCert) {
		t.Fatal("credentials differ from the files")
	}
	if _, err := pki.ServerTLSConfig(c.CA, c.Cert, c.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCredentials(files, []byte("wrong")); err == nil || !strings.Contains(err.Error(), files.Key) || !strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("wrong passphrase: %v", err)
	}
	os.WriteFile(files.Key, key, 0o600)
	if _, err := LoadCredentials(files, pass); err == nil || !strings.Contains(err.Error(), files.Key) || !strings.Contains(err.Error(), "unsealed") {
		t.Fatalf("plaintext key: %v", err)
	}
}
