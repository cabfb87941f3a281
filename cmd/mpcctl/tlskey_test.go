package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/synod-mpc/synod/parties/pki"
)

func TestExportTLSKey(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey, err := pki.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := pki.Issue(caCert, caKey, "analyst", pki.RoleAnalyst, nil)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", caCert)
	write("tls.pem", cert)
	write("consortium.yaml", []byte("x"))
	write("analyst.pass", []byte("pass-phrase\n"))
	if err := pki.WriteSealedKey(filepath.Join(dir, "tls-key.sealed"), []byte("pass-phrase"), key, pki.TLSKeyLabel); err != nil {
		t.Fatal(err)
	}
	write("analyst.yaml", []byte(`id: analyst
node: 127.0.0.1:7401
node_id: party-1
consortium: consortium.yaml
tls: {ca: ca.pem, cert: tls.pem, key: tls-key.sealed}
identity: {key_file: identity.key}
keystore: {passphrase_env: "", passphrase_file: analyst.pass}
`))
	run := func(args ...string) error {
		root := newRoot()
		root.SetArgs(append([]string{"--config", filepath.Join(dir, "analyst.yaml")}, args...))
		return root.Execute()
	}
	out := filepath.Join(dir, "key.pem")
	if err := run("export-tls-key", "--out", out); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("exported key differs: %v", err)
	}
	if st, _ := os.Stat(out); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode().Perm())
	}
	if err := run("export-tls-key", "--out", out); err == nil {
		t.Fatal("overwrote an existing file")
	}
	// a wrong passphrase names the key file
	write("analyst.pass", []byte("wrong\n"))
	err = run("export-tls-key", "--out", filepath.Join(dir, "other.pem"))
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "tls-key.sealed")) {
		t.Fatalf("wrong passphrase: %v", err)
	}
}
