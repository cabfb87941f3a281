package protocols

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/synod-mpc/synod/engine"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/utils/sampling"
	"go.dedis.ch/kyber/v3"
	"go.dedis.ch/kyber/v3/encrypt/ecies"
	"go.dedis.ch/kyber/v3/group/edwards25519"
)

// Message kinds of the consortium setup.
const (
	KindCRSCommit  Kind = "setup.crs.commit" // SHA-256(r_i), broadcast
	KindCRSReveal  Kind = "setup.crs.reveal" // r_i (32 bytes), broadcast
	KindCKGShare   Kind = "setup.ckg.share"  // collective public key share, broadcast
	KindRKGRound1  Kind = "setup.rkg.r1"     // relinearization key round 1, broadcast
	KindRKGRound2  Kind = "setup.rkg.r2"     // relinearization key round 2, broadcast
	KindGKGShare   Kind = "setup.gkg.share"  // Galois key share (element || share), broadcast
	KindTSKShare   Kind = "setup.tsk.share"  // Shamir share of sk_i, To set, ECIES-encrypted
	KindSetupDone  Kind = "setup.done"       // SHA-256 digest of the public outputs, broadcast
	crsContribSize      = 32
)

// Setup stages, as reported by Stage.
const (
	StageCRSCommit = "crs.commit"
	StageCRSReveal = "crs.reveal"
	StageKeygen    = "keygen"
	StageConfirm   = "confirm"
	StageDone      = "done"
)

// SetupConfig configures one party's instance of the consortium setup.
type SetupConfig struct {
	Params  engine.Parameters
	Session string
	Self    PartyID
	// Parties lists all N members; setup needs every one of them.
	Parties   []PartyID
	Threshold int
	// GaloisElements are the Galois keys to generate (sorted and
	// deduplicated; all parties must configure the same set).
	GaloisElements []uint64
	// Identity is this party's edwards25519 identity secret, used to
	// decrypt the Shamir shares addressed to it.
	Identity kyber.Scalar
	// PeerKeys are the identity public keys of the other parties (ECIES).
	PeerKeys map[PartyID]kyber.Point
	// Rand supplies the CRS contribution (crypto/rand in production).
	Rand io.Reader
	// CRSSeed, when set, is a seed every party already agreed on and no
	// party could choose (the consortium's threshold-BLS signature of the
	// session, see BeaconSeed); the commit-reveal round is then skipped.
	CRSSeed []byte
}

// SetupResult is what the setup leaves with each party.
type SetupResult struct {
	// Public part, identical at every party.
	ParamsName         string
	Parties            []PartyID // sorted
	Threshold          int
	CRSSeed            []byte
	PublicKey          *rlwe.PublicKey
	RelinearizationKey *rlwe.RelinearizationKey
	GaloisKeys         []*rlwe.GaloisKey // sorted by Galois element
	Digest             []byte

	// Secret part, own to the party.
	Self           PartyID
	SecretKey      *rlwe.SecretKey // own additive (N-of-N) share
	ThresholdShare mhe.ShamirSecretShare
}

// Setup is one party's state machine for the consortium setup. Only the CRS
// contribution is drawn from SetupConfig.Rand; the RLWE secret, the Shamir
// polynomial and the protocol noise come from lattigo's own cryptographic
// PRNG.
type Setup struct {
	cfg        SetupConfig
	presetSeed bool // CRS seed given by the config: no commit-reveal round
	params     rlwe.Parameters
	parties    []PartyID // sorted
	galEls     []uint64  // sorted, deduplicated
	stage      string

	myR     []byte
	commits map[PartyID][]byte
	reveals map[PartyID][]byte
	seed    []byte

	sk *rlwe.SecretKey

	ckg     mhe.PublicKeyGenProtocol
	ckgCRP  mhe.PublicKeyGenCRP
	ckgAgg  mhe.PublicKeyGenShare
	ckgSeen map[PartyID]bool

	rkg            mhe.RelinearizationKeyGenProtocol
	rkgCRP         mhe.RelinearizationKeyGenCRP
	ephSk          *rlwe.SecretKey
	r1Agg, r2Agg   mhe.RelinearizationKeyGenShare
	r1Seen, r2Seen map[PartyID]bool
	r2Sent         bool
	gkg            mhe.GaloisKeyGenProtocol
	gkgCRP         map[uint64]mhe.GaloisKeyGenCRP
	gkgAgg         map[uint64]*mhe.GaloisKeyGenShare
	gkgSeen        map[uint64]map[PartyID]bool
	thr            mhe.Thresholdizer
	tskAgg         mhe.ShamirSecretShare
	tskSeen        map[PartyID]bool
	doneDigests    map[PartyID][]byte
	result         *SetupResult
	suite          *edwards25519.SuiteEd25519
}

