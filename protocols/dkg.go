package protocols

import (
	"bytes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"go.dedis.ch/kyber/v3"
	"go.dedis.ch/kyber/v3/pairing/bn256"
	"go.dedis.ch/kyber/v3/share"
	pedersen "go.dedis.ch/kyber/v3/share/dkg/pedersen"
	vss "go.dedis.ch/kyber/v3/share/vss/pedersen"
	"go.dedis.ch/kyber/v3/util/random"
)

// Message kinds of the distributed key generation (Pedersen DKG on bn256 G2,
// producing the consortium's threshold-BLS key).
const (
	KindDKGPub           Kind = "dkg.pub"           // ephemeral DKG public key (G2 point), broadcast
	KindDKGDeal          Kind = "dkg.deal"          // encrypted deal, To set
	KindDKGResponse      Kind = "dkg.response"      // approval or complaint about one deal, broadcast
	KindDKGJustification Kind = "dkg.justification" // dealer's answer to a complaint, broadcast
	KindDKGDone          Kind = "dkg.done"          // SHA-256 digest of the public outputs, broadcast
)

// Sizes of the bn256 encodings.
const (
	g1PointSize = 64
	g2PointSize = 128
	scalarSize  = 32
)

// Bounds on the variable-length fields of DKG payloads (generous: a schnorr
// signature on G2 has 160 bytes, a GCM nonce 12, an encrypted deal a few
// hundred bytes plus 128 per commitment).
const (
	maxDKGSigLen    = 1024
	maxDKGNonceLen  = 64
	maxDKGSIDLen    = 64
	maxDKGCipherLen = 1 << 20
)

const (
	dkgStagePub     = "pub"
	dkgStageDeal    = "deal"
	dkgStageConfirm = "confirm"
	dkgStageDone    = "done"
)

// bnSuite is the pairing suite of the threshold BLS signatures: keys (and
// the DKG) on G2, signatures on G1, as in kyber's sign/bls and sign/tbls.
var bnSuite = bn256.NewSuite()

func g2() kyber.Group { return bnSuite.G2() }

// dkgSuite is bn256 restricted to G2 (what share/dkg/pedersen needs) with
// the randomness stream of the configuration, so that every random choice of
// the DKG (long-term key, polynomial, deal encryption, schnorr nonces) comes
// from DKGConfig.Rand.
type dkgSuite struct {
	*bn256.Suite
	stream cipher.Stream
}

func (s *dkgSuite) RandomStream() cipher.Stream { return s.stream }

// randReader wraps DKGConfig.Rand to tell a failing randomness source (on
// which kyber panics) from a malformed message.
type randReader struct {
	r      io.Reader
	failed error
}

func (r *randReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && r.failed == nil {
		r.failed = err
	}
	return n, err
}

// DKGConfig configures one party's instance of the distributed key
// generation.
type DKGConfig struct {
	Session string
	Self    PartyID
	// Parties lists all N members; the DKG needs every one of them. Their
	// order does not matter: they are sorted, and a party's share index is
	// its ShamirPoint minus one.
	Parties []PartyID
	// Threshold is the number of partial signatures that make a
	// certificate, 2 <= Threshold <= N (kyber's VSS rejects 1).
	Threshold int
	// Rand supplies every random choice of this party (crypto/rand in
	// production); it is read 32 bytes at a time and expanded with blake2xb.
	Rand io.Reader
}

// DKGResult is what the DKG leaves with each party.
type DKGResult struct {
	// Index is the party's share index (0-based): its ShamirPoint minus one.
	Index int
	// Share is the party's share of the group secret (secret).
	Share *share.PriShare
	// Public is the public polynomial (commitments on G2); Public.Eval(i)
	// is party i's public key share. Identical at every party.
	Public *share.PubPoly
	// GroupKey is the consortium's BLS public key, Public.Commit().
	GroupKey kyber.Point
}

