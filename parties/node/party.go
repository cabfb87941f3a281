package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/parties/query"
	"github.com/synod-mpc/synod/protocols"
)

// Message kinds the node runtime adds around the protocols' own.
const (
	kindSetupStart       = "setup.start"       // coordinator → party: setupStart
	kindQueryRequest     = "query.request"     // coordinator → data party: QuerySpec
	kindQueryInput       = "query.input"       // party → coordinator: ciphertext of partial sums
	kindQueryRefused     = "query.refused"     // party → coordinator: reason
	kindKeySwitchRequest = "keyswitch.request" // coordinator → group member
	kindKeySwitchShare   = "keyswitch.share"   // group member → coordinator
	kindSessionError     = "session.error"     // party → coordinator: why the party stopped
	kindSessionAbort     = "session.abort"     // coordinator → party: forget the session
)

// setupStart is the payload of setup.start.
type setupStart struct {
	Parameters     string   `json:"parameters"`
	Parties        []string `json:"parties"`
	Threshold      int      `json:"threshold"`
	GaloisElements []uint64 `json:"galois_elements"`
}

// partySession is this node's side of a session, fed by one goroutine so
// that the network handler never waits on cryptography.
type partySession struct {
	id          string
	coordinator string
	inbox       chan *synodv1.Envelope
	stop        sync.Once
	done        chan struct{}

	setup      *protocols.Setup
	setupStart setupStart
	queried    bool // a query.request was answered: key switching is allowed
}

func (ps *partySession) close() { ps.stop.Do(func() { close(ps.done) }) }

// partyReceive routes an envelope to the party side of its session,
// creating the session on the coordinator's first request.
func (n *Node) partyReceive(env *synodv1.Envelope) error {
	n.mu.Lock()
	ps := n.sessions[env.GetSession()]
	if ps == nil {
		switch env.GetKind() {
		case kindSetupStart, kindQueryRequest:
			if env.GetTo() != n.cfg.ID {
				n.mu.Unlock()
				return fmt.Errorf("%s must be addressed to this party", env.GetKind())
			}
			ps = &partySession{id: env.GetSession(), coordinator: env.GetFrom(), inbox: make(chan *synodv1.Envelope, 4096), done: make(chan struct{})}
			n.sessions[ps.id] = ps
			go n.runPartySession(ps)
		default:
			n.mu.Unlock()
			return fmt.Errorf("unknown session %s for %s", env.GetSession(), env.GetKind())
		}
	}
	n.mu.Unlock()
	switch env.GetKind() {
	case kindSetupStart, kindQueryRequest, kindKeySwitchRequest, kindSessionAbort:
		if env.GetFrom() != ps.coordinator {
			return fmt.Errorf("%s from %s, but %s coordinates session %s", env.GetKind(), env.GetFrom(), ps.coordinator, ps.id)
		}
	}
	select {
	case ps.inbox <- env:
		return nil
	case <-ps.done:
		return fmt.Errorf("session %s has ended", ps.id)
	default:
		return fmt.Errorf("session %s: inbox full", ps.id)
	}
}

func (n *Node) runPartySession(ps *partySession) {
	defer func() {
		n.mu.Lock()
		delete(n.sessions, ps.id)
		n.mu.Unlock()
	}()
	for {
		select {
		case <-ps.done:
			return
		case env := <-ps.inbox:
			finished, err := n.partyStep(ps, env)
			if err != nil {
				n.log.Warn("session failed", "session", ps.id, "kind", env.GetKind(), "error", err)
				payload, _ := json.Marshal(sessionError{Message: err.Error(), Party: offender(err)})
				if serr := n.send(ps, protocols.Message{Kind: kindSessionError, To: protocols.PartyID(ps.coordinator), Payload: payload}); serr != nil {
					n.log.Warn("could not report failure", "session", ps.id, "error", serr)
				}
				ps.close()
				return
			}
			if finished {
				ps.close()
				return
			}
		}
	}
}

