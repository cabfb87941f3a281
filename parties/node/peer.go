package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/parties/pki"
	"github.com/synod-mpc/synod/parties/transport"
	"github.com/synod-mpc/synod/parties/wire"
	"github.com/synod-mpc/synod/protocols"
)

// Ping answers whether this node is alive and set up.
func (n *Node) Ping(ctx context.Context, _ *synodv1.PingRequest) (*synodv1.PingResponse, error) {
	resp := &synodv1.PingResponse{PartyId: n.cfg.ID, BytesSent: n.peers.BytesSent()}
	if st := n.keyState(); st != nil {
		resp.SetupDone, resp.SetupDigest = true, st.Meta.Digest
	}
	return resp, nil
}

// Deliver receives one envelope from a peer: the transport's caller must be
// a party; the envelope must be signed by a party; a node never panics or
// blocks on what arrives, it refuses with a status that says why.
func (n *Node) Deliver(stream grpc.ClientStreamingServer[synodv1.Chunk, synodv1.DeliverAck]) error {
	caller, _, err := pki.PeerFromContext(stream.Context())
	if err != nil {
		return status.Errorf(codes.Unauthenticated, "%v", err)
	}
	env, err := transport.ReceiveEnvelope(stream)
	if err != nil {
		n.log.Warn("refused envelope", "from_connection", caller, "error", err)
		return err
	}
	if err := n.accept(env); err != nil {
		n.log.Warn("refused envelope", "from_connection", caller, "kind", env.GetKind(), "sender", env.GetFrom(), "session", env.GetSession(), "error", err)
		var bad *badSignature
		if errors.As(err, &bad) {
			n.abortForged(caller, env, err)
		}
		return status.Errorf(codes.InvalidArgument, "%v", err)
	}
	return stream.SendAndClose(&synodv1.DeliverAck{})
}

// badSignature is accept's error for an envelope whose signature does not
// verify under its claimed sender's key.
type badSignature struct{ err error }

func (e *badSignature) Error() string { return e.err.Error() }
func (e *badSignature) Unwrap() error { return e.err }

// abortForged ends the session an envelope with a bad signature was for, if
// this node coordinates it or takes part in it, naming caller: the party
// whose authenticated connection delivered it either forged it or, as a
// relay, altered it. A coordinator finishes the session with a fault of
// caller (through its inbox, as if it had reported the failure to itself);
// a party reports the failure to its session's coordinator and stops. An
// envelope for a session this node does not know is only refused: a party
// cannot end sessions it cannot name.
func (n *Node) abortForged(caller string, env *synodv1.Envelope, err error) {
	n.mu.Lock()
	cs := n.coords[env.GetSession()]
	ps := n.sessions[env.GetSession()]
	n.mu.Unlock()
	if cs == nil && ps == nil {
		return
	}
	payload, _ := json.Marshal(sessionError{Party: caller,
		Message: fmt.Sprintf("delivered over %s's connection an envelope that is not authentic: %v", caller, err)})
	if cs != nil {
		n.log.Warn("aborting session: envelope with a bad signature", "session", cs.id, "from_connection", caller)
		if ierr := cs.toInbox(&synodv1.Envelope{Session: cs.id, Kind: kindSessionError, From: n.cfg.ID, To: n.cfg.ID, Payload: payload}); ierr != nil {
			n.log.Warn("could not abort session", "session", cs.id, "error", ierr)
		}
		return
	}
	n.log.Warn("leaving session: envelope with a bad signature", "session", ps.id, "from_connection", caller, "coordinator", ps.coordinator)
	if serr := n.send(ps, protocols.Message{Kind: kindSessionError, To: protocols.PartyID(ps.coordinator), Payload: payload}); serr != nil {
		n.log.Warn("could not report failure", "session", ps.id, "error", serr)
	}
	ps.close()
}

// accept verifies and routes one envelope, whether it came from the network
// or from this node itself.
func (n *Node) accept(env *synodv1.Envelope) error {
	key, ok := n.keys[env.GetFrom()]
	if !ok {
		return fmt.Errorf("sender %q is not a consortium party", env.GetFrom())
	}
	if env.GetTo() != "" {
		if _, ok := n.keys[env.GetTo()]; !ok {
			return fmt.Errorf("recipient %q is not a consortium party", env.GetTo())
		}
	}
	digest, err := wire.VerifyDigest(env, key)
	if err != nil {
		return &badSignature{err}
	}
	return n.route(env, digest)
}

// route hands a verified envelope (with its transcript digest) to the
// session it belongs to, refusing replays.
func (n *Node) route(env *synodv1.Envelope, digest []byte) error {
	replayKey := fmt.Sprintf("%s|%s|%d", env.GetFrom(), env.GetTo(), env.GetSeq())
	n.mu.Lock()
	seen := n.seen[env.GetSession()]
	if seen == nil {
		seen = map[string]struct{}{}
		n.seen[env.GetSession()] = seen
	}
	if _, dup := seen[replayKey]; dup {
		n.mu.Unlock()
		return fmt.Errorf("replayed envelope %s seq %d from %s", env.GetKind(), env.GetSeq(), env.GetFrom())
	}
	seen[replayKey] = struct{}{}
	cs := n.coords[env.GetSession()]
	n.mu.Unlock()

	if cs != nil {
		return cs.receive(env, digest)
	}
	if env.GetTo() != "" && env.GetTo() != n.cfg.ID {
		return fmt.Errorf("envelope for %s reached %s, which does not coordinate session %s", env.GetTo(), n.cfg.ID, env.GetSession())
	}
	return n.partyReceive(env)
}

// send seals a message from this node's party role and hands it to the
// session's coordinator (possibly this node).
func (n *Node) send(ps *partySession, m protocols.Message) error {
	m.From = protocols.PartyID(n.cfg.ID)
	m.Session = ps.id
	if outgoingHook != nil {
		outgoingHook(&m)
	}
	env, digest, err := wire.SealDigest(n.id, m, n.seq.Add(1))
	if err != nil {
		return err
	}
	if ps.coordinator == n.cfg.ID {
		// Signed here a moment ago: route it without hashing it again.
		return n.route(env, digest)
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Timeouts.Peer*6)
	defer cancel()
	return n.peers.Deliver(ctx, ps.coordinator, env)
}

// isControl reports whether a kind is addressed to the coordinator itself
// rather than relayed to the parties.
func isControl(kind string) bool {
	return strings.HasPrefix(kind, "query.") || strings.HasPrefix(kind, "keyswitch.") || kind == kindSessionError || kind == kindSetupStored
}