// DKG is one party's state machine for the Pedersen DKG (kyber
// share/dkg/pedersen). Stages: every party broadcasts a fresh ephemeral G2
// public key (the transport signs it with the party's identity key, which
// binds it); once all keys are known each party sends one encrypted deal per
// peer; every receiver broadcasts a response (approval or complaint) per
// deal; a dealer answers each complaint with a justification; once every
// deal is certified each party broadcasts the digest of the public outputs,
// and the DKG is done when every digest matches.
//
// Messages may arrive in any order: whatever cannot be processed yet is
// decoded, checked and kept until it can. A malformed message is rejected
// naming its sender and leaves the instance unchanged; a message that fails
// a cryptographic check during processing (a deal that does not decrypt, a
// bad signature, a false justification) aborts the instance: Step returns
// the error, naming the party at fault, now and on every later call.
type DKG struct {
	cfg     DKGConfig
	parties []PartyID // sorted
	index   int       // own index in parties
	suite   *dkgSuite
	rand    *randReader
	stage   string

	long kyber.Scalar
	pubs map[PartyID]kyber.Point
	gen  *pedersen.DistKeyGenerator

	deals     map[PartyID]*pedersen.Deal // received, not yet processed
	dealsSeen map[PartyID]bool
	dealDone  map[int]bool // dealer index -> processed
	responses []pendingResponse
	respSeen  map[[2]int]bool // (dealer, verifier) received
	respDone  map[[2]int]bool // (dealer, verifier) processed
	justs     []pendingJustification
	justSeen  map[[2]int]bool // (dealer, complainer)
	justified map[int]*share.PriShare

	doneDigests map[PartyID][]byte
	result      *DKGResult
	digest      []byte
	fatal       error
}

type pendingResponse struct {
	from PartyID
	r    *pedersen.Response
}

type pendingJustification struct {
	from PartyID
	j    *pedersen.Justification
}

// NewDKG validates cfg and returns the instance with its first message (the
// ephemeral DKG public key).
func NewDKG(cfg DKGConfig) (*DKG, []Message, error) {
	if cfg.Session == "" || len(cfg.Session) > maxIDLen {
		return nil, nil, errors.New("dkg: session id must have 1 to 256 bytes")
	}
	parties := slices.Clone(cfg.Parties)
	slices.Sort(parties)
	if len(parties) < 2 || len(parties) > maxGroupSize {
		return nil, nil, fmt.Errorf("dkg: %d parties, want 2 to %d", len(parties), maxGroupSize)
	}
	for i, p := range parties {
		if p == "" || len(p) > maxIDLen {
			return nil, nil, fmt.Errorf("dkg: invalid party id %q", p)
		}
		if i > 0 && parties[i-1] == p {
			return nil, nil, fmt.Errorf("dkg: party %s listed twice", p)
		}
	}
	index := slices.Index(parties, cfg.Self)
	if index < 0 {
		return nil, nil, fmt.Errorf("dkg: self %q is not among the parties", cfg.Self)
	}
	if cfg.Threshold < 2 || cfg.Threshold > len(parties) {
		return nil, nil, fmt.Errorf("dkg: threshold %d out of range 2..%d", cfg.Threshold, len(parties))
	}
	if cfg.Rand == nil {
		return nil, nil, errors.New("dkg: no randomness source")
	}
	rr := &randReader{r: cfg.Rand}
	suite := &dkgSuite{Suite: bn256.NewSuiteG2(), stream: random.New(rr)}
	d := &DKG{
		cfg:         cfg,
		rand:        rr,
		parties:     parties,
		index:       index,
		suite:       suite,
		stage:       dkgStagePub,
		pubs:        map[PartyID]kyber.Point{},
		deals:       map[PartyID]*pedersen.Deal{},
		dealsSeen:   map[PartyID]bool{},
		dealDone:    map[int]bool{},
		respSeen:    map[[2]int]bool{},
		respDone:    map[[2]int]bool{},
		justSeen:    map[[2]int]bool{},
		justified:   map[int]*share.PriShare{},
		doneDigests: map[PartyID][]byte{},
	}
	var pub kyber.Point
	err := guard(func() error {
		d.long = suite.Scalar().Pick(suite.RandomStream())
		pub = suite.Point().Mul(d.long, nil)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("dkg: generating the ephemeral key: %w", err)
	}
	d.pubs[cfg.Self] = pub
	pb, err := pub.MarshalBinary()
	if err != nil {
		return nil, nil, err
	}
	return d, []Message{d.msg(KindDKGPub, "", pb)}, nil
}

// Done reports whether the DKG completed and every party confirmed the same
// public outputs.
func (d *DKG) Done() bool { return d.stage == dkgStageDone }

// Result returns the outputs once Done, nil before.
func (d *DKG) Result() *DKGResult {
	if !d.Done() {
		return nil
	}
	return d.result
}

func (d *DKG) msg(kind Kind, to PartyID, payload []byte) Message {
	return Message{Session: d.cfg.Session, Kind: kind, From: d.cfg.Self, To: to, Payload: payload}
}

// Step processes one relayed message and returns the messages to send.
func (d *DKG) Step(m Message) (out []Message, err error) {
	if d.fatal != nil {
		return nil, d.fatal
	}
	if err := d.accept(m); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			if d.rand.failed != nil {
				err = fmt.Errorf("dkg: randomness source failed: %w", d.rand.failed)
			} else {
				err = perr(m.From, m.Kind, "processing failed: %v", r)
			}
		}
		if err != nil {
			d.fatal = err
		}
	}()
	return d.progress()
}

