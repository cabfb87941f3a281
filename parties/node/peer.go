package node

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.dedis.ch/kyber/v3"
	"google.golang.org/protobuf/proto"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/parties/pki"
	"github.com/synod-mpc/synod/parties/transport"
	"github.com/synod-mpc/synod/parties/wire"
	"github.com/synod-mpc/synod/protocols"
	"github.com/synod-mpc/synod/protocols/session"
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
	env, err := transport.ReceiveEnvelope(stream, n.inbound, "party "+caller)
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
// relay, altered it. A coordinator's machine fails the session with a fault
// of caller (as if caller had reported it); a party's machine reports the
// failure to its session's coordinator and stops. An envelope for a
// session this node does not know is only refused: a party cannot end
// sessions it cannot name.
func (n *Node) abortForged(caller string, env *synodv1.Envelope, err error) {
	n.mu.Lock()
	cs := n.coords[env.GetSession()]
	ps := n.sessions[env.GetSession()]
	n.mu.Unlock()
	report := &synodv1.SessionError{Party: caller,
		Message: fmt.Sprintf("delivered over %s's connection an envelope that is not authentic: %v", caller, err)}
	payload, _ := proto.Marshal(report)
	switch {
	case cs != nil:
		n.log.Warn("aborting session: envelope with a bad signature", "session", cs.id, "from_connection", caller)
		forged := protocols.Message{Session: cs.id, Kind: session.KindError, From: protocols.PartyID(caller), To: protocols.PartyID(n.cfg.ID), Payload: payload}
		if cs.feed(session.Deliver{Msg: forged}) != nil {
			n.log.Warn("could not abort session", "session", cs.id)
		}
	case ps != nil:
		n.log.Warn("leaving session: envelope with a bad signature", "session", ps.id, "from_connection", caller, "coordinator", ps.coordinator)
		ps.send(protocols.Message{Kind: session.KindError, To: protocols.PartyID(ps.coordinator), Payload: payload})
		ps.stop(err)
	}
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
// machine it is for, refusing replays and kinds no session knows: a
// coordinator's machine, the relay of a session this node coordinates, or
// this node's party.
func (n *Node) route(env *synodv1.Envelope, digest []byte) error {
	kind := protocols.Kind(env.GetKind())
	rt, ok := session.RouteOf(kind)
	if !ok {
		return fmt.Errorf("session %s: unknown message kind %q", env.GetSession(), kind)
	}
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
		if !slices.Contains(cs.participants, env.GetFrom()) {
			return fmt.Errorf("session %s: %s is not a participant", cs.id, env.GetFrom())
		}
		cs.appendTranscript(digest)
		switch {
		case rt.Relayed:
			cs.relay(env)
			return cs.feed(session.Relayed{Kind: kind, From: protocols.PartyID(env.GetFrom())})
		case rt.To == session.ToCoordinator:
			if env.GetTo() != n.cfg.ID {
				return fmt.Errorf("session %s: %s must be addressed to the coordinator", cs.id, kind)
			}
			return cs.feed(session.Deliver{Msg: wire.Message(env)})
		default:
			return fmt.Errorf("session %s: %s comes from the coordinator, not from %s", cs.id, kind, env.GetFrom())
		}
	}
	if rt.To != session.ToParty {
		return fmt.Errorf("%s for session %s, which %s does not coordinate", kind, env.GetSession(), n.cfg.ID)
	}
	if env.GetTo() != "" && env.GetTo() != n.cfg.ID {
		return fmt.Errorf("envelope for %s reached %s, which does not coordinate session %s", env.GetTo(), n.cfg.ID, env.GetSession())
	}
	return n.partyReceive(env)
}

// partyReceive hands an envelope to this node's party machine of its
// session, creating the machine on the coordinator's first message.
func (n *Node) partyReceive(env *synodv1.Envelope) error {
	kind := protocols.Kind(env.GetKind())
	rt, _ := session.RouteOf(kind)
	st := n.keyState() // before n.mu: keyState takes it
	n.mu.Lock()
	if n.ended[env.GetSession()] {
		n.mu.Unlock()
		return fmt.Errorf("session %s has ended", env.GetSession())
	}
	ps := n.sessions[env.GetSession()]
	if ps == nil {
		if !rt.Opens {
			n.mu.Unlock()
			return fmt.Errorf("unknown session %s for %s", env.GetSession(), kind)
		}
		if env.GetTo() != n.cfg.ID {
			n.mu.Unlock()
			return fmt.Errorf("%s must be addressed to this party", kind)
		}
		ps = n.startParty(env.GetSession(), env.GetFrom(), n.partyMachine(env.GetSession(), env.GetFrom(), kind, st))
	}
	n.mu.Unlock()
	if !rt.Relayed && env.GetFrom() != ps.coordinator {
		return fmt.Errorf("%s from %s, but %s coordinates session %s", kind, env.GetFrom(), ps.coordinator, ps.id)
	}
	return ps.feed(session.Deliver{Msg: wire.Message(env)})
}

// partyMachine builds this node's party machine for a session opened by a
// message of kind.
func (n *Node) partyMachine(id, coordinator string, kind protocols.Kind, st *keyState) session.Stepper {
	self, coord := protocols.PartyID(n.cfg.ID), protocols.PartyID(coordinator)
	if kind == session.KindSetupStart {
		peerKeys := map[protocols.PartyID]kyber.Point{}
		for p, k := range n.keys {
			peerKeys[protocols.PartyID(p)] = k
		}
		return session.NewSetupParty(session.SetupPartyConfig{Session: id, Self: self, Coordinator: coord,
			Parties: partyIDs(n.parties), Threshold: n.cons.Threshold, Identity: n.id.Secret, PeerKeys: peerKeys, Rand: cryptoRand})
	}
	cfg := session.PartyConfig{Session: id, Self: self, Coordinator: coord, Threshold: n.cons.Threshold, Host: host{n}}
	if st != nil {
		cfg.Keys = st.keys()
	}
	return session.NewParty(cfg, n.partyExtensions()...)
}

func partyIDs(ids []string) []protocols.PartyID {
	out := make([]protocols.PartyID, len(ids))
	for i, p := range ids {
		out[i] = protocols.PartyID(p)
	}
	return out
}
