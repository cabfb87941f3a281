package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/ledger"
	"github.com/synod-mpc/synod/parties/query"
	"github.com/synod-mpc/synod/protocols"
)

// Message kinds the node runtime adds around the protocols' own.
const (
	kindSetupStart       = "setup.start"       // coordinator → party: setupStart
	kindSetupBeacon      = "setup.beacon"      // party → all: partial BLS signature of the session (CRS beacon)
	kindSetupStored      = "setup.stored"      // party → coordinator: digest of the keys it has stored and recorded
	kindQueryPropose     = "query.propose"     // coordinator → party: queryProposal
	kindQueryApprove     = "query.approve"     // party → coordinator: partial BLS signature of the approval message
	kindQueryRequest     = "query.request"     // coordinator → data party: queryRequest (spec + certificate)
	kindQueryInput       = "query.input"       // party → coordinator: QueryInput (cohort-test inputs, then partial sums)
	kindQuerySuppress    = "query.suppress"    // coordinator → data party: querySuppress (cells below the minimum cohort)
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

	// setup: DKG, then the beacon (CRS seed), then key generation.
	dkg        *protocols.DKG
	dkgResult  *protocols.DKGResult
	beacon     *protocols.ApprovalCollector
	crsSeed    []byte
	setup      *protocols.Setup
	setupStart setupStart
	early      []*synodv1.Envelope // setup messages that arrived before their stage
	queried    bool                // a certified query.request was answered: key switching is allowed

	// query under a minimum cohort: the noisy partial sums, kept between
	// the cohort test and the coordinator's suppression list.
	spec    *synodv1.QuerySpec
	pending []float64

	// prepared holds the partial sums computed right after approving,
	// while the certificate is committed: only encrypting must wait for it.
	prepared *preparedSums
}

// preparedSums are a party's plaintext partial sums for the query it
// approved (spec bytes and analyst as proposed).
type preparedSums struct {
	specBytes []byte
	analyst   string
	values    []float64
}

func (ps *partySession) close() { ps.stop.Do(func() { close(ps.done) }) }

