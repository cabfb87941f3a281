// Package pki is the consortium's small public-key infrastructure: a
// consortium certificate authority, certificates for parties and analysts,
// and the mutual-TLS configurations every connection uses.
//
// A member certificate carries the member id as its common name and as a DNS
// subject alternative name, and its role ("party" or "analyst") as its
// organizational unit. Parties' certificates are valid for both server and
// client authentication; analysts' for client authentication only.
//
// Peer certificates are verified against the consortium CA alone (never the
// system roots). Verification is done by this package rather than by
// crypto/tls's built-in check so that a failure says plainly that the
// certificate is not from the consortium CA.
package pki

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Role is a member's role in the consortium, carried in its certificate's
// organizational unit.
type Role string

// Roles.
const (
	RoleParty   Role = "party"
	RoleAnalyst Role = "analyst"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleParty || r == RoleAnalyst }

// Validity periods.
const (
	CAValidity     = 10 * 365 * 24 * time.Hour
	MemberValidity = 2 * 365 * 24 * time.Hour
	clockSkew      = time.Hour
)

// ErrNotConsortiumCA is wrapped by handshake errors when the peer's
// certificate does not chain to the consortium CA.
var ErrNotConsortiumCA = errors.New("certificate is not from the consortium CA")

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func encodeKey(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// NewCA creates a self-signed consortium CA (ECDSA P-256, valid 10 years).
func NewCA(name string) (certPEM, keyPEM []byte, err error) {
	if name == "" {
		return nil, nil, errors.New("pki: new CA: empty name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: new CA %q: generating key: %w", name, err)
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, fmt.Errorf("pki: new CA %q: serial: %w", name, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: name + " consortium CA", Organization: []string{name}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: new CA %q: %w", name, err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: new CA %q: encoding key: %w", name, err)
	}
	return encodeCert(der), keyPEM, nil
}

// ParseCertificatePEM parses the first CERTIFICATE block of certPEM.
func ParseCertificatePEM(certPEM []byte) (*x509.Certificate, error) {
	rest := certPEM
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("pki: no CERTIFICATE block in PEM data")
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: parsing certificate: %w", err)
		}
		return c, nil
	}
}

func parseKeyPEM(keyPEM []byte) (*ecdsa.PrivateKey, error) {
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, errors.New("no PEM block in key data")
	}
	var k any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("unexpected PEM block %q in key data", b.Type)
	}
	if err != nil {
		return nil, err
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want ECDSA", k)
	}
	return ek, nil
}

// ValidID reports whether id can be used as a member id: 1 to 63 characters
// from [A-Za-z0-9-_.], not starting or ending with '-' or '.'.
func ValidID(id string) error {
	if id == "" {
		return errors.New("empty member id")
	}
	if len(id) > 63 {
		return fmt.Errorf("member id %q longer than 63 characters", id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return fmt.Errorf("member id %q: character %q not allowed (use letters, digits, '-', '_', '.')", id, c)
		}
	}
	if f, l := id[0], id[len(id)-1]; f == '-' || f == '.' || l == '-' || l == '.' {
		return fmt.Errorf("member id %q must not start or end with '-' or '.'", id)
	}
	return nil
}

