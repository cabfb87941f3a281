package protocols

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/synod-mpc/synod/engine"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/ring"
)

// KindKeySwitchShare carries one party's public-key-switch share:
// SHA-256 of the request (32 bytes) || share coefficients at the
// ciphertext's level.
const KindKeySwitchShare Kind = "keyswitch.share"

const keySwitchFormat = "synod/keyswitch/v1"

// KeySwitchRequest asks a fixed group of exactly t parties to switch
// Ciphertext from the collective key to Target (the analyst's key).
type KeySwitchRequest struct {
	Session    string
	Group      []PartyID
	Target     *rlwe.PublicKey
	Ciphertext *rlwe.Ciphertext
}

// Marshal encodes the request.
func (r KeySwitchRequest) Marshal() ([]byte, error) {
	if len(r.Group) > maxGroupSize || len(r.Session) > maxIDLen {
		return nil, errors.New("keyswitch request: session or group too large")
	}
	b := appendStr(nil, keySwitchFormat)
	b = appendStr(b, r.Session)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.Group)))
	for _, id := range r.Group {
		if len(id) > maxIDLen {
			return nil, errors.New("keyswitch request: party id too long")
		}
		b = appendStr(b, string(id))
	}
	pk, err := encodePublicKey(r.Target)
	if err != nil {
		return nil, fmt.Errorf("keyswitch request target: %w", err)
	}
	b = appendBlob(b, pk)
	ct, err := encodeCiphertext(r.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("keyswitch request ciphertext: %w", err)
	}
	return appendBlob(b, ct), nil
}

// UnmarshalKeySwitchRequest decodes and validates a request.
func UnmarshalKeySwitchRequest(p engine.Parameters, b []byte) (req KeySwitchRequest, err error) {
	defer decodeGuard(&err)
	params := *p.GetRLWEParameters()
	rd := &reader{b: b}
	if rd.str(64) != keySwitchFormat {
		return req, errors.New("not a key switch request")
	}
	req.Session = rd.str(maxIDLen)
	n := rd.u16()
	if rd.err == nil && (n < 1 || n > maxGroupSize) {
		return req, errors.New("key switch request: invalid group size")
	}
	for i := 0; i < n && rd.err == nil; i++ {
		req.Group = append(req.Group, PartyID(rd.str(maxIDLen)))
	}
	pkb := rd.blob(1 << 30)
	ctb := rd.blob(1 << 30)
	if err := rd.end(); err != nil {
		return req, err
	}
	if err := checkGroup("key switch", req.Group); err != nil {
		return req, err
	}
	if req.Target, err = decodePublicKey(params, pkb); err != nil {
		return req, err
	}
	if req.Ciphertext, err = decodeCiphertext(params, ctb); err != nil {
		return req, err
	}
	return req, nil
}

func (r KeySwitchRequest) digest(p engine.Parameters) ([]byte, error) {
	params := *p.GetRLWEParameters()
	if err := checkPublicKey(params, r.Target); err != nil {
		return nil, fmt.Errorf("keyswitch target: %w", err)
	}
	if err := checkCiphertext(params, r.Ciphertext); err != nil {
		return nil, fmt.Errorf("keyswitch ciphertext: %w", err)
	}
	b, err := r.Marshal()
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(b)
	return h[:], nil
}

// floodingDistribution is the Gaussian added to each key switch share,
// truncated at 6 sigma.
func floodingDistribution(sigma float64) (ring.DiscreteGaussian, error) {
	if !(sigma > 0) || math.IsInf(sigma, 0) || sigma > math.Ldexp(1, 60) {
		return ring.DiscreteGaussian{}, fmt.Errorf("invalid flooding sigma %v", sigma)
	}
	return ring.DiscreteGaussian{Sigma: sigma, Bound: 6 * sigma}, nil
}

// minFloodingMarginBits is the least log2(scale/sigma) accepted: below it
// the flooding noise would swamp the released value (at LogN=13 the slot
// error is about sqrt(t*N)*sigma/scale, e.g. 6e-5 measured with sigma=2^40
// at scale 2^60).
const minFloodingMarginBits = 10

func checkFloodingMargin(ct *rlwe.Ciphertext, sigma float64) error {
	if ct == nil || ct.MetaData == nil {
		return errors.New("keyswitch: no ciphertext")
	}
	scale := ct.Scale.Float64()
	if math.Log2(scale)-math.Log2(sigma) < minFloodingMarginBits {
		return fmt.Errorf("keyswitch: flooding sigma 2^%.1f leaves no precision at ciphertext scale 2^%.1f (need sigma <= scale/2^%d)",
			math.Log2(sigma), math.Log2(scale), minFloodingMarginBits)
	}
	return nil
}

