package consortium

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/synod-mpc/synod/parties/config"
	"github.com/synod-mpc/synod/parties/identity"
	"github.com/synod-mpc/synod/parties/keystore"
	"github.com/synod-mpc/synod/parties/pki"
	"github.com/synod-mpc/synod/parties/schema"
)

func TestInitAndLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cons")
	csv := filepath.Join(t.TempDir(), "p2.csv")
	os.WriteFile(csv, []byte("a\n1\n"), 0o644)
	err := Init(InitOptions{Dir: dir, Parties: 3, Threshold: 2, Datasets: map[string]map[string]string{"patients": {"party-2": csv}}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if c.Threshold != 2 || c.Parameters != "ckks-n14" || c.Name != "synod" {
		t.Fatalf("%+v", c)
	}
	if got := strings.Join(c.PartyIDs(), ","); got != "party-1,party-2,party-3" {
		t.Fatalf("party ids %s", got)
	}
	if as := c.Analysts(); len(as) != 1 || as[0].ID != "analyst" || as[0].Address != "" {
		t.Fatalf("analysts %+v", as)
	}
	if m, ok := c.Member("party-3"); !ok || m.Address != "127.0.0.1:7403" || m.Role != pki.RoleParty {
		t.Fatalf("party-3 %+v", m)
	}
	for _, f := range []string{CAKeyFile, CAPassFile, "secrets/party-1.pass", "party-1/tls-key.sealed", "party-1/identity.key", "analyst/tls-key.sealed"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", f, st.Mode().Perm())
		}
	}
	// no private key is on disk in the clear: the CA key opens with the CA
	// passphrase, each member's TLS key with the member's
	if err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if bytes.Contains(b, []byte("PRIVATE KEY")) {
			t.Errorf("%s holds a PEM private key in the clear", path)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	caPass, err := keystore.Passphrase("", filepath.Join(dir, CAPassFile))
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := pki.ReadSealedKey(filepath.Join(dir, CAKeyFile), caPass, pki.CAKeyLabel)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := pki.Issue([]byte(c.CACert), caKey, "party-9", pki.RoleParty, nil); err != nil {
		t.Fatalf("the unsealed CA key does not issue: %v", err)
	}

	// Each party's config loads, its identity opens with its passphrase and
	// matches the consortium, and its certificate matches the fingerprint.
	for _, id := range c.PartyIDs() {
		p, err := config.LoadParty(filepath.Join(dir, id+".yaml"), nil)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := c.Member(id)
		if p.ID != id || p.Listen != m.Address || p.DataDir != filepath.Join(dir, id, "data") {
			t.Fatalf("config %+v", p)
		}
		t.Setenv("SYNOD_PASSPHRASE", "")
		pass, err := keystore.Passphrase(p.Keystore.PassphraseEnv, p.Keystore.PassphraseFile)
		if err != nil {
			t.Fatal(err)
		}
		sec, err := keystore.ReadFile(p.Identity.KeyFile, pass, IdentityLabel)
		if err != nil {
			t.Fatal(err)
		}
		ident, err := identity.UnmarshalIdentity(id, sec)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := c.IdentityKey(id)
		if err != nil || !pub.Equal(ident.Public) {
			t.Fatalf("identity key mismatch for %s: %v", id, err)
		}
		certPEM, _ := os.ReadFile(p.TLS.Cert)
		cert, _ := pki.ParseCertificatePEM(certPEM)
		if err := c.CheckCertificate(id, cert); err != nil {
			t.Fatal(err)
		}
		if other := c.PartyIDs()[0]; other != id {
			if err := c.CheckCertificate(other, cert); err == nil {
				t.Fatal("certificate accepted for another member")
			}
		}
		keyPEM, err := pki.ReadSealedKey(p.TLS.Key, pass, pki.TLSKeyLabel)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pki.ReadSealedKey(p.TLS.Key, caPass, pki.TLSKeyLabel); err == nil {
			t.Fatalf("%s: TLS key opens with the CA passphrase", id)
		}
		caPEM, _ := os.ReadFile(p.TLS.CA)
		if _, err := pki.ServerTLSConfig(caPEM, certPEM, keyPEM); err != nil {
			t.Fatal(err)
		}
		if p.Schema != filepath.Join(dir, SchemaFile) {
			t.Fatalf("%s: schema %q, want the consortium's copy", id, p.Schema)
		}
		if id == "party-2" {
			if got := p.Datasets["patients"].CSV; got != csv {
				t.Fatalf("dataset path %q, want %q", got, csv)
			}
		} else if len(p.Datasets) != 0 {
			t.Fatalf("%s has datasets %v", id, p.Datasets)
		}
	}
	// the consortium's schema is the shipped one
	sch, err := schema.Load(filepath.Join(dir, SchemaFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sch.Column("patients", "systolic_bp"); !ok {
		t.Fatalf("schema %v", sch.Names())
	}
	a, err := config.LoadAnalyst(filepath.Join(dir, "analyst.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Node != "127.0.0.1:7401" || a.NodeID != "party-1" {
		t.Fatalf("analyst %+v", a)
	}
	if err := Init(InitOptions{Dir: dir, Parties: 3, Threshold: 2}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("overwrite: %v", err)
	}

	// Save and reload.
	out := filepath.Join(t.TempDir(), "c.yaml")
	if err := c.Save(out); err != nil {
		t.Fatal(err)
	}
	if c2, err := Load(out); err != nil || len(c2.Members) != 4 {
		t.Fatalf("%v %v", c2, err)
	}
}

func TestInitOptionsErrors(t *testing.T) {
	dir := t.TempDir()
	for _, o := range []InitOptions{
		{Dir: dir, Parties: 0, Threshold: 1},
		{Dir: dir, Parties: 1, Threshold: 1},
		{Dir: dir, Parties: 3, Threshold: 2, Parameters: "ckks-n12"},
		{Dir: dir, Parties: 3, Threshold: 4},
		{Dir: dir, Parties: 3, Threshold: 0},
		{Dir: dir, Parties: 2, Threshold: 1, Analysts: []string{"party-1"}},
		{Dir: dir, Parties: 2, Threshold: 1, Datasets: map[string]map[string]string{"d": {"party-9": "x.csv"}}},
		{Parties: 2, Threshold: 1},
	} {
		if err := Init(o); err == nil {
			t.Errorf("Init(%+v) accepted", o)
		}
	}
}

// A custom schema is copied; a dataset it does not declare, or an invalid
// schema, is refused before anything is written.
func TestInitSchema(t *testing.T) {
	own := filepath.Join(t.TempDir(), "own.yaml")
	os.WriteFile(own, []byte("datasets:\n  visits:\n    columns:\n      - {name: length, type: integer, min: 0, max: 90}\n"), 0o644)
	csv := filepath.Join(t.TempDir(), "v.csv")
	os.WriteFile(csv, []byte("length\n3\n"), 0o644)
	for _, c := range []struct {
		opts InitOptions
		want string
	}{
		{InitOptions{Parties: 2, Threshold: 1, Datasets: map[string]map[string]string{"visits": {"party-1": csv}}}, `dataset "visits" is not in the schema (shipped configs/schema.yaml) (datasets: patients)`},
		{InitOptions{Parties: 2, Threshold: 1, Schema: own, Datasets: map[string]map[string]string{"patients": {"party-1": csv}}}, `dataset "patients" is not in the schema`},
		{InitOptions{Parties: 2, Threshold: 1, Schema: csv}, "not valid YAML"},
		{InitOptions{Parties: 2, Threshold: 1, Schema: own + ".absent"}, "own.yaml.absent"},
	} {
		c.opts.Dir = t.TempDir()
		err := Init(c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want an error containing %q, got %v", c.want, err)
		}
		if _, serr := os.Stat(filepath.Join(c.opts.Dir, FileName)); serr == nil {
			t.Errorf("a refused init wrote %s", FileName)
		}
	}
	dir := t.TempDir()
	if err := Init(InitOptions{Dir: dir, Parties: 2, Threshold: 1, Schema: own, Datasets: map[string]map[string]string{"visits": {"party-1": csv, "party-2": csv}}}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, SchemaFile))
	want, _ := os.ReadFile(own)
	if string(got) != string(want) {
		t.Fatalf("schema copy %q", got)
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	if err := Init(InitOptions{Dir: dir, Parties: 3, Threshold: 2, BasePort: 9000, Host: "10.0.0.1", Analysts: []string{"alice", "bob"}}); err != nil {
		t.Fatal(err)
	}
	base, err := Load(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := base.Member("party-2"); m.Address != "10.0.0.1:9001" {
		t.Fatalf("address %q", m.Address)
	}
	clone := func() *Consortium {
		c := *base
		c.Members = append([]Member(nil), base.Members...)
		return &c
	}
	idx := func(c *Consortium, id string) int {
		for i, m := range c.Members {
			if m.ID == id {
				return i
			}
		}
		t.Fatalf("no %s", id)
		return -1
	}
	cases := []struct {
		name   string
		mutate func(c *Consortium)
		want   []string
	}{
		{"threshold zero", func(c *Consortium) { c.Threshold = 0 }, []string{"threshold", "<= 3"}},
		{"threshold too big", func(c *Consortium) { c.Threshold = 4 }, []string{"threshold: 4"}},
		{"duplicate id", func(c *Consortium) { c.Members[idx(c, "party-2")].ID = "party-1" }, []string{`member "party-1"`, "duplicate"}},
		{"bad address", func(c *Consortium) { c.Members[idx(c, "party-2")].Address = "nowhere" }, []string{`member "party-2"`, "address"}},
		{"same address", func(c *Consortium) { c.Members[idx(c, "party-2")].Address = "10.0.0.1:9000" }, []string{`member "party-2"`, "already used by \"party-1\""}},
		{"analyst address", func(c *Consortium) { c.Members[idx(c, "bob")].Address = "1.2.3.4:5" }, []string{`member "bob"`, "address"}},
		{"bad key", func(c *Consortium) { c.Members[idx(c, "party-3")].IdentityKey = "abcd" }, []string{`member "party-3"`, "identity_key"}},
		{"same key", func(c *Consortium) {
			c.Members[idx(c, "party-3")].IdentityKey = c.Members[idx(c, "alice")].IdentityKey
		}, []string{"identity_key", "same key"}},
		{"bad role", func(c *Consortium) { c.Members[idx(c, "alice")].Role = "admin" }, []string{`member "alice"`, "role", "admin"}},
		{"bad fingerprint", func(c *Consortium) { c.Members[idx(c, "alice")].CertFingerprint = "xyz" }, []string{`member "alice"`, "cert_fingerprint"}},
		{"empty id", func(c *Consortium) { c.Members[0].ID = "" }, []string{"member 1", "id"}},
		{"bad CA", func(c *Consortium) { c.CACert = "junk" }, []string{"ca_cert"}},
	}
	for _, cs := range cases {
		t.Run(cs.name, func(t *testing.T) {
			c := clone()
			cs.mutate(c)
			err := c.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range cs.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// Unknown keys in the file are rejected.
	b, _ := os.ReadFile(filepath.Join(dir, FileName))
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, append(b, []byte("colour: blue\n")...), 0o644)
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "colour") || !strings.Contains(err.Error(), "bad.yaml") {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := base.IdentityKey("nobody"); err == nil || !strings.Contains(err.Error(), "nobody") {
		t.Fatalf("%v", err)
	}
}
