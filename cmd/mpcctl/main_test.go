package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/synod-mpc/synod/parties/config"
)

// TestAnalystFlags: mpcctl's subcommands take a flag for every analyst
// config key, and the loader applies them over the environment.
func TestAnalystFlags(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"consortium.yaml", "ca.pem", "tls.pem", "tls-key.pem", "other.pem"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "analyst.yaml")
	if err := os.WriteFile(path, []byte(`id: analyst
node: 127.0.0.1:7401
node_id: party-1
consortium: consortium.yaml
tls: {ca: ca.pem, cert: tls.pem, key: tls-key.pem}
identity: {key_file: identity.key}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SYNOD_NODE", "127.0.0.1:7402")
	other := filepath.Join(dir, "other.pem")
	for _, sub := range [][]string{{"parties"}, {"query"}, {"audit", "log"}, {"model", "list"}} {
		root := newRoot()
		cmd, _, err := root.Find(sub)
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.ParseFlags([]string{"--node", "127.0.0.1:7403", "--node-id", "party-3", "--id", "bob", "--data-dir", dir,
			"--consortium", other, "--tls.ca", other, "--tls.cert", other, "--tls.key", other, "--identity.key_file", other,
			"--keystore.passphrase-env", "BOB_PASS", "--keystore.passphrase_file", other}); err != nil {
			t.Fatalf("%v: %v", sub, err)
		}
		a, err := config.LoadAnalyst(path, cmd.Flags())
		if err != nil {
			t.Fatalf("%v: %v", sub, err)
		}
		want := config.Analyst{ID: "bob", Node: "127.0.0.1:7403", NodeID: "party-3", DataDir: dir, Consortium: other,
			TLS: config.TLSFiles{CA: other, Cert: other, Key: other}, Identity: config.IdentityFiles{KeyFile: other},
			Keystore: config.KeystoreSource{PassphraseEnv: "BOB_PASS", PassphraseFile: other}}
		a.DataDir = filepath.Clean(a.DataDir)
		if got := *a; got.ID != want.ID || got.Node != want.Node || got.NodeID != want.NodeID || got.DataDir != want.DataDir ||
			got.Consortium != want.Consortium || got.TLS != want.TLS || got.Identity != want.Identity || got.Keystore != want.Keystore {
			t.Fatalf("%v: got %+v, want %+v", sub, got, want)
		}
	}
}
