package session

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/protocols"
)

// CoordinatorConfig configures the coordinator of one session.
type CoordinatorConfig struct {
	Session string
	Self    PartyID
	// Participants are the parties taking part (reachable and set up).
	Participants []PartyID
	Threshold    int
	Keys         *Keys
	// Analyst asked for the session; Spec is its canonical spec (what the
	// parties approve). Approve runs the approval phase first (every
	// session that touches data); model uploads and predictions have none.
	Analyst  string
	Spec     []byte
	Approve  bool
	Timeouts Timeouts
	Job      Job
}

// Coordinator is the coordinator's machine of a session: the approval,
// then its Job's actions, each carried out over the parties.
type Coordinator struct {
	base
	cfg    CoordinatorConfig
	active []PartyID // parties still taking part, sorted

	// approval
	collector *protocols.ApprovalCollector
	approval  Approved
	refusals  map[PartyID]string

	job     Job
	current Action // the job's action in progress
	timer   int
	pending map[string]bool // refs of commits, stores and work in flight

	ask    *askState
	swtch  *switchState
	fresh  *refreshState
	ended  bool // the parties were told the session is over
	rounds int  // rounds released
}

// Approved is what the approval established.
type Approved struct {
	Certificate []byte
	Approvers   []PartyID
	TxHash      []byte
	MinCohort   int
}

// NewCoordinator validates cfg and returns the machine and its first Ready.
func NewCoordinator(cfg CoordinatorConfig) (*Coordinator, Ready) {
	c := &Coordinator{cfg: cfg, refusals: map[PartyID]string{}, pending: map[string]bool{}, job: cfg.Job}
	c.session = cfg.Session
	c.active = sortedIDs(cfg.Participants)
	switch {
	case cfg.Session == "":
		c.fail(errors.New("coordinator: no session id"))
	case cfg.Job == nil:
		c.fail(errors.New("coordinator: no job"))
	case len(cfg.Participants) == 0:
		c.fail(errors.New("coordinator: no participants"))
	case cfg.Threshold < 1:
		c.fail(fmt.Errorf("coordinator: threshold %d", cfg.Threshold))
	}
	if c.err != nil {
		return c, c.take()
	}
	if cfg.Approve {
		c.propose()
	} else {
		c.setStatus(StatusRunning)
		c.next(nil)
	}
	return c, c.take()
}

// Session returns the session id.
func (c *Coordinator) Session() string { return c.cfg.Session }

// Config returns the coordinator's configuration.
func (c *Coordinator) Config() CoordinatorConfig { return c.cfg }

// Active returns the parties still taking part.
func (c *Coordinator) Active() []PartyID { return slices.Clone(c.active) }

// Approval returns what the approval established (zero before it).
func (c *Coordinator) Approval() Approved { return c.approval }

// Event reports progress on the job's behalf.
func (c *Coordinator) Event(stage string, party PartyID, format string, a ...any) {
	c.event(stage, party, format, a...)
}

// Step implements Stepper.
func (c *Coordinator) Step(in Input) Ready {
	if c.status.Final() {
		return c.take()
	}
	if err := c.step(in); err != nil {
		c.abort(err)
	}
	return c.take()
}

func (c *Coordinator) step(in Input) error {
	switch in := in.(type) {
	case Deliver:
		return c.deliver(in.Msg)
	case Tick:
		if in.Timer != c.timer {
			return nil // a timer that a later wait replaced
		}
		return c.expired()
	case Unreachable:
		return c.unreachable(in.Party, in.Err)
	case Committed:
		if !c.pending[in.Ref] {
			return nil
		}
		delete(c.pending, in.Ref)
		if in.Err != nil {
			return fmt.Errorf("%w; %s", in.Err, nothingReleased)
		}
		if in.Ref == refApproval {
			return c.certified(in.Receipt)
		}
		return c.next(Recorded{Receipt: in.Receipt})
	case Stored:
		if !c.pending[in.Ref] {
			return nil
		}
		delete(c.pending, in.Ref)
		if in.Err != nil {
			return in.Err
		}
		return c.next(nil)
	case Worked:
		if !c.pending[in.Ref] {
			return nil
		}
		delete(c.pending, in.Ref)
		if in.Err != nil {
			return in.Err
		}
		return c.next(in)
	case Continue:
		if _, ok := c.current.(AwaitAnalyst); !ok {
			return fmt.Errorf("the session is not waiting for the analyst")
		}
		c.current = nil
		return c.next(in)
	case Relayed:
		if o, ok := c.job.(Observer); ok {
			o.Observe(c, in)
		}
		return nil
	case LookedUp:
		return nil
	}
	return fmt.Errorf("coordinator: unexpected input %T", in)
}

