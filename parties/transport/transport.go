// Package transport is the gRPC layer between nodes and towards analysts:
// a server that accepts only mutually authenticated TLS connections from
// certificates of the consortium CA, and a pool of clients to peer nodes
// that moves envelopes in chunks.
package transport

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/parties/config"
	"github.com/synod-mpc/synod/parties/pki"
	"github.com/synod-mpc/synod/parties/wire"
)

// Credentials are the PEM files a node or analyst presents and trusts.
type Credentials struct {
	CA, Cert, Key []byte
}

// LoadCredentials reads the files a member's config names: the CA and
// member certificates (PEM) and the member's TLS key, sealed (see
// pki.WriteSealedKey) and opened here with the member's keystore
// passphrase.
func LoadCredentials(files config.TLSFiles, passphrase []byte) (Credentials, error) {
	var c Credentials
	for _, f := range []struct {
		dst  *[]byte
		path string
	}{{&c.CA, files.CA}, {&c.Cert, files.Cert}} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			return Credentials{}, fmt.Errorf("tls: %w", err)
		}
		*f.dst = b
	}
	key, err := pki.ReadSealedKey(files.Key, passphrase, pki.TLSKeyLabel)
	if err != nil {
		return Credentials{}, fmt.Errorf("tls: %w", err)
	}
	c.Key = key
	return c, nil
}

// NewServer builds a gRPC server that requires a client certificate from the
// consortium CA, serves the health and reflection services, and lets only
// parties call the Peer service and only analysts and parties call the
// Analyst service.
func NewServer(creds Credentials) (*grpc.Server, *health.Server, error) {
	tlsCfg, err := pki.ServerTLSConfig(creds.CA, creds.Cert, creds.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("server TLS: %w", err)
	}
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tlsCfg)),
		grpc.UnaryInterceptor(authorizeUnary),
		grpc.StreamInterceptor(authorizeStream),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	return srv, hs, nil
}

// authorize checks the caller's role for the method it calls. Health and
// reflection are open to any consortium certificate.
func authorize(ctx context.Context, method string) error {
	_, role, err := pki.PeerFromContext(ctx)
	if err != nil {
		return status.Errorf(codes.Unauthenticated, "%v", err)
	}
	switch {
	case strings.HasPrefix(method, "/synod.v1.Peer/") && role != pki.RoleParty:
		return status.Errorf(codes.PermissionDenied, "%s is for consortium parties; caller has role %q", method, role)
	case strings.HasPrefix(method, "/synod.v1.Analyst/") && role != pki.RoleAnalyst && role != pki.RoleParty:
		return status.Errorf(codes.PermissionDenied, "%s: caller role %q is not allowed", method, role)
	}
	return nil
}

func authorizeUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := authorize(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func authorizeStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := authorize(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return h(srv, ss)
}

// Dial opens a mutually authenticated connection to a node whose
// certificate must name expectedID.
func Dial(address, expectedID string, creds Credentials) (*grpc.ClientConn, error) {
	tlsCfg, err := pki.ClientTLSConfig(creds.CA, creds.Cert, creds.Key, expectedID)
	if err != nil {
		return nil, fmt.Errorf("client TLS for %s: %w", expectedID, err)
	}
	return dialTLS(address, tlsCfg)
}

func dialTLS(address string, tlsCfg *tls.Config) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(address,
		grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, PermitWithoutStream: true}),
	)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	return conn, nil
}

// Peers is a pool of connections to the other parties.
type Peers struct {
	creds     Credentials
	addresses map[string]string

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn

	sent atomic.Uint64
}

// BytesSent is the number of serialized envelope bytes delivered so far.
func (p *Peers) BytesSent() uint64 { return p.sent.Load() }

// NewPeers makes a pool; addresses maps party id to host:port.
func NewPeers(creds Credentials, addresses map[string]string) *Peers {
	return &Peers{creds: creds, addresses: addresses, conns: map[string]*grpc.ClientConn{}}
}

func (p *Peers) client(id string) (synodv1.PeerClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[id]; ok {
		return synodv1.NewPeerClient(c), nil
	}
	addr, ok := p.addresses[id]
	if !ok {
		return nil, fmt.Errorf("party %s: no address in the consortium file", id)
	}
	c, err := Dial(addr, id, p.creds)
	if err != nil {
		return nil, fmt.Errorf("party %s: %w", id, err)
	}
	p.conns[id] = c
	return synodv1.NewPeerClient(c), nil
}

// Deliver sends one envelope to party id, in chunks.
func (p *Peers) Deliver(ctx context.Context, id string, env *synodv1.Envelope) error {
	return p.DeliverParts(ctx, id, env.GetKind(), wire.EnvelopeParts(env))
}

// DeliverParts sends an envelope given as wire.EnvelopeParts (kind names it
// in errors): the payload goes out without being copied into one buffer,
// and a relay prepares a broadcast once for all its recipients.
func (p *Peers) DeliverParts(ctx context.Context, id, kind string, parts [][]byte) error {
	c, err := p.client(id)
	if err != nil {
		return err
	}
	stream, err := c.Deliver(ctx)
	if err != nil {
		return fmt.Errorf("party %s: deliver %s: %w", id, kind, err)
	}
	if err := wire.SendParts(stream.Send, parts...); err != nil && err != io.EOF {
		return fmt.Errorf("party %s: deliver %s: %w", id, kind, err)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		return fmt.Errorf("party %s: deliver %s: %w", id, kind, err)
	}
	for _, part := range parts {
		p.sent.Add(uint64(len(part)))
	}
	return nil
}

// Ping asks party id whether it is alive and set up.
func (p *Peers) Ping(ctx context.Context, id string) (*synodv1.PingResponse, error) {
	c, err := p.client(id)
	if err != nil {
		return nil, err
	}
	resp, err := c.Ping(ctx, &synodv1.PingRequest{})
	if err != nil {
		return nil, fmt.Errorf("party %s: %w", id, err)
	}
	if resp.GetPartyId() != id {
		return nil, fmt.Errorf("party %s: answered as %q", id, resp.GetPartyId())
	}
	return resp, nil
}

// Close closes every connection.
func (p *Peers) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, c := range p.conns {
		c.Close()
		delete(p.conns, id)
	}
}

// ReceiveEnvelope reassembles an envelope from a Deliver stream of sender,
// within sender's share of budget.
func ReceiveEnvelope(stream grpc.ClientStreamingServer[synodv1.Chunk, synodv1.DeliverAck], budget *wire.Budget, sender string) (*synodv1.Envelope, error) {
	a := wire.Assembler{Budget: budget, Owner: sender}
	defer a.Release()
	for {
		c, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := a.Add(c); err != nil {
			return nil, status.Errorf(codes.ResourceExhausted, "%v", err)
		}
	}
	b, err := a.Bytes()
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	env, err := wire.DecodeEnvelope(b)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	return env, nil
}

// Listen opens the node's TCP listener.
func Listen(address string) (net.Listener, error) {
	l, err := net.Listen("tcp", address)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", address, err)
	}
	return l, nil
}