// sessionError is the payload of session.error.
type sessionError struct {
	Message string `json:"message"`
	Party   string `json:"party,omitempty"` // the party at fault, if known
}

func offender(err error) string {
	var pe *protocols.ProtocolError
	if errors.As(err, &pe) {
		return string(pe.Party)
	}
	return ""
}

// partyStep handles one envelope; it reports whether the session is over
// for this party.
func (n *Node) partyStep(ps *partySession, env *synodv1.Envelope) (bool, error) {
	switch env.GetKind() {
	case kindSessionAbort:
		n.log.Info("session aborted by coordinator", "session", ps.id, "reason", string(env.GetPayload()))
		return true, nil
	case kindSetupStart:
		return false, n.startSetup(ps, env)
	case kindQueryRequest:
		return false, n.answerQuery(ps, env)
	case kindKeySwitchRequest:
		return false, n.answerKeySwitch(ps, env)
	}
	if ps.setup == nil {
		return false, fmt.Errorf("%s from %s outside a setup session", env.GetKind(), env.GetFrom())
	}
	out, err := ps.setup.Step(wireMessage(env))
	if err != nil {
		return false, err
	}
	for _, m := range out {
		if err := n.send(ps, m); err != nil {
			return false, fmt.Errorf("send %s: %w", m.Kind, err)
		}
	}
	if !ps.setup.Done() {
		return false, nil
	}
	res := ps.setup.Result()
	st := &keyState{
		Meta: setupMeta{Session: ps.id, Parameters: ps.setupStart.Parameters, Parties: ps.setupStart.Parties,
			Threshold: ps.setupStart.Threshold, Digest: res.Digest},
		Result: res,
	}
	st.Params, _ = engine.ParametersByName(ps.setupStart.Parameters)
	if err := saveKeyState(n.cfg.DataDir, n.passphrase, st); err != nil {
		return false, fmt.Errorf("store setup keys: %w", err)
	}
	n.mu.Lock()
	n.state = st
	n.mu.Unlock()
	n.log.Info("setup complete", "session", ps.id, "digest", fmt.Sprintf("%x", res.Digest[:8]))
	return true, nil
}

func wireMessage(env *synodv1.Envelope) protocols.Message {
	return protocols.Message{Session: env.GetSession(), Kind: protocols.Kind(env.GetKind()),
		From: protocols.PartyID(env.GetFrom()), To: protocols.PartyID(env.GetTo()), Payload: env.GetPayload()}
}

func (n *Node) startSetup(ps *partySession, env *synodv1.Envelope) error {
	var start setupStart
	if err := json.Unmarshal(env.GetPayload(), &start); err != nil {
		return fmt.Errorf("setup.start: %w", err)
	}
	params, err := engine.ParametersByName(start.Parameters)
	if err != nil {
		return fmt.Errorf("setup.start: %w", err)
	}
	if start.Threshold != n.cons.Threshold {
		return fmt.Errorf("setup.start: threshold %d differs from the consortium file's %d", start.Threshold, n.cons.Threshold)
	}
	if fmt.Sprint(start.Parties) != fmt.Sprint(n.parties) {
		return fmt.Errorf("setup.start: parties %v differ from the consortium file's %v", start.Parties, n.parties)
	}
	ids := make([]protocols.PartyID, len(start.Parties))
	for i, p := range start.Parties {
		ids[i] = protocols.PartyID(p)
	}
	peerKeys := map[protocols.PartyID]kyberPoint{}
	for id, k := range n.keys {
		peerKeys[protocols.PartyID(id)] = k
	}
	setup, out, err := protocols.NewSetup(protocols.SetupConfig{
		Params:         params,
		Session:        ps.id,
		Self:           protocols.PartyID(n.cfg.ID),
		Parties:        ids,
		Threshold:      start.Threshold,
		GaloisElements: start.GaloisElements,
		Identity:       n.id.Secret,
		PeerKeys:       peerKeys,
		Rand:           cryptoRand,
	})
	if err != nil {
		return err
	}
	ps.setup, ps.setupStart = setup, start
	n.log.Info("setup started", "session", ps.id, "coordinator", ps.coordinator, "parameters", params.Name)
	for _, m := range out {
		if err := n.send(ps, m); err != nil {
			return fmt.Errorf("send %s: %w", m.Kind, err)
		}
	}
	return nil
}