// guard runs f, turning a panic into an error (kyber panics on some
// malformed inputs).
func guard(f func() error) (err error) {
	defer decodeGuard(&err)
	return f()
}

func (d *DKG) indexOf(id PartyID) int { return slices.Index(d.parties, id) }

// accept checks and records m without running any kyber state transition.
func (d *DKG) accept(m Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = perr(m.From, m.Kind, "malformed payload: %v", r)
		}
	}()
	from := d.indexOf(m.From)
	if m.From == d.cfg.Self || from < 0 {
		return perr(m.From, m.Kind, "sender is not a participant")
	}
	if m.Session != d.cfg.Session {
		return perr(m.From, m.Kind, "message for session %q, not %q", m.Session, d.cfg.Session)
	}
	if m.Kind == KindDKGDeal {
		if m.To != d.cfg.Self {
			return perr(m.From, m.Kind, "deal must be addressed to this party, not %q", m.To)
		}
	} else if m.To != "" {
		return perr(m.From, m.Kind, "broadcast kind sent point to point")
	}
	if d.stage == dkgStageDone {
		return perr(m.From, m.Kind, "DKG already complete")
	}
	n := len(d.parties)
	switch m.Kind {
	case KindDKGPub:
		if _, dup := d.pubs[m.From]; dup {
			return perr(m.From, m.Kind, "duplicate message")
		}
		p, err := decodeG2Point(m.Payload)
		if err != nil {
			return wrapErr(m.From, m.Kind, err)
		}
		if p.Equal(g2().Point().Null()) {
			return perr(m.From, m.Kind, "DKG public key is the identity")
		}
		for id, q := range d.pubs {
			if q.Equal(p) {
				return perr(m.From, m.Kind, "DKG public key equals that of %s", id)
			}
		}
		d.pubs[m.From] = p
	case KindDKGDeal:
		if d.dealsSeen[m.From] {
			return perr(m.From, m.Kind, "duplicate message")
		}
		dl, err := DecodeDKGDeal(m.Payload)
		if err != nil {
			return wrapErr(m.From, m.Kind, err)
		}
		if int(dl.Index) != from {
			return perr(m.From, m.Kind, "deal claims dealer index %d, sender has %d", dl.Index, from)
		}
		d.deals[m.From] = dl
		d.dealsSeen[m.From] = true
	case KindDKGResponse:
		r, err := DecodeDKGResponse(m.Payload)
		if err != nil {
			return wrapErr(m.From, m.Kind, err)
		}
		if int(r.Response.Index) != from {
			return perr(m.From, m.Kind, "response claims verifier index %d, sender has %d", r.Response.Index, from)
		}
		if int(r.Index) >= n || int(r.Index) == from {
			return perr(m.From, m.Kind, "response about invalid dealer index %d", r.Index)
		}
		key := [2]int{int(r.Index), from}
		if d.respSeen[key] {
			return perr(m.From, m.Kind, "duplicate message")
		}
		d.respSeen[key] = true
		d.responses = append(d.responses, pendingResponse{from: m.From, r: r})
	case KindDKGJustification:
		j, err := DecodeDKGJustification(m.Payload)
		if err != nil {
			return wrapErr(m.From, m.Kind, err)
		}
		if int(j.Index) != from {
			return perr(m.From, m.Kind, "justification claims dealer index %d, sender has %d", j.Index, from)
		}
		v := int(j.Justification.Index)
		if v >= n || v == from {
			return perr(m.From, m.Kind, "justification for invalid verifier index %d", v)
		}
		if j.Justification.Deal.SecShare.I != v {
			return perr(m.From, m.Kind, "justification reveals the share of index %d, not %d", j.Justification.Deal.SecShare.I, v)
		}
		key := [2]int{from, v}
		if d.justSeen[key] {
			return perr(m.From, m.Kind, "duplicate message")
		}
		d.justSeen[key] = true
		d.justs = append(d.justs, pendingJustification{from: m.From, j: j})
	case KindDKGDone:
		if _, dup := d.doneDigests[m.From]; dup {
			return perr(m.From, m.Kind, "duplicate message")
		}
		if len(m.Payload) != sha256.Size {
			return perr(m.From, m.Kind, "digest has %d bytes, want %d", len(m.Payload), sha256.Size)
		}
		if d.digest != nil && !bytes.Equal(m.Payload, d.digest) {
			return perr(m.From, m.Kind, "DKG digest %x differs from ours %x", m.Payload, d.digest)
		}
		d.doneDigests[m.From] = bytes.Clone(m.Payload)
	default:
		return perr(m.From, m.Kind, "unknown message kind")
	}
	return nil
}

