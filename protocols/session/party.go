package session

import (
	"bytes"
	"fmt"

	"google.golang.org/protobuf/proto"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/protocols"
)

// Host is what a party's machine asks of its node: its policy's decisions
// and its own data. Nothing in it touches the network.
type Host interface {
	// Review applies the party's policy (analysts, datasets, columns,
	// differential privacy, its published terms) to a spec proposed by
	// analyst in session. A non-nil error is the refusal, said to the
	// coordinator and the analyst: it must not carry data values.
	Review(session string, spec *synodv1.QuerySpec, analyst string) (Terms, error)
	// Cells computes the party's plaintext cells for one round of an
	// approved spec: a query's partial sums or a validation's binned
	// scores (round 1), exact training's sufficient statistics at the
	// given coefficients, with the party's share of the differential
	// privacy noise already added.
	Cells(spec *synodv1.QuerySpec, round int, coefficients []float64) (*Cells, error)
}

// Terms are what a party demands of a session it approves.
type Terms struct {
	// MinCohort is the smallest count a released cell may have.
	MinCohort int
}

// Cells are a party's plaintext contribution to a round.
type Cells struct {
	Values []float64
	// Groups and PerGroup shape a grouped query's cells: group g holds
	// Values[g*PerGroup : (g+1)*PerGroup], its count first (the cohort
	// test's input).
	Groups, PerGroup int
}

// PartyConfig configures a party's machine in one session.
type PartyConfig struct {
	Session     string
	Self        PartyID
	Coordinator PartyID
	Threshold   int
	// Keys are the node's setup keys (nil before the setup: every
	// proposal is then refused).
	Keys *Keys
	Host Host
}

// Party is a party's machine in a session other than the setup.
type Party struct {
	base
	cfg PartyConfig

	spec      *synodv1.QuerySpec
	specBytes []byte
	analyst   string
	prepared  *Cells // computed right after approving, for round 1
	certified bool   // the certificate verified and was found on the chain
	request   *synodv1.Request
	pending   *Cells // values held back until the cohort test's verdict
	// contributed is set once the party sent an input of this session:
	// only then does it key-switch or refresh the session's ciphertexts
	// (a bare ciphertext could be anyone's input).
	contributed bool
	lookups     int
	terms       Terms
	extra       []PartyExtension
}

// PartyExtension lets session kinds beyond queries (uploads, predictions,
// encrypted training) handle their own messages at the party.
type PartyExtension interface {
	// Handle takes a message the party machine does not know; handled is
	// false when the extension does not know it either.
	Handle(p *Party, m protocols.Message) (handled bool, err error)
}

// NewParty returns a party's machine for a session a coordinator opened,
// with the extensions of the session kinds beyond queries.
func NewParty(cfg PartyConfig, ext ...PartyExtension) *Party {
	p := &Party{cfg: cfg, extra: ext}
	p.session = cfg.Session
	return p
}

// Config returns the party's configuration.
func (p *Party) Config() PartyConfig { return p.cfg }

// Step implements Stepper.
func (p *Party) Step(in Input) Ready {
	if p.status.Final() {
		return p.take()
	}
	if err := p.step(in); err != nil {
		p.report(err)
	}
	return p.take()
}

// report tells the coordinator why this party stopped, and fails.
func (p *Party) report(err error) {
	p.fail(err)
	p.send(KindError, encode(&synodv1.SessionError{Message: err.Error(), Party: string(Offender(err))}))
}

func (p *Party) send(kind protocols.Kind, payload []byte) {
	p.out.Messages = append(p.out.Messages, protocols.Message{Session: p.cfg.Session, Kind: kind, From: p.cfg.Self, To: p.cfg.Coordinator, Payload: payload})
}

// refuse declines the session with a reason the analyst will read; the
// machine stays, the coordinator decides.
func (p *Party) refuse(format string, a ...any) {
	p.send(KindRefuse, encode(&synodv1.Refusal{Reason: fmt.Sprintf(format, a...)}))
}

