package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

type member struct{ cert, key []byte }

type fixture struct {
	caCert, caKey []byte
	members       map[string]member
}

func newFixture(t *testing.T, name string) *fixture {
	t.Helper()
	c, k, err := NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{caCert: c, caKey: k, members: map[string]member{}}
}

func (f *fixture) issue(t *testing.T, id string, role Role) member {
	t.Helper()
	c, k, err := Issue(f.caCert, f.caKey, id, role, []string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	m := member{c, k}
	f.members[id] = m
	return m
}

func TestIssue(t *testing.T) {
	f := newFixture(t, "test")
	ca, err := ParseCertificatePEM(f.caCert)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.IsCA || ca.NotAfter.Sub(ca.NotBefore) < 9*365*24*time.Hour {
		t.Fatalf("CA: isCA=%v validity=%v", ca.IsCA, ca.NotAfter.Sub(ca.NotBefore))
	}
	m := f.issue(t, "party-1", RoleParty)
	c, _ := ParseCertificatePEM(m.cert)
	if c.Subject.CommonName != "party-1" || c.Subject.OrganizationalUnit[0] != "party" {
		t.Fatalf("subject %v", c.Subject)
	}
	if len(c.IPAddresses) != 1 || !c.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Fatalf("IPs %v", c.IPAddresses)
	}
	if strings.Join(c.DNSNames, ",") != "party-1,localhost" {
		t.Fatalf("DNS %v", c.DNSNames)
	}
	if len(c.ExtKeyUsage) != 2 {
		t.Fatalf("party EKU %v", c.ExtKeyUsage)
	}
	a := f.issue(t, "alice", RoleAnalyst)
	ac, _ := ParseCertificatePEM(a.cert)
	if len(ac.ExtKeyUsage) != 1 || ac.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Fatalf("analyst EKU %v", ac.ExtKeyUsage)
	}
	if id, role, err := MemberOf(ac); err != nil || id != "alice" || role != RoleAnalyst {
		t.Fatalf("MemberOf: %q %q %v", id, role, err)
	}
	fp, err := Fingerprint(m.cert)
	if err != nil || len(fp) != 64 {
		t.Fatalf("fingerprint %q %v", fp, err)
	}
	if _, _, err := Issue(f.caCert, f.caKey, "x", "admin", nil); err == nil || !strings.Contains(err.Error(), "admin") {
		t.Fatalf("bad role: %v", err)
	}
	if _, _, err := Issue(f.caCert, f.caKey, "bad id", RoleParty, nil); err == nil {
		t.Fatal("bad id accepted")
	}
	other := newFixture(t, "other")
	if _, _, err := Issue(f.caCert, other.caKey, "x", RoleParty, nil); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("mismatched CA key: %v", err)
	}
	if _, err := Fingerprint([]byte("nope")); err == nil {
		t.Fatal("fingerprint of garbage")
	}
}

// handshake runs a TLS handshake over loopback and returns the server-side and
// client-side errors (including the first read/write, where TLS 1.3 reports
// client-certificate rejections to the client).
func handshake(t *testing.T, srvCfg, cliCfg *tls.Config) (srvErr, cliErr error, peerID string, peerRole Role) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		err  error
		id   string
		role Role
	}
	done := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- res{err: err}
			return
		}
		defer c.Close()
		tc := tls.Server(c, srvCfg)
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			done <- res{err: err}
			return
		}
		id, role, err := PeerFromState(tc.ConnectionState())
		if err == nil {
			_, err = tc.Write([]byte("ok"))
		}
		done <- res{err: err, id: id, role: role}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := tls.Client(c, cliCfg)
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	cliErr = tc.Handshake()
	if cliErr == nil {
		buf := make([]byte, 2)
		_, cliErr = io.ReadFull(tc, buf)
	}
	r := <-done
	return r.err, cliErr, r.id, r.role
}

