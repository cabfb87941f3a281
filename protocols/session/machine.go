// Package session holds Synod's sessions — the consortium setup, queries,
// model validations, training, model uploads and private predictions — as
// deterministic state machines in the shape of etcd's raft: a machine takes
// one Input (a message from a party, an expired timer, the outcome of a chain
// commit, a store or a chain lookup, the analyst's next step) and returns a
// Ready: the messages to send, the records to commit to the chain, what to
// store, what to look up, the progress to report, the results to release and
// the next timer. A machine does no I/O, starts no goroutine and reads no
// clock; package parties/node drives it over the network, the chain and the
// disk, and package protocols/protocolstest drives it in one process.
//
// A session has one coordinator (the node an analyst asked) and parties.
// The coordinator's machine runs the session's approval (threshold-BLS
// partial signatures of the canonical spec, the certificate committed to the
// chain before any data moves) and then a Job: the rounds a session kind
// needs (collect the parties' encrypted contributions, evaluate, have a
// group of t parties key-switch or refresh ciphertexts, record, release).
// The party's machine answers: it reviews a proposal with its node's policy
// (Host), verifies the certificate and finds it on the chain before it
// contributes, and makes key-switch and refresh shares only for the session
// it contributed to. Every machine fails for good on its first fatal error
// (Ready.Err stays set), naming the party at fault when it knows it.
package session

import (
	"errors"
	"fmt"
	"time"

	"github.com/synod-mpc/synod/protocols"
)

// PartyID names a consortium party.
type PartyID = protocols.PartyID

// Stepper is every session machine: it takes one input and says what to do.
type Stepper interface {
	Step(in Input) Ready
}

// Input is what a machine takes: Deliver, Tick, Committed, Stored,
// LookedUp, Unreachable or Continue.
type Input interface{ isInput() }

// Deliver hands the machine a message addressed to its role, already
// authenticated by the transport (the sender signed it).
type Deliver struct{ Msg protocols.Message }

// Tick says that the timer of a previous Ready expired.
type Tick struct{ Timer int }

// Committed is the outcome of a Commit: its receipt, or why it failed.
type Committed struct {
	Ref     string
	Receipt Receipt
	Err     error
}

// Stored is the outcome of a Store.
type Stored struct {
	Ref string
	Err error
}

// LookedUp is the outcome of a Lookup: nil when the fact is on the chain.
type LookedUp struct {
	Ref string
	Err error
}

// Unreachable says that the transport could not deliver to a party.
type Unreachable struct {
	Party PartyID
	Err   error
}

// Continue is the analyst's next step in a multi-round session (exact
// logistic training): the next round's coefficients, or the end.
type Continue struct {
	Round        int
	Coefficients []float64
	Stop         bool
}

func (Deliver) isInput()     {}
func (Tick) isInput()        {}
func (Committed) isInput()   {}
func (Stored) isInput()      {}
func (LookedUp) isInput()    {}
func (Unreachable) isInput() {}
func (Continue) isInput()    {}

// Receipt locates a committed record on the chain.
type Receipt struct {
	Height int64
	TxHash []byte
}

// Ready is what a step asks its driver to do, in order: send the messages,
// start the commits, stores, lookups and work (each answered later by an
// input with its Ref), report the events, hand over the releases, arm the
// timer.
type Ready struct {
	Messages []protocols.Message
	Commits  []Commit
	Stores   []Store
	Lookups  []Lookup
	Events   []Event
	Releases []Release
	Work     []Work
	// Timer, when set, asks for a Tick with its ID after its delay; a later
	// Ready's timer replaces it.
	Timer *Timer
	// Status is the machine's status after the step; Err is set once it
	// failed, and stays set.
	Status Status
	Err    error
}

// Final reports whether the machine is done or failed.
func (r Ready) Final() bool { return r.Status.Final() }

// Commit asks the driver to sign a record as its node and commit it to the
// chain. When Transcript is set the driver fills the record's message list
// with the digests of the session's signed envelopes, which only the
// transport sees.
type Commit struct {
	Ref        string
	Kind       string // ledger record kind
	Record     any    // a records.* body
	Transcript bool
}

// Store asks the driver to persist something: *SetupKeys or *ModelBlob.
type Store struct {
	Ref  string
	What any
}