func (p *Party) step(in Input) error {
	switch in := in.(type) {
	case Deliver:
		m := in.Msg
		if m.From != p.cfg.Coordinator {
			return fmt.Errorf("%s from %s, but %s coordinates session %s", m.Kind, m.From, p.cfg.Coordinator, p.cfg.Session)
		}
		return p.deliver(m)
	case LookedUp:
		return p.lookedUp(in)
	case Worked:
		if in.Ref == refPrepare {
			if in.Err == nil {
				p.prepared, _ = in.Value.(*Cells)
			}
			return nil
		}
		for _, e := range p.extra {
			if w, ok := e.(interface{ Worked(*Party, Worked) error }); ok {
				if err := w.Worked(p, in); err != nil {
					return err
				}
			}
		}
		return nil
	case Stored:
		for _, e := range p.extra {
			if s, ok := e.(interface{ Stored(*Party, Stored) error }); ok {
				if err := s.Stored(p, in); err != nil {
					return err
				}
			}
		}
		return nil
	case Tick, Committed, Unreachable, Continue, Relayed:
		return nil
	}
	return fmt.Errorf("party: unexpected input %T", in)
}

func (p *Party) deliver(m protocols.Message) error {
	switch m.Kind {
	case KindAbort:
		// The coordinator ends every session this way: well after this
		// party's part, or early (another party failed, the approval
		// fell short).
		if p.status == StatusRunning {
			p.setStatus(StatusDone)
		} else {
			p.setStatus(StatusAborted)
		}
		return nil
	case KindPropose:
		return p.propose(m)
	case KindRequest:
		return p.requested(m)
	case KindSuppress:
		return p.suppress(m)
	case KindKeySwitchAsk:
		return p.keySwitch(m)
	case KindRefreshAsk:
		return p.refresh(m)
	}
	for _, e := range p.extra {
		handled, err := e.Handle(p, m)
		if handled || err != nil {
			return err
		}
	}
	return faultf(m.From, "unexpected %s", m.Kind)
}

const refPrepare = "prepare"

// propose applies the policy and, if the spec passes, approves it with a
// partial threshold-BLS signature.
func (p *Party) propose(m protocols.Message) error {
	if p.spec != nil {
		return faultf(m.From, "proposed session %s twice", p.cfg.Session)
	}
	if err := p.cfg.Keys.check(); err != nil {
		p.refuse("%s has no setup keys; run mpcctl setup", p.cfg.Self)
		return nil
	}
	var prop synodv1.Proposal
	if err := decode(m, &prop); err != nil {
		p.refuse("malformed proposal: %v", err)
		return nil
	}
	spec := &synodv1.QuerySpec{}
	if err := proto.Unmarshal(prop.GetSpec(), spec); err != nil {
		p.refuse("malformed query spec: %v", err)
		return nil
	}
	terms, err := p.cfg.Host.Review(p.cfg.Session, spec, prop.GetAnalyst())
	if err != nil {
		p.refuse("%v", err)
		return nil
	}
	sig, err := protocols.SignApproval(p.cfg.Keys.DKG, protocols.ApprovalMessage(p.cfg.Session, prop.GetAnalyst(), digest(prop.GetSpec())))
	if err != nil {
		return err
	}
	p.spec, p.specBytes, p.analyst, p.terms = spec, prop.GetSpec(), prop.GetAnalyst(), terms
	p.setStatus(StatusApproving)
	p.send(KindApprove, encode(&synodv1.Approval{Signature: sig, MinCohort: uint32(terms.MinCohort)}))
	p.event("approval", p.cfg.Self, "approved the session of %s", prop.GetAnalyst())
	// Read and sum the rows now, while the coordinator collects approvals
	// and commits the certificate; nothing is encrypted or sent before the
	// certified request.
	if spec.GetTraining().GetMode() != synodv1.Training_ENCRYPTED {
		host := p.cfg.Host
		p.out.Work = append(p.out.Work, Work{Ref: refPrepare, Run: func() (any, error) { return host.Cells(spec, 1, nil) }})
	}
	return nil
}

