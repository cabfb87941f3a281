package session

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"time"

	"go.dedis.ch/kyber/v3"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/engine"
	"github.com/synod-mpc/synod/protocols"
)

// The consortium setup composes three protocols: the Pedersen DKG of the
// consortium's threshold-BLS key (protocols.DKG), a beacon (t partial
// signatures of the session id, whose BLS signature seeds the common
// reference string: no party and no coordinator can choose it), and the
// key generation (protocols.Setup: collective public key, relinearization
// key, Galois keys, t-of-N Shamir sharing). Their messages are relayed party
// to party by the coordinator's node; the coordinator's machine only starts
// the setup and waits for every party to report the keys it stored.

// SetupKeys is what a party stores when the setup ends: its Keys, with the
// consortium's BLS group key; the driver seals the secrets.
type SetupKeys struct {
	Keys     *Keys
	Start    *synodv1.SetupStart
	GroupKey []byte
	CRSSeed  []byte
}

// SetupPartyConfig configures a party's machine in the setup.
type SetupPartyConfig struct {
	Session     string
	Self        PartyID
	Coordinator PartyID
	// Parties and Threshold are the consortium file's: a setup.start that
	// differs is refused.
	Parties   []PartyID
	Threshold int
	// Identity is the party's identity secret (ECIES of the Shamir shares);
	// PeerKeys every party's identity public key.
	Identity kyber.Scalar
	PeerKeys map[PartyID]kyber.Point
	// Rand supplies the DKG's randomness (crypto/rand in production).
	Rand io.Reader
}

// SetupParty is a party's machine in the consortium setup.
type SetupParty struct {
	base
	cfg    SetupPartyConfig
	start  *synodv1.SetupStart
	params engine.Parameters

	dkg       *protocols.DKG
	dkgResult *protocols.DKGResult
	beacon    *protocols.ApprovalCollector
	crsSeed   []byte
	keygen    *protocols.Setup
	early     []protocols.Message // messages that arrived before their stage
	keys      *SetupKeys
	storing   map[string]bool // the store and the record still in flight
}

// NewSetupParty returns a party's setup machine.
func NewSetupParty(cfg SetupPartyConfig) *SetupParty {
	s := &SetupParty{cfg: cfg, storing: map[string]bool{}}
	s.session = cfg.Session
	return s
}

// Step implements Stepper.
func (s *SetupParty) Step(in Input) Ready {
	if s.status.Final() {
		return s.take()
	}
	if err := s.step(in); err != nil {
		s.fail(err)
		s.out.Messages = append(s.out.Messages, protocols.Message{Session: s.cfg.Session, Kind: KindError, From: s.cfg.Self,
			To: s.cfg.Coordinator, Payload: encode(&synodv1.SessionError{Message: err.Error(), Party: string(Offender(err))})})
	}
	return s.take()
}

func (s *SetupParty) step(in Input) error {
	switch in := in.(type) {
	case Deliver:
		return s.deliver(in.Msg)
	case Stored:
		return s.stored(in.Ref, in.Err)
	case Committed:
		return s.stored(in.Ref, in.Err)
	}
	return nil
}