// NewSetup validates cfg and returns the instance with its first messages
// (the CRS commitment).
func NewSetup(cfg SetupConfig) (*Setup, []Message, error) {
	if cfg.Params.N() == 0 {
		return nil, nil, errors.New("setup: parameters not set")
	}
	if cfg.Session == "" || len(cfg.Session) > maxIDLen {
		return nil, nil, errors.New("setup: session id must have 1 to 256 bytes")
	}
	parties := slices.Clone(cfg.Parties)
	slices.Sort(parties)
	if len(parties) == 0 || len(parties) > maxGroupSize {
		return nil, nil, fmt.Errorf("setup: %d parties", len(parties))
	}
	for i, p := range parties {
		if p == "" || len(p) > maxIDLen {
			return nil, nil, fmt.Errorf("setup: invalid party id %q", p)
		}
		if i > 0 && parties[i-1] == p {
			return nil, nil, fmt.Errorf("setup: party %s listed twice", p)
		}
	}
	if !slices.Contains(parties, cfg.Self) {
		return nil, nil, fmt.Errorf("setup: self %q is not among the parties", cfg.Self)
	}
	if cfg.Threshold < 1 || cfg.Threshold > len(parties) {
		return nil, nil, fmt.Errorf("setup: threshold %d out of range 1..%d", cfg.Threshold, len(parties))
	}
	if cfg.Identity == nil {
		return nil, nil, errors.New("setup: no identity key")
	}
	for _, p := range parties {
		if p != cfg.Self && cfg.PeerKeys[p] == nil {
			return nil, nil, fmt.Errorf("setup: no identity public key for party %s", p)
		}
	}
	if cfg.Rand == nil {
		return nil, nil, errors.New("setup: no randomness source")
	}
	params := *cfg.Params.GetRLWEParameters()
	galEls := slices.Clone(cfg.GaloisElements)
	slices.Sort(galEls)
	galEls = slices.Compact(galEls)
	for _, g := range galEls {
		if !validGaloisElement(params, g) {
			return nil, nil, fmt.Errorf("setup: invalid Galois element %d", g)
		}
	}

	s := &Setup{
		cfg:         cfg,
		params:      params,
		parties:     parties,
		galEls:      galEls,
		stage:       StageCRSCommit,
		commits:     map[PartyID][]byte{},
		reveals:     map[PartyID][]byte{},
		ckgSeen:     map[PartyID]bool{},
		r1Seen:      map[PartyID]bool{},
		r2Seen:      map[PartyID]bool{},
		gkgSeen:     map[uint64]map[PartyID]bool{},
		tskSeen:     map[PartyID]bool{},
		doneDigests: map[PartyID][]byte{},
		suite:       edwards25519.NewBlakeSHA256Ed25519(),
	}
	s.myR = make([]byte, crsContribSize)
	if _, err := io.ReadFull(cfg.Rand, s.myR); err != nil {
		return nil, nil, fmt.Errorf("setup: reading CRS contribution: %w", err)
	}
	c := sha256.Sum256(s.myR)
	s.commits[cfg.Self] = c[:]
	s.reveals[cfg.Self] = s.myR

	// Allocate the protocols and accumulators now, so that shares arriving
	// early (before this party knows the CRS) can be validated and summed.
	s.ckg = mhe.NewPublicKeyGenProtocol(params)
	s.ckgAgg = s.ckg.AllocateShare()
	s.rkg = mhe.NewRelinearizationKeyGenProtocol(params)
	s.ephSk, s.r1Agg, s.r2Agg = s.rkg.AllocateShare()
	s.gkg = mhe.NewGaloisKeyGenProtocol(params)
	s.gkgAgg = make(map[uint64]*mhe.GaloisKeyGenShare, len(galEls))
	for _, g := range galEls {
		sh := s.gkg.AllocateShare()
		sh.GaloisElement = g
		s.gkgAgg[g] = &sh
		s.gkgSeen[g] = map[PartyID]bool{}
	}
	s.thr = mhe.NewThresholdizer(params)
	s.tskAgg = s.thr.AllocateThresholdSecretShare()

	if len(cfg.CRSSeed) > 0 {
		if len(cfg.CRSSeed) < 32 {
			return nil, nil, fmt.Errorf("setup: CRS seed of %d bytes, want at least 32", len(cfg.CRSSeed))
		}
		s.seed = bytes.Clone(cfg.CRSSeed)
		s.presetSeed = true
		msgs, err := s.startKeygen()
		if err != nil {
			return nil, nil, err
		}
		s.stage = StageKeygen
		out, err := s.progress()
		if err != nil {
			return nil, nil, err
		}
		return s, append(msgs, out...), nil
	}
	out, err := s.progress()
	if err != nil {
		return nil, nil, err
	}
	return s, append([]Message{s.msg(KindCRSCommit, "", c[:])}, out...), nil
}