// Lookup asks the driver whether the approval certificate of this session
// is recorded on its chain (a party's validator may be a block behind the
// coordinator's; the driver waits for it within its own bound).
type Lookup struct {
	Ref         string
	Session     string
	Certificate []byte
}

// Event is progress for whoever watches the session.
type Event struct {
	Stage   string
	Party   PartyID
	Message string
}

// Timer asks for a Tick.
type Timer struct {
	ID    int
	After time.Duration
}

// Release is a result for the session's analyst (or, in a prediction, for
// the requesting party itself).
type Release struct {
	Round  int
	Final  bool
	Result *Result
}

// Status is a session machine's lifecycle.
type Status uint8

// The statuses, in lifecycle order.
const (
	StatusNew        Status = iota
	StatusApproving         // proposal sent, approvals arriving
	StatusCertifying        // the approval certificate is being committed
	StatusRunning           // the job's rounds (or a setup, an upload)
	StatusRecording         // a round's or the session's record is being committed
	StatusDone
	StatusFailed
	// StatusAborted: the coordinator ended the session before this
	// party's part was over (another party failed, or the analyst's
	// session was refused).
	StatusAborted
)

var statusNames = [...]string{"new", "approving", "certifying", "running", "recording", "done", "failed", "aborted"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", s)
}

// Final reports whether no transition leaves s.
func (s Status) Final() bool { return s == StatusDone || s == StatusFailed || s == StatusAborted }

// transitions is the lifecycle's table: the statuses each status may go to.
// Every machine moves through it with setStatus, which refuses anything
// else (a bug, reported as the machine's failure).
var transitions = map[Status][]Status{
	StatusNew:        {StatusApproving, StatusRunning, StatusFailed, StatusAborted},
	StatusApproving:  {StatusCertifying, StatusFailed, StatusAborted},
	StatusCertifying: {StatusRunning, StatusFailed, StatusAborted},
	StatusRunning:    {StatusRecording, StatusDone, StatusFailed, StatusAborted},
	StatusRecording:  {StatusRunning, StatusDone, StatusFailed, StatusAborted},
}

// CanMove reports whether the lifecycle allows from → to.
func CanMove(from, to Status) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Fault is an error attributed to one party: the session aborts naming it.
type Fault struct {
	Party PartyID
	Err   error
}

func (f *Fault) Error() string { return fmt.Sprintf("party %s: %v", f.Party, f.Err) }
func (f *Fault) Unwrap() error { return f.Err }

// faultf attributes an error to party.
func faultf(party PartyID, format string, a ...any) *Fault {
	return &Fault{Party: party, Err: fmt.Errorf(format, a...)}
}

// Offender names the party an error is attributed to ("" if none).
func Offender(err error) PartyID {
	var f *Fault
	if errors.As(err, &f) {
		return f.Party
	}
	var pe *protocols.ProtocolError
	if errors.As(err, &pe) {
		return pe.Party
	}
	return ""
}

// ErrNothingReleased ends the message of every failure after which the
// analyst holds nothing.
const nothingReleased = "nothing was released"

// base is what every machine shares: its status, its sticky error and the
// Ready being built by the current step.
type base struct {
	session string
	status  Status
	err     error
	out     Ready
}

// setStatus moves along the lifecycle; an illegal move fails the machine.
func (b *base) setStatus(to Status) {
	if b.status == to {
		return
	}
	if !CanMove(b.status, to) {
		b.fail(fmt.Errorf("session %s: internal error: no transition %s → %s", b.session, b.status, to))
		return
	}
	b.status = to
}

// fail ends the machine with err, once.
func (b *base) fail(err error) {
	if b.err != nil {
		return
	}
	b.err = err
	b.status = StatusFailed
}

func (b *base) event(stage string, party PartyID, format string, a ...any) {
	b.out.Events = append(b.out.Events, Event{Stage: stage, Party: party, Message: fmt.Sprintf(format, a...)})
}

// take returns the Ready built by a step and starts a new one.
func (b *base) take() Ready {
	r := b.out
	b.out = Ready{}
	r.Status, r.Err = b.status, b.err
	return r
}

// Timeouts bound a session's waits.
type Timeouts struct {
	// Stage bounds each wait for the parties (approvals, contributions,
	// shares): twice the peer timeout in the node.
	Stage time.Duration
}

func (t Timeouts) stage() time.Duration {
	if t.Stage <= 0 {
		return 20 * time.Second
	}
	return t.Stage
}