func (s *SetupParty) deliver(m protocols.Message) error {
	switch m.Kind {
	case KindSetupStart:
		if m.From != s.cfg.Coordinator {
			return fmt.Errorf("%s from %s, but %s coordinates session %s", m.Kind, m.From, s.cfg.Coordinator, s.cfg.Session)
		}
		return s.begin(m)
	case KindAbort:
		if m.From != s.cfg.Coordinator {
			return fmt.Errorf("%s from %s, but %s coordinates session %s", m.Kind, m.From, s.cfg.Coordinator, s.cfg.Session)
		}
		if s.status == StatusDone {
			return nil
		}
		s.setStatus(StatusAborted)
		return nil
	}
	if s.dkg == nil {
		return faultf(m.From, "%s outside a setup session", m.Kind)
	}
	var out []protocols.Message
	var err error
	switch {
	case isDKGKind(m.Kind):
		out, err = s.dkg.Step(m)
	case m.Kind == KindSetupBeacon:
		if s.beacon == nil {
			s.early = append(s.early, m)
			return nil
		}
		err = s.addBeaconPartial(m.From, m.Payload)
	default:
		if _, ok := kinds[m.Kind]; !ok || !kinds[m.Kind].Relayed {
			return faultf(m.From, "unexpected %s during setup", m.Kind)
		}
		if s.keygen == nil {
			s.early = append(s.early, m)
			return nil
		}
		out, err = s.keygen.Step(m)
	}
	if err != nil {
		return err
	}
	s.out.Messages = append(s.out.Messages, out...)
	// Stage transitions: DKG done → sign the beacon; beacon done → keys.
	if s.dkg.Done() && s.beacon == nil {
		if err := s.startBeacon(); err != nil {
			return err
		}
		return s.replayEarly()
	}
	if s.crsSeed != nil && s.keygen == nil {
		if err := s.startKeygen(); err != nil {
			return err
		}
		return s.replayEarly()
	}
	if s.keygen != nil && s.keygen.Done() && s.keys == nil {
		return s.finish()
	}
	return nil
}

func isDKGKind(k protocols.Kind) bool {
	switch k {
	case protocols.KindDKGPub, protocols.KindDKGDeal, protocols.KindDKGResponse, protocols.KindDKGJustification, protocols.KindDKGDone:
		return true
	}
	return false
}

func (s *SetupParty) replayEarly() error {
	early := s.early
	s.early = nil
	for _, m := range early {
		if err := s.deliver(m); err != nil {
			return err
		}
	}
	return nil
}

func (s *SetupParty) begin(m protocols.Message) error {
	if s.start != nil {
		return faultf(m.From, "setup started twice")
	}
	var start synodv1.SetupStart
	if err := decode(m, &start); err != nil {
		return err
	}
	params, err := engine.ParametersByName(start.GetParameters())
	if err != nil {
		return fmt.Errorf("setup.start: %w", err)
	}
	if int(start.GetThreshold()) != s.cfg.Threshold {
		return fmt.Errorf("setup.start: threshold %d differs from the consortium file's %d", start.GetThreshold(), s.cfg.Threshold)
	}
	parties := make([]PartyID, len(start.GetParties()))
	for i, p := range start.GetParties() {
		parties[i] = PartyID(p)
	}
	if !slices.Equal(parties, sortedIDs(s.cfg.Parties)) {
		return fmt.Errorf("setup.start: parties %v differ from the consortium file's %v", parties, sortedIDs(s.cfg.Parties))
	}
	dkg, out, err := protocols.NewDKG(protocols.DKGConfig{Session: s.cfg.Session, Self: s.cfg.Self, Parties: parties,
		Threshold: s.cfg.Threshold, Rand: s.cfg.Rand})
	if err != nil {
		return err
	}
	s.start, s.params, s.dkg = &start, params, dkg
	s.setStatus(StatusRunning)
	s.event("start", s.cfg.Self, "setup started (parameters %s)", params.Name)
	s.out.Messages = append(s.out.Messages, out...)
	return nil
}

// startBeacon signs the session with this party's share of the new
// consortium BLS key; t such signatures make the CRS seed, which no single
// party (nor the coordinator) can choose or predict.
func (s *SetupParty) startBeacon() error {
	s.dkgResult = s.dkg.Result()
	msg := protocols.BeaconMessage(s.cfg.Session)
	col, err := protocols.NewApprovalCollector(s.dkgResult.Public, s.cfg.Threshold, len(s.cfg.Parties), msg)
	if err == nil {
		err = col.ExpectParties(s.cfg.Parties)
	}
	if err != nil {
		return err
	}
	s.beacon = col
	sig, err := protocols.SignApproval(s.dkgResult, msg)
	if err != nil {
		return err
	}
	s.out.Messages = append(s.out.Messages, protocols.Message{Session: s.cfg.Session, Kind: KindSetupBeacon, From: s.cfg.Self, Payload: sig})
	return s.addBeaconPartial(s.cfg.Self, sig)
}