func (d *DKG) progress() ([]Message, error) {
	var out []Message
	n := len(d.parties)
	for {
		switch d.stage {
		case dkgStagePub:
			if len(d.pubs) < n {
				return out, nil
			}
			msgs, err := d.startDeals()
			if err != nil {
				return out, err
			}
			out = append(out, msgs...)
			d.stage = dkgStageDeal
		case dkgStageDeal:
			msgs, err := d.processPending()
			out = append(out, msgs...)
			if err != nil {
				return out, err
			}
			if len(d.dealDone) < n-1 || !d.gen.Certified() {
				return out, nil
			}
			res, digest, err := d.finish()
			if err != nil {
				return out, err
			}
			d.result, d.digest = res, digest
			for _, id := range d.parties {
				if dg, ok := d.doneDigests[id]; ok && !bytes.Equal(dg, digest) {
					return out, perr(id, KindDKGDone, "DKG digest %x differs from ours %x", dg, digest)
				}
			}
			out = append(out, d.msg(KindDKGDone, "", bytes.Clone(digest)))
			d.stage = dkgStageConfirm
		case dkgStageConfirm:
			if len(d.doneDigests) < n-1 {
				return out, nil
			}
			d.stage = dkgStageDone
		default:
			return out, nil
		}
	}
}

func (d *DKG) startDeals() ([]Message, error) {
	nodes := make([]kyber.Point, len(d.parties))
	for i, id := range d.parties {
		nodes[i] = d.pubs[id]
	}
	gen, err := pedersen.NewDistKeyHandler(&pedersen.Config{
		Suite:          d.suite,
		Longterm:       d.long,
		NewNodes:       nodes,
		Threshold:      d.cfg.Threshold,
		Reader:         d.rand,
		UserReaderOnly: true,
	})
	if err != nil {
		return nil, fmt.Errorf("dkg: %w", err)
	}
	d.gen = gen
	deals, err := gen.Deals()
	if err != nil {
		return nil, fmt.Errorf("dkg: making deals: %w", err)
	}
	var out []Message
	for i, id := range d.parties {
		if i == d.index {
			continue
		}
		dl, ok := deals[i]
		if !ok {
			return nil, fmt.Errorf("dkg: no deal for %s", id)
		}
		b, err := EncodeDKGDeal(dl)
		if err != nil {
			return nil, err
		}
		out = append(out, d.msg(KindDKGDeal, id, b))
	}
	return out, nil
}

// vssSessionID recomputes kyber's VSS session id of dealer's deal with the
// given commitments at the configured threshold (kyber does not check that
// the id a dealer claims matches its commitments and threshold).
func (d *DKG) vssSessionID(dealer int, commits []kyber.Point) []byte {
	h := d.suite.Hash()
	_, _ = d.pubs[d.parties[dealer]].MarshalTo(h)
	for _, id := range d.parties {
		_, _ = d.pubs[id].MarshalTo(h)
	}
	for _, c := range commits {
		_, _ = c.MarshalTo(h)
	}
	_ = binary.Write(h, binary.LittleEndian, uint32(d.cfg.Threshold))
	return h.Sum(nil)
}