// KeySwitchShare computes this party's share of the public key switch of
// req.Ciphertext to req.Target. members are all N consortium members (they
// fix the Shamir points), share is this party's aggregated Shamir share, and
// req.Group must hold exactly threshold members including self. The share
// carries Gaussian noise flooding of standard deviation floodingSigma
// (truncated at 6 sigma), which must be at most scale/2^10 of the
// ciphertext: the caller sizes it from the precision the query promises
// (engine.Parameters.FloodingSigma with aggregates released at scale 2^60).
// The additive share is only valid for this exact group. The message is
// addressed to `to` (the aggregator; empty to broadcast).
func KeySwitchShare(p engine.Parameters, self PartyID, members []PartyID, threshold int, share mhe.ShamirSecretShare, req KeySwitchRequest, floodingSigma float64, to PartyID) (Message, error) {
	params := *p.GetRLWEParameters()
	sk, err := groupSecretKey(params, "keyswitch", self, members, threshold, share, req.Group)
	if err != nil {
		return Message{}, err
	}
	dist, err := floodingDistribution(floodingSigma)
	if err != nil {
		return Message{}, err
	}
	if err := checkFloodingMargin(req.Ciphertext, floodingSigma); err != nil {
		return Message{}, err
	}
	d, err := req.digest(p)
	if err != nil {
		return Message{}, err
	}
	pcks, err := mhe.NewPublicKeySwitchProtocol(params, dist)
	if err != nil {
		return Message{}, err
	}
	sh := pcks.AllocateShare(req.Ciphertext.Level())
	pcks.GenShare(sk, req.Target, req.Ciphertext, &sh)
	payload := elementShape(sh.Value).encode(params, d)
	return Message{Session: req.Session, Kind: KindKeySwitchShare, From: self, To: to, Payload: payload}, nil
}

// DecodeKeySwitchShare decodes a share payload for a ciphertext at level
// and checks that it was made for the request with the given digest.
func DecodeKeySwitchShare(params rlwe.Parameters, level int, reqDigest []byte, b []byte) (sh mhe.PublicKeySwitchShare, err error) {
	defer decodeGuard(&err)
	if level < 0 || level > params.MaxLevelQ() {
		return sh, fmt.Errorf("invalid level %d", level)
	}
	if len(b) < sha256.Size {
		return sh, errors.New("truncated payload")
	}
	if !bytes.Equal(b[:sha256.Size], reqDigest) {
		return sh, errors.New("share made for another key switch request")
	}
	sh = mhe.PublicKeySwitchShare{Element: *rlwe.NewElement(params, 1, level)}
	err = elementShape(sh.Value).decode(params, b[sha256.Size:])
	return sh, err
}

// KeySwitchAggregator collects the group's shares and switches the ciphertext.
type KeySwitchAggregator struct {
	params rlwe.Parameters
	req    KeySwitchRequest
	digest []byte
	pcks   mhe.PublicKeySwitchProtocol
	agg    mhe.PublicKeySwitchShare
	seen   map[PartyID]bool
	result *rlwe.Ciphertext
}

// NewKeySwitchAggregator validates req and returns an aggregator for it.
func NewKeySwitchAggregator(p engine.Parameters, req KeySwitchRequest) (*KeySwitchAggregator, error) {
	params := *p.GetRLWEParameters()
	if err := checkGroup("key switch", req.Group); err != nil {
		return nil, err
	}
	d, err := req.digest(p)
	if err != nil {
		return nil, err
	}
	// The aggregator adds no noise; the flooding distribution is unused.
	pcks, err := mhe.NewPublicKeySwitchProtocol(params, ring.DiscreteGaussian{Sigma: 1, Bound: 6})
	if err != nil {
		return nil, err
	}
	return &KeySwitchAggregator{
		params: params, req: req, digest: d, pcks: pcks,
		agg:  pcks.AllocateShare(req.Ciphertext.Level()),
		seen: map[PartyID]bool{},
	}, nil
}

// Step adds one share; done is true once every group member contributed.
func (a *KeySwitchAggregator) Step(m Message) (done bool, err error) {
	if m.Kind != KindKeySwitchShare {
		return false, perr(m.From, m.Kind, "unknown message kind")
	}
	if !slices.Contains(a.req.Group, m.From) {
		return false, perr(m.From, m.Kind, "sender is not in the key switch group")
	}
	if m.Session != a.req.Session {
		return false, perr(m.From, m.Kind, "message for session %q, not %q", m.Session, a.req.Session)
	}
	if a.seen[m.From] {
		return false, perr(m.From, m.Kind, "duplicate message")
	}
	if a.result != nil {
		return true, perr(m.From, m.Kind, "key switch already complete")
	}
	sh, err := DecodeKeySwitchShare(a.params, a.req.Ciphertext.Level(), a.digest, m.Payload)
	if err != nil {
		return false, wrapErr(m.From, m.Kind, err)
	}
	if err := a.pcks.AggregateShares(a.agg, sh, &a.agg); err != nil {
		return false, wrapErr(m.From, m.Kind, err)
	}
	a.seen[m.From] = true
	if len(a.seen) < len(a.req.Group) {
		return false, nil
	}
	out := rlwe.NewCiphertext(a.params, 1, a.req.Ciphertext.Level())
	a.pcks.KeySwitch(a.req.Ciphertext, a.agg, out)
	a.result = out
	return true, nil
}

// Done reports whether every share arrived.
func (a *KeySwitchAggregator) Done() bool { return a.result != nil }

// Missing lists the group members whose share has not arrived.
func (a *KeySwitchAggregator) Missing() []PartyID {
	var out []PartyID
	for _, id := range a.req.Group {
		if !a.seen[id] {
			out = append(out, id)
		}
	}
	return out
}

// Result returns the ciphertext under the target key once Done.
func (a *KeySwitchAggregator) Result() *rlwe.Ciphertext { return a.result }
