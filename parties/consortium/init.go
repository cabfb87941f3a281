package consortium

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/synod-mpc/synod/configs"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/ledger"
	"github.com/synod-mpc/synod/parties/config"
	"github.com/synod-mpc/synod/parties/identity"
	"github.com/synod-mpc/synod/parties/keystore"
	"github.com/synod-mpc/synod/parties/pki"
	"github.com/synod-mpc/synod/parties/schema"
)

// File names written by Init, relative to InitOptions.Dir.
const (
	FileName       = "consortium.yaml"
	SchemaFile     = "schema.yaml"
	CACertFile     = "ca.pem"
	SecretsDir     = "secrets"
	CAKeyFile      = "secrets/ca-key.sealed" // sealed with the passphrase in CAPassFile, label pki.CAKeyLabel
	CAPassFile     = "secrets/ca.pass"
	IdentityLabel  = "identity" // keystore label of identity keys
	DefaultName    = "synod"
	DefaultHost    = "127.0.0.1"
	DefaultPort    = 7401
	DefaultAnalyst = "analyst"
)

// InitOptions describes a consortium to create with Init.
type InitOptions struct {
	Dir       string
	Name      string // consortium name; default "synod"
	Parties   int
	Threshold int
	// Validators is the number of validator-only members ("validator-1"
	// ...): each runs a validator of the consortium chain and nothing else
	// (no data, no key share, no part in setup or queries), so that the
	// chain tolerates more faults than the parties alone give it.
	Validators int
	Host       string // default 127.0.0.1
	// BasePort defaults to 7401: party i listens on BasePort+i-1, its chain
	// p2p on BasePort+100+i-1, its chain RPC on BasePort+200+i-1; validator
	// k has the chain ports of "party" Parties+k.
	BasePort int
	Analysts []string
	// Parameters names the engine parameter set; default "ckks-n14".
	Parameters string
	// Datasets maps dataset name -> party id -> CSV path written into that
	// party's config. A relative path is taken relative to the working
	// directory and written relative to Dir. May be nil.
	Datasets map[string]map[string]string
	// FastBlocks makes the chain commit blocks as fast as loopback allows
	// (tests and demos on one machine).
	FastBlocks bool
	// Schema is the consortium schema file copied to Dir/schema.yaml, which
	// every party config names (key schema); default: the shipped
	// configs/schema.yaml. Every dataset in Datasets must be in it.
	Schema string
}