// processPending runs every buffered message that can now be processed:
// deals first, then responses whose deal is known, then justifications
// whose complaint is known, until nothing moves.
func (d *DKG) processPending() ([]Message, error) {
	var out []Message
	for _, id := range d.parties {
		dl, ok := d.deals[id]
		if !ok {
			continue
		}
		delete(d.deals, id)
		j := d.indexOf(id)
		var resp *pedersen.Response
		err := guard(func() error {
			var err error
			resp, err = d.gen.ProcessDeal(dl)
			return err
		})
		if err != nil {
			return out, wrapErr(id, KindDKGDeal, err)
		}
		commits := d.gen.Verifiers()[uint32(j)].Commits()
		if len(commits) != d.cfg.Threshold {
			return out, perr(id, KindDKGDeal, "deal has %d commitments, want %d", len(commits), d.cfg.Threshold)
		}
		sid := d.vssSessionID(j, commits)
		if !bytes.Equal(resp.Response.SessionID, sid) || !bytes.Equal(d.gen.Verifiers()[uint32(j)].SessionID(), sid) {
			return out, perr(id, KindDKGDeal, "deal's session id does not match its commitments and threshold")
		}
		d.dealDone[j] = true
		b, err := EncodeDKGResponse(resp)
		if err != nil {
			return out, err
		}
		out = append(out, d.msg(KindDKGResponse, "", b))
	}
	for moved := true; moved; {
		moved = false
		rest := d.responses[:0]
		for _, p := range d.responses {
			dealer, verifier := int(p.r.Index), int(p.r.Response.Index)
			if dealer != d.index && !d.dealDone[dealer] {
				rest = append(rest, p)
				continue
			}
			var just *pedersen.Justification
			err := guard(func() error {
				var err error
				just, err = d.gen.ProcessResponse(p.r)
				return err
			})
			if err != nil {
				return out, wrapErr(p.from, KindDKGResponse, err)
			}
			d.respDone[[2]int{dealer, verifier}] = true
			moved = true
			if just != nil {
				b, err := EncodeDKGJustification(just)
				if err != nil {
					return out, err
				}
				out = append(out, d.msg(KindDKGJustification, "", b))
			}
		}
		clear(d.responses[len(rest):])
		d.responses = rest

		restJ := d.justs[:0]
		for _, p := range d.justs {
			dealer, complainer := int(p.j.Index), int(p.j.Justification.Index)
			ready := d.respDone[[2]int{dealer, complainer}] || (complainer == d.index && d.dealDone[dealer])
			if !ready {
				restJ = append(restJ, p)
				continue
			}
			if err := d.processJustification(p.j); err != nil {
				return out, wrapErr(p.from, KindDKGJustification, err)
			}
			moved = true
		}
		clear(d.justs[len(restJ):])
		d.justs = restJ
	}
	return out, nil
}

func (d *DKG) processJustification(j *pedersen.Justification) error {
	dealer := int(j.Index)
	dl := j.Justification.Deal
	commits := d.gen.Verifiers()[uint32(dealer)].Commits()
	if int(dl.T) != d.cfg.Threshold || len(dl.Commitments) != len(commits) {
		return errors.New("justified deal has another threshold than the original deal")
	}
	for i := range commits {
		if !dl.Commitments[i].Equal(commits[i]) {
			return errors.New("justified deal has other commitments than the original deal")
		}
	}
	if err := guard(func() error { return d.gen.ProcessJustification(j) }); err != nil {
		return err
	}
	if dl.SecShare.I == d.index {
		// The deal this party received was wrong and the dealer revealed the
		// right share: kyber keeps the wrong one, so remember the right one.
		d.justified[dealer] = &share.PriShare{I: dl.SecShare.I, V: dl.SecShare.V.Clone()}
	}
	return nil
}

// finish sums the certified deals into this party's share and the public
// polynomial, and computes the digest of the public outputs.
func (d *DKG) finish() (*DKGResult, []byte, error) {
	g := g2()
	sum := g.Scalar().Zero()
	var pub *share.PubPoly
	for j, id := range d.parties {
		v := d.gen.Verifiers()[uint32(j)]
		deal := v.Deal()
		if deal == nil {
			return nil, nil, perr(id, KindDKGDeal, "deal not certified")
		}
		if int(deal.T) != d.cfg.Threshold || len(deal.Commitments) != d.cfg.Threshold {
			return nil, nil, perr(id, KindDKGDeal, "deal with threshold %d and %d commitments", deal.T, len(deal.Commitments))
		}
		sh := deal.SecShare
		if js, ok := d.justified[j]; ok {
			sh = js
		}
		sum.Add(sum, sh.V)
		poly := share.NewPubPoly(g, g.Point().Base(), deal.Commitments)
		if !poly.Check(&share.PriShare{I: d.index, V: sh.V}) {
			return nil, nil, perr(id, KindDKGDeal, "share does not verify against the dealer's commitments")
		}
		if pub == nil {
			pub = poly
			continue
		}
		var err error
		if pub, err = pub.Add(poly); err != nil {
			return nil, nil, err
		}
	}
	res := &DKGResult{
		Index:    d.index,
		Share:    &share.PriShare{I: d.index, V: sum},
		Public:   pub,
		GroupKey: pub.Commit(),
	}
	if !pub.Check(res.Share) {
		return nil, nil, errors.New("dkg: own share does not verify against the public polynomial")
	}
	digest, err := dkgDigest(d.cfg.Session, d.parties, pub)
	if err != nil {
		return nil, nil, err
	}
	return res, digest, nil
}

