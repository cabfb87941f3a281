package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"google.golang.org/protobuf/proto"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/ledger"
	"github.com/synod-mpc/synod/parties/query"
	"github.com/synod-mpc/synod/parties/wire"
	"github.com/synod-mpc/synod/protocols"
)

// coordSession is a session this node coordinates: it relays the parties'
// protocol messages, collects what is addressed to it, records the
// transcript and reports progress.
type coordSession struct {
	n            *Node
	id           string
	participants []string
	events       *eventLog

	inbox    chan *synodv1.Envelope // messages addressed to the coordinator
	failures chan relayFailure      // parties the relay could not reach
	queues   map[string]chan outbound
	ctx      context.Context
	cancel   context.CancelFunc

	mu         sync.Mutex
	transcript [][]byte
	stagesSeen map[string]bool

	// query sessions
	analyst     string
	spec        *synodv1.QuerySpec
	started     time.Time
	approvalTx  []byte
	certificate []byte
	ledgerTime  time.Duration // spent waiting for the chain
	releaseOnce sync.Once     // the release is recorded once
	result      *queryResult
	err         error
}

type relayFailure struct {
	party string
	err   error
}

type queryResult struct {
	meta       *synodv1.ResultMetadata
	ciphertext []byte
}

func newSessionID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // the system's randomness failing is not recoverable
	}
	return hex.EncodeToString(b)
}

// newCoordSession registers a session and starts one relay queue per remote
// participant: per-recipient FIFO order keeps every party's view causal.
func (n *Node) newCoordSession(parent context.Context, participants []string) *coordSession {
	ctx, cancel := context.WithTimeout(parent, n.cfg.Timeouts.Session)
	cs := &coordSession{
		n: n, id: newSessionID(), participants: participants, events: newEventLog(),
		inbox: make(chan *synodv1.Envelope, 4096), failures: make(chan relayFailure, 64),
		queues: map[string]chan outbound{}, ctx: ctx, cancel: cancel, stagesSeen: map[string]bool{},
	}
	for _, p := range participants {
		if p == n.cfg.ID {
			continue
		}
		q := make(chan outbound, 4096)
		cs.queues[p] = q
		go cs.relayTo(p, q)
	}
	n.mu.Lock()
	n.coords[cs.id] = cs
	n.mu.Unlock()
	return cs
}

// outbound is an envelope on its way to one party, encoded once for all
// the parties a broadcast goes to.
type outbound struct {
	kind  string
	parts [][]byte // wire.EnvelopeParts
}

func (cs *coordSession) relayTo(party string, q chan outbound) {
	failed := false
	for {
		select {
		case <-cs.ctx.Done():
			return
		case out := <-q:
			if failed {
				continue
			}
			ctx, cancel := context.WithTimeout(cs.ctx, cs.n.cfg.Timeouts.Peer*6)
			err := cs.n.peers.DeliverParts(ctx, party, out.kind, out.parts)
			cancel()
			if err != nil {
				failed = true
				select {
				case cs.failures <- relayFailure{party, err}:
				default:
				}
			}
		}
	}
}

func (cs *coordSession) event(stage, party, format string, args ...any) {
	cs.events.add(&synodv1.Event{Session: cs.id, Stage: stage, Party: party, Message: fmt.Sprintf(format, args...)})
}

func (cs *coordSession) finish(err error) {
	if err != nil {
		cs.mu.Lock()
		cs.err = err
		cs.mu.Unlock()
		cs.events.add(&synodv1.Event{Session: cs.id, Stage: "failed", Message: err.Error(), Final: true, Failed: true, Party: offenderOf(err)})
		cs.n.log.Warn("session failed", "session", cs.id, "error", err)
	} else {
		cs.events.add(&synodv1.Event{Session: cs.id, Stage: "done", Message: "session complete", Final: true})
	}
	// Tell every participant the session is over, then stop relaying.
	for _, p := range cs.participants {
		_ = cs.post(p, kindSessionAbort, []byte("session over"))
	}
	time.AfterFunc(2*time.Second, cs.cancel)
	// Results wait for their analyst for a while, then go.
	time.AfterFunc(resultRetention, func() {
		cs.n.mu.Lock()
		delete(cs.n.coords, cs.id)
		delete(cs.n.seen, cs.id)
		cs.n.mu.Unlock()
	})
}

// resultRetention is how long a coordinator keeps a finished session's
// events and result for its analyst.
const resultRetention = time.Hour

// partyFault is an error attributed to one party.
type partyFault struct {
	party string
	err   error
}