// Relayed tells the coordinator that its node relayed a message between
// parties (setup progress).
type Relayed struct {
	Kind protocols.Kind
	From PartyID
}

func (Relayed) isInput() {}

// Observer is a Job that watches relayed messages.
type Observer interface {
	Observe(c *Coordinator, r Relayed)
}

// Worked is the outcome of a Work.
type Worked struct {
	Ref   string
	Value any
	Err   error
}

func (Worked) isInput() {}

// Work asks the driver to run a computation (lattigo work on data the
// machine already holds) off the machine's goroutine; its outcome comes
// back as Worked. A driver may run it inline.
type Work struct {
	Ref string
	Run func() (any, error)
}

func (c *Coordinator) deliver(m protocols.Message) error {
	if !slices.Contains(c.cfg.Participants, m.From) {
		return fmt.Errorf("session %s: %s is not a participant", c.cfg.Session, m.From)
	}
	switch m.Kind {
	case KindError:
		return sessionFailure(m)
	case KindApprove, KindRefuse:
		if c.status == StatusApproving {
			return c.approvalMessage(m)
		}
		if m.Kind == KindRefuse {
			var r synodv1.Refusal
			if err := decode(m, &r); err != nil {
				return err
			}
			return faultf(m.From, "refused the session: %s", r.GetReason())
		}
		return nil // a late approval: the certificate is already made
	case KindKeySwitchShare:
		if c.swtch == nil {
			return faultf(m.From, "unexpected %s", m.Kind)
		}
		return c.switchShare(m)
	case KindRefreshShare:
		if c.fresh == nil {
			return faultf(m.From, "unexpected %s", m.Kind)
		}
		return c.refreshShare(m)
	}
	if c.ask != nil && m.Kind == c.ask.action.Reply {
		return c.answer(m)
	}
	return faultf(m.From, "unexpected %s", m.Kind)
}

// sessionFailure turns a party's error report into the session's failure.
func sessionFailure(m protocols.Message) error {
	var se synodv1.SessionError
	if proto := decode(m, &se); proto != nil {
		return faultf(m.From, "stopped with an unreadable error report")
	}
	if se.GetParty() != "" {
		return faultf(PartyID(se.GetParty()), "reported by %s: %s", m.From, se.GetMessage())
	}
	return &Fault{Party: m.From, Err: errors.New(se.GetMessage())}
}

func (c *Coordinator) arm(after time.Duration) {
	c.timer++
	if after <= 0 {
		after = c.cfg.Timeouts.stage()
	}
	c.out.Timer = &Timer{ID: c.timer, After: after}
}

func (c *Coordinator) send(to PartyID, kind protocols.Kind, payload []byte) {
	c.out.Messages = append(c.out.Messages, protocols.Message{Session: c.cfg.Session, Kind: kind, From: c.cfg.Self, To: to, Payload: payload})
}

// --- approval ----------------------------------------------------------------

const refApproval = "approval"

func (c *Coordinator) propose() {
	if err := c.cfg.Keys.check(); err != nil {
		c.fail(err)
		return
	}
	keys := c.cfg.Keys
	members := keys.members()
	msg := protocols.ApprovalMessage(c.cfg.Session, c.cfg.Analyst, digest(c.cfg.Spec))
	col, err := protocols.NewApprovalCollector(keys.DKG.Public, c.cfg.Threshold, len(members), msg)
	if err == nil {
		err = col.ExpectParties(members)
	}
	if err != nil {
		c.fail(err)
		return
	}
	c.collector = col
	c.setStatus(StatusApproving)
	payload := encode(&synodv1.Proposal{Spec: c.cfg.Spec, Analyst: c.cfg.Analyst})
	for _, p := range c.cfg.Participants {
		c.send(p, KindPropose, payload)
	}
	c.event("approval", "", "proposed to %s", joinIDs(c.cfg.Participants))
	c.arm(0)
}

