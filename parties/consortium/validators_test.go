package consortium

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/synod-mpc/synod/parties/config"
	"github.com/synod-mpc/synod/parties/keystore"
)

// Validator-only members: in the genesis and the consortium file (chain
// fields only), with their sealed chain keys and a config of role
// validator; every chain node has every other as a peer.
func TestInitValidators(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cons")
	if err := Init(InitOptions{Dir: dir, Parties: 2, Threshold: 1, Validators: 2, BasePort: 9100}); err != nil {
		t.Fatal(err)
	}
	c, err := Load(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.PartyIDs(), ","); got != "party-1,party-2" {
		t.Fatalf("parties %s", got)
	}
	vs := c.Validators()
	if len(vs) != 2 || vs[0].ID != "validator-1" || vs[1].ID != "validator-2" {
		t.Fatalf("validators %+v", vs)
	}
	v2 := vs[1]
	if v2.Role != RoleValidator || v2.Address != "" || v2.IdentityKey != "" || v2.CertFingerprint != "" ||
		v2.P2PAddress != "127.0.0.1:9203" || v2.RPCAddress != "127.0.0.1:9303" || len(v2.NodeID) != 40 {
		t.Fatalf("validator-2 %+v", v2)
	}
	if got := strings.Join(c.RPCAddresses(), ","); got != "127.0.0.1:9300,127.0.0.1:9301,127.0.0.1:9302,127.0.0.1:9303" {
		t.Fatalf("rpc addresses %s", got)
	}
	var gen struct {
		Validators []struct {
			Name  string `json:"name"`
			Power string `json:"power"`
		} `json:"validators"`
	}
	if err := json.Unmarshal([]byte(c.Chain.Genesis), &gen); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range gen.Validators {
		names = append(names, v.Name+"="+v.Power)
	}
	if got := strings.Join(names, ","); got != "party-1=10,party-2=10,validator-1=10,validator-2=10" {
		t.Fatalf("genesis validators %s", got)
	}

	v, err := config.LoadParty(filepath.Join(dir, "validator-1.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.Role != config.RoleValidator || v.ID != "validator-1" || v.Listen != "" || v.Identity.KeyFile != "" || v.TLS.Cert != "" ||
		v.Ledger.Mode != "embedded" || v.Ledger.P2PListen != "127.0.0.1:9202" || v.Ledger.RPCListen != "127.0.0.1:9302" {
		t.Fatalf("validator config %+v", v)
	}
	pass, err := keystore.Passphrase("", v.Keystore.PassphraseFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keystore.ReadFile(v.Ledger.NodeKeyFile, pass, NodeKeyLabel); err != nil {
		t.Fatal(err)
	}
	if _, err := keystore.ReadFile(v.Ledger.ValidatorKeyFile, pass, ValidatorKeyLabel); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(v.Ledger.ValidatorKeyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("validator key file: %v %v", st, err)
	}
	p, err := config.LoadParty(filepath.Join(dir, "party-1.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Role != config.RoleParty {
		t.Fatalf("party role %q", p.Role)
	}
	for _, peer := range []string{vs[0].NodeID + "@" + vs[0].P2PAddress, v2.NodeID + "@" + v2.P2PAddress} {
		if !strings.Contains(p.Ledger.Peers, peer) || !strings.Contains(v.Ledger.Peers, c.Parties()[0].NodeID+"@") {
			t.Fatalf("peers: party-1 %s, validator-1 %s", p.Ledger.Peers, v.Ledger.Peers)
		}
	}
	if strings.Contains(v.Ledger.Peers, vs[0].NodeID) {
		t.Fatalf("validator-1 is its own peer: %s", v.Ledger.Peers)
	}

	// A validator member with a party's fields, or without chain fields, is
	// refused; so are a negative count and an analyst named like a validator.
	for name, mutate := range map[string]func(m *Member){
		"identity key": func(m *Member) { m.IdentityKey = c.Parties()[0].IdentityKey },
		"address":      func(m *Member) { m.Address = "127.0.0.1:1" },
		"node id":      func(m *Member) { m.NodeID = "xyz" },
		"rpc address":  func(m *Member) { m.RPCAddress = "nowhere" },
	} {
		cc := *c
		cc.Members = append([]Member(nil), c.Members...)
		for i := range cc.Members {
			if cc.Members[i].ID == "validator-2" {
				mutate(&cc.Members[i])
			}
		}
		if err := cc.Validate(); err == nil || !strings.Contains(err.Error(), `member "validator-2"`) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, o := range []InitOptions{
		{Dir: t.TempDir(), Parties: 2, Threshold: 1, Validators: -1},
		{Dir: t.TempDir(), Parties: 2, Threshold: 1, Validators: 1, Analysts: []string{"validator-1"}},
		{Dir: t.TempDir(), Parties: 60, Threshold: 1, Validators: 41},
	} {
		if err := Init(o); err == nil {
			t.Errorf("Init(%+v) accepted", o)
		}
	}
}