// dkgDigest hashes the public outputs: session, members, threshold, and the
// public polynomial (whose constant term is the group key).
func dkgDigest(session string, parties []PartyID, pub *share.PubPoly) ([]byte, error) {
	h := sha256.New()
	h.Write(appendStr(nil, "synod/dkg/v1"))
	h.Write(appendStr(nil, session))
	h.Write(binary.BigEndian.AppendUint16(nil, uint16(len(parties))))
	for _, p := range parties {
		h.Write(appendStr(nil, string(p)))
	}
	_, commits := pub.Info()
	h.Write(binary.BigEndian.AppendUint16(nil, uint16(len(commits))))
	for _, c := range commits {
		b, err := c.MarshalBinary()
		if err != nil {
			return nil, err
		}
		h.Write(b)
	}
	return h.Sum(nil), nil
}

// --- point and scalar encodings -------------------------------------------

// decodeG2Point decodes a canonical bn256 G2 point in the prime-order
// subgroup (kyber only checks that the point is on the twist, and accepts
// unreduced coordinates and trailing bytes).
func decodeG2Point(b []byte) (p kyber.Point, err error) {
	defer decodeGuard(&err)
	if len(b) != g2PointSize {
		return nil, fmt.Errorf("G2 point has %d bytes, want %d", len(b), g2PointSize)
	}
	p = g2().Point()
	if err := p.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	if re, err := p.MarshalBinary(); err != nil || !bytes.Equal(re, b) {
		return nil, errors.New("non-canonical G2 point encoding")
	}
	// order·P = (order-1)·P + P must be the identity.
	q := g2().Point().Mul(g2().Scalar().SetInt64(-1), p)
	if !q.Add(q, p).Equal(g2().Point().Null()) {
		return nil, errors.New("G2 point outside the prime-order subgroup")
	}
	return p, nil
}

// decodeG1Point decodes a canonical bn256 G1 point (G1 has prime order).
func decodeG1Point(b []byte) (p kyber.Point, err error) {
	defer decodeGuard(&err)
	if len(b) != g1PointSize {
		return nil, fmt.Errorf("G1 point has %d bytes, want %d", len(b), g1PointSize)
	}
	p = bnSuite.G1().Point()
	if err := p.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	if re, err := p.MarshalBinary(); err != nil || !bytes.Equal(re, b) {
		return nil, errors.New("non-canonical G1 point encoding")
	}
	return p, nil
}

func decodeScalar(b []byte) (s kyber.Scalar, err error) {
	defer decodeGuard(&err)
	if len(b) != scalarSize {
		return nil, fmt.Errorf("scalar has %d bytes, want %d", len(b), scalarSize)
	}
	s = g2().Scalar()
	if err := s.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return s, nil
}

func appendPoint(b []byte, p kyber.Point) ([]byte, error) {
	pb, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return append(b, pb...), nil
}

func appendScalar(b []byte, s kyber.Scalar) ([]byte, error) {
	sb, err := s.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if len(sb) != scalarSize {
		return nil, errors.New("unexpected scalar size")
	}
	return append(b, sb...), nil
}

// --- DKG payloads -----------------------------------------------------------
//
// kyber's DKG structs have no wire format of their own; these are fixed,
// length-prefixed encodings (big-endian) that the receiver checks strictly.

// EncodeDKGDeal encodes a deal: dealer index (u32), then the encrypted VSS
// deal (DH key, DH key signature, nonce, ciphertext, each u32-prefixed), then
// the dealer's signature (u32-prefixed).
func EncodeDKGDeal(dl *pedersen.Deal) ([]byte, error) {
	if dl == nil || dl.Deal == nil {
		return nil, errors.New("nil deal")
	}
	b := binary.BigEndian.AppendUint32(nil, dl.Index)
	b = appendBlob(b, dl.Deal.DHKey)
	b = appendBlob(b, dl.Deal.Signature)
	b = appendBlob(b, dl.Deal.Nonce)
	b = appendBlob(b, dl.Deal.Cipher)
	return appendBlob(b, dl.Signature), nil
}

// DecodeDKGDeal decodes a deal payload.
func DecodeDKGDeal(b []byte) (dl *pedersen.Deal, err error) {
	defer decodeGuard(&err)
	rd := &reader{b: b}
	idx := uint32(rd.u32())
	if rd.err == nil && idx >= maxGroupSize {
		rd.fail("dealer index %d out of range", idx)
	}
	e := &vss.EncryptedDeal{}
	e.DHKey = bytes.Clone(rd.blob(g2PointSize))
	e.Signature = bytes.Clone(rd.blob(maxDKGSigLen))
	e.Nonce = bytes.Clone(rd.blob(maxDKGNonceLen))
	e.Cipher = bytes.Clone(rd.blob(maxDKGCipherLen))
	sig := bytes.Clone(rd.blob(maxDKGSigLen))
	if err := rd.end(); err != nil {
		return nil, err
	}
	if _, err := decodeG2Point(e.DHKey); err != nil {
		return nil, fmt.Errorf("deal DH key: %w", err)
	}
	return &pedersen.Deal{Index: idx, Deal: e, Signature: sig}, nil
}