// Stage names the current stage (for progress events).
func (s *Setup) Stage() string { return s.stage }

// Done reports whether the setup completed and every party confirmed the
// same public outputs.
func (s *Setup) Done() bool { return s.stage == StageDone }

// Result returns the outputs once Done, nil before.
func (s *Setup) Result() *SetupResult {
	if !s.Done() {
		return nil
	}
	return s.result
}

// Parties returns the sorted member list.
func (s *Setup) Parties() []PartyID { return slices.Clone(s.parties) }

func (s *Setup) msg(kind Kind, to PartyID, payload []byte) Message {
	return Message{Session: s.cfg.Session, Kind: kind, From: s.cfg.Self, To: to, Payload: payload}
}

// DeriveCRSSeed derives the common reference string seed from the session id
// and every party's revealed contribution. It is kept apart so that the
// commit-reveal can be replaced by a threshold-BLS signature.
func DeriveCRSSeed(session string, reveals map[PartyID][]byte) []byte {
	ids := make([]PartyID, 0, len(reveals))
	for id := range reveals {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	h := sha256.New()
	h.Write([]byte("synod/crs/v1"))
	h.Write(appendStr(nil, session))
	for _, id := range ids {
		h.Write(appendStr(nil, string(id)))
		h.Write(appendBlob(nil, reveals[id]))
	}
	return h.Sum(nil)
}

// Step processes one relayed message and returns the messages to send.
// A rejected message leaves the instance unchanged.
func (s *Setup) Step(m Message) ([]Message, error) {
	if err := s.accept(m); err != nil {
		return nil, err
	}
	return s.progress()
}

func (s *Setup) accept(m Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = perr(m.From, m.Kind, "malformed payload: %v", r)
		}
	}()
	if m.From == s.cfg.Self || !slices.Contains(s.parties, m.From) {
		return perr(m.From, m.Kind, "sender is not a participant")
	}
	if m.Session != s.cfg.Session {
		return perr(m.From, m.Kind, "message for session %q, not %q", m.Session, s.cfg.Session)
	}
	if m.To != "" && m.To != s.cfg.Self {
		return perr(m.From, m.Kind, "message addressed to %s", m.To)
	}
	if s.stage == StageDone {
		return perr(m.From, m.Kind, "setup already complete")
	}
	// After key generation every keygen message is a duplicate (the
	// accumulators are released, the seen sets are full).
	if m.Kind == KindTSKShare {
		if m.To != s.cfg.Self {
			return perr(m.From, m.Kind, "Shamir share must be addressed")
		}
	} else if m.To != "" {
		return perr(m.From, m.Kind, "broadcast kind sent point to point")
	}
	if s.presetSeed && (m.Kind == KindCRSCommit || m.Kind == KindCRSReveal) {
		return perr(m.From, m.Kind, "no commit-reveal round: the CRS seed comes from the consortium's threshold signature")
	}
	switch m.Kind {
	case KindCRSCommit:
		if _, dup := s.commits[m.From]; dup {
			return perr(m.From, m.Kind, "duplicate message")
		}
		if len(m.Payload) != sha256.Size {
			return perr(m.From, m.Kind, "commitment has %d bytes, want %d", len(m.Payload), sha256.Size)
		}
		s.commits[m.From] = bytes.Clone(m.Payload)
	case KindCRSReveal:
		if _, dup := s.reveals[m.From]; dup {
			return perr(m.From, m.Kind, "duplicate message")
		}
		if len(m.Payload) != crsContribSize {
			return perr(m.From, m.Kind, "reveal has %d bytes, want %d", len(m.Payload), crsContribSize)
		}
		if c, ok := s.commits[m.From]; ok {
			if err := checkReveal(c, m.Payload); err != nil {
				return wrapErr(m.From, m.Kind, err)
			}
		}
		s.reveals[m.From] = bytes.Clone(m.Payload)
	case KindCKGShare:
		if s.ckgSeen[m.From] {
			return perr(m.From, m.Kind, "duplicate message")
		}
		if err := qpPoly(s.ckgAgg.Value).addEncoded(s.params, m.Payload); err != nil {
			return wrapErr(m.From, m.Kind, err)
		}
		s.ckgSeen[m.From] = true
	case KindRKGRound1, KindRKGRound2:
		seen, agg := s.r1Seen, &s.r1Agg
		if m.Kind == KindRKGRound2 {
			seen, agg = s.r2Seen, &s.r2Agg
		}
		if seen[m.From] {
			return perr(m.From, m.Kind, "duplicate message")
		}
		if err := gadgetShape(&agg.GadgetCiphertext).addEncoded(s.params, m.Payload); err != nil {
			return wrapErr(m.From, m.Kind, err)
		}
		seen[m.From] = true
	case KindGKGShare:
		if len(m.Payload) < 8 {
			return perr(m.From, m.Kind, "truncated payload")
		}
		g := binary.BigEndian.Uint64(m.Payload)
		seen, ok := s.gkgSeen[g]
		if !ok {
			return perr(m.From, m.Kind, "Galois element %d was not requested", g)
		}
		if seen[m.From] {
			return perr(m.From, m.Kind, "duplicate message")
		}
		if err := gadgetShape(&s.gkgAgg[g].GadgetCiphertext).addEncoded(s.params, m.Payload[8:]); err != nil {
			return wrapErr(m.From, m.Kind, err)
		}
		seen[m.From] = true
	case KindTSKShare:
		if s.tskSeen[m.From] {
			return perr(m.From, m.Kind, "duplicate message")
		}
		plain, err := openShare(s.suite, s.cfg.Identity, m.Payload)
		if err != nil {
			return wrapErr(m.From, m.Kind, err)
		}
		sh, err := DecodeTSKShare(s.params, s.cfg.Session, m.From, s.cfg.Self, plain)
		if err != nil {
			return wrapErr(m.From, m.Kind, err)
		}
		if err := s.thr.AggregateShares(s.tskAgg, sh, &s.tskAgg); err != nil {
			return wrapErr(m.From, m.Kind, err)
		}
		s.tskSeen[m.From] = true
	case KindSetupDone:
		if _, dup := s.doneDigests[m.From]; dup {
			return perr(m.From, m.Kind, "duplicate message")
		}
		if len(m.Payload) != sha256.Size {
			return perr(m.From, m.Kind, "digest has %d bytes, want %d", len(m.Payload), sha256.Size)
		}
		if s.result != nil && !bytes.Equal(m.Payload, s.result.Digest) {
			return perr(m.From, m.Kind, "setup digest %x differs from ours %x", m.Payload, s.result.Digest)
		}
		s.doneDigests[m.From] = bytes.Clone(m.Payload)
	default:
		return perr(m.From, m.Kind, "unknown message kind")
	}
	return nil
}

