package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/parties/wire"
	"github.com/synod-mpc/synod/protocols"
	"github.com/synod-mpc/synod/protocols/session"
)

// A driver runs one session machine (package protocols/session) of this
// node: the coordinator's, or this node's party's. It is the machine's only
// goroutine; it carries out every Ready — signs and sends the messages,
// commits records, stores keys and models, looks facts up on the chain,
// runs work off the loop, arms the timer, reports progress, keeps releases
// for the analyst — and feeds the outcomes back as inputs. It owns what
// only the transport sees: the digests of the session's signed envelopes,
// which make its transcript.
type driver struct {
	n       *Node
	id      string
	role    session.Role
	machine session.Stepper
	// coordinator is the session's coordinator (party drivers).
	coordinator string
	// participants are the relay's recipients (coordinator drivers).
	participants []string

	inbox   chan session.Input
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	stopped chan error // stop's reason

	// coordinator drivers
	events   *eventLog
	queues   map[string]chan outbound
	analyst  string
	started  time.Time
	onFinish func(*driver) // called once the machine is final

	mu         sync.Mutex
	transcript [][]byte
	releases   map[int]*session.Result // by round
	final      *session.Result         // the session's last release
	err        error
	status     session.Status
	ledgerTime time.Duration
	released   sync.Once
	approved   bool // the session's approval is on the chain
}

func newSessionID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // the system's randomness failing is not recoverable
	}
	return hex.EncodeToString(b)
}

// outbound is an envelope on its way to one party, encoded once for all
// the parties a broadcast goes to.
type outbound struct {
	kind  string
	parts [][]byte // wire.EnvelopeParts
}

// startCoordinator registers and runs a coordinator machine over the
// participants, with one relay queue per remote participant (per-recipient
// FIFO order keeps every party's view causal).
func (n *Node) startCoordinator(id string, participants []string, analyst string, timeout time.Duration, build func() (session.Stepper, session.Ready)) *driver {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	d := &driver{n: n, id: id, role: session.ToCoordinator, participants: participants, analyst: analyst,
		inbox: make(chan session.Input, 4096), ctx: ctx, cancel: cancel, done: make(chan struct{}), stopped: make(chan error, 1),
		events: newEventLog(), queues: map[string]chan outbound{}, started: time.Now().UTC(), releases: map[int]*session.Result{}}
	for _, p := range participants {
		if p == n.cfg.ID {
			continue
		}
		q := make(chan outbound, 4096)
		d.queues[p] = q
		go d.relayTo(p, q)
	}
	n.mu.Lock()
	n.coords[id] = d
	n.mu.Unlock()
	m, first := build()
	d.machine = m
	go d.run(first)
	return d
}

// startParty registers and runs this node's party machine of a session a
// coordinator opened.
func (n *Node) startParty(id, coordinator string, m session.Stepper) *driver {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Timeouts.Session)
	d := &driver{n: n, id: id, role: session.ToParty, machine: m, coordinator: coordinator,
		inbox: make(chan session.Input, 4096), ctx: ctx, cancel: cancel, done: make(chan struct{}), stopped: make(chan error, 1)}
	n.sessions[id] = d // under n.mu, held by the caller
	go d.run(session.Ready{})
	return d
}

// stop ends the session outside its machine (this node refuses to go on).
func (d *driver) stop(err error) {
	select {
	case d.stopped <- err:
	default:
	}
}

// feed hands the machine an input without blocking the caller.
func (d *driver) feed(in session.Input) error {
	select {
	case d.inbox <- in:
		return nil
	case <-d.done:
		return fmt.Errorf("session %s has ended", d.id)
	default:
		return fmt.Errorf("session %s: inbox full", d.id)
	}
}

func (d *driver) run(first session.Ready) {
	defer d.end()
	var timer *time.Timer
	var timerC <-chan time.Time
	var timerID int
	r := first
	for {
		if t := d.apply(r); t != nil {
			if timer != nil {
				timer.Stop()
			}
			timer, timerID = time.NewTimer(t.After), t.ID
			timerC = timer.C
		}
		if r.Status.Final() {
			return
		}
		select {
		case in := <-d.inbox:
			r = d.machine.Step(in)
		case <-timerC:
			timerC = nil
			r = d.machine.Step(session.Tick{Timer: timerID})
		case err := <-d.stopped:
			d.finish(session.StatusFailed, err)
			return
		case <-d.ctx.Done():
			d.finish(session.StatusFailed, fmt.Errorf("session %s timed out; nothing was released", d.id))
			return
		}
	}
}