// requested answers a round's request. The first one carries the approval
// certificate: the party verifies it, and waits until it finds it on the
// chain, before it sends anything.
func (p *Party) requested(m protocols.Message) error {
	var req synodv1.Request
	if err := decode(m, &req); err != nil {
		return err
	}
	if p.spec == nil {
		p.refuse("request for session %s, which this party did not approve", p.cfg.Session)
		return nil
	}
	if !bytes.Equal(req.GetSpec(), p.specBytes) || req.GetAnalyst() != p.analyst {
		p.refuse("the request's spec or analyst differs from the approved proposal")
		return nil
	}
	p.request = &req
	if p.certified {
		return p.contribute()
	}
	if p.lookups > 0 {
		return faultf(m.From, "second request before the certificate was checked")
	}
	groupKey := p.cfg.Keys.DKG.GroupKey
	msg := protocols.ApprovalMessage(p.cfg.Session, p.analyst, digest(p.specBytes))
	if err := protocols.VerifyCertificate(groupKey, msg, req.GetCertificate()); err != nil {
		p.refuse("approval certificate does not verify: %v", err)
		return nil
	}
	p.lookups++
	p.out.Lookups = append(p.out.Lookups, Lookup{Ref: "certificate", Session: p.cfg.Session, Certificate: req.GetCertificate()})
	return nil
}

func (p *Party) lookedUp(l LookedUp) error {
	if l.Err != nil {
		p.refuse("%v", l.Err)
		return nil
	}
	// The policy is checked again on the certified request: the chain
	// (and with it the analyst's spent budget) may have moved.
	terms, err := p.cfg.Host.Review(p.cfg.Session, p.spec, p.analyst)
	if err != nil {
		p.refuse("%v", err)
		return nil
	}
	p.terms = terms
	p.certified = true
	p.setStatus(StatusCertifying)
	p.setStatus(StatusRunning)
	return p.contribute()
}

// Contributed marks the party as having sent an input of this session (an
// extension's contribution), which allows key switches and refreshes.
func (p *Party) Contributed() { p.contributed = true }

// Send sends a message to the coordinator on an extension's behalf.
func (p *Party) Send(kind protocols.Kind, payload []byte) { p.send(kind, payload) }

// Spec returns the approved spec (nil before the proposal).
func (p *Party) Spec() *synodv1.QuerySpec { return p.spec }

// Request returns the round's request being answered.
func (p *Party) Request() *synodv1.Request { return p.request }

// Certified reports whether the session's certificate verified and is on
// the chain.
func (p *Party) Certified() bool { return p.certified }

// Do asks the driver to run work for an extension.
func (p *Party) Do(w Work) { p.out.Work = append(p.out.Work, w) }

// Persist asks the driver to store something for an extension.
func (p *Party) Persist(s Store) { p.out.Stores = append(p.out.Stores, s) }

// Event reports progress on an extension's behalf.
func (p *Party) Event(stage, format string, a ...any) { p.event(stage, p.cfg.Self, format, a...) }

// contribute sends the party's input to the current round.
func (p *Party) contribute() error {
	req := p.request
	round := int(req.GetRound())
	for _, e := range p.extra {
		if c, ok := e.(interface{ Contribute(*Party) (bool, error) }); ok {
			if handled, err := c.Contribute(p); handled || err != nil {
				return err
			}
		}
	}
	if int(req.GetMinCohort()) < p.terms.MinCohort {
		p.refuse("policy rule min_cohort: the request applies a minimum cohort of %d, this party requires %d", req.GetMinCohort(), p.terms.MinCohort)
		return nil
	}
	cells := p.prepared
	p.prepared = nil
	if cells == nil || round != 1 || len(req.GetCoefficients()) > 0 {
		var err error
		if cells, err = p.cfg.Host.Cells(p.spec, round, req.GetCoefficients()); err != nil {
			p.refuse("%v", err)
			return nil
		}
	}
	keys := p.cfg.Keys
	p.contributed = true
	if req.GetMinCohort() == 0 {
		return p.sendValues(cells.Values, round)
	}
	// The cohort test first; the values wait for the verdict.
	counts := make([]float64, cells.Groups)
	for g := range counts {
		counts[g] = cells.Values[g*cells.PerGroup]
	}
	cc, mc, err := engine.EncryptCohortInputs(keys.Params, keys.Setup.PublicKey, counts)
	if err != nil {
		p.refuse("encrypt: %v", err)
		return nil
	}
	in := &synodv1.Contribution{Round: uint32(round)}
	if in.CohortCounts, err = engine.MarshalCiphertext(cc); err != nil {
		return err
	}
	if in.CohortMasks, err = engine.MarshalCiphertext(mc); err != nil {
		return err
	}
	p.pending = cells
	p.send(KindContribution, encode(in))
	p.event("cohort", p.cfg.Self, "cohort test input sent (%d groups, minimum cohort %d)", cells.Groups, req.GetMinCohort())
	return nil
}