func checkReveal(commit, reveal []byte) error {
	h := sha256.Sum256(reveal)
	if subtle.ConstantTimeCompare(h[:], commit) != 1 {
		return errors.New("CRS reveal does not match its commitment")
	}
	return nil
}

func (s *Setup) progress() ([]Message, error) {
	var out []Message
	n := len(s.parties)
	for {
		switch s.stage {
		case StageCRSCommit:
			if len(s.commits) < n {
				return out, nil
			}
			out = append(out, s.msg(KindCRSReveal, "", bytes.Clone(s.myR)))
			s.stage = StageCRSReveal
		case StageCRSReveal:
			if len(s.reveals) < n {
				return out, nil
			}
			for _, id := range s.parties {
				if err := checkReveal(s.commits[id], s.reveals[id]); err != nil {
					return out, wrapErr(id, KindCRSReveal, err)
				}
			}
			s.seed = DeriveCRSSeed(s.cfg.Session, s.reveals)
			msgs, err := s.startKeygen()
			if err != nil {
				return out, err
			}
			out = append(out, msgs...)
			s.stage = StageKeygen
		case StageKeygen:
			if !s.r2Sent && len(s.r1Seen) == n-1 {
				_, _, r2 := s.rkg.AllocateShare()
				s.rkg.GenShareRoundTwo(s.ephSk, s.sk, s.r1Agg, &r2)
				s.rkg.AggregateShares(s.r2Agg, r2, &s.r2Agg)
				s.ephSk = nil
				out = append(out, s.msg(KindRKGRound2, "", EncodeRKGShare(s.params, r2)))
				s.r2Sent = true
			}
			if !s.keygenComplete() {
				return out, nil
			}
			res, err := s.finish()
			if err != nil {
				return out, err
			}
			s.result = res
			for id, d := range s.doneDigests {
				if !bytes.Equal(d, res.Digest) {
					return out, perr(id, KindSetupDone, "setup digest %x differs from ours %x", d, res.Digest)
				}
			}
			out = append(out, s.msg(KindSetupDone, "", bytes.Clone(res.Digest)))
			s.stage = StageConfirm
		case StageConfirm:
			if len(s.doneDigests) < n-1 {
				return out, nil
			}
			s.stage = StageDone
		case StageDone:
			return out, nil
		}
	}
}