// apply carries out a Ready and returns its timer.
func (d *driver) apply(r session.Ready) *session.Timer {
	for _, m := range r.Messages {
		d.send(m)
	}
	for _, c := range r.Commits {
		go func() { d.feedOrDrop(d.commit(c)) }()
	}
	for _, s := range r.Stores {
		go func() { d.feedOrDrop(session.Stored{Ref: s.Ref, Err: d.n.store(d.id, s.What)}) }()
	}
	for _, l := range r.Lookups {
		go func() {
			d.feedOrDrop(session.LookedUp{Ref: l.Ref, Err: d.n.approvalOnChain(l.Session, l.Certificate)})
		}()
	}
	for _, w := range r.Work {
		go func() {
			v, err := w.Run()
			d.feedOrDrop(session.Worked{Ref: w.Ref, Value: v, Err: err})
		}()
	}
	for _, ev := range r.Events {
		d.event(ev)
	}
	for _, rel := range r.Releases {
		d.release(rel)
	}
	if r.Status.Final() {
		d.finish(r.Status, r.Err)
	}
	return r.Timer
}

func (d *driver) feedOrDrop(in session.Input) {
	if err := d.feed(in); err != nil {
		d.n.log.Debug("outcome after the session ended", "session", d.id, "input", fmt.Sprintf("%T", in))
	}
}

func (d *driver) event(ev session.Event) {
	if d.events != nil {
		d.events.add(&synodv1.Event{Session: d.id, Stage: ev.Stage, Party: string(ev.Party), Message: ev.Message})
		return
	}
	d.n.log.Info(ev.Message, "session", d.id, "stage", ev.Stage)
}

// finish records the machine's end: the final event for watchers, and the
// session's cleanup.
func (d *driver) finish(st session.Status, err error) {
	d.mu.Lock()
	if d.status.Final() {
		d.mu.Unlock()
		return
	}
	d.status, d.err = st, err
	d.mu.Unlock()
	if d.role == session.ToParty {
		if err != nil {
			d.n.log.Warn("session failed", "session", d.id, "error", err)
		}
		return
	}
	if err != nil {
		d.events.add(&synodv1.Event{Session: d.id, Stage: "failed", Message: err.Error(), Final: true, Failed: true, Party: string(session.Offender(err))})
		d.n.log.Warn("session failed", "session", d.id, "error", err)
		d.mu.Lock()
		approved := d.approved
		d.mu.Unlock()
		if approved {
			go d.recordOutcome(err)
		}
	} else {
		d.events.add(&synodv1.Event{Session: d.id, Stage: "done", Message: "session complete", Final: true})
	}
	if d.onFinish != nil {
		d.onFinish(d)
	}
}

// end unregisters the session: a party's at once (a replay then meets the
// ended session); a coordinator's relay stops after the last messages had
// time to leave, and its results wait for the analyst for a while.
func (d *driver) end() {
	close(d.done)
	n := d.n
	if d.role == session.ToParty {
		d.cancel()
		n.mu.Lock()
		delete(n.sessions, d.id)
		n.ended[d.id] = true
		if n.coords[d.id] == nil {
			delete(n.seen, d.id)
		}
		n.mu.Unlock()
		return
	}
	time.AfterFunc(2*time.Second, d.cancel)
	time.AfterFunc(resultRetention, func() {
		n.mu.Lock()
		delete(n.coords, d.id)
		delete(n.seen, d.id)
		n.mu.Unlock()
	})
}

// resultRetention is how long a coordinator keeps a finished session's
// events and results for its analyst.
const resultRetention = time.Hour