func (f *partyFault) Error() string { return fmt.Sprintf("party %s: %v", f.party, f.err) }
func (f *partyFault) Unwrap() error { return f.err }

func offenderOf(err error) string {
	var f *partyFault
	if errors.As(err, &f) {
		return f.party
	}
	return ""
}

// receive takes an envelope a party sent in this session, with its verified
// transcript digest. It never blocks.
func (cs *coordSession) receive(env *synodv1.Envelope, digest []byte) error {
	if !slices.Contains(cs.participants, env.GetFrom()) {
		return fmt.Errorf("session %s: %s is not a participant", cs.id, env.GetFrom())
	}
	cs.mu.Lock()
	cs.transcript = append(cs.transcript, digest)
	cs.mu.Unlock()
	kind := env.GetKind()
	if isControl(kind) {
		if env.GetTo() != cs.n.cfg.ID {
			return fmt.Errorf("session %s: %s must be addressed to the coordinator", cs.id, kind)
		}
		return cs.toInbox(env)
	}
	if !strings.HasPrefix(kind, "setup.") && !strings.HasPrefix(kind, "dkg.") {
		return fmt.Errorf("session %s: unknown message kind %q", cs.id, kind)
	}
	cs.observeSetup(env)
	var out outbound
	for _, p := range cs.recipients(env) {
		if p == cs.n.cfg.ID {
			if err := cs.n.partyReceive(env); err != nil {
				cs.n.log.Warn("local delivery failed", "session", cs.id, "kind", kind, "error", err)
			}
			continue
		}
		if out.parts == nil {
			out = outbound{kind: kind, parts: wire.EnvelopeParts(env)}
		}
		select {
		case cs.queues[p] <- out:
		default:
			return fmt.Errorf("session %s: relay queue to %s is full", cs.id, p)
		}
	}
	return nil
}

func (cs *coordSession) toInbox(env *synodv1.Envelope) error {
	select {
	case cs.inbox <- env:
		return nil
	default:
		return fmt.Errorf("session %s: coordinator inbox full", cs.id)
	}
}

func (cs *coordSession) recipients(env *synodv1.Envelope) []string {
	if env.GetTo() != "" {
		if slices.Contains(cs.participants, env.GetTo()) {
			return []string{env.GetTo()}
		}
		return nil
	}
	var out []string
	for _, p := range cs.participants {
		if p != env.GetFrom() {
			out = append(out, p)
		}
	}
	return out
}

// post sends a coordinator request to one participant (possibly this node).
func (cs *coordSession) post(to, kind string, payload []byte) error {
	m := protocols.Message{Session: cs.id, Kind: protocols.Kind(kind), From: protocols.PartyID(cs.n.cfg.ID), To: protocols.PartyID(to), Payload: payload}
	env, digest, err := wire.SealDigest(cs.n.id, m, cs.n.seq.Add(1))
	if err != nil {
		return err
	}
	cs.mu.Lock()
	cs.transcript = append(cs.transcript, digest)
	cs.mu.Unlock()
	if to == cs.n.cfg.ID {
		return cs.n.partyReceive(env)
	}
	select {
	case cs.queues[to] <- outbound{kind: kind, parts: wire.EnvelopeParts(env)}:
		return nil
	default:
		return fmt.Errorf("relay queue to %s is full", to)
	}
}

var setupStages = map[protocols.Kind][2]string{
	protocols.KindDKGPub:    {"dkg", "distributed key generation of the consortium threshold-BLS key (Pedersen)"},
	protocols.KindDKGDeal:   {"dkg", "DKG deals, end-to-end encrypted"},
	protocols.KindDKGDone:   {"dkg", "parties comparing their DKG results"},
	kindSetupBeacon:         {"crs", "CRS seed from the consortium's threshold signature of the session"},
	protocols.KindCRSCommit: {"crs", "agreeing on the CRS seed (commit, then reveal)"},
	protocols.KindCKGShare:  {"public-key", "collective public key shares"},
	protocols.KindRKGRound1: {"relinearization-key", "relinearization key, round 1 of 2"},
	protocols.KindRKGRound2: {"relinearization-key", "relinearization key, round 2 of 2"},
	protocols.KindGKGShare:  {"galois-keys", "Galois key shares"},
	protocols.KindTSKShare:  {"threshold-sharing", "t-of-N Shamir shares of every secret, end-to-end encrypted"},
	protocols.KindSetupDone: {"key-digests", "parties comparing the digests of the keys they derived"},
}