func TestMutualTLS(t *testing.T) {
	f := newFixture(t, "good")
	p1 := f.issue(t, "party-1", RoleParty)
	p2 := f.issue(t, "party-2", RoleParty)
	an := f.issue(t, "analyst", RoleAnalyst)
	evil := newFixture(t, "evil")
	ep2 := evil.issue(t, "party-2", RoleParty)
	ep1 := evil.issue(t, "party-1", RoleParty)

	srv := func(m member) *tls.Config {
		c, err := ServerTLSConfig(f.caCert, m.cert, m.key)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cli := func(m member, name string) *tls.Config {
		c, err := ClientTLSConfig(f.caCert, m.cert, m.key, name)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// The foreign server uses its own CA as trust anchor so that its
	// configuration loads; it presents a foreign certificate to us.
	evilSrv, err := ServerTLSConfig(evil.caCert, ep1.cert, ep1.key)
	if err != nil {
		t.Fatal(err)
	}
	// The foreign client accepts any server, so that only the server's check
	// of the client certificate is exercised.
	evilPair, err := tls.X509KeyPair(ep2.cert, ep2.key)
	if err != nil {
		t.Fatal(err)
	}
	evilCli := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true,
		// Present the certificate even though the server asks for the consortium CA.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &evilPair, nil },
	}

	if v := srv(p1).MinVersion; v != tls.VersionTLS13 {
		t.Fatalf("min version %x", v)
	}

	t.Run("party to party", func(t *testing.T) {
		se, ce, id, role := handshake(t, srv(p1), cli(p2, "party-1"))
		if se != nil || ce != nil {
			t.Fatalf("server %v, client %v", se, ce)
		}
		if id != "party-2" || role != RoleParty {
			t.Fatalf("peer %q %q", id, role)
		}
	})
	t.Run("analyst to party", func(t *testing.T) {
		se, ce, id, role := handshake(t, srv(p1), cli(an, "party-1"))
		if se != nil || ce != nil {
			t.Fatalf("server %v, client %v", se, ce)
		}
		if id != "analyst" || role != RoleAnalyst {
			t.Fatalf("peer %q %q", id, role)
		}
	})
	t.Run("client from other CA", func(t *testing.T) {
		se, ce, _, _ := handshake(t, srv(p1), evilCli)
		if se == nil || ce == nil {
			t.Fatalf("handshake with foreign client succeeded: server %v, client %v", se, ce)
		}
		t.Logf("server: %v; client: %v", se, ce)
		if !errors.Is(se, ErrNotConsortiumCA) || !strings.Contains(se.Error(), "not from the consortium CA") {
			t.Fatalf("server error %v", se)
		}
	})
	t.Run("server from other CA", func(t *testing.T) {
		se, ce, _, _ := handshake(t, evilSrv, cli(p2, "party-1"))
		if se == nil || ce == nil {
			t.Fatalf("handshake with foreign server succeeded: server %v, client %v", se, ce)
		}
		t.Logf("server: %v; client: %v", se, ce)
		if !errors.Is(ce, ErrNotConsortiumCA) || !strings.Contains(ce.Error(), "not from the consortium CA") {
			t.Fatalf("client error %v", ce)
		}
	})
	t.Run("wrong server name", func(t *testing.T) {
		_, ce, _, _ := handshake(t, srv(p1), cli(p2, "party-3"))
		if ce == nil || !strings.Contains(ce.Error(), `not the expected party "party-3"`) {
			t.Fatalf("client error %v", ce)
		}
	})
	t.Run("analyst cannot serve", func(t *testing.T) {
		_, ce, _, _ := handshake(t, srv(an), cli(p2, "analyst"))
		if ce == nil {
			t.Fatal("analyst certificate accepted as a server")
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		c := cli(p2, "party-1")
		c.Certificates = nil
		se, _, _, _ := handshake(t, srv(p1), c)
		if se == nil {
			t.Fatal("server accepted a client without certificate")
		}
	})
	t.Run("TLS 1.2 refused", func(t *testing.T) {
		c := cli(p2, "party-1")
		c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		se, _, _, _ := handshake(t, srv(p1), c)
		if se == nil {
			t.Fatal("TLS 1.2 accepted")
		}
	})
	if _, err := ServerTLSConfig(f.caCert, ep1.cert, ep1.key); err == nil || !errors.Is(err, ErrNotConsortiumCA) {
		t.Fatalf("own cert from other CA: %v", err)
	}
	if _, err := ClientTLSConfig(f.caCert, p1.cert, p1.key, ""); err == nil {
		t.Fatal("empty server name accepted")
	}
}

func TestPeerFromContextGRPC(t *testing.T) {
	f := newFixture(t, "grpc")
	p1 := f.issue(t, "party-1", RoleParty)
	an := f.issue(t, "analyst", RoleAnalyst)
	scfg, err := ServerTLSConfig(f.caCert, p1.cert, p1.key)
	if err != nil {
		t.Fatal(err)
	}
	type who struct {
		id   string
		role Role
		err  error
	}
	seen := make(chan who, 1)
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(scfg)),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			id, role, err := PeerFromContext(ctx)
			seen <- who{id, role, err}
			return h(ctx, req)
		}))
	healthpb.RegisterHealthServer(s, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	defer s.Stop()

	ccfg, err := ClientTLSConfig(f.caCert, an.cert, an.key, "party-1")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(ccfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	w := <-seen
	if w.err != nil || w.id != "analyst" || w.role != RoleAnalyst {
		t.Fatalf("peer %+v", w)
	}
	if _, _, err := PeerFromContext(context.Background()); err == nil {
		t.Fatal("PeerFromContext without peer succeeded")
	}
}