func (s *SetupParty) addBeaconPartial(from PartyID, sig []byte) error {
	if s.crsSeed != nil {
		return nil // enough partials already
	}
	done, err := s.beacon.Add(from, sig)
	if err != nil || !done {
		return err
	}
	seed, err := protocols.BeaconSeed(s.dkgResult.GroupKey, protocols.BeaconMessage(s.cfg.Session), s.beacon.Certificate())
	if err != nil {
		return err
	}
	s.crsSeed = seed
	return nil
}

func (s *SetupParty) startKeygen() error {
	keygen, out, err := protocols.NewSetup(protocols.SetupConfig{
		Params: s.params, Session: s.cfg.Session, Self: s.cfg.Self, Parties: s.cfg.Parties, Threshold: s.cfg.Threshold,
		GaloisElements: s.start.GetGaloisElements(), Identity: s.cfg.Identity, PeerKeys: s.cfg.PeerKeys,
		Rand: s.cfg.Rand, CRSSeed: s.crsSeed,
	})
	if err != nil {
		return err
	}
	s.keygen = keygen
	s.out.Messages = append(s.out.Messages, out...)
	return nil
}

// finish asks the driver to store the keys (secrets sealed) and to record
// the setup on the chain, both at once: the commit is mostly waiting for a
// block, the storing mostly CPU.
func (s *SetupParty) finish() error {
	res := s.keygen.Result()
	groupKey, err := protocols.MarshalGroupKey(s.dkgResult.GroupKey)
	if err != nil {
		return err
	}
	s.keys = &SetupKeys{Keys: &Keys{Params: s.params, Setup: res, DKG: s.dkgResult, SetupSession: s.cfg.Session},
		Start: s.start, GroupKey: groupKey, CRSSeed: s.crsSeed}
	s.setStatus(StatusRecording)
	s.storing["keys"], s.storing["record"] = true, true
	s.out.Stores = append(s.out.Stores, Store{Ref: "keys", What: s.keys})
	s.out.Commits = append(s.out.Commits, Commit{Ref: "record", Kind: KindSetupRecord, Record: SetupRecord{
		Parameters: s.params.Name, Parties: sortedIDs(s.cfg.Parties), Threshold: s.cfg.Threshold,
		KeyDigest: res.Digest, GroupKey: groupKey, CRSSeed: s.crsSeed}})
	return nil
}

func (s *SetupParty) stored(ref string, err error) error {
	if !s.storing[ref] {
		return nil
	}
	if err != nil {
		if ref == "keys" {
			return fmt.Errorf("store setup keys: %w", err)
		}
		return err
	}
	delete(s.storing, ref)
	if len(s.storing) > 0 {
		return nil
	}
	// Tell the coordinator the keys are usable here, so that the session
	// ends only when a query sent right after it finds every party ready.
	s.out.Messages = append(s.out.Messages, protocols.Message{Session: s.cfg.Session, Kind: KindSetupStored, From: s.cfg.Self,
		To: s.cfg.Coordinator, Payload: encode(&synodv1.SetupStored{KeyDigest: s.keys.Keys.Setup.Digest})})
	s.event("keys", s.cfg.Self, "setup keys stored and recorded (digest %x)", s.keys.Keys.Setup.Digest[:8])
	s.setStatus(StatusDone)
	return nil
}

// Keys returns what the setup left with this party, once done.
func (s *SetupParty) Keys() *SetupKeys {
	if s.status != StatusDone {
		return nil
	}
	return s.keys
}

// SetupJob is the coordinator's side of the setup: it starts every party
// and waits until each reports the keys it stored; all must report the same
// digest.
type SetupJob struct {
	Params    engine.Parameters
	Parties   []PartyID
	Threshold int
	// Timeout bounds the whole key generation (minutes at LogN=15).
	Timeout time.Duration

	started bool
	seen    map[protocols.Kind]bool
}