func (cs *coordSession) observeSetup(env *synodv1.Envelope) {
	desc, ok := setupStages[protocols.Kind(env.GetKind())]
	if !ok {
		return
	}
	cs.mu.Lock()
	seen := cs.stagesSeen[env.GetKind()]
	cs.stagesSeen[env.GetKind()] = true
	cs.mu.Unlock()
	if !seen {
		cs.event(desc[0], "", "%s", desc[1])
	}
}

// pingAll asks every party whether it is up, in parallel.
func (n *Node) pingAll(ctx context.Context) map[string]*synodv1.PingResponse {
	type answer struct {
		id   string
		resp *synodv1.PingResponse
		err  error
	}
	ch := make(chan answer, len(n.parties))
	for _, p := range n.parties {
		go func() {
			if p == n.cfg.ID {
				r, _ := n.Ping(ctx, nil)
				ch <- answer{p, r, nil}
				return
			}
			cctx, cancel := context.WithTimeout(ctx, n.cfg.Timeouts.Peer)
			defer cancel()
			r, err := n.peers.Ping(cctx, p)
			ch <- answer{p, r, err}
		}()
	}
	out := map[string]*synodv1.PingResponse{}
	for range n.parties {
		a := <-ch
		if a.err == nil {
			out[a.id] = a.resp
		} else {
			n.log.Info("party unreachable", "peer", a.id, "error", a.err)
		}
	}
	return out
}