func (c *Coordinator) approvalMessage(m protocols.Message) error {
	if _, done := c.refusals[m.From]; done || slices.Contains(c.approval.Approvers, m.From) {
		return faultf(m.From, "answered the proposal twice")
	}
	if m.Kind == KindRefuse {
		var r synodv1.Refusal
		if err := decode(m, &r); err != nil {
			return err
		}
		c.refusals[m.From] = r.GetReason()
		c.event("approval", m.From, "%s refused: %s", m.From, r.GetReason())
	} else {
		var a synodv1.Approval
		if err := decode(m, &a); err != nil {
			return err
		}
		if _, err := c.collector.Add(m.From, a.GetSignature()); err != nil {
			return faultf(m.From, "bad approval signature: %v", err)
		}
		c.approval.Approvers = append(c.approval.Approvers, m.From)
		c.approval.MinCohort = max(c.approval.MinCohort, int(a.GetMinCohort()))
		c.event("approval", m.From, "%s approved", m.From)
	}
	if len(c.approval.Approvers)+len(c.refusals) == len(c.cfg.Participants) {
		return c.decide()
	}
	return nil
}

func (c *Coordinator) unreachable(p PartyID, err error) error {
	if !slices.Contains(c.cfg.Participants, p) {
		return nil
	}
	switch {
	case c.status == StatusApproving:
		if _, done := c.refusals[p]; !done && !slices.Contains(c.approval.Approvers, p) {
			c.refusals[p] = fmt.Sprintf("unreachable: %v", err)
			if len(c.approval.Approvers)+len(c.refusals) == len(c.cfg.Participants) {
				return c.decide()
			}
		}
		return nil
	case c.ask != nil && slices.Contains(c.ask.waiting, p):
		return c.drop(p, fmt.Sprintf("%s unreachable (%v)", p, err))
	case c.swtch != nil && slices.Contains(c.swtch.group, p):
		return c.regroupSwitch(p)
	case c.fresh != nil && slices.Contains(c.fresh.group, p):
		return c.regroupRefresh(p)
	}
	c.active = without(c.active, p)
	return nil
}

// decide ends the approval: t approvals make the certificate, committed to
// the chain before any data moves.
func (c *Coordinator) decide() error {
	cert := c.collector.Certificate()
	if cert == nil {
		var why []string
		for _, p := range sortedIDs(mapKeys(c.refusals)) {
			why = append(why, fmt.Sprintf("party %s refused: %s", p, c.refusals[p]))
		}
		return fmt.Errorf("%d of %d approvals, the threshold is %d; %s (%s)",
			len(c.approval.Approvers), len(c.cfg.Participants), c.cfg.Threshold, nothingReleased, strings.Join(why, "; "))
	}
	c.timer++ // no more waiting for approvals
	c.approval.Certificate = cert
	slices.Sort(c.approval.Approvers)
	c.active = slices.Clone(c.approval.Approvers)
	c.setStatus(StatusCertifying)
	var signers []string
	for _, p := range c.collector.Signers() {
		signers = append(signers, string(p))
	}
	rec := ApprovalRecord{Analyst: c.cfg.Analyst, Spec: c.cfg.Spec, Certificate: cert, Signers: signers,
		SetupSession: c.cfg.Keys.SetupSession, MinCohort: c.approval.MinCohort}
	c.pending[refApproval] = true
	c.out.Commits = append(c.out.Commits, Commit{Ref: refApproval, Kind: KindApprovalRecord, Record: rec})
	return nil
}

func (c *Coordinator) certified(r Receipt) error {
	c.approval.TxHash = r.TxHash
	c.event("ledger", "", "approval certificate (signed by %s) recorded at height %d", joinIDs(c.collector.Signers()), r.Height)
	c.setStatus(StatusRunning)
	return c.next(nil)
}

// --- the job ----------------------------------------------------------------