// partyReceive routes an envelope to the party side of its session,
// creating the session on the coordinator's first request.
func (n *Node) partyReceive(env *synodv1.Envelope) error {
	n.mu.Lock()
	if n.ended[env.GetSession()] {
		n.mu.Unlock()
		return fmt.Errorf("session %s has ended", env.GetSession())
	}
	ps := n.sessions[env.GetSession()]
	if ps == nil {
		switch env.GetKind() {
		case kindSetupStart, kindQueryPropose, kindModelStore, kindPredictStart:
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
	case kindSetupStart, kindQueryPropose, kindQueryRequest, kindQuerySuppress, kindKeySwitchRequest, kindSessionAbort, kindModelStore, kindPredictStart:
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
		n.ended[ps.id] = true
		if n.coords[ps.id] == nil {
			delete(n.seen, ps.id) // a replay now meets the ended session
		}
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
	case kindQueryPropose:
		return false, n.answerProposal(ps, env)
	case kindQueryRequest:
		return false, n.answerQuery(ps, env)
	case kindQuerySuppress:
		return false, n.answerSuppress(ps, env)
	case kindKeySwitchRequest:
		return false, n.answerKeySwitch(ps, env)
	case kindModelStore:
		return false, n.storeModel(ps, env) // model.go
	case kindPredictStart:
		return false, n.answerPredictStart(ps, env) // model.go
	}
	if err := n.setupStep(ps, env); err != nil {
		return false, err
	}
	if ps.setup == nil || !ps.setup.Done() {
		return false, nil
	}
	return true, n.finishSetup(ps)
}

// setupStep feeds one message to the stage of the setup it belongs to,
// holding messages that arrive before this party reached their stage.
func (n *Node) setupStep(ps *partySession, env *synodv1.Envelope) error {
	if ps.dkg == nil {
		return fmt.Errorf("%s from %s outside a setup session", env.GetKind(), env.GetFrom())
	}
	kind := env.GetKind()
	var out []protocols.Message
	var err error
	switch {
	case strings.HasPrefix(kind, "dkg."):
		out, err = ps.dkg.Step(wireMessage(env))
	case kind == kindSetupBeacon:
		if ps.beacon == nil {
			ps.early = append(ps.early, env)
			return nil
		}
		err = n.addBeaconPartial(ps, protocols.PartyID(env.GetFrom()), env.GetPayload())
	case strings.HasPrefix(kind, "setup."):
		if ps.setup == nil {
			ps.early = append(ps.early, env)
			return nil
		}
		out, err = ps.setup.Step(wireMessage(env))
	default:
		return fmt.Errorf("unexpected %s from %s during setup", kind, env.GetFrom())
	}
	if err != nil {
		return err
	}
	for _, m := range out {
		if err := n.send(ps, m); err != nil {
			return fmt.Errorf("send %s: %w", m.Kind, err)
		}
	}
	// Stage transitions: DKG done → sign the beacon; beacon done → keys.
	if ps.dkg.Done() && ps.beacon == nil {
		if err := n.startBeacon(ps); err != nil {
			return err
		}
		return n.replayEarly(ps)
	}
	if ps.crsSeed != nil && ps.setup == nil {
		if err := n.startKeygen(ps); err != nil {
			return err
		}
		return n.replayEarly(ps)
	}
	return nil
}

func (n *Node) replayEarly(ps *partySession) error {
	early := ps.early
	ps.early = nil
	for _, env := range early {
		if err := n.setupStep(ps, env); err != nil {
			return err
		}
	}
	return nil
}

// startBeacon signs the session with this party's share of the new
// consortium BLS key; t such signatures make the CRS seed, which no single
// party (nor the coordinator) can choose or predict.
func (n *Node) startBeacon(ps *partySession) error {
	ps.dkgResult = ps.dkg.Result()
	msg := protocols.BeaconMessage(ps.id)
	col, err := protocols.NewApprovalCollector(ps.dkgResult.Public, ps.setupStart.Threshold, len(ps.setupStart.Parties), msg)
	if err != nil {
		return err
	}
	if err := col.ExpectParties(partyIDs(ps.setupStart.Parties)); err != nil {
		return err
	}
	ps.beacon = col
	sig, err := protocols.SignApproval(ps.dkgResult, msg)
	if err != nil {
		return err
	}
	if err := n.send(ps, protocols.Message{Kind: kindSetupBeacon, Payload: sig}); err != nil {
		return fmt.Errorf("send %s: %w", kindSetupBeacon, err)
	}
	return n.addBeaconPartial(ps, protocols.PartyID(n.cfg.ID), sig)
}

func (n *Node) addBeaconPartial(ps *partySession, from protocols.PartyID, sig []byte) error {
	if ps.crsSeed != nil {
		return nil // enough partials already; later ones are not needed
	}
	done, err := ps.beacon.Add(from, sig)
	if err != nil || !done {
		return err
	}
	seed, err := protocols.BeaconSeed(ps.dkgResult.GroupKey, protocols.BeaconMessage(ps.id), ps.beacon.Certificate())
	if err != nil {
		return err
	}
	ps.crsSeed = seed
	return nil
}

func (n *Node) startKeygen(ps *partySession) error {
	params, err := engine.ParametersByName(ps.setupStart.Parameters)
	if err != nil {
		return err
	}
	peerKeys := map[protocols.PartyID]kyberPoint{}
	for id, k := range n.keys {
		peerKeys[protocols.PartyID(id)] = k
	}
	setup, out, err := protocols.NewSetup(protocols.SetupConfig{
		Params:         params,
		Session:        ps.id,
		Self:           protocols.PartyID(n.cfg.ID),
		Parties:        partyIDs(ps.setupStart.Parties),
		Threshold:      ps.setupStart.Threshold,
		GaloisElements: ps.setupStart.GaloisElements,
		Identity:       n.id.Secret,
		PeerKeys:       peerKeys,
		Rand:           cryptoRand,
		CRSSeed:        ps.crsSeed,
	})
	if err != nil {
		return err
	}
	ps.setup = setup
	for _, m := range out {
		if err := n.send(ps, m); err != nil {
			return fmt.Errorf("send %s: %w", m.Kind, err)
		}
	}
	return nil
}

// finishSetup stores the keys (secrets sealed), records the setup on the
// chain and only then reports the node as set up.
func (n *Node) finishSetup(ps *partySession) error {
	res := ps.setup.Result()
	groupKey, err := protocols.MarshalGroupKey(ps.dkgResult.GroupKey)
	if err != nil {
		return err
	}
	st := &keyState{
		Meta: setupMeta{Session: ps.id, Parameters: ps.setupStart.Parameters, Parties: ps.setupStart.Parties,
			Threshold: ps.setupStart.Threshold, Digest: res.Digest, GroupKey: groupKey},
		Result: res,
		DKG:    ps.dkgResult,
	}
	st.Params, _ = engine.ParametersByName(ps.setupStart.Parameters)
	// Record the setup on the chain while the keys are written: the commit
	// is mostly waiting for a block, the storing mostly CPU.
	rec := setupRecord{Parameters: st.Meta.Parameters, Parties: st.Meta.Parties, Threshold: st.Meta.Threshold,
		KeyDigest: hex.EncodeToString(res.Digest), GroupKey: hex.EncodeToString(groupKey), CRSSeed: hex.EncodeToString(ps.crsSeed)}
	type recorded struct {
		receipt *ledger.Receipt
		err     error
	}
	done := make(chan recorded, 1)
	go func() {
		r, err := n.record(context.Background(), ledger.KindSetup, ps.id, rec)
		done <- recorded{r, err}
	}()
	sealer, saveErr := n.sealer()
	if saveErr == nil {
		saveErr = saveKeyState(n.cfg.DataDir, sealer, st)
	}
	rr := <-done
	if saveErr != nil {
		return fmt.Errorf("store setup keys: %w", saveErr)
	}
	if rr.err != nil {
		return rr.err
	}
	receipt := rr.receipt
	n.mu.Lock()
	n.state = st
	n.mu.Unlock()
	n.log.Info("setup complete", "session", ps.id, "digest", fmt.Sprintf("%x", res.Digest[:8]), "ledger_height", receipt.Height)
	// Tell the coordinator the keys are usable here, so that the session
	// ends only when a query sent right after it finds every party ready.
	if err := n.send(ps, protocols.Message{Kind: kindSetupStored, To: protocols.PartyID(ps.coordinator), Payload: res.Digest}); err != nil {
		return fmt.Errorf("send %s: %w", kindSetupStored, err)
	}
	return nil
}

func partyIDs(ids []string) []protocols.PartyID {
	out := make([]protocols.PartyID, len(ids))
	for i, p := range ids {
		out[i] = protocols.PartyID(p)
	}
	return out
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
	dkg, out, err := protocols.NewDKG(protocols.DKGConfig{
		Session:   ps.id,
		Self:      protocols.PartyID(n.cfg.ID),
		Parties:   partyIDs(start.Parties),
		Threshold: start.Threshold,
		Rand:      cryptoRand,
	})
	if err != nil {
		return err
	}
	ps.dkg, ps.setupStart = dkg, start
	n.log.Info("setup started", "session", ps.id, "coordinator", ps.coordinator, "parameters", params.Name)
	for _, m := range out {
		if err := n.send(ps, m); err != nil {
			return fmt.Errorf("send %s: %w", m.Kind, err)
		}
	}
	return nil
}

// queryProposal is the payload of query.propose; queryRequest of
// query.request, which adds the approval certificate.
type queryProposal struct {
	Spec    []byte `json:"spec"` // canonical QuerySpec
	Analyst string `json:"analyst"`
}

type queryRequest struct {
	Spec        []byte `json:"spec"`
	Analyst     string `json:"analyst"`
	Certificate []byte `json:"certificate"`
	// MinCohort is the largest minimum cohort of the approving parties;
	// above 0 the parties first send cohort-test inputs.
	MinCohort int `json:"min_cohort,omitempty"`
}

// queryApproval is the payload of query.approve.
type queryApproval struct {
	Signature []byte `json:"signature"` // partial BLS signature of the approval message
	MinCohort int    `json:"min_cohort,omitempty"`
}

// querySuppress is the payload of query.suppress: the groups (indexes in
// query.Layout order) whose count fell below the minimum cohort.
type querySuppress struct {
	Groups []int `json:"groups"`
}

// checkQuery applies this party's policy to a query: the analyst must be a
// consortium analyst, the dataset declared here, every column present, and
// the policy rules (analysts, columns, differential privacy) met. It returns
// the spec, or the reason for refusing. It reads no rows: partialSums does.
func (n *Node) checkQuery(session string, specBytes []byte, analyst string) (*synodv1.QuerySpec, string) {
	if m, ok := n.cons.Member(analyst); !ok || m.Role != "analyst" {
		return nil, fmt.Sprintf("%s is not an analyst of the consortium", analyst)
	}
	spec := &synodv1.QuerySpec{}
	if err := proto.Unmarshal(specBytes, spec); err != nil {
		return nil, fmt.Sprintf("malformed query spec: %v", err)
	}
	if spec.GetInference() != nil {
		return n.inferenceQuery(spec, analyst) // model validation (infer.go)
	}
	if err := query.Validate(spec); err != nil {
		return nil, err.Error()
	}
	table, ok := n.datasets[spec.GetDataset()]
	if !ok {
		return nil, fmt.Sprintf("dataset %q is not declared by %s", spec.GetDataset(), n.cfg.ID)
	}
	if err := n.policyCheck(context.Background(), spec, analyst, session); err != nil {
		return nil, err.Error()
	}
	if _, err := query.NoiseScales(spec, n.columnBounds(spec.GetDataset())); err != nil {
		return nil, err.Error()
	}
	if err := query.CheckColumns(table, spec); err != nil {
		return nil, err.Error()
	}
	return spec, ""
}

// partialSums filters and encodes this party's rows for a spec checkQuery
// accepted: the cells it encrypts (for a validation, the scores of its own
// records binned with their labels).
func (n *Node) partialSums(spec *synodv1.QuerySpec) ([]float64, error) {
	table := n.datasets[spec.GetDataset()]
	if inf := spec.GetInference(); inf != nil {
		m, bins, err := ValidateInference(spec)
		if err != nil {
			return nil, err
		}
		return inferenceCells(table, m, bins, inf.GetFeatures(), inf.GetLabel())
	}
	return query.Local(table, spec)
}

func (n *Node) refuse(ps *partySession, format string, args ...any) error {
	reason := fmt.Sprintf(format, args...)
	n.log.Info("query refused", "session", ps.id, "reason", reason)
	return n.send(ps, protocols.Message{Kind: kindQueryRefused, To: protocols.PartyID(ps.coordinator), Payload: []byte(reason)})
}

// answerProposal applies the policy and, if the query passes, approves it
// with a partial threshold-BLS signature.
func (n *Node) answerProposal(ps *partySession, env *synodv1.Envelope) error {
	st := n.keyState()
	if st == nil {
		return n.refuse(ps, "%s has no setup keys; run mpcctl setup", n.cfg.ID)
	}
	var prop queryProposal
	if err := json.Unmarshal(env.GetPayload(), &prop); err != nil {
		return n.refuse(ps, "malformed proposal: %v", err)
	}
	spec, reason := n.checkQuery(ps.id, prop.Spec, prop.Analyst)
	if reason != "" {
		return n.refuse(ps, "%s", reason)
	}
	sig, err := protocols.SignApproval(st.DKG, protocols.ApprovalMessage(ps.id, prop.Analyst, digest(prop.Spec)))
	if err != nil {
		return err
	}
	payload, err := json.Marshal(queryApproval{Signature: sig, MinCohort: n.cfg.Policy.MinCohort})
	if err != nil {
		return err
	}
	n.log.Info("query approved", "session", ps.id, "analyst", prop.Analyst)
	if err := n.send(ps, protocols.Message{Kind: kindQueryApprove, To: protocols.PartyID(ps.coordinator), Payload: payload}); err != nil {
		return err
	}
	// Filter the rows and compute the partial sums now, while the
	// coordinator collects approvals and commits the certificate; nothing
	// is encrypted or sent before the certified request.
	if values, err := n.partialSums(spec); err == nil {
		ps.prepared = &preparedSums{specBytes: prop.Spec, analyst: prop.Analyst, values: values}
	}
	return nil
}

// answerQuery contributes the party's data to a query it can see was
// approved: the certificate must verify under the consortium key and be on
// the chain. It filters and sums the party's own rows, encrypts the partial
// sums under the collective public key and sends them to the coordinator.
func (n *Node) answerQuery(ps *partySession, env *synodv1.Envelope) error {
	st := n.keyState()
	if st == nil {
		return n.refuse(ps, "%s has no setup keys; run mpcctl setup", n.cfg.ID)
	}
	var req queryRequest
	if err := json.Unmarshal(env.GetPayload(), &req); err != nil {
		return n.refuse(ps, "malformed query request: %v", err)
	}
	groupKey, err := protocols.UnmarshalGroupKey(st.Meta.GroupKey)
	if err != nil {
		return err
	}
	if err := protocols.VerifyCertificate(groupKey, protocols.ApprovalMessage(ps.id, req.Analyst, digest(req.Spec)), req.Certificate); err != nil {
		return n.refuse(ps, "approval certificate does not verify: %v", err)
	}
	if err := n.approvalOnChain(ps.id, req.Certificate); err != nil {
		return n.refuse(ps, "%v", err)
	}
	// The policy is checked again on the certified request; the sums
	// prepared at approval are used if they are for this very query.
	prepared := ps.prepared
	ps.prepared = nil
	reuse := prepared != nil && bytes.Equal(prepared.specBytes, req.Spec) && prepared.analyst == req.Analyst
	spec, reason := n.checkQuery(ps.id, req.Spec, req.Analyst)
	if reason != "" {
		return n.refuse(ps, "%s", reason)
	}
	var values []float64
	if reuse {
		values = prepared.values
	} else if values, err = n.partialSums(spec); err != nil {
		return n.refuse(ps, "%s", err)
	}
	if req.MinCohort < n.cfg.Policy.MinCohort {
		return n.refuse(ps, "policy rule min_cohort: the request applies a minimum cohort of %d, this party requires %d", req.MinCohort, n.cfg.Policy.MinCohort)
	}
	if _, err := n.addNoiseShares(spec, values); err != nil {
		return n.refuse(ps, "%v", err)
	}
	ps.queried = true
	if req.MinCohort == 0 {
		return n.sendValues(ps, st, spec, values)
	}
	// Cohort test first; the partial sums wait for the suppression list.
	groups := groupCounts(spec, values)
	counts, masks, err := engine.EncryptCohortInputs(st.Params, st.Result.PublicKey, groups)
	if err != nil {
		return n.refuse(ps, "encrypt: %v", err)
	}
	in := &synodv1.QueryInput{}
	if in.CohortCounts, err = engine.MarshalCiphertext(counts); err != nil {
		return err
	}
	if in.CohortMasks, err = engine.MarshalCiphertext(masks); err != nil {
		return err
	}
	ps.spec, ps.pending = spec, values
	n.log.Info("cohort test input sent", "session", ps.id, "dataset", spec.GetDataset(), "groups", len(groups), "min_cohort", req.MinCohort)
	return n.sendInput(ps, in)
}

// answerSuppress zeroes the cells the cohort test suppressed and sends the
// partial sums.
func (n *Node) answerSuppress(ps *partySession, env *synodv1.Envelope) error {
	st := n.keyState()
	if st == nil || ps.pending == nil {
		return fmt.Errorf("%s from %s before a cohort test", env.GetKind(), env.GetFrom())
	}
	var sup querySuppress
	if err := json.Unmarshal(env.GetPayload(), &sup); err != nil {
		return &protocols.ProtocolError{Party: protocols.PartyID(env.GetFrom()), Kind: protocols.Kind(env.GetKind()), Err: err}
	}
	values := ps.pending
	ps.pending = nil
	if err := suppress(ps.spec, values, sup.Groups); err != nil {
		return &protocols.ProtocolError{Party: protocols.PartyID(env.GetFrom()), Kind: protocols.Kind(env.GetKind()), Err: err}
	}
	return n.sendValues(ps, st, ps.spec, values)
}

// sendValues encrypts the partial sums under the collective public key and
// sends them to the coordinator.
func (n *Node) sendValues(ps *partySession, st *keyState, spec *synodv1.QuerySpec, values []float64) error {
	ct, err := engine.EncryptVector(st.Params, st.Result.PublicKey, values)
	if err != nil {
		return n.refuse(ps, "encrypt: %v", err)
	}
	in := &synodv1.QueryInput{}
	if in.Values, err = engine.MarshalCiphertext(ct); err != nil {
		return err
	}
	n.log.Info("query input sent", "session", ps.id, "dataset", spec.GetDataset(), "cells", len(values))
	return n.sendInput(ps, in)
}

func (n *Node) sendInput(ps *partySession, in *synodv1.QueryInput) error {
	b, err := proto.Marshal(in)
	if err != nil {
		return err
	}
	return n.send(ps, protocols.Message{Kind: kindQueryInput, To: protocols.PartyID(ps.coordinator), Payload: b})
}

// approvalOnChain waits until the session's approval certificate is
// recorded on this node's chain: its validator may be a block behind the
// coordinator's. It looks again at every block its validator commits
// (embedded validator), or every 10 ms (remote chain), for at most two peer
// timeouts.
func (n *Node) approvalOnChain(session string, cert []byte) error {
	wait := 2 * n.cfg.Timeouts.Peer
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	// Watch first, then look, so that a block committed in between wakes
	// the wait.
	var blocks <-chan int64
	poll := 10 * time.Millisecond
	if w, ok := n.chain.(ledger.BlockWatcher); ok {
		if b, stop, err := w.WatchBlocks(ctx); err == nil {
			defer stop()
			blocks, poll = b, 100*time.Millisecond // polling only as a fallback
		}
	}
	want := hex.EncodeToString(cert)
	var lastErr error
	for {
		recs, err := n.chain.Session(ctx, session)
		if err == nil {
			for _, r := range recs {
				if r.Tx.Kind != ledger.KindApproval {
					continue
				}
				var a approvalRecord
				if json.Unmarshal(r.Tx.Body, &a) == nil && a.Certificate == want {
					return nil
				}
			}
		} else if errors.Is(err, errLedgerStopped) {
			return fmt.Errorf("no approval certificate for session %s: %w", session, err)
		} else if ctx.Err() == nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no approval certificate for session %s on the chain within %v (last error: %v)", session, wait, lastErr)
		case _, ok := <-blocks:
			if !ok {
				blocks, poll = nil, 10*time.Millisecond
			}
		case <-time.After(poll):
		}
	}
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