// send seals a message of this machine and sends it: a party's to its
// coordinator (possibly this node), a coordinator's to a party (possibly
// this node's own party, through the relay queue otherwise).
func (d *driver) send(m protocols.Message) {
	n := d.n
	m.From, m.Session = protocols.PartyID(n.cfg.ID), d.id
	if outgoingHook != nil {
		outgoingHook(&m)
	}
	env, dg, err := wire.SealDigest(n.id, m, n.seq.Add(1))
	if err != nil {
		n.log.Warn("seal", "session", d.id, "kind", m.Kind, "error", err)
		return
	}
	if d.role == session.ToCoordinator {
		d.appendTranscript(dg)
		if string(m.To) == n.cfg.ID {
			if err := n.partyReceive(env); err != nil {
				n.log.Warn("local delivery failed", "session", d.id, "kind", m.Kind, "error", err)
			}
			return
		}
		d.enqueue(string(m.To), outbound{kind: string(m.Kind), parts: wire.EnvelopeParts(env)})
		return
	}
	if d.coordinator == n.cfg.ID {
		// Signed here a moment ago: route it without hashing it again.
		if err := n.route(env, dg); err != nil {
			n.log.Warn("local delivery failed", "session", d.id, "kind", m.Kind, "error", err)
		}
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Timeouts.Peer*6)
		defer cancel()
		if err := n.peers.Deliver(ctx, d.coordinator, env); err != nil {
			n.log.Warn("send to coordinator failed", "session", d.id, "kind", m.Kind, "coordinator", d.coordinator, "error", err)
		}
	}()
}

func (d *driver) enqueue(to string, out outbound) {
	q, ok := d.queues[to]
	if !ok {
		d.n.log.Warn("no relay queue", "session", d.id, "to", to)
		return
	}
	select {
	case q <- out:
	default:
		d.feedOrDrop(session.Unreachable{Party: protocols.PartyID(to), Err: fmt.Errorf("relay queue to %s is full", to)})
	}
}

func (d *driver) appendTranscript(dg []byte) {
	d.mu.Lock()
	d.transcript = append(d.transcript, dg)
	d.mu.Unlock()
}

func (d *driver) transcriptDigests() [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.transcript)
}

// relayTo delivers a recipient's queue in order; the first failure is
// reported to the machine and the rest of the queue dropped.
func (d *driver) relayTo(party string, q chan outbound) {
	failed := false
	for {
		select {
		case <-d.ctx.Done():
			return
		case out := <-q:
			if failed {
				continue
			}
			ctx, cancel := context.WithTimeout(d.ctx, d.n.cfg.Timeouts.Peer*6)
			err := d.n.peers.DeliverParts(ctx, party, out.kind, out.parts)
			cancel()
			if err != nil {
				failed = true
				d.feedOrDrop(session.Unreachable{Party: protocols.PartyID(party), Err: err})
			}
		}
	}
}

// relay forwards a party-to-party envelope of a session this node
// coordinates, unchanged, to its recipients.
func (d *driver) relay(env *synodv1.Envelope) {
	var out outbound
	for _, p := range d.participants {
		if p == env.GetFrom() || (env.GetTo() != "" && env.GetTo() != p) {
			continue
		}
		if p == d.n.cfg.ID {
			if err := d.n.partyReceive(env); err != nil {
				d.n.log.Warn("local delivery failed", "session", d.id, "kind", env.GetKind(), "error", err)
			}
			continue
		}
		if out.parts == nil {
			out = outbound{kind: env.GetKind(), parts: wire.EnvelopeParts(env)}
		}
		d.enqueue(p, out)
	}
}

// release keeps a result for the analyst, completed with what only the
// driver knows: the transcript's digests, the time spent on the chain and
// the receipt's inclusion proof.
func (d *driver) release(rel session.Release) {
	res := rel.Result
	meta := res.Meta
	meta.Transcript = d.transcriptDigests()
	d.mu.Lock()
	meta.LedgerSeconds = d.ledgerTime.Seconds()
	d.mu.Unlock()
	if rc := meta.GetReceipt(); rc != nil && len(rc.GetTxHash()) > 0 {
		proof, err := d.n.inclusionProof(d.ctx, rc.GetTxHash())
		if err != nil {
			// The record is committed: release, and let the audit report
			// the missing proof.
			d.event(session.Event{Stage: "ledger", Message: fmt.Sprintf("no inclusion proof for the receipt: %v", err)})
		}
		rc.InclusionProof = proof
	}
	d.mu.Lock()
	d.releases[rel.Round] = res
	if rel.Final {
		d.final = res
	}
	d.mu.Unlock()
	if rel.Round > 0 && !rel.Final {
		d.event(session.Event{Stage: "round", Message: fmt.Sprintf("round %d released", rel.Round)})
	}
}

// result returns the result of round (0: the last one).
func (d *driver) result(round int) (*session.Result, session.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if round == 0 {
		if d.final != nil {
			return d.final, d.status, d.err
		}
		if len(d.releases) == 1 {
			for _, r := range d.releases {
				return r, d.status, d.err
			}
		}
		return nil, d.status, d.err
	}
	return d.releases[round], d.status, d.err
}