// sendValues encrypts cells under the collective public key and sends them.
func (p *Party) sendValues(values []float64, round int) error {
	keys := p.cfg.Keys
	ct, err := engine.EncryptVector(keys.Params, keys.Setup.PublicKey, values)
	if err != nil {
		p.refuse("encrypt: %v", err)
		return nil
	}
	in := &synodv1.Contribution{Round: uint32(round)}
	if in.Values, err = engine.MarshalCiphertext(ct); err != nil {
		return err
	}
	p.send(KindContribution, encode(in))
	p.event("inputs", p.cfg.Self, "encrypted %d cells sent (round %d)", len(values), round)
	return nil
}

// suppress zeroes the groups the cohort test suppressed and sends the
// values.
func (p *Party) suppress(m protocols.Message) error {
	if p.pending == nil {
		return faultf(m.From, "%s before a cohort test", m.Kind)
	}
	var s synodv1.Suppress
	if err := decode(m, &s); err != nil {
		return err
	}
	cells := p.pending
	p.pending = nil
	for _, g := range s.GetGroups() {
		if int(g) >= cells.Groups {
			return faultf(m.From, "suppressed group %d outside [0, %d)", g, cells.Groups)
		}
		clear(cells.Values[int(g)*cells.PerGroup : (int(g)+1)*cells.PerGroup])
	}
	return p.sendValues(cells.Values, int(p.request.GetRound()))
}

// keySwitch makes this party's flooded share switching a ciphertext of the
// session to the target the coordinator names, for its group.
func (p *Party) keySwitch(m protocols.Message) error {
	if !p.contributed {
		return faultf(m.From, "key switch asked before this party contributed to session %s", p.cfg.Session)
	}
	keys := p.cfg.Keys
	req, err := protocols.UnmarshalKeySwitchRequest(keys.Params, m.Payload)
	if err != nil {
		return &Fault{Party: m.From, Err: fmt.Errorf("key switch request: %w", err)}
	}
	if req.Session != p.cfg.Session {
		return faultf(m.From, "key switch request names session %s inside session %s", req.Session, p.cfg.Session)
	}
	share, err := protocols.KeySwitchShare(keys.Params, p.cfg.Self, keys.members(), p.cfg.Threshold,
		keys.Setup.ThresholdShare, req, keys.Params.FloodingSigma, p.cfg.Coordinator)
	if err != nil {
		return err
	}
	p.out.Messages = append(p.out.Messages, share)
	return nil
}

// refresh makes this party's share of a collective refresh of the
// session's ciphertexts.
func (p *Party) refresh(m protocols.Message) error {
	if !p.contributed {
		return faultf(m.From, "refresh asked before this party contributed to session %s", p.cfg.Session)
	}
	keys := p.cfg.Keys
	req, err := protocols.UnmarshalRefreshRequest(keys.Params, m.Payload)
	if err != nil {
		return &Fault{Party: m.From, Err: fmt.Errorf("refresh request: %w", err)}
	}
	if req.Session != p.cfg.Session {
		return faultf(m.From, "refresh request names session %s inside session %s", req.Session, p.cfg.Session)
	}
	share, err := protocols.RefreshShare(keys.Params, p.cfg.Self, keys.members(), p.cfg.Threshold,
		keys.Setup.ThresholdShare, req, p.cfg.Coordinator)
	if err != nil {
		return err
	}
	p.out.Messages = append(p.out.Messages, share)
	return nil
}