// runSetup coordinates the consortium key generation. Every party must take part.
func (n *Node) runSetup(ctx context.Context, paramsName string, onStart func(*coordSession)) (*coordSession, error) {
	if paramsName == "" {
		paramsName = n.cons.Parameters
	}
	params, err := engine.ParametersByName(paramsName)
	if err != nil {
		return nil, err
	}
	if st := n.keyState(); st != nil {
		return nil, fmt.Errorf("the consortium is already set up (parameters %s, digest %x); remove the parties' setup files to start over", st.Meta.Parameters, st.Meta.Digest[:8])
	}
	alive := n.pingAll(ctx)
	var missing []string
	for _, p := range n.parties {
		if _, ok := alive[p]; !ok {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("setup needs every party; unreachable: %s", strings.Join(missing, ", "))
	}
	cs := n.newCoordSession(ctx, n.parties)
	if onStart != nil {
		onStart(cs)
	}
	go cs.coordinateSetup(params)
	return cs, nil
}

func (cs *coordSession) coordinateSetup(params engine.Parameters) {
	n := cs.n
	start := setupStart{Parameters: params.Name, Parties: n.parties, Threshold: n.cons.Threshold, GaloisElements: params.GaloisElements()}
	payload, _ := json.Marshal(start)
	cs.event("start", "", "setup of %d parties, threshold %d, parameters %s, %d Galois keys", len(n.parties), n.cons.Threshold, params.Name, len(start.GaloisElements))
	began := time.Now()
	// Queue the start for every other party before starting this node's
	// own party: its first broadcast is relayed at once, and each relay
	// queue must deliver setup.start ahead of anything of the session.
	order := slices.DeleteFunc(slices.Clone(cs.participants), func(p string) bool { return p == n.cfg.ID })
	if slices.Contains(cs.participants, n.cfg.ID) {
		order = append(order, n.cfg.ID)
	}
	for _, p := range order {
		if err := cs.post(p, kindSetupStart, payload); err != nil {
			cs.finish(&partyFault{p, err})
			return
		}
	}
	// Every party reports the digest of the keys it derived, once it has
	// stored them and recorded the setup on the chain.
	digests := map[string][]byte{}
	for len(digests) < len(cs.participants) {
		select {
		case <-cs.ctx.Done():
			cs.finish(fmt.Errorf("setup timed out waiting for %s", strings.Join(cs.missing(digests), ", ")))
			return
		case f := <-cs.failures:
			cs.finish(&partyFault{f.party, fmt.Errorf("unreachable during setup: %w", f.err)})
			return
		case env := <-cs.inbox:
			switch env.GetKind() {
			case kindSessionError:
				cs.finish(sessionFailure(env))
				return
			case kindSetupStored:
				digests[env.GetFrom()] = env.GetPayload()
			}
		}
	}
	var ref []byte
	for _, p := range cs.participants {
		if ref == nil {
			ref = digests[p]
		} else if string(digests[p]) != string(ref) {
			cs.finish(&partyFault{p, fmt.Errorf("derived different keys (digest %x, expected %x)", digests[p], ref)})
			return
		}
	}
	if len(ref) < 8 {
		cs.finish(&partyFault{cs.participants[0], fmt.Errorf("reported a key digest of %d bytes", len(ref))})
		return
	}
	cs.event("keys", "", "public key, relinearization key, %d Galois keys and t-of-N shares ready in %s (digest %x)",
		len(start.GaloisElements), time.Since(began).Round(time.Millisecond), ref[:8])
	cs.finish(nil)
}

func (cs *coordSession) missing(have map[string][]byte) []string {
	var out []string
	for _, p := range cs.participants {
		if _, ok := have[p]; !ok {
			out = append(out, p)
		}
	}
	return out
}

func sessionFailure(env *synodv1.Envelope) error {
	var se sessionError
	if err := json.Unmarshal(env.GetPayload(), &se); err != nil {
		return &partyFault{env.GetFrom(), fmt.Errorf("stopped with an unreadable error report")}
	}
	if se.Party != "" {
		return &partyFault{se.Party, fmt.Errorf("reported by %s: %s", env.GetFrom(), se.Message)}
	}
	return &partyFault{env.GetFrom(), errors.New(se.Message)}
}

// runQuery coordinates one aggregate query for analyst.
func (n *Node) runQuery(ctx context.Context, analyst string, spec *synodv1.QuerySpec, analystKey []byte) (*coordSession, error) {
	st := n.keyState()
	if st == nil {
		return nil, fmt.Errorf("the consortium is not set up; run mpcctl setup")
	}
	if err := query.Validate(spec); err != nil {
		return nil, err
	}
	target, err := engine.DecodePublicKey(st.Params, analystKey)
	if err != nil {
		return nil, fmt.Errorf("analyst public key: %w", err)
	}
	alive := n.pingAll(ctx)
	var ready []string
	for _, p := range n.parties {
		if r, ok := alive[p]; ok && r.GetSetupDone() && string(r.GetSetupDigest()) == string(st.Meta.Digest) {
			ready = append(ready, p)
		}
	}
	if len(ready) < n.cons.Threshold {
		return nil, fmt.Errorf("only %d of %d parties are reachable and set up (%s); the threshold is %d, so nothing can be decrypted and nothing was released",
			len(ready), len(n.parties), strings.Join(ready, ", "), n.cons.Threshold)
	}
	cs := n.newCoordSession(context.Background(), ready)
	cs.analyst, cs.spec, cs.started = analyst, spec, time.Now().UTC()
	go cs.coordinateQuery(st, target)
	return cs, nil
}

func (cs *coordSession) coordinateQuery(st *keyState, target *rlwe.PublicKey) {
	n := cs.n
	params := st.Params
	cs.event("parties", "", "%d of %d parties reachable: %s", len(cs.participants), len(n.parties), strings.Join(cs.participants, ", "))
	specBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(cs.spec)
	if err != nil {
		cs.finish(err)
		return
	}
	ap, err := cs.approve(st, specBytes)
	if err != nil {
		cs.finish(err)
		return
	}
	cs.approvalTx, cs.certificate = ap.txHash, ap.certificate
	request, err := json.Marshal(queryRequest{Spec: specBytes, Analyst: cs.analyst, Certificate: ap.certificate, MinCohort: ap.minCohort})
	if err != nil {
		cs.finish(err)
		return
	}
	for _, p := range ap.approvers {
		if err := cs.post(p, kindQueryRequest, request); err != nil {
			cs.finish(&partyFault{p, err})
			return
		}
	}
	active := slices.Clone(ap.approvers)
	var suppressed []int
	if ap.minCohort > 0 {
		if suppressed, active, err = cs.cohortTest(st, active, ap.minCohort); err != nil {
			cs.finish(err)
			return
		}
	}
	cs.event("inputs", "", "waiting for encrypted inputs")
	tested := slices.Clone(active)
	inputs, active, err := collectInputs(cs, active, "inputs", func(in *synodv1.QueryInput) (*rlwe.Ciphertext, error) {
		return engine.DecodeCiphertext(params, in.GetValues())
	})
	if err != nil {
		cs.finish(err)
		return
	}
	if ap.minCohort > 0 && len(active) < len(tested) {
		// The cohort test counted parties whose values are now missing:
		// a released cell could describe fewer than the minimum.
		cs.finish(fmt.Errorf("%d of the %d parties of the cohort test sent no values; nothing was released", len(tested)-len(active), len(tested)))
		return
	}
	if len(active) < n.cons.Threshold {
		cs.finish(fmt.Errorf("only %d parties remain, below the threshold %d; nothing was released", len(active), n.cons.Threshold))
		return
	}
	ctBytes, contributors, group, err := cs.sumAndSwitch(params, inputs, target, active)
	if err != nil {
		cs.finish(err)
		return
	}
	labels := query.Layout(cs.spec)
	meta := &synodv1.ResultMetadata{Session: cs.id, Spec: cs.spec, Parameters: params.Name, Contributors: contributors,
		KeySwitchers: group, Precision: engine.Precision(params, len(group)), MinCohort: uint32(ap.minCohort)}
	scales, err := query.NoiseScales(cs.spec, n.columnBounds(cs.spec.GetDataset()))
	if err != nil {
		cs.finish(err)
		return
	}
	_, per := query.GroupShape(cs.spec)
	for i, l := range labels {
		slot := &synodv1.ResultSlot{Label: l, Suppressed: slices.Contains(suppressed, i/per)}
		if scales != nil {
			slot.NoiseScale = scales[i]
		}
		meta.Slots = append(meta.Slots, slot)
	}
	cs.release(st, specBytes, meta, ctBytes, func(rec *transcriptRecord) {
		rec.MinCohort, rec.Suppressed = ap.minCohort, suppressedLabels(labels, per, suppressed)
	})
}

// sumAndSwitch adds the contributors' encrypted inputs and key-switches
// the sum to target with a group of t of the active parties. It returns
// the switched ciphertext, serialized, the contributors and the group.
func (cs *coordSession) sumAndSwitch(params engine.Parameters, inputs map[string]*rlwe.Ciphertext, target *rlwe.PublicKey, active []string) ([]byte, []string, []string, error) {
	contributors := slices.Sorted(mapsKeys(inputs))
	cts := make([]*rlwe.Ciphertext, 0, len(contributors))
	for _, p := range contributors {
		cts = append(cts, inputs[p])
	}
	sum, err := engine.Sum(params, cts)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("evaluate: %w", err)
	}
	cs.event("evaluate", "", "summed %d encrypted inputs", len(cts))
	out, group, err := cs.keySwitch(params, sum, target, active)
	if err != nil {
		return nil, nil, nil, err
	}
	ctBytes, err := out.MarshalBinary()
	if err != nil {
		return nil, nil, nil, err
	}
	return ctBytes, contributors, group, nil
}

