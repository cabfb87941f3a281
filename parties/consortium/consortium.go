// Package consortium describes a consortium: its members (parties,
// analysts and validator-only members of the chain) with their addresses,
// identity keys and certificate fingerprints, the decryption threshold,
// the engine parameter set and the consortium CA. It reads and writes the consortium file (YAML) and creates
// a complete local consortium for development and tests (Init).
package consortium

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"

	"go.dedis.ch/kyber/v3"
	"go.yaml.in/yaml/v3"

	"github.com/synod-mpc/synod/parties/identity"
	"github.com/synod-mpc/synod/parties/pki"
)

// DefaultParameters is the engine parameter set used when none is named.
const DefaultParameters = "ckks-n14"

// RoleValidator is the role of a validator-only member: it runs a
// validator of the consortium chain and nothing else. It holds no data and
// no key share, takes no part in setup or queries, signs no transaction
// and has no identity key, TLS certificate or gRPC address.
const RoleValidator pki.Role = "validator"

// Member is a consortium member.
type Member struct {
	ID   string   `yaml:"id"`
	Role pki.Role `yaml:"role"`
	// Address is host:port of a party's node; empty for analysts and
	// validators.
	Address string `yaml:"address,omitempty"`
	// IdentityKey is the hex edwards25519 identity public key (parties and
	// analysts).
	IdentityKey string `yaml:"identity_key,omitempty"`
	// CertFingerprint is the hex SHA-256 of the member's TLS certificate
	// (DER) (parties and analysts).
	CertFingerprint string `yaml:"cert_fingerprint,omitempty"`
	// Validator of the consortium chain (parties and validators): its
	// CometBFT p2p node id and address, and its RPC address, which
	// auditors' light clients use as primary and witnesses.
	NodeID     string `yaml:"node_id,omitempty"`
	P2PAddress string `yaml:"p2p_address,omitempty"`
	RPCAddress string `yaml:"rpc_address,omitempty"`
}

// Chain is the consortium's audit chain: its id and genesis (JSON), the
// trust anchor of every receipt.
type Chain struct {
	ID      string `yaml:"id"`
	Genesis string `yaml:"genesis"`
}

// Consortium is the content of the consortium file.
type Consortium struct {
	Name      string `yaml:"name"`
	Threshold int    `yaml:"threshold"`
	// Parameters names the engine parameter set; default "ckks-n14".
	Parameters string `yaml:"parameters"`
	// CACert is the consortium CA certificate, PEM, inline.
	CACert  string   `yaml:"ca_cert"`
	Members []Member `yaml:"members"`
	Chain   *Chain   `yaml:"chain,omitempty"`
}

// RPCAddresses lists the chain RPC addresses of the parties, then of the
// validator-only members, each sorted by id.
func (c *Consortium) RPCAddresses() []string {
	var out []string
	for _, m := range append(c.Parties(), c.Validators()...) {
		if m.RPCAddress != "" {
			out = append(out, m.RPCAddress)
		}
	}
	return out
}

// Load reads and validates a consortium file. Unknown keys are errors.
func Load(path string) (*Consortium, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("consortium: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c Consortium
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("consortium %s: %w", path, err)
	}
	if c.Parameters == "" {
		c.Parameters = DefaultParameters
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("consortium %s: %w", path, err)
	}
	return &c, nil
}

// Validate checks the consortium: a name, a CA certificate, unique valid
// member ids, known roles, parties' addresses (host:port, unique), valid and
// unique identity keys and well-formed fingerprints of parties and
// analysts, validators' chain addresses (and nothing else), and 1 ≤
// threshold ≤ number of parties. Each error names the member and the field.
func (c *Consortium) Validate() error {
	if strings.TrimSpace(c.Name) == "" {
		return errors.New("name: empty")
	}
	if c.CACert == "" {
		return errors.New("ca_cert: empty")
	}
	ca, err := pki.ParseCertificatePEM([]byte(c.CACert))
	if err != nil {
		return fmt.Errorf("ca_cert: %w", err)
	}
	if !ca.IsCA {
		return fmt.Errorf("ca_cert: certificate %q is not a CA", ca.Subject.CommonName)
	}
	if len(c.Members) == 0 {
		return errors.New("members: none")
	}
	ids := map[string]int{}
	keys := map[string]string{}
	addrs := map[string]string{}
	parties := 0
	for i, m := range c.Members {
		where := fmt.Sprintf("member %d", i+1)
		if m.ID != "" {
			where = fmt.Sprintf("member %q", m.ID)
		}
		if err := pki.ValidID(m.ID); err != nil {
			return fmt.Errorf("%s: id: %w", where, err)
		}
		if j, dup := ids[m.ID]; dup {
			return fmt.Errorf("%s: id: duplicate (members %d and %d)", where, j+1, i+1)
		}
		ids[m.ID] = i
		switch m.Role {
		case pki.RoleParty:
			parties++
			host, port, err := net.SplitHostPort(m.Address)
			if err != nil {
				return fmt.Errorf("%s: address: %q is not host:port: %v", where, m.Address, err)
			}
			if host == "" {
				return fmt.Errorf("%s: address: %q has no host (peers must be able to dial it)", where, m.Address)
			}
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("%s: address: %q: port must be 1-65535", where, m.Address)
			}
			if other, dup := addrs[m.Address]; dup {
				return fmt.Errorf("%s: address: %s already used by %q", where, m.Address, other)
			}
			addrs[m.Address] = m.ID
		case pki.RoleAnalyst:
			if m.Address != "" {
				return fmt.Errorf("%s: address: analysts have no address (got %q)", where, m.Address)
			}
		case RoleValidator:
			if err := validateValidator(m); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			continue
		default:
			return fmt.Errorf("%s: role: %q is not %q, %q or %q", where, m.Role, pki.RoleParty, pki.RoleAnalyst, RoleValidator)
		}
		if _, err := identity.DecodePublic(m.IdentityKey); err != nil {
			return fmt.Errorf("%s: identity_key: %w", where, err)
		}
		k := strings.ToLower(m.IdentityKey)
		if other, dup := keys[k]; dup {
			return fmt.Errorf("%s: identity_key: same key as %q", where, other)
		}
		keys[k] = m.ID
		if len(m.CertFingerprint) != 64 || strings.ToLower(m.CertFingerprint) != m.CertFingerprint || !isHex(m.CertFingerprint) {
			return fmt.Errorf("%s: cert_fingerprint: %q is not 64 lowercase hex digits (SHA-256)", where, m.CertFingerprint)
		}
	}
	if parties == 0 {
		return errors.New("members: no party")
	}
	if c.Threshold < 1 || c.Threshold > parties {
		return fmt.Errorf("threshold: %d, want 1 <= threshold <= %d (the number of parties)", c.Threshold, parties)
	}
	if c.Parameters == "" {
		return errors.New("parameters: empty")
	}
	return nil
}