func (s *Setup) keygenComplete() bool {
	n := len(s.parties) - 1
	if !s.r2Sent || len(s.ckgSeen) < n || len(s.r1Seen) < n || len(s.r2Seen) < n || len(s.tskSeen) < n {
		return false
	}
	for _, seen := range s.gkgSeen {
		if len(seen) < n {
			return false
		}
	}
	return true
}

// sampleCRPs derives every common random polynomial from the seed, in a fixed
// order shared by all parties.
func sampleCRPs(params rlwe.Parameters, seed []byte, galEls []uint64) (mhe.PublicKeyGenCRP, mhe.RelinearizationKeyGenCRP, map[uint64]mhe.GaloisKeyGenCRP, error) {
	prng, err := crsStream(seed)
	if err != nil {
		return mhe.PublicKeyGenCRP{}, mhe.RelinearizationKeyGenCRP{}, nil, err
	}
	ckgCRP := mhe.NewPublicKeyGenProtocol(params).SampleCRP(prng)
	rkgCRP := mhe.NewRelinearizationKeyGenProtocol(params).SampleCRP(prng)
	gkg := mhe.NewGaloisKeyGenProtocol(params)
	gkgCRP := make(map[uint64]mhe.GaloisKeyGenCRP, len(galEls))
	for _, g := range galEls {
		gkgCRP[g] = gkg.SampleCRP(prng)
	}
	return ckgCRP, rkgCRP, gkgCRP, nil
}

// crsStream expands the agreed CRS seed into the byte stream the common
// random polynomials are sampled from: AES-256 in counter mode, keyed by
// SHA-256 of a domain tag and the seed, from a zero counter. Every party
// derives the same stream. lattigo's KeyedPRNG (a blake2b XOF) does the same
// job at a fifth of the speed, and sampling tens of megabytes of CRPs with it
// was a quarter of a party's setup time; AES-CTR under a uniformly random
// key is a standard PRG, and the CRPs are public anyway.
func crsStream(seed []byte) (sampling.PRNG, error) {
	if len(seed) == 0 {
		return nil, errors.New("setup: empty CRS seed")
	}
	key := sha256.Sum256(append([]byte("synod/crs/aes-256-ctr/v1\x00"), seed...))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	return &keystream{s: cipher.NewCTR(block, make([]byte, aes.BlockSize))}, nil
}

// keystream reads a cipher's key stream.
type keystream struct{ s cipher.Stream }

func (k *keystream) Read(p []byte) (int, error) {
	clear(p)
	k.s.XORKeyStream(p, p)
	return len(p), nil
}