// release records the session's transcript on the chain and only then
// makes the result available to the analyst; more adds kind-specific
// fields to the record.
func (cs *coordSession) release(st *keyState, specBytes []byte, meta *synodv1.ResultMetadata, ctBytes []byte, more func(*transcriptRecord)) {
	cs.mu.Lock()
	meta.Transcript = slices.Clone(cs.transcript)
	cs.mu.Unlock()
	rec := transcriptRecord{Analyst: cs.analyst, Parameters: meta.GetParameters(), SpecDigest: hex.EncodeToString(digest(specBytes)),
		ApprovalTx: hex.EncodeToString(cs.approvalTx), SetupID: st.Meta.Session, Participants: cs.participants,
		Contributors: meta.GetContributors(), KeySwitchers: meta.GetKeySwitchers(), ResultDigest: hex.EncodeToString(digest(ctBytes)),
		Started: cs.started, Finished: time.Now().UTC()}
	if more != nil {
		more(&rec)
	}
	for _, h := range meta.Transcript {
		rec.Messages = append(rec.Messages, hex.EncodeToString(h))
	}
	began := time.Now()
	receipt, err := cs.n.record(cs.ctx, ledger.KindTranscript, cs.id, rec)
	if err != nil {
		cs.finish(fmt.Errorf("%w; nothing was released", err))
		return
	}
	cs.ledgerTime += time.Since(began)
	meta.LedgerSeconds = cs.ledgerTime.Seconds()
	meta.Receipt = &synodv1.Receipt{Height: receipt.Height, TxHash: receipt.TxHash, ApprovalTxHash: cs.approvalTx,
		SetupSession: st.Meta.Session, Certificate: cs.certificate}
	if meta.Receipt.InclusionProof, err = cs.n.inclusionProof(cs.ctx, receipt.TxHash); err != nil {
		// The transcript is recorded: release, and let the audit report the missing proof.
		cs.event("ledger", "", "no inclusion proof for the receipt: %v", err)
	}
	cs.event("ledger", "", "transcript recorded at height %d (tx %X)", receipt.Height, receipt.TxHash)
	cs.mu.Lock()
	cs.result = &queryResult{meta: meta, ciphertext: ctBytes}
	cs.mu.Unlock()
	cs.finish(nil)
}