// validateValidator checks a validator-only member: its chain node id, p2p
// and RPC addresses, and none of a party's or analyst's fields.
func validateValidator(m Member) error {
	if len(m.NodeID) != 40 || !isHex(m.NodeID) {
		return fmt.Errorf("node_id: %q is not 40 lowercase hex digits (a CometBFT node id)", m.NodeID)
	}
	for _, f := range [][2]string{{"p2p_address", m.P2PAddress}, {"rpc_address", m.RPCAddress}} {
		if _, _, err := net.SplitHostPort(f[1]); err != nil {
			return fmt.Errorf("%s: %q is not host:port: %v", f[0], f[1], err)
		}
	}
	for _, f := range [][2]string{{"address", m.Address}, {"identity_key", m.IdentityKey}, {"cert_fingerprint", m.CertFingerprint}} {
		if f[1] != "" {
			return fmt.Errorf("%s: a validator-only member has none (it serves no gRPC and signs nothing), got %q", f[0], f[1])
		}
	}
	return nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Parties returns the parties, sorted by ID.
func (c *Consortium) Parties() []Member {
	var ps []Member
	for _, m := range c.Members {
		if m.Role == pki.RoleParty {
			ps = append(ps, m)
		}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].ID < ps[j].ID })
	return ps
}

// Analysts returns the analysts, sorted by ID.
func (c *Consortium) Analysts() []Member {
	var as []Member
	for _, m := range c.Members {
		if m.Role == pki.RoleAnalyst {
			as = append(as, m)
		}
	}
	sort.Slice(as, func(i, j int) bool { return as[i].ID < as[j].ID })
	return as
}

// Validators returns the validator-only members, sorted by ID. (Every
// party is a validator too; see RPCAddresses.)
func (c *Consortium) Validators() []Member {
	var vs []Member
	for _, m := range c.Members {
		if m.Role == RoleValidator {
			vs = append(vs, m)
		}
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].ID < vs[j].ID })
	return vs
}

// PartyIDs returns the parties' ids, sorted.
func (c *Consortium) PartyIDs() []string {
	ps := c.Parties()
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	return ids
}

// Member returns the member with the given id.
func (c *Consortium) Member(id string) (Member, bool) {
	for _, m := range c.Members {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

// IdentityKey returns the decoded identity public key of member id.
func (c *Consortium) IdentityKey(id string) (kyber.Point, error) {
	m, ok := c.Member(id)
	if !ok {
		return nil, fmt.Errorf("consortium %q: no member %q", c.Name, id)
	}
	p, err := identity.DecodePublic(m.IdentityKey)
	if err != nil {
		return nil, fmt.Errorf("consortium %q: member %q: identity_key: %w", c.Name, id, err)
	}
	return p, nil
}

// CheckCertificate checks that cert is the certificate registered for member
// id (by fingerprint) and that it names id with the member's role.
func (c *Consortium) CheckCertificate(id string, cert *x509.Certificate) error {
	m, ok := c.Member(id)
	if !ok {
		return fmt.Errorf("consortium %q: no member %q", c.Name, id)
	}
	cid, role, err := pki.MemberOf(cert)
	if err != nil {
		return fmt.Errorf("consortium %q: member %q: %w", c.Name, id, err)
	}
	if cid != id || role != m.Role {
		return fmt.Errorf("consortium %q: certificate is for %s %q, want %s %q", c.Name, role, cid, m.Role, id)
	}
	if fp := pki.FingerprintCert(cert); fp != m.CertFingerprint {
		return fmt.Errorf("consortium %q: member %q: certificate fingerprint %s does not match the registered %s", c.Name, id, fp, m.CertFingerprint)
	}
	return nil
}

// Save validates c and writes it as YAML to path (mode 0644).
func (c *Consortium) Save(path string) error {
	b, err := c.marshal()
	if err != nil {
		return fmt.Errorf("consortium %s: %w", path, err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("consortium: %w", err)
	}
	return nil
}

func (c *Consortium) marshal() ([]byte, error) {
	if c.Parameters == "" {
		c.Parameters = DefaultParameters
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return yaml.Marshal(c)
}