func (s *Setup) startKeygen() ([]Message, error) {
	var err error
	s.ckgCRP, s.rkgCRP, s.gkgCRP, err = sampleCRPs(s.params, s.seed, s.galEls)
	if err != nil {
		return nil, err
	}
	s.sk = rlwe.NewKeyGenerator(s.params).GenSecretKeyNew()
	var out []Message

	ckgShare := s.ckg.AllocateShare()
	s.ckg.GenShare(s.sk, s.ckgCRP, &ckgShare)
	s.ckg.AggregateShares(s.ckgAgg, ckgShare, &s.ckgAgg)
	out = append(out, s.msg(KindCKGShare, "", EncodeCKGShare(s.params, ckgShare)))

	_, r1, _ := s.rkg.AllocateShare()
	s.rkg.GenShareRoundOne(s.sk, s.rkgCRP, s.ephSk, &r1)
	s.rkg.AggregateShares(s.r1Agg, r1, &s.r1Agg)
	out = append(out, s.msg(KindRKGRound1, "", EncodeRKGShare(s.params, r1)))

	for _, g := range s.galEls {
		sh := s.gkg.AllocateShare()
		if err := s.gkg.GenShare(s.sk, g, s.gkgCRP[g], &sh); err != nil {
			return nil, err
		}
		agg := s.gkgAgg[g]
		if err := s.gkg.AggregateShares(*agg, sh, agg); err != nil {
			return nil, err
		}
		out = append(out, s.msg(KindGKGShare, "", EncodeGKGShare(s.params, sh)))
	}

	poly, err := s.thr.GenShamirPolynomial(s.cfg.Threshold, s.sk)
	if err != nil {
		return nil, err
	}
	for _, id := range s.parties {
		pt, err := ShamirPoint(s.parties, id)
		if err != nil {
			return nil, err
		}
		sh := s.thr.AllocateThresholdSecretShare()
		s.thr.GenShamirSecretShare(mhe.ShamirPublicPoint(pt), poly, &sh)
		if id == s.cfg.Self {
			if err := s.thr.AggregateShares(s.tskAgg, sh, &s.tskAgg); err != nil {
				return nil, err
			}
			continue
		}
		plain := EncodeTSKShare(s.params, s.cfg.Session, s.cfg.Self, id, sh)
		ct, err := ecies.Encrypt(s.suite, s.cfg.PeerKeys[id], plain, s.suite.Hash)
		if err != nil {
			return nil, fmt.Errorf("encrypting Shamir share for %s: %w", id, err)
		}
		out = append(out, s.msg(KindTSKShare, id, ct))
	}
	return out, nil
}

func (s *Setup) finish() (*SetupResult, error) {
	res := &SetupResult{
		ParamsName:     s.cfg.Params.Name,
		Parties:        slices.Clone(s.parties),
		Threshold:      s.cfg.Threshold,
		CRSSeed:        bytes.Clone(s.seed),
		Self:           s.cfg.Self,
		SecretKey:      s.sk,
		ThresholdShare: s.tskAgg,
	}
	res.PublicKey = rlwe.NewPublicKey(s.params)
	s.ckg.GenPublicKey(s.ckgAgg, s.ckgCRP, res.PublicKey)
	res.RelinearizationKey = rlwe.NewRelinearizationKey(s.params)
	s.rkg.GenRelinearizationKey(s.r1Agg, s.r2Agg, res.RelinearizationKey)
	for _, g := range s.galEls {
		gk := rlwe.NewGaloisKey(s.params)
		if err := s.gkg.GenGaloisKey(*s.gkgAgg[g], s.gkgCRP[g], gk); err != nil {
			return nil, err
		}
		res.GaloisKeys = append(res.GaloisKeys, gk)
	}
	d, err := res.computeDigest(s.params)
	if err != nil {
		return nil, err
	}
	res.Digest = d
	// Release the protocol buffers (tens of MB at LogN=15).
	s.rkgCRP, s.r1Agg, s.r2Agg = mhe.RelinearizationKeyGenCRP{}, mhe.RelinearizationKeyGenShare{}, mhe.RelinearizationKeyGenShare{}
	s.gkgCRP, s.gkgAgg = nil, nil
	return res, nil
}