// Init creates a complete consortium in opts.Dir:
//
//	ca.pem, secrets/ca-key.sealed, secrets/ca.pass (0600)
//	consortium.yaml, schema.yaml
//	party-i.yaml, party-i/{tls.pem, tls-key.sealed, identity.key, data/}, secrets/party-i.pass
//	<analyst>.yaml, <analyst>/{tls.pem, tls-key.sealed, identity.key, data/}, secrets/<analyst>.pass
//	validator-k.yaml, validator-k/chain/{node_key.sealed, validator_key.sealed}, secrets/validator-k.pass
//
// Party i is "party-i" listening on Host:BasePort+i-1; an analyst's config
// points at party-1. Every party and every validator-only member is a
// validator of the chain, with equal power. Identity keys are sealed with
// keystore under label "identity" (chain keys under their own labels) and a
// random passphrase stored in the secrets directory. Paths
// inside the configs are relative to the config files. Init refuses to
// overwrite an existing consortium.yaml.
func Init(opts InitOptions) error {
	if opts.Dir == "" {
		return errors.New("consortium init: no directory given")
	}
	if opts.Parties < 2 {
		return fmt.Errorf("consortium init: parties: %d, want at least 2 (a consortium of one has nobody to compute with)", opts.Parties)
	}
	if opts.Threshold < 1 || opts.Threshold > opts.Parties {
		return fmt.Errorf("consortium init: threshold: %d, want 1 <= threshold <= %d (the number of parties)", opts.Threshold, opts.Parties)
	}
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	if opts.Host == "" {
		opts.Host = DefaultHost
	}
	if opts.BasePort == 0 {
		opts.BasePort = DefaultPort
	}
	if opts.Validators < 0 {
		return fmt.Errorf("consortium init: validators: %d, want 0 or more", opts.Validators)
	}
	nodes := opts.Parties + opts.Validators
	if opts.BasePort < 1 || opts.BasePort+ChainRPCPortOffset+nodes-1 > 65535 {
		return fmt.Errorf("consortium init: base port %d: ports %d-%d out of range", opts.BasePort, opts.BasePort, opts.BasePort+ChainRPCPortOffset+nodes-1)
	}
	if nodes > ChainP2PPortOffset {
		return fmt.Errorf("consortium init: at most %d parties and validators on one host", ChainP2PPortOffset)
	}
	if opts.Analysts == nil {
		opts.Analysts = []string{DefaultAnalyst}
	}
	if opts.Parameters == "" {
		opts.Parameters = DefaultParameters
	}
	if _, err := engine.ParametersByName(opts.Parameters); err != nil {
		return fmt.Errorf("consortium init: --parameters %q: %w (known: %s)", opts.Parameters, err, strings.Join(engine.ParameterNames(), ", "))
	}
	partyIDs := make([]string, opts.Parties)
	isParty := map[string]bool{}
	for i := range partyIDs {
		partyIDs[i] = "party-" + strconv.Itoa(i+1)
		isParty[partyIDs[i]] = true
	}
	validatorIDs := make([]string, opts.Validators)
	isValidator := map[string]bool{}
	for k := range validatorIDs {
		validatorIDs[k] = "validator-" + strconv.Itoa(k+1)
		isValidator[validatorIDs[k]] = true
	}
	seen := map[string]bool{}
	for _, a := range opts.Analysts {
		if err := pki.ValidID(a); err != nil {
			return fmt.Errorf("consortium init: analyst: %w", err)
		}
		if isParty[a] || isValidator[a] || seen[a] || a == SecretsDir {
			return fmt.Errorf("consortium init: analyst %q: name already used", a)
		}
		seen[a] = true
	}
	for ds, byParty := range opts.Datasets {
		for pid := range byParty {
			if !isParty[pid] {
				return fmt.Errorf("consortium init: dataset %q: no party %q (parties are party-1..party-%d)", ds, pid, opts.Parties)
			}
		}
	}
	schemaBytes := configs.Schema
	if opts.Schema != "" {
		var err error
		if schemaBytes, err = os.ReadFile(opts.Schema); err != nil {
			return fmt.Errorf("consortium init: schema: %w", err)
		}
	}
	sch, err := schema.Parse(schemaBytes)
	if err != nil {
		return fmt.Errorf("consortium init: schema %s: %w", cmp.Or(opts.Schema, "(shipped configs/schema.yaml)"), err)
	}
	for ds := range opts.Datasets {
		if _, ok := sch.Dataset(ds); !ok {
			return fmt.Errorf("consortium init: dataset %q is not in the schema %s (datasets: %s); give a schema that declares it", ds,
				cmp.Or(opts.Schema, "(shipped configs/schema.yaml)"), strings.Join(sch.Names(), ", "))
		}
	}
	absDir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return fmt.Errorf("consortium init: %w", err)
	}
	consPath := filepath.Join(opts.Dir, FileName)
	if _, err := os.Stat(consPath); err == nil {
		return fmt.Errorf("consortium init: %s already exists; refusing to overwrite it", consPath)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("consortium init: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(opts.Dir, SecretsDir), 0o700); err != nil {
		return fmt.Errorf("consortium init: %w", err)
	}

	caCert, caKey, err := pki.NewCA(opts.Name)
	if err != nil {
		return fmt.Errorf("consortium init: %w", err)
	}
	if err := writeFile(filepath.Join(opts.Dir, SchemaFile), schemaBytes, 0o644); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(opts.Dir, CACertFile), caCert, 0o644); err != nil {
		return err
	}
	// the CA key is sealed with a passphrase of its own (the consortium
	// operator's), like every member's keys with the member's
	caPass, err := writePassphrase(filepath.Join(opts.Dir, CAPassFile))
	if err != nil {
		return fmt.Errorf("consortium init: CA: %w", err)
	}
	if err := pki.WriteSealedKey(filepath.Join(opts.Dir, CAKeyFile), caPass, caKey, pki.CAKeyLabel); err != nil {
		return fmt.Errorf("consortium init: CA: %w", err)
	}

	c := &Consortium{Name: opts.Name, Threshold: opts.Threshold, Parameters: opts.Parameters, CACert: string(caCert)}
	addr := func(i int) string { return net.JoinHostPort(opts.Host, strconv.Itoa(opts.BasePort+i)) }
	p2pAddr := func(i int) string {
		return net.JoinHostPort(opts.Host, strconv.Itoa(opts.BasePort+ChainP2PPortOffset+i))
	}
	rpcAddr := func(i int) string {
		return net.JoinHostPort(opts.Host, strconv.Itoa(opts.BasePort+ChainRPCPortOffset+i))
	}

	// Every party and every validator-only member is a validator of the
	// consortium chain, with equal power. Chain node j (parties first) has
	// the chain ports of index j.
	chainIDs := append(slices.Clone(partyIDs), validatorIDs...)
	validators := map[string]ledger.ValidatorFiles{}
	for _, id := range chainIDs {
		v, err := ledger.GenerateValidator()
		if err != nil {
			return fmt.Errorf("consortium init: %s: %w", id, err)
		}
		validators[id] = v
	}
	chainID := opts.Name + "-chain"
	genesis, err := ledger.Genesis(chainID, validators)
	if err != nil {
		return fmt.Errorf("consortium init: %w", err)
	}
	c.Chain = &Chain{ID: chainID, Genesis: string(genesis)}

	// Members are created concurrently: sealing each identity key costs a
	// deliberately slow scrypt derivation (32 MiB each, so at most 4 at once).
	type made1 struct {
		m     Member
		files memberFiles
		err   error
	}
	all := append(append([]string(nil), partyIDs...), opts.Analysts...)
	made := make([]made1, len(all))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, id := range all {
		role, hosts := pki.RoleParty, []string{opts.Host}
		if i >= len(partyIDs) {
			role, hosts = pki.RoleAnalyst, nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			m, f, err := newMember(opts.Dir, id, role, hosts, caCert, caKey)
			made[i] = made1{m, f, err}
		}()
	}
	wg.Wait()
	for _, r := range made {
		if r.err != nil {
			return r.err
		}
	}

	var peers []string
	for j, id := range chainIDs {
		peers = append(peers, validators[id].NodeID+"@"+p2pAddr(j))
	}
	// chainNode seals node j's chain keys with its passphrase and returns
	// its ledger section.
	chainNode := func(j int, id, passFile string) (config.Ledger, error) {
		pass, err := os.ReadFile(filepath.Join(opts.Dir, passFile))
		if err != nil {
			return config.Ledger{}, fmt.Errorf("consortium init: %w", err)
		}
		pass = bytes.TrimSpace(pass)
		chainDir := id + "/chain"
		if err := os.MkdirAll(filepath.Join(opts.Dir, chainDir), 0o700); err != nil {
			return config.Ledger{}, fmt.Errorf("consortium init: %w", err)
		}
		if err := keystore.WriteFile(filepath.Join(opts.Dir, chainDir, "node_key.sealed"), pass, validators[id].NodeKey, NodeKeyLabel); err != nil {
			return config.Ledger{}, fmt.Errorf("consortium init: %s: %w", id, err)
		}
		if err := keystore.WriteFile(filepath.Join(opts.Dir, chainDir, "validator_key.sealed"), pass, validators[id].PrivValidatorKey, ValidatorKeyLabel); err != nil {
			return config.Ledger{}, fmt.Errorf("consortium init: %s: %w", id, err)
		}
		return config.Ledger{
			Mode: "embedded", Home: chainDir, P2PListen: p2pAddr(j), RPCListen: rpcAddr(j),
			NodeKeyFile: chainDir + "/node_key.sealed", ValidatorKeyFile: chainDir + "/validator_key.sealed",
			Peers:      strings.Join(slices.Delete(slices.Clone(peers), j, j+1), ","),
			FastBlocks: opts.FastBlocks,
		}, nil
	}
	for i, id := range partyIDs {
		m, files := made[i].m, made[i].files
		m.Address = addr(i)
		m.NodeID, m.P2PAddress, m.RPCAddress = validators[id].NodeID, p2pAddr(i), rpcAddr(i)
		c.Members = append(c.Members, m)
		lc, err := chainNode(i, id, files.passphrase)
		if err != nil {
			return err
		}
		p := config.DefaultParty()
		p.ID, p.Listen, p.Consortium, p.Schema = id, m.Address, FileName, SchemaFile
		p.DataDir = id + "/data"
		p.TLS = files.tls
		p.Identity.KeyFile = files.identity
		p.Keystore.PassphraseFile = files.passphrase
		p.Ledger = lc
		names := make([]string, 0, len(opts.Datasets))
		for ds := range opts.Datasets {
			names = append(names, ds)
		}
		sort.Strings(names)
		for _, ds := range names {
			csv, ok := opts.Datasets[ds][id]
			if !ok {
				continue
			}
			if p.Datasets == nil {
				p.Datasets = map[string]config.Dataset{}
			}
			p.Datasets[ds] = config.Dataset{CSV: relTo(absDir, csv)}
		}
		if err := config.SaveParty(filepath.Join(opts.Dir, id+".yaml"), &p); err != nil {
			return fmt.Errorf("consortium init: %w", err)
		}
	}
	for k, id := range validatorIDs {
		j := len(partyIDs) + k
		c.Members = append(c.Members, Member{ID: id, Role: RoleValidator,
			NodeID: validators[id].NodeID, P2PAddress: p2pAddr(j), RPCAddress: rpcAddr(j)})
		passFile := SecretsDir + "/" + id + ".pass"
		if _, err := writePassphrase(filepath.Join(opts.Dir, passFile)); err != nil {
			return fmt.Errorf("consortium init: validator %q: %w", id, err)
		}
		lc, err := chainNode(j, id, passFile)
		if err != nil {
			return err
		}
		v := config.DefaultParty()
		v.ID, v.Role, v.Consortium, v.DataDir = id, config.RoleValidator, FileName, id+"/data"
		v.Keystore.PassphraseFile = passFile
		v.Ledger = lc
		if err := config.SaveParty(filepath.Join(opts.Dir, id+".yaml"), &v); err != nil {
			return fmt.Errorf("consortium init: %w", err)
		}
	}
	for j, id := range opts.Analysts {
		m, files := made[len(partyIDs)+j].m, made[len(partyIDs)+j].files
		c.Members = append(c.Members, m)
		a := config.DefaultAnalyst()
		a.ID, a.Node, a.NodeID, a.Consortium, a.DataDir = id, addr(0), partyIDs[0], FileName, id+"/data"
		a.TLS, a.Identity.KeyFile, a.Keystore.PassphraseFile = files.tls, files.identity, files.passphrase
		if err := config.SaveAnalyst(filepath.Join(opts.Dir, id+".yaml"), &a); err != nil {
			return fmt.Errorf("consortium init: %w", err)
		}
	}
	b, err := c.marshal()
	if err != nil {
		return fmt.Errorf("consortium init: generated consortium is invalid: %w", err)
	}
	f, err := os.OpenFile(consPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("consortium init: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("consortium init: %s: %w", consPath, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("consortium init: %s: %w", consPath, err)
	}
	return nil
}