// next hands the job the outcome of its last action and starts the next
// ones, until one has to wait.
func (c *Coordinator) next(outcome any) error {
	for !c.status.Final() {
		a, err := c.job.Next(c, outcome)
		if err != nil {
			return err
		}
		c.current = a
		outcome = nil
		switch a := a.(type) {
		case Ask:
			return c.startAsk(a)
		case KeySwitch:
			return c.startSwitch(a)
		case Refresh:
			return c.startRefresh(a)
		case Record:
			c.setStatus(StatusRecording)
			ref := fmt.Sprintf("record-%d", len(c.pending)+c.timer)
			c.pending[ref] = true
			c.out.Commits = append(c.out.Commits, Commit{Ref: ref, Kind: a.Kind, Record: a.Body, Transcript: a.Transcript})
			return nil
		case Persist:
			ref := fmt.Sprintf("store-%d", c.timer)
			c.pending[ref] = true
			c.out.Stores = append(c.out.Stores, Store{Ref: ref, What: a.What})
			return nil
		case Compute:
			c.pending[a.Ref] = true
			c.out.Work = append(c.out.Work, Work{Ref: a.Ref, Run: a.Run})
			if a.Wait {
				return nil
			}
		case Publish:
			if c.status == StatusRecording {
				c.setStatus(StatusRunning)
			}
			c.rounds++
			c.out.Releases = append(c.out.Releases, a.Release)
		case AwaitAnalyst:
			c.event("analyst", "", "waiting for the analyst's next step")
			return nil
		case Finish:
			c.finish()
			return nil
		case Idle:
			return nil
		default:
			return fmt.Errorf("coordinator: unknown action %T", a)
		}
	}
	return nil
}

// finish ends the session well: the parties are told it is over.
func (c *Coordinator) finish() {
	c.setStatus(StatusDone)
	c.tellOver("session over")
}

// abort ends the session on err.
func (c *Coordinator) abort(err error) {
	c.fail(err)
	c.tellOver(err.Error())
}

func (c *Coordinator) tellOver(reason string) {
	if c.ended {
		return
	}
	c.ended = true
	payload := encode(&synodv1.Abort{Reason: reason})
	for _, p := range c.cfg.Participants {
		c.send(p, KindAbort, payload)
	}
}

func (c *Coordinator) expired() error {
	switch {
	case c.status == StatusApproving:
		return c.decide()
	case c.ask != nil:
		for _, p := range slices.Clone(c.ask.waiting) {
			if err := c.drop(p, fmt.Sprintf("%s sent no %s in time", p, c.ask.action.Reply)); err != nil {
				return err
			}
		}
		return nil
	case c.swtch != nil:
		return fmt.Errorf("%s: no complete set of key switch shares in time (missing %s); %s", c.swtch.action.Stage, joinIDs(c.swtch.agg.Missing()), nothingReleased)
	case c.fresh != nil:
		return fmt.Errorf("%s: no complete set of refresh shares in time (missing %s); %s", c.fresh.action.Stage, joinIDs(c.fresh.agg.Missing()), nothingReleased)
	}
	return nil
}

// --- asking the parties --------------------------------------------------------

type askState struct {
	action  Ask
	waiting []PartyID
	answers map[PartyID]any
}

func (c *Coordinator) startAsk(a Ask) error {
	to := a.To
	if to == nil {
		to = c.active
	}
	c.ask = &askState{action: a, answers: map[PartyID]any{}}
	for _, p := range to {
		payload := a.Payload
		if a.PayloadFor != nil {
			payload = a.PayloadFor(p)
		}
		c.send(p, a.Kind, payload)
	}
	if a.Reply == "" {
		c.ask = nil
		return c.next(nil)
	}
	c.ask.waiting = slices.Clone(to)
	if a.Stage != "" && a.Waiting != "" {
		c.event(a.Stage, "", "%s", a.Waiting)
	}
	c.arm(a.Timeout)
	return nil
}

func (c *Coordinator) answer(m protocols.Message) error {
	s := c.ask
	if !slices.Contains(s.waiting, m.From) {
		if _, done := s.answers[m.From]; done {
			return faultf(m.From, "duplicate %s", m.Kind)
		}
		return faultf(m.From, "%s from a party that is not active in this stage", m.Kind)
	}
	v, err := s.action.Decode(m.From, m.Payload)
	if err != nil {
		var f *Fault
		if errors.As(err, &f) {
			return err
		}
		return &Fault{Party: m.From, Err: err}
	}
	s.answers[m.From] = v
	s.waiting = without(s.waiting, m.From)
	if s.action.Stage != "" && s.action.Received != "" {
		c.event(s.action.Stage, m.From, "%s from %s", s.action.Received, m.From)
	}
	return c.askDone()
}

// drop leaves a party that did not answer out, or fails the session when
// the ask needs every party.
func (c *Coordinator) drop(p PartyID, why string) error {
	s := c.ask
	if !s.action.KeepGoing {
		return &Fault{Party: p, Err: fmt.Errorf("%s; %s", why, nothingReleased)}
	}
	s.waiting = without(s.waiting, p)
	c.active = without(c.active, p)
	c.event(s.action.Stage, p, "%s; continuing without it", why)
	return c.askDone()
}