// setupStages names the progress a coordinator reports the first time it
// relays each kind of the setup.
var setupStages = map[protocols.Kind][2]string{
	protocols.KindDKGPub:    {"dkg", "distributed key generation of the consortium threshold-BLS key (Pedersen)"},
	protocols.KindDKGDeal:   {"dkg", "DKG deals, end-to-end encrypted"},
	protocols.KindDKGDone:   {"dkg", "parties comparing their DKG results"},
	KindSetupBeacon:         {"crs", "CRS seed from the consortium's threshold signature of the session"},
	protocols.KindCRSCommit: {"crs", "agreeing on the CRS seed (commit, then reveal)"},
	protocols.KindCKGShare:  {"public-key", "collective public key shares"},
	protocols.KindRKGRound1: {"relinearization-key", "relinearization key, round 1 of 2"},
	protocols.KindRKGRound2: {"relinearization-key", "relinearization key, round 2 of 2"},
	protocols.KindGKGShare:  {"galois-keys", "Galois key shares"},
	protocols.KindTSKShare:  {"threshold-sharing", "t-of-N Shamir shares of every secret, end-to-end encrypted"},
	protocols.KindSetupDone: {"key-digests", "parties comparing the digests of the keys they derived"},
}

// Observe reports setup progress from the relayed messages.
func (j *SetupJob) Observe(c *Coordinator, r Relayed) {
	if j.seen == nil {
		j.seen = map[protocols.Kind]bool{}
	}
	if desc, ok := setupStages[r.Kind]; ok && !j.seen[r.Kind] {
		j.seen[r.Kind] = true
		c.Event(desc[0], "", "%s", desc[1])
	}
}

// Next implements Job.
func (j *SetupJob) Next(c *Coordinator, outcome any) (Action, error) {
	if !j.started {
		j.started = true
		start := &synodv1.SetupStart{Parameters: j.Params.Name, Threshold: uint32(j.Threshold), GaloisElements: j.Params.GaloisElements()}
		for _, p := range sortedIDs(j.Parties) {
			start.Parties = append(start.Parties, string(p))
		}
		c.Event("start", "", "setup of %d parties, threshold %d, parameters %s, %d Galois keys", len(j.Parties), j.Threshold, j.Params.Name, len(start.GaloisElements))
		// Start every other party before this node's own: its first
		// broadcast is relayed at once, and each relay queue must deliver
		// setup.start ahead of anything else of the session.
		order := without(sortedIDs(j.Parties), c.cfg.Self)
		if slices.Contains(j.Parties, c.cfg.Self) {
			order = append(order, c.cfg.Self)
		}
		return Ask{Stage: "keys", Kind: KindSetupStart, Payload: encode(start), To: order, Reply: KindSetupStored, Timeout: j.Timeout,
			Decode: func(from PartyID, payload []byte) (any, error) {
				var st synodv1.SetupStored
				if err := decodePayload(payload, &st); err != nil {
					return nil, fmt.Errorf("malformed %s: %w", KindSetupStored, err)
				}
				return st.GetKeyDigest(), nil
			}}, nil
	}
	in, ok := outcome.(Answers)
	if !ok {
		return Finish{}, nil
	}
	var ref []byte
	for _, p := range sortedIDs(j.Parties) {
		d := in.From[p].([]byte)
		if ref == nil {
			ref = d
		} else if !bytes.Equal(d, ref) {
			return nil, faultf(p, "derived different keys (digest %x, expected %x)", d, ref)
		}
	}
	if len(ref) < 8 {
		return nil, faultf(sortedIDs(j.Parties)[0], "reported a key digest of %d bytes", len(ref))
	}
	c.Event("keys", "", "public key, relinearization key, %d Galois keys and t-of-N shares ready (digest %x)", len(j.Params.GaloisElements()), ref[:8])
	return Finish{}, nil
}