// Chain ports are offsets from the base port; keystore labels of the
// sealed chain keys.
const (
	ChainP2PPortOffset = 100
	ChainRPCPortOffset = 200
	NodeKeyLabel       = "ledger-node-key"
	ValidatorKeyLabel  = "ledger-validator-key"
)

// memberFiles are a member's file paths, relative to the consortium dir.
type memberFiles struct {
	tls        config.TLSFiles
	identity   string
	passphrase string
}

func newMember(dir, id string, role pki.Role, hosts []string, caCert, caKey []byte) (Member, memberFiles, error) {
	fail := func(err error) (Member, memberFiles, error) {
		return Member{}, memberFiles{}, fmt.Errorf("consortium init: %s %q: %w", role, id, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, id, "data"), 0o700); err != nil {
		return fail(err)
	}
	cert, key, err := pki.Issue(caCert, caKey, id, role, hosts)
	if err != nil {
		return fail(err)
	}
	fp, err := pki.Fingerprint(cert)
	if err != nil {
		return fail(err)
	}
	files := memberFiles{
		tls:        config.TLSFiles{CA: CACertFile, Cert: id + "/tls.pem", Key: id + "/tls-key.sealed"},
		identity:   id + "/identity.key",
		passphrase: SecretsDir + "/" + id + ".pass",
	}
	if err := writeFile(filepath.Join(dir, files.tls.Cert), cert, 0o644); err != nil {
		return fail(err)
	}
	ident, err := identity.Generate(id)
	if err != nil {
		return fail(err)
	}
	secret, err := ident.MarshalSecret()
	if err != nil {
		return fail(err)
	}
	pass, err := writePassphrase(filepath.Join(dir, files.passphrase))
	if err != nil {
		return fail(err)
	}
	if err := pki.WriteSealedKey(filepath.Join(dir, files.tls.Key), pass, key, pki.TLSKeyLabel); err != nil {
		return fail(err)
	}
	if err := keystore.WriteFile(filepath.Join(dir, files.identity), pass, secret, IdentityLabel); err != nil {
		return fail(err)
	}
	return Member{ID: id, Role: role, IdentityKey: identity.EncodePublic(ident.Public), CertFingerprint: fp}, files, nil
}

// writePassphrase writes a fresh random keystore passphrase (48 hex
// digits and a newline) to path, mode 0600, and returns it.
func writePassphrase(path string) ([]byte, error) {
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	pass := []byte(hex.EncodeToString(raw))
	return pass, writeFile(path, append(pass, '\n'), 0o600)
}

func writeFile(path string, b []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, b, mode); err != nil {
		return fmt.Errorf("consortium init: %w", err)
	}
	// WriteFile keeps the mode of an existing file; enforce it.
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("consortium init: %w", err)
	}
	return nil
}

// relTo expresses p (relative to the working directory, or absolute)
// relative to dir when possible.
func relTo(dir, p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	if r, err := filepath.Rel(dir, abs); err == nil {
		return filepath.ToSlash(r)
	}
	return abs
}