func (c *Coordinator) askDone() error {
	s := c.ask
	if len(s.waiting) > 0 {
		return nil
	}
	c.ask = nil
	c.timer++
	return c.next(Answers{From: s.answers})
}

// --- key switching -----------------------------------------------------------

type switchState struct {
	action  KeySwitch
	group   []PartyID
	agg     *protocols.KeySwitchAggregator
	tries   int
	dropped []PartyID
}

// startSwitch switches a ciphertext with a group of t active parties,
// restarting with a new group when a member drops out: lattigo's t-of-N
// combination fixes the group before shares are made.
func (c *Coordinator) startSwitch(a KeySwitch) error {
	c.swtch = &switchState{action: a}
	return c.switchAttempt()
}

func (c *Coordinator) candidates(dropped []PartyID) []PartyID {
	out := slices.DeleteFunc(slices.Clone(c.active), func(p PartyID) bool { return slices.Contains(dropped, p) })
	slices.Sort(out)
	return out
}

func (c *Coordinator) switchAttempt() error {
	s := c.swtch
	s.tries++
	cand := c.candidates(s.dropped)
	t := c.cfg.Threshold
	if len(cand) < t {
		return fmt.Errorf("%s: only %d parties left for the key switch, below the threshold %d; %s", s.action.Stage, len(cand), t, nothingReleased)
	}
	s.group = slices.Clone(cand[:t])
	req := protocols.KeySwitchRequest{Session: c.cfg.Session, Group: s.group, Target: s.action.Target, Ciphertext: s.action.Ciphertext}
	payload, err := req.Marshal()
	if err != nil {
		return err
	}
	if s.agg, err = protocols.NewKeySwitchAggregator(c.cfg.Keys.Params, req); err != nil {
		return err
	}
	c.event(s.action.Stage, "", "attempt %d: key switch %sby %s", s.tries, s.action.What, joinIDs(s.group))
	for _, p := range s.group {
		c.send(p, KindKeySwitchAsk, payload)
	}
	c.arm(0)
	return nil
}

func (c *Coordinator) regroupSwitch(p PartyID) error {
	c.swtch.dropped = append(c.swtch.dropped, p)
	c.active = without(c.active, p)
	c.event(c.swtch.action.Stage, p, "%s dropped out; restarting the key switch with a new group", p)
	return c.switchAttempt()
}

func (c *Coordinator) switchShare(m protocols.Message) error {
	s := c.swtch
	done, err := s.agg.Step(m)
	if err != nil {
		return faultf(m.From, "bad key switch share: %v", err)
	}
	if !done {
		return nil
	}
	c.swtch = nil
	c.timer++
	c.event(s.action.Stage, "", "switched %sby %s", s.action.What, joinIDs(s.group))
	return c.next(Switched{Ciphertext: s.agg.Result(), Group: s.group})
}

// --- refreshing ------------------------------------------------------------------

type refreshState struct {
	action  Refresh
	group   []PartyID
	agg     *protocols.RefreshAggregator
	tries   int
	dropped []PartyID
}

func (c *Coordinator) startRefresh(a Refresh) error {
	c.fresh = &refreshState{action: a}
	return c.refreshAttempt()
}

func (c *Coordinator) refreshAttempt() error {
	s := c.fresh
	s.tries++
	cand := c.candidates(s.dropped)
	t := c.cfg.Threshold
	if len(cand) < t {
		return fmt.Errorf("%s: only %d parties left for the refresh, below the threshold %d; %s", s.action.Stage, len(cand), t, nothingReleased)
	}
	s.group = slices.Clone(cand[:t])
	req := protocols.RefreshRequest{Session: c.cfg.Session, Round: s.action.Round, Group: s.group, Transform: s.action.Transform, Ciphertexts: s.action.Ciphertexts}
	payload, err := req.Marshal(c.cfg.Keys.Params)
	if err != nil {
		return err
	}
	if s.agg, err = protocols.NewRefreshAggregator(c.cfg.Keys.Params, req); err != nil {
		return err
	}
	for _, p := range s.group {
		c.send(p, KindRefreshAsk, payload)
	}
	c.arm(0)
	return nil
}