// EncodeDKGResponse encodes a response: dealer index (u32), VSS session id
// (u32-prefixed), verifier index (u32), status (1 approval, 0 complaint),
// signature (u32-prefixed).
func EncodeDKGResponse(r *pedersen.Response) ([]byte, error) {
	if r == nil || r.Response == nil {
		return nil, errors.New("nil response")
	}
	b := binary.BigEndian.AppendUint32(nil, r.Index)
	b = appendBlob(b, r.Response.SessionID)
	b = binary.BigEndian.AppendUint32(b, r.Response.Index)
	st := byte(0)
	if r.Response.Status == vss.StatusApproval {
		st = 1
	}
	b = append(b, st)
	return appendBlob(b, r.Response.Signature), nil
}

// DecodeDKGResponse decodes a response payload.
func DecodeDKGResponse(b []byte) (r *pedersen.Response, err error) {
	defer decodeGuard(&err)
	rd := &reader{b: b}
	dealer := uint32(rd.u32())
	vr := &vss.Response{}
	vr.SessionID = bytes.Clone(rd.blob(maxDKGSIDLen))
	vr.Index = uint32(rd.u32())
	switch st := rd.u8(); {
	case rd.err != nil:
	case st == 1:
		vr.Status = vss.StatusApproval
	case st == 0:
		vr.Status = vss.StatusComplaint
	default:
		rd.fail("invalid response status %d", st)
	}
	vr.Signature = bytes.Clone(rd.blob(maxDKGSigLen))
	if err := rd.end(); err != nil {
		return nil, err
	}
	if dealer >= maxGroupSize || vr.Index >= maxGroupSize {
		return nil, errors.New("index out of range")
	}
	return &pedersen.Response{Index: dealer, Response: vr}, nil
}

// EncodeDKGJustification encodes a justification: dealer index (u32), VSS
// session id (u32-prefixed), complainer index (u32), the revealed deal
// (session id u32-prefixed, share index u32, share value 32 bytes, threshold
// u32, commitment count u16, commitments 128 bytes each), signature
// (u32-prefixed).
func EncodeDKGJustification(j *pedersen.Justification) ([]byte, error) {
	if j == nil || j.Justification == nil || j.Justification.Deal == nil || j.Justification.Deal.SecShare == nil {
		return nil, errors.New("incomplete justification")
	}
	jj, dl := j.Justification, j.Justification.Deal
	b := binary.BigEndian.AppendUint32(nil, j.Index)
	b = appendBlob(b, jj.SessionID)
	b = binary.BigEndian.AppendUint32(b, jj.Index)
	b = appendBlob(b, dl.SessionID)
	if dl.SecShare.I < 0 || dl.SecShare.I >= maxGroupSize {
		return nil, errors.New("share index out of range")
	}
	b = binary.BigEndian.AppendUint32(b, uint32(dl.SecShare.I))
	b, err := appendScalar(b, dl.SecShare.V)
	if err != nil {
		return nil, err
	}
	b = binary.BigEndian.AppendUint32(b, dl.T)
	if len(dl.Commitments) > maxGroupSize {
		return nil, errors.New("too many commitments")
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(dl.Commitments)))
	for _, c := range dl.Commitments {
		if b, err = appendPoint(b, c); err != nil {
			return nil, err
		}
	}
	return appendBlob(b, jj.Signature), nil
}

// DecodeDKGJustification decodes a justification payload.
func DecodeDKGJustification(b []byte) (j *pedersen.Justification, err error) {
	defer decodeGuard(&err)
	rd := &reader{b: b}
	dealer := uint32(rd.u32())
	jj := &vss.Justification{}
	jj.SessionID = bytes.Clone(rd.blob(maxDKGSIDLen))
	jj.Index = uint32(rd.u32())
	dl := &vss.Deal{}
	dl.SessionID = bytes.Clone(rd.blob(maxDKGSIDLen))
	shareIdx := rd.u32()
	sv := rd.bytes(scalarSize)
	dl.T = uint32(rd.u32())
	nc := rd.u16()
	if rd.err == nil && (nc < 1 || nc > maxGroupSize) {
		rd.fail("invalid commitment count %d", nc)
	}
	var pts [][]byte
	for i := 0; i < nc && rd.err == nil; i++ {
		pts = append(pts, rd.bytes(g2PointSize))
	}
	jj.Signature = bytes.Clone(rd.blob(maxDKGSigLen))
	if err := rd.end(); err != nil {
		return nil, err
	}
	if dealer >= maxGroupSize || jj.Index >= maxGroupSize || shareIdx >= maxGroupSize {
		return nil, errors.New("index out of range")
	}
	if dl.T < 2 || int(dl.T) > maxGroupSize {
		return nil, fmt.Errorf("invalid threshold %d", dl.T)
	}
	v, err := decodeScalar(sv)
	if err != nil {
		return nil, fmt.Errorf("revealed share: %w", err)
	}
	dl.SecShare = &share.PriShare{I: shareIdx, V: v}
	for i, pb := range pts {
		p, err := decodeG2Point(pb)
		if err != nil {
			return nil, fmt.Errorf("commitment %d: %w", i, err)
		}
		dl.Commitments = append(dl.Commitments, p)
	}
	jj.Deal = dl
	return &pedersen.Justification{Index: dealer, Justification: jj}, nil
}