// collectInputs waits for one query.input from every active party and
// decodes it; parties that drop out or stay silent past the stage timeout
// are left out. It returns the decoded inputs and the parties still active.
func collectInputs[T any](cs *coordSession, active []string, stage string, decode func(*synodv1.QueryInput) (T, error)) (map[string]T, []string, error) {
	active = slices.Clone(active)
	inputs := map[string]T{}
	stageTimeout := time.After(2 * cs.n.cfg.Timeouts.Peer)
	for len(inputs) < len(active) {
		select {
		case <-cs.ctx.Done():
			return nil, nil, fmt.Errorf("query timed out")
		case <-stageTimeout:
			for _, p := range slices.Clone(active) {
				if _, ok := inputs[p]; !ok {
					active = slices.DeleteFunc(active, func(s string) bool { return s == p })
					cs.event(stage, p, "%s sent no input in time; continuing without it", p)
				}
			}
		case f := <-cs.failures:
			active = slices.DeleteFunc(active, func(s string) bool { return s == f.party })
			delete(inputs, f.party)
			cs.event(stage, f.party, "%s unreachable (%v); continuing without it", f.party, f.err)
		case env := <-cs.inbox:
			switch env.GetKind() {
			case kindQueryInput:
				in := &synodv1.QueryInput{}
				if err := proto.Unmarshal(env.GetPayload(), in); err != nil {
					return nil, nil, &partyFault{env.GetFrom(), fmt.Errorf("malformed query input: %w", err)}
				}
				v, err := decode(in)
				if err != nil {
					return nil, nil, &partyFault{env.GetFrom(), fmt.Errorf("malformed %s ciphertext: %w", stage, err)}
				}
				if !slices.Contains(active, env.GetFrom()) {
					return nil, nil, &partyFault{env.GetFrom(), fmt.Errorf("%s input from a party that is not active in this stage", stage)}
				}
				inputs[env.GetFrom()] = v
				cs.event(stage, env.GetFrom(), "encrypted %s from %s", stage, env.GetFrom())
			case kindQueryRefused:
				return nil, nil, &partyFault{env.GetFrom(), fmt.Errorf("refused the query: %s", env.GetPayload())}
			case kindSessionError:
				return nil, nil, sessionFailure(env)
			default:
				return nil, nil, &partyFault{env.GetFrom(), fmt.Errorf("unexpected %s while collecting %s", env.GetKind(), stage)}
			}
		}
	}
	return inputs, active, nil
}

// cohortTest runs the minimum-cohort test (engine.CohortTest): the parties'
// encrypted group counts and masks are combined, switched to a throwaway
// key of the coordinator and read for their signs; every party is then
// told which groups to zero. It returns the suppressed groups and the
// parties that took part.
func (cs *coordSession) cohortTest(st *keyState, active []string, minCohort int) ([]int, []string, error) {
	params := st.Params
	cs.event("cohort", "", "minimum cohort %d: waiting for encrypted group counts", minCohort)
	type cohortInput struct{ counts, masks *rlwe.Ciphertext }
	inputs, active, err := collectInputs(cs, active, "cohort", func(in *synodv1.QueryInput) (cohortInput, error) {
		c, err := engine.DecodeCiphertext(params, in.GetCohortCounts())
		if err != nil {
			return cohortInput{}, fmt.Errorf("counts: %w", err)
		}
		m, err := engine.DecodeCiphertext(params, in.GetCohortMasks())
		if err != nil {
			return cohortInput{}, fmt.Errorf("masks: %w", err)
		}
		return cohortInput{c, m}, nil
	})
	if err != nil {
		return nil, nil, err
	}
	if len(active) < cs.n.cons.Threshold {
		return nil, nil, fmt.Errorf("only %d parties remain, below the threshold %d; nothing was released", len(active), cs.n.cons.Threshold)
	}
	var counts, masks []*rlwe.Ciphertext
	for _, p := range slices.Sorted(mapsKeys(inputs)) {
		counts, masks = append(counts, inputs[p].counts), append(masks, inputs[p].masks)
	}
	t, err := engine.CohortTest(params, st.Result.RelinearizationKey, counts, masks, minCohort)
	if err != nil {
		// Shapes were checked on decoding; what is left is a party's
		// scale or level: CohortTest names the input.
		return nil, nil, fmt.Errorf("cohort test: %w", err)
	}
	sk, pk := engine.GenKeyPair(params)
	switched, _, err := cs.keySwitch(params, t, pk, active)
	if err != nil {
		return nil, nil, fmt.Errorf("cohort test: %w", err)
	}
	groups, _ := query.GroupShape(cs.spec)
	signs, err := engine.DecryptVector(params, sk, switched, groups)
	if err != nil {
		return nil, nil, fmt.Errorf("cohort test: %w", err)
	}
	passes, err := engine.CohortPasses(signs, groups)
	if err != nil {
		return nil, nil, err
	}
	var suppressed []int
	for g, ok := range passes {
		if !ok {
			suppressed = append(suppressed, g)
		}
	}
	cs.event("cohort", "", "%d of %d cells below the minimum cohort of %d are suppressed", len(suppressed), groups, minCohort)
	payload, err := json.Marshal(querySuppress{Groups: suppressed})
	if err != nil {
		return nil, nil, err
	}
	for _, p := range active {
		if err := cs.post(p, kindQuerySuppress, payload); err != nil {
			return nil, nil, &partyFault{p, err}
		}
	}
	return suppressed, active, nil
}