func (c *Coordinator) regroupRefresh(p PartyID) error {
	c.fresh.dropped = append(c.fresh.dropped, p)
	c.active = without(c.active, p)
	c.event(c.fresh.action.Stage, p, "%s dropped out; restarting the refresh with a new group", p)
	return c.refreshAttempt()
}

func (c *Coordinator) refreshShare(m protocols.Message) error {
	s := c.fresh
	done, err := s.agg.Step(m)
	if err != nil {
		return faultf(m.From, "bad refresh share: %v", err)
	}
	if !done {
		return nil
	}
	c.fresh = nil
	c.timer++
	return c.next(Refreshed{Ciphertexts: s.agg.Result(), Group: s.group})
}

// --- actions and outcomes ---------------------------------------------------------

// Job is a session kind's work between its approval and its end: a state
// machine of its own, driven by the outcomes of the actions it asks for.
type Job interface {
	// Next takes the outcome of the job's previous action (nil at the
	// start) and returns the next action.
	Next(c *Coordinator, outcome any) (Action, error)
}

// Action is what a job asks the coordinator to do next.
type Action interface{ isAction() }

// Ask sends a message to parties (To, or every active party) and, unless
// Reply is empty, waits for one reply of kind Reply from each, decoded by
// Decode. A party that does not answer in time, or cannot be reached,
// leaves the session when KeepGoing is set, and fails it otherwise.
// Outcome: Answers.
type Ask struct {
	Stage      string
	Kind       protocols.Kind
	Payload    []byte
	PayloadFor func(PartyID) []byte
	To         []PartyID
	Reply      protocols.Kind
	Decode     func(from PartyID, payload []byte) (any, error)
	KeepGoing  bool
	// Timeout bounds the wait (0: the stage timeout).
	Timeout time.Duration
	// Waiting and Received phrase the progress events.
	Waiting, Received string
}

// Answers is an Ask's outcome: the decoded replies by party.
type Answers struct{ From map[PartyID]any }

// KeySwitch switches a ciphertext under the collective key to Target with
// a group of t active parties. Outcome: Switched.
type KeySwitch struct {
	Stage      string
	What       string // "the result to the analyst's key ", for progress
	Ciphertext *rlwe.Ciphertext
	Target     *rlwe.PublicKey
}

// Switched is a KeySwitch's outcome.
type Switched struct {
	Ciphertext *rlwe.Ciphertext
	Group      []PartyID
}

// Refresh refreshes ciphertexts with a group of t active parties. Outcome:
// Refreshed.
type Refresh struct {
	Stage       string
	Round       uint32
	Transform   protocols.Transform
	Ciphertexts []*rlwe.Ciphertext
}

// Refreshed is a Refresh's outcome.
type Refreshed struct {
	Ciphertexts []*rlwe.Ciphertext
	Group       []PartyID
}

// Record commits a record to the chain. Outcome: Recorded.
type Record struct {
	Kind       string
	Body       any
	Transcript bool
}

// Recorded is a Record's outcome.
type Recorded struct{ Receipt Receipt }

// Persist stores something through the driver. Outcome: nil.
type Persist struct{ What any }

// Compute runs work off the machine's goroutine; with Wait the job waits
// for its Worked outcome, otherwise it goes on at once and receives the
// Worked later.
type Compute struct {
	Ref  string
	Run  func() (any, error)
	Wait bool
}

// Publish releases a result (after its record is committed). Outcome: nil.
type Publish struct{ Release Release }

// AwaitAnalyst waits for the analyst's next step. Outcome: Continue.
type AwaitAnalyst struct{}

// Idle waits for an outcome already asked for (a Compute without Wait).
type Idle struct{}

// Finish ends the session successfully.
type Finish struct{}

func (Ask) isAction()          {}
func (KeySwitch) isAction()    {}
func (Refresh) isAction()      {}
func (Record) isAction()       {}
func (Persist) isAction()      {}
func (Compute) isAction()      {}
func (Publish) isAction()      {}
func (AwaitAnalyst) isAction() {}
func (Idle) isAction()         {}
func (Finish) isAction()       {}

// Result is what an analyst fetches: the result's metadata and its
// ciphertext, under the analyst's key.
type Result struct {
	Meta       *synodv1.ResultMetadata
	Ciphertext []byte
}

func digest(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

func mapKeys[V any](m map[PartyID]V) []PartyID {
	out := make([]PartyID, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