// Issue issues a certificate for member id with the given role, signed by the
// consortium CA. hosts are added as subject alternative names (IP addresses
// or DNS names), as is id itself as a DNS name.
func Issue(caCertPEM, caKeyPEM []byte, id string, role Role, hosts []string) (certPEM, keyPEM []byte, err error) {
	if err := ValidID(id); err != nil {
		return nil, nil, fmt.Errorf("pki: issue: %w", err)
	}
	if !role.Valid() {
		return nil, nil, fmt.Errorf("pki: issue %q: unknown role %q (want %q or %q)", id, role, RoleParty, RoleAnalyst)
	}
	ca, err := ParseCertificatePEM(caCertPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: issue %q: CA certificate: %w", id, err)
	}
	if !ca.IsCA {
		return nil, nil, fmt.Errorf("pki: issue %q: CA certificate %q is not a CA", id, ca.Subject.CommonName)
	}
	caKey, err := parseKeyPEM(caKeyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: issue %q: CA key: %w", id, err)
	}
	if !caKey.PublicKey.Equal(ca.PublicKey) {
		return nil, nil, fmt.Errorf("pki: issue %q: CA key does not match CA certificate %q", id, ca.Subject.CommonName)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: issue %q: generating key: %w", id, err)
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, fmt.Errorf("pki: issue %q: serial: %w", id, err)
	}
	now := time.Now()
	notAfter := now.Add(MemberValidity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: id, OrganizationalUnit: []string{string(role)}, Organization: ca.Subject.Organization},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		DNSNames:              []string{id},
	}
	if role == RoleParty {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, h := range hosts {
		if h == "" || h == id {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: issue %q: %w", id, err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: issue %q: encoding key: %w", id, err)
	}
	return encodeCert(der), keyPEM, nil
}

// Fingerprint returns the lowercase hex SHA-256 of the certificate's DER.
func Fingerprint(certPEM []byte) (string, error) {
	c, err := ParseCertificatePEM(certPEM)
	if err != nil {
		return "", err
	}
	return FingerprintCert(c), nil
}