// computeDigest hashes the public outputs: parameter set name, members,
// threshold, CRS seed, public key, relinearization key, Galois keys.
func (r *SetupResult) computeDigest(params rlwe.Parameters) ([]byte, error) {
	h := sha256.New()
	h.Write([]byte("synod/setup/v1"))
	h.Write(appendStr(nil, r.ParamsName))
	h.Write(binary.BigEndian.AppendUint16(nil, uint16(len(r.Parties))))
	for _, p := range r.Parties {
		h.Write(appendStr(nil, string(p)))
	}
	h.Write(binary.BigEndian.AppendUint16(nil, uint16(r.Threshold)))
	h.Write(appendBlob(nil, r.CRSSeed))
	buf := make([]byte, 1<<16)
	if err := r.walkPublicKeys(params, func(p []byte) { h.Write(p) },
		func(prefix []byte, sh shape) { writeShapeBlob(h, params, prefix, sh, buf) }); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// --- share payloads -------------------------------------------------------

// EncodeCKGShare encodes a collective public key share.
func EncodeCKGShare(params rlwe.Parameters, sh mhe.PublicKeyGenShare) []byte {
	return qpPoly(sh.Value).encode(params, nil)
}

// DecodeCKGShare decodes and validates a collective public key share.
func DecodeCKGShare(params rlwe.Parameters, b []byte) (sh mhe.PublicKeyGenShare, err error) {
	defer decodeGuard(&err)
	sh = mhe.NewPublicKeyGenProtocol(params).AllocateShare()
	err = qpPoly(sh.Value).addEncoded(params, b) // into zero: the aggregation path
	return sh, err
}

// EncodeRKGShare encodes a relinearization key share (either round).
func EncodeRKGShare(params rlwe.Parameters, sh mhe.RelinearizationKeyGenShare) []byte {
	return gadgetShape(&sh.GadgetCiphertext).encode(params, nil)
}

// DecodeRKGShare decodes and validates a relinearization key share.
func DecodeRKGShare(params rlwe.Parameters, b []byte) (sh mhe.RelinearizationKeyGenShare, err error) {
	defer decodeGuard(&err)
	_, sh, _ = mhe.NewRelinearizationKeyGenProtocol(params).AllocateShare()
	err = gadgetShape(&sh.GadgetCiphertext).addEncoded(params, b) // into zero: the aggregation path
	return sh, err
}

// EncodeGKGShare encodes a Galois key share: element (8 bytes) then share.
func EncodeGKGShare(params rlwe.Parameters, sh mhe.GaloisKeyGenShare) []byte {
	b := binary.BigEndian.AppendUint64(nil, sh.GaloisElement)
	return gadgetShape(&sh.GadgetCiphertext).encode(params, b)
}

// DecodeGKGShare decodes and validates a Galois key share.
func DecodeGKGShare(params rlwe.Parameters, b []byte) (sh mhe.GaloisKeyGenShare, err error) {
	defer decodeGuard(&err)
	if len(b) < 8 {
		return sh, errors.New("truncated payload")
	}
	g := binary.BigEndian.Uint64(b)
	if !validGaloisElement(params, g) {
		return sh, fmt.Errorf("invalid Galois element %d", g)
	}
	sh = mhe.NewGaloisKeyGenProtocol(params).AllocateShare()
	sh.GaloisElement = g
	err = gadgetShape(&sh.GadgetCiphertext).addEncoded(params, b[8:]) // into zero: the aggregation path
	return sh, err
}

// tskHeader binds a Shamir share plaintext to its session, sender and recipient.
func tskHeader(session string, from, to PartyID) []byte {
	b := appendStr([]byte("synod/tsk/v1"), session)
	b = appendStr(b, string(from))
	return appendStr(b, string(to))
}

// EncodeTSKShare encodes the plaintext of a Shamir share (before ECIES).
func EncodeTSKShare(params rlwe.Parameters, session string, from, to PartyID, sh mhe.ShamirSecretShare) []byte {
	return qpPoly(sh.Poly).encode(params, tskHeader(session, from, to))
}

// DecodeTSKShare decodes the plaintext of a Shamir share and checks that it
// was made for this session, sender and recipient.
func DecodeTSKShare(params rlwe.Parameters, session string, from, to PartyID, b []byte) (sh mhe.ShamirSecretShare, err error) {
	defer decodeGuard(&err)
	hdr := tskHeader(session, from, to)
	if !bytes.HasPrefix(b, hdr) {
		return sh, errors.New("Shamir share not bound to this session, sender and recipient")
	}
	sh = mhe.NewThresholdizer(params).AllocateThresholdSecretShare()
	err = qpPoly(sh.Poly).decode(params, b[len(hdr):])
	return sh, err
}

func openShare(suite *edwards25519.SuiteEd25519, priv kyber.Scalar, ct []byte) (plain []byte, err error) {
	defer decodeGuard(&err)
	if len(ct) < suite.PointLen()+16 {
		return nil, errors.New("encrypted share too short")
	}
	plain, err = ecies.Decrypt(suite, priv, ct, suite.Hash)
	if err != nil {
		return nil, fmt.Errorf("cannot decrypt Shamir share: %w", err)
	}
	return plain, nil
}