// suppressedLabels names the suppressed groups by their first slot's group
// prefix, for the transcript.
func suppressedLabels(labels []string, per int, groups []int) []string {
	var out []string
	for _, g := range groups {
		l := labels[g*per]
		if prefix, _, ok := strings.Cut(l, "|"); ok {
			l = prefix
		}
		out = append(out, l)
	}
	return out
}

// keySwitch switches ct to the analyst's key with a group of t parties,
// restarting with a new group when a member drops out (lattigo's t-of-N
// combination fixes the group before shares are made).
func (cs *coordSession) keySwitch(params engine.Parameters, ct *rlwe.Ciphertext, target *rlwe.PublicKey, candidates []string) (*rlwe.Ciphertext, []string, error) {
	t := cs.n.cons.Threshold
	candidates = slices.Sorted(slices.Values(candidates))
	for attempt := 1; ; attempt++ {
		if len(candidates) < t {
			return nil, nil, fmt.Errorf("only %d parties left for the key switch, below the threshold %d; nothing was released", len(candidates), t)
		}
		group := candidates[:t]
		ids := make([]protocols.PartyID, len(group))
		for i, p := range group {
			ids[i] = protocols.PartyID(p)
		}
		req := protocols.KeySwitchRequest{Session: cs.id, Group: ids, Target: target, Ciphertext: ct}
		payload, err := req.Marshal()
		if err != nil {
			return nil, nil, err
		}
		agg, err := protocols.NewKeySwitchAggregator(params, req)
		if err != nil {
			return nil, nil, err
		}
		cs.event("key-switch", "", "attempt %d: key switch to the analyst by %s", attempt, strings.Join(group, ", "))
		var dropped string
		for _, p := range group {
			if err := cs.post(p, kindKeySwitchRequest, payload); err != nil {
				dropped = p
				break
			}
		}
		timeout := time.After(2 * cs.n.cfg.Timeouts.Peer)
	collect:
		for dropped == "" {
			select {
			case <-cs.ctx.Done():
				return nil, nil, fmt.Errorf("key switch timed out")
			case <-timeout:
				return nil, nil, fmt.Errorf("key switch: no complete set of shares in time")
			case f := <-cs.failures:
				if slices.Contains(group, f.party) {
					dropped = f.party
					break collect
				}
				candidates = slices.DeleteFunc(candidates, func(s string) bool { return s == f.party })
			case env := <-cs.inbox:
				switch env.GetKind() {
				case kindKeySwitchShare:
					m := wireMessage(env)
					m.Kind = protocols.KindKeySwitchShare
					done, err := agg.Step(m)
					if err != nil {
						return nil, nil, &partyFault{env.GetFrom(), fmt.Errorf("bad key switch share: %w", err)}
					}
					if done {
						cs.event("key-switch", "", "result switched to the analyst's key")
						return agg.Result(), group, nil
					}
				case kindSessionError:
					return nil, nil, sessionFailure(env)
				default:
					return nil, nil, &partyFault{env.GetFrom(), fmt.Errorf("unexpected %s during the key switch", env.GetKind())}
				}
			}
		}
		cs.event("key-switch", dropped, "%s dropped out; restarting the key switch with a new group", dropped)
		candidates = slices.DeleteFunc(candidates, func(s string) bool { return s == dropped })
	}
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// approve proposes the query to every participant, collects partial
// threshold signatures until t approve (refusals are reported with their
// reasons), and commits the approval certificate to the chain before any
// party encrypts anything. It returns the certificate, the approving
// parties, the approval's tx hash and the largest minimum cohort the
// approving parties demand.
func (cs *coordSession) approve(st *keyState, specBytes []byte) (*approval, error) {
	n := cs.n
	msg := protocols.ApprovalMessage(cs.id, cs.analyst, digest(specBytes))
	col, err := protocols.NewApprovalCollector(st.DKG.Public, n.cons.Threshold, len(n.parties), msg)
	if err != nil {
		return nil, err
	}
	if err := col.ExpectParties(partyIDs(n.parties)); err != nil {
		return nil, err
	}
	proposal, err := json.Marshal(queryProposal{Spec: specBytes, Analyst: cs.analyst})
	if err != nil {
		return nil, err
	}
	for _, p := range cs.participants {
		if err := cs.post(p, kindQueryPropose, proposal); err != nil {
			return nil, &partyFault{p, err}
		}
	}
	cs.event("approval", "", "query proposed to %s", strings.Join(cs.participants, ", "))
	var approvers []string
	var minCohort int
	refusals := map[string]string{}
	timeout := time.After(2 * n.cfg.Timeouts.Peer)
	for len(approvers)+len(refusals) < len(cs.participants) {
		select {
		case <-cs.ctx.Done():
			return nil, fmt.Errorf("approval timed out")
		case <-timeout:
			break
		case f := <-cs.failures:
			refusals[f.party] = fmt.Sprintf("unreachable: %v", f.err)
			continue
		case env := <-cs.inbox:
			switch env.GetKind() {
			case kindQueryApprove:
				var a queryApproval
				if err := json.Unmarshal(env.GetPayload(), &a); err != nil || a.MinCohort < 0 {
					return nil, &partyFault{env.GetFrom(), fmt.Errorf("malformed approval (%v, min cohort %d)", err, a.MinCohort)}
				}
				if _, err := col.Add(protocols.PartyID(env.GetFrom()), a.Signature); err != nil {
					return nil, &partyFault{env.GetFrom(), fmt.Errorf("bad approval signature: %w", err)}
				}
				approvers = append(approvers, env.GetFrom())
				minCohort = max(minCohort, a.MinCohort)
				cs.event("approval", env.GetFrom(), "%s approved", env.GetFrom())
			case kindQueryRefused:
				refusals[env.GetFrom()] = string(env.GetPayload())
				cs.event("approval", env.GetFrom(), "%s refused: %s", env.GetFrom(), env.GetPayload())
			case kindSessionError:
				return nil, sessionFailure(env)
			default:
				return nil, &partyFault{env.GetFrom(), fmt.Errorf("unexpected %s during approval", env.GetKind())}
			}
			continue
		}
		break
	}
	if col.Certificate() == nil {
		var why []string
		for _, p := range slices.Sorted(mapsKeys(refusals)) {
			why = append(why, fmt.Sprintf("party %s refused: %s", p, refusals[p]))
		}
		return nil, fmt.Errorf("%d of %d approvals, the threshold is %d; nothing was released (%s)",
			len(approvers), len(cs.participants), n.cons.Threshold, strings.Join(why, "; "))
	}
	cert := col.Certificate()
	var signers []string
	for _, p := range col.Signers() {
		signers = append(signers, string(p))
	}
	rec := approvalRecord{Analyst: cs.analyst, Spec: hex.EncodeToString(specBytes), SpecDigest: hex.EncodeToString(digest(specBytes)),
		Certificate: hex.EncodeToString(cert), Signers: signers, SetupID: st.Meta.Session,
		Epsilon: cs.spec.GetPrivacy().GetEpsilon(), MinCohort: minCohort}
	began := time.Now()
	receipt, err := n.record(cs.ctx, ledger.KindApproval, cs.id, rec)
	if err != nil {
		return nil, fmt.Errorf("%w; nothing was released", err)
	}
	cs.ledgerTime += time.Since(began)
	cs.event("ledger", "", "approval certificate (signed by %s) recorded at height %d", strings.Join(signers, ", "), receipt.Height)
	slices.Sort(approvers)
	return &approval{certificate: cert, approvers: approvers, txHash: receipt.TxHash, minCohort: minCohort}, nil
}

// approval is what approve establishes.
type approval struct {
	certificate []byte
	approvers   []string
	txHash      []byte
	minCohort   int
}