// FingerprintCert returns the lowercase hex SHA-256 of c's DER encoding.
func FingerprintCert(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// MemberOf returns the member id (common name) and role (organizational
// unit) a certificate was issued for.
func MemberOf(c *x509.Certificate) (id string, role Role, err error) {
	id = c.Subject.CommonName
	if err := ValidID(id); err != nil {
		return "", "", fmt.Errorf("pki: certificate: %w", err)
	}
	if len(c.Subject.OrganizationalUnit) != 1 {
		return "", "", fmt.Errorf("pki: certificate of %q: want exactly one role (OU), got %q", id, c.Subject.OrganizationalUnit)
	}
	role = Role(c.Subject.OrganizationalUnit[0])
	if !role.Valid() {
		return "", "", fmt.Errorf("pki: certificate of %q: unknown role %q", id, role)
	}
	return id, role, nil
}

type bundle struct {
	ca    *x509.Certificate
	pool  *x509.CertPool
	cert  tls.Certificate
	owner string
}

func load(caPEM, certPEM, keyPEM []byte) (*bundle, error) {
	ca, err := ParseCertificatePEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	if !ca.IsCA {
		return nil, fmt.Errorf("CA certificate %q is not a CA", ca.Subject.CommonName)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("own certificate/key: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("own certificate: %w", err)
	}
	if err := leaf.CheckSignatureFrom(ca); err != nil {
		return nil, fmt.Errorf("own certificate %q (issuer %q): %w", leaf.Subject.CommonName, leaf.Issuer.CommonName, ErrNotConsortiumCA)
	}
	cert.Leaf = leaf
	return &bundle{ca: ca, pool: pool, cert: cert, owner: leaf.Subject.CommonName}, nil
}

// verify checks a peer's chain against the consortium CA only.
func (b *bundle) verify(rawCerts [][]byte, usage x509.ExtKeyUsage, side string) (*x509.Certificate, error) {
	if len(rawCerts) == 0 {
		return nil, fmt.Errorf("pki: %s presented no certificate", side)
	}
	leaf, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return nil, fmt.Errorf("pki: %s certificate: %w", side, err)
	}
	inter := x509.NewCertPool()
	for _, r := range rawCerts[1:] {
		if c, err := x509.ParseCertificate(r); err == nil {
			inter.AddCert(c)
		}
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: b.pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
	if err != nil {
		var ua x509.UnknownAuthorityError
		if errors.As(err, &ua) {
			return nil, fmt.Errorf("pki: %s certificate %q (issuer %q): %w %q", side, leaf.Subject.CommonName, leaf.Issuer.CommonName, ErrNotConsortiumCA, b.ca.Subject.CommonName)
		}
		return nil, fmt.Errorf("pki: %s certificate %q rejected: %w", side, leaf.Subject.CommonName, err)
	}
	if _, _, err := MemberOf(leaf); err != nil {
		return nil, fmt.Errorf("pki: %s: %w", side, err)
	}
	return leaf, nil
}

// ServerTLSConfig returns the TLS configuration of a party's server: TLS 1.3
// minimum, its own certificate, and a required client certificate that must
// chain to the consortium CA (caPEM) and be valid for client authentication.
//
// Verification is done in VerifyPeerCertificate (ClientAuth is
// RequireAnyClientCert so that the handshake fails with this package's
// error message); the effect is that of RequireAndVerifyClientCert with the
// consortium CA as the only client CA.
func ServerTLSConfig(caPEM, certPEM, keyPEM []byte) (*tls.Config, error) {
	b, err := load(caPEM, certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: server TLS config: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{b.cert},
		ClientCAs:    b.pool,
		ClientAuth:   tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			_, err := b.verify(raw, x509.ExtKeyUsageClientAuth, "client")
			return err
		},
	}, nil
}

// ClientTLSConfig returns the TLS configuration for connecting to the party
// whose id is serverName: TLS 1.3 minimum, its own client certificate, and a
// server certificate that must chain to the consortium CA only, be valid for
// server authentication, belong to a party, and name serverName as its common
// name or a subject alternative name.
func ClientTLSConfig(caPEM, certPEM, keyPEM []byte, serverName string) (*tls.Config, error) {
	if serverName == "" {
		return nil, errors.New("pki: client TLS config: empty server name (the peer's party id)")
	}
	b, err := load(caPEM, certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: client TLS config: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{b.cert},
		RootCAs:      b.pool,
		ServerName:   serverName,
		// crypto/tls's own verification is replaced by VerifyPeerCertificate
		// below, which checks the chain against the consortium CA only and
		// the server's identity against serverName. It is never skipped.
		InsecureSkipVerify: true, //nolint:gosec // verification done in VerifyPeerCertificate
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			leaf, err := b.verify(raw, x509.ExtKeyUsageServerAuth, "server")
			if err != nil {
				return err
			}
			id, role, _ := MemberOf(leaf)
			if role != RoleParty {
				return fmt.Errorf("pki: server certificate %q has role %q, want %q", id, role, RoleParty)
			}
			if id != serverName && leaf.VerifyHostname(serverName) != nil {
				return fmt.Errorf("pki: server certificate is for %q, not the expected party %q", id, serverName)
			}
			return nil
		},
	}, nil
}

// PeerFromContext returns the member id and role of the client of a gRPC
// call, from its client certificate. The server must use ServerTLSConfig,
// which verifies the certificate during the handshake.
func PeerFromContext(ctx context.Context) (id string, role Role, err error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", "", errors.New("pki: no peer in context (not a gRPC server call?)")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return "", "", fmt.Errorf("pki: peer %v did not connect over TLS (auth info %T)", p.Addr, p.AuthInfo)
	}
	return PeerFromState(info.State)
}

// PeerFromState returns the member id and role from a TLS connection state's
// client certificate (the verified chain's leaf when crypto/tls verified it,
// otherwise the certificate verified by ServerTLSConfig).
func PeerFromState(cs tls.ConnectionState) (id string, role Role, err error) {
	var leaf *x509.Certificate
	switch {
	case len(cs.VerifiedChains) > 0 && len(cs.VerifiedChains[0]) > 0:
		leaf = cs.VerifiedChains[0][0]
	case len(cs.PeerCertificates) > 0:
		leaf = cs.PeerCertificates[0]
	default:
		return "", "", errors.New("pki: peer presented no client certificate")
	}
	if !cs.HandshakeComplete {
		return "", "", errors.New("pki: TLS handshake with peer not complete")
	}
	return MemberOf(leaf)
}