// answerQuery filters and sums the party's own rows, encrypts the partial
// sums under the collective public key and sends them to the coordinator.
// Anything wrong with the request is refused with a reason.
func (n *Node) answerQuery(ps *partySession, env *synodv1.Envelope) error {
	refuse := func(format string, args ...any) error {
		reason := fmt.Sprintf(format, args...)
		n.log.Info("query refused", "session", ps.id, "reason", reason)
		return n.send(ps, protocols.Message{Kind: kindQueryRefused, To: protocols.PartyID(ps.coordinator), Payload: []byte(reason)})
	}
	st := n.keyState()
	if st == nil {
		return refuse("%s has no setup keys; run mpcctl setup", n.cfg.ID)
	}
	spec := &synodv1.QuerySpec{}
	if err := proto.Unmarshal(env.GetPayload(), spec); err != nil {
		return refuse("malformed query spec: %v", err)
	}
	if err := query.Validate(spec); err != nil {
		return refuse("%v", err)
	}
	table, ok := n.datasets[spec.GetDataset()]
	if !ok {
		return refuse("dataset %q is not declared by %s", spec.GetDataset(), n.cfg.ID)
	}
	values, err := query.Local(table, spec)
	if err != nil {
		return refuse("%v", err)
	}
	ct, err := engine.EncryptVector(st.Params, st.Result.PublicKey, values)
	if err != nil {
		return refuse("encrypt: %v", err)
	}
	b, err := ct.MarshalBinary()
	if err != nil {
		return err
	}
	ps.queried = true
	n.log.Info("query input sent", "session", ps.id, "dataset", spec.GetDataset(), "cells", len(values))
	return n.send(ps, protocols.Message{Kind: kindQueryInput, To: protocols.PartyID(ps.coordinator), Payload: b})
}

// answerKeySwitch produces this party's flooded share switching the
// session's result to the analyst's key, for the group the coordinator chose.
func (n *Node) answerKeySwitch(ps *partySession, env *synodv1.Envelope) error {
	st := n.keyState()
	if st == nil {
		return fmt.Errorf("%s has no setup keys", n.cfg.ID)
	}
	if !ps.queried {
		// Only the result of a query this party took part in is ever
		// switched: a bare ciphertext could be anyone's input.
		return fmt.Errorf("key switch requested before any query input in session %s", ps.id)
	}
	req, err := protocols.UnmarshalKeySwitchRequest(st.Params, env.GetPayload())
	if err != nil {
		return &protocols.ProtocolError{Party: protocols.PartyID(env.GetFrom()), Kind: protocols.Kind(env.GetKind()), Err: err}
	}
	if req.Session != ps.id {
		return fmt.Errorf("key switch request names session %s inside session %s", req.Session, ps.id)
	}
	members := make([]protocols.PartyID, len(n.parties))
	for i, p := range n.parties {
		members[i] = protocols.PartyID(p)
	}
	m, err := protocols.KeySwitchShare(st.Params, protocols.PartyID(n.cfg.ID), members, n.cons.Threshold,
		st.Result.ThresholdShare, req, st.Params.FloodingSigma, protocols.PartyID(ps.coordinator))
	if err != nil {
		return err
	}
	m.Kind = kindKeySwitchShare
	n.log.Info("key switch share sent", "session", ps.id, "group", fmt.Sprint(req.Group))
	return n.send(ps, m)
}
