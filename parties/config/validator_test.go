package config

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

const goodValidator = `
id: validator-1
role: validator
consortium: consortium.yaml
keystore:
  passphrase_file: secrets/validator-1.pass
ledger:
  home: v1/chain
  p2p_listen: 127.0.0.1:26656
  rpc_listen: 127.0.0.1:26657
  node_key_file: v1/chain/node_key.sealed
  validator_key_file: v1/chain/validator_key.sealed
`

// A validator-only member's config: its keys resolve and are overridable
// like a party's; a party's keys (gRPC, identity, data, policy) and a
// remote ledger are refused; role is a key like any other.
func TestValidatorConfig(t *testing.T) {
	path := setup(t, goodValidator)
	dir := filepath.Dir(path)
	t.Setenv("SYNOD_LEDGER_RPC_LISTEN", "127.0.0.1:1")
	fs := pflag.NewFlagSet("mpcnode", pflag.ContinueOnError)
	fs.String("log.level", "", "")
	if err := fs.Parse([]string{"--log.level", "debug"}); err != nil {
		t.Fatal(err)
	}
	v, err := LoadParty(path, fs)
	if err != nil {
		t.Fatal(err)
	}
	if v.Role != RoleValidator || v.ID != "validator-1" || v.Ledger.RPCListen != "127.0.0.1:1" || v.Log.Level != "debug" ||
		v.Ledger.Home != filepath.Join(dir, "v1/chain") || v.Keystore.PassphraseFile != filepath.Join(dir, "secrets/validator-1.pass") {
		t.Fatalf("validator config %+v", v)
	}
	for _, c := range []struct {
		name, yaml string
		env        [2]string
		want       []string
	}{
		{"listen", goodValidator + "listen: 127.0.0.1:7401\n", [2]string{}, []string{`"listen"`, "serves no gRPC"}},
		{"identity", goodValidator + "identity: {key_file: x}\n", [2]string{}, []string{`"identity.key_file"`}},
		{"tls by env", goodValidator, [2]string{"SYNOD_TLS_CERT", "x.pem"}, []string{`"tls.cert"`, "SYNOD_TLS_CERT"}},
		{"datasets", goodValidator + "datasets: {patients: {csv: p1/patients.csv}}\n", [2]string{}, []string{`"datasets"`, "holds no data"}},
		{"policy", goodValidator + "policy: {min_cohort: 5}\n", [2]string{}, []string{`"policy"`}},
		{"remote", goodValidator, [2]string{"SYNOD_LEDGER_MODE", "remote"}, []string{"ledger.mode", "embedded"}},
		{"no ledger", strings.Split(goodValidator, "ledger:")[0], [2]string{}, []string{"ledger.home"}},
		{"bad role", strings.Replace(goodValidator, "role: validator", "role: witness", 1), [2]string{}, []string{`"role"`, "witness"}},
		{"party as validator", good, [2]string{"SYNOD_ROLE", "validator"}, []string{`"listen"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.env[0] != "" {
				t.Setenv(c.env[0], c.env[1])
			}
			_, err := LoadParty(setup(t, c.yaml), nil)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
}