// --- result persistence -------------------------------------------------------

const dkgResultFormat = "synod/dkg-result/v1"

// MarshalBinary encodes the result for the key store: format tag, index
// (u16), share (32 bytes), commitment count (u16), commitments (128 bytes
// each). It contains the secret share: store it encrypted.
func (r *DKGResult) MarshalBinary() ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	b := appendStr(nil, dkgResultFormat)
	b = binary.BigEndian.AppendUint16(b, uint16(r.Index))
	b, err := appendScalar(b, r.Share.V)
	if err != nil {
		return nil, err
	}
	_, commits := r.Public.Info()
	b = binary.BigEndian.AppendUint16(b, uint16(len(commits)))
	for _, c := range commits {
		if b, err = appendPoint(b, c); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// UnmarshalDKGResult decodes and validates a result written by
// MarshalBinary: every point must be a canonical G2 point of the subgroup,
// and the share must verify against the public polynomial.
func UnmarshalDKGResult(b []byte) (res *DKGResult, err error) {
	defer decodeGuard(&err)
	rd := &reader{b: b}
	if f := rd.str(maxIDLen); rd.err == nil && f != dkgResultFormat {
		return nil, fmt.Errorf("not a DKG result (format %q)", f)
	}
	idx := rd.u16()
	sv := rd.bytes(scalarSize)
	nc := rd.u16()
	if rd.err == nil && (nc < 2 || nc > maxGroupSize) {
		rd.fail("invalid commitment count %d", nc)
	}
	var pts [][]byte
	for i := 0; i < nc && rd.err == nil; i++ {
		pts = append(pts, rd.bytes(g2PointSize))
	}
	if err := rd.end(); err != nil {
		return nil, err
	}
	if idx >= maxGroupSize {
		return nil, fmt.Errorf("share index %d out of range", idx)
	}
	v, err := decodeScalar(sv)
	if err != nil {
		return nil, err
	}
	commits := make([]kyber.Point, len(pts))
	for i, pb := range pts {
		if commits[i], err = decodeG2Point(pb); err != nil {
			return nil, fmt.Errorf("commitment %d: %w", i, err)
		}
	}
	res = &DKGResult{
		Index:  idx,
		Share:  &share.PriShare{I: idx, V: v},
		Public: share.NewPubPoly(g2(), g2().Point().Base(), commits),
	}
	res.GroupKey = commits[0]
	if err := res.validate(); err != nil {
		return nil, err
	}
	return res, nil
}

func (r *DKGResult) validate() (err error) {
	defer decodeGuard(&err)
	if r == nil || r.Share == nil || r.Share.V == nil || r.Public == nil || r.GroupKey == nil {
		return errors.New("incomplete DKG result")
	}
	if r.Index < 0 || r.Index >= maxGroupSize || r.Share.I != r.Index {
		return fmt.Errorf("invalid share index %d (share says %d)", r.Index, r.Share.I)
	}
	_, commits := r.Public.Info()
	if len(commits) < 2 || len(commits) > maxGroupSize {
		return fmt.Errorf("public polynomial with %d commitments", len(commits))
	}
	for i, c := range commits {
		cb, err := c.MarshalBinary()
		if err != nil {
			return err
		}
		if _, err := decodeG2Point(cb); err != nil {
			return fmt.Errorf("commitment %d: %w", i, err)
		}
	}
	if !commits[0].Equal(r.GroupKey) {
		return errors.New("group key is not the public polynomial's constant term")
	}
	if r.GroupKey.Equal(g2().Point().Null()) {
		return errors.New("group key is the identity")
	}
	if !r.Public.Check(r.Share) {
		return errors.New("share does not verify against the public polynomial")
	}
	return nil
}
