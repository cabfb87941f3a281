package protocols

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"

	"github.com/synod-mpc/synod/engine"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/mhe/mhefloat"
	"github.com/tuneinsight/lattigo/v5/ring"
	"github.com/tuneinsight/lattigo/v5/utils/bignum"
)

// The collective refresh re-encrypts ciphertexts that ran low in the modulus
// chain at the top level, without anyone decrypting them: it is what lets an
// encrypted model be trained over many iterations. It is lattigo's masked
// transform (mhefloat.MaskedLinearTransformationProtocol; RefreshProtocol is
// its no-transform case) run by a fixed group of exactly t parties, each
// with its Shamir share turned into an additive share for that group, as in
// the key switch. For each ciphertext (c0, c1) party i sends
//
//	h_i = c1*s_i - M_i + e_i                (decryption share, at the ciphertext's level)
//	g_i = -a*s_i + T(M_i)*D/scale + e'_i    (re-encryption share, at the top level)
//
// where M_i is a fresh uniform mask of logBound = 128+log2(scale) bits per
// coefficient (scale at least the default one), T the transform (identity or TransformSlotMean), D the default
// scale and a a common reference polynomial. The aggregator decrypts
// c0 + sum h_i = m - sum M_i (+ noise), which even with t-1 of the masks
// hides m and its noise to within 2^-128 per coefficient; it
// applies T, rescales to D, and (that + sum g_i, a) encrypts T(m) at the top
// level and the default scale. See engine/refresh.go for the sizes of the
// masks and of the noise.

// KindRefreshShare carries one party's shares of a refresh: SHA-256 of the
// request (32 bytes), then for each ciphertext of the request, in order, its
// decryption share (coefficients at the ciphertext's level) and its
// re-encryption share (at the parameters' top level).
const KindRefreshShare Kind = "refresh.share"

const (
	refreshFormat = "synod/refresh/v1"
	// refreshCRPTag separates the refresh's common reference polynomials
	// from every other use of crsStream.
	refreshCRPTag = "synod/refresh/crp/v1\x00"
	// maxRefreshCiphertexts bounds the ciphertexts of one request (an
	// encrypted model is about 31). The transport's message limit binds
	// first: a share is about 1.5 MiB per ciphertext at ckks-n14.
	maxRefreshCiphertexts = 1024
)

// Transform is a linear map the refresh applies to the plaintexts on the
// way, on the masked shares.
type Transform uint8

const (
	// TransformNone is the plain refresh.
	TransformNone Transform = 0
	// TransformSlotMean replaces every slot by the mean of the real parts
	// of all the slots (see keepConstantCoefficient). An encrypted sum over
	// slots (a gradient) thus comes back replicated in every slot and at
	// the top level, instead of costing an InnerSum: log2(slots) rotations,
	// their Galois keys and their levels.
	TransformSlotMean Transform = 1
)

func (t Transform) String() string {
	switch t {
	case TransformNone:
		return "none"
	case TransformSlotMean:
		return "slot-mean"
	}
	return fmt.Sprintf("transform(%d)", uint8(t))
}

func (t Transform) valid() bool { return t == TransformNone || t == TransformSlotMean }

// masked returns the transform as lattigo applies it to the masks and to
// the masked plaintext, nil for the plain refresh.
func (t Transform) masked() *mhefloat.MaskedLinearTransformationFunc {
	if t != TransformSlotMean {
		return nil
	}
	// In the coefficient domain: no decoding to slots before, no encoding
	// after. Keeping one coefficient is exactly linear over the integers,
	// so it commutes with the masking: T(m - sum M_i) + sum T(M_i) = T(m).
	return &mhefloat.MaskedLinearTransformationFunc{Decode: false, Func: keepConstantCoefficient, Encode: false}
}

// keepConstantCoefficient zeroes every coefficient of a plaintext but the
// constant one. lattigo hands the transform the coefficients of the standard
// ring as coeffs[i] = (m_i, m_{i+n}), n the number of slots.
//
// Why that computes the slot mean. A CKKS plaintext m(X) of Z[X]/(X^N+1)
// with n = N/2 slots holds slot j as m(w_j)/scale, w_j = w^(5^j) for a
// primitive 2N-th root of unity w, and the conjugate of slot j at conj(w_j);
// these N points are all the odd powers of w. The sum of w^(o*e) over odd o
// vanishes for 0 < e < N, so summing m over the N points keeps N*m_0:
//
//	m_0 = (1/N) * sum_j (m(w_j) + conj(m(w_j))) = scale * (1/n) * sum_j Re(z_j).
//
// With fewer slots the plaintext is a polynomial in Y = X^(N/2n) and the
// same holds in that subring. Conversely the constant polynomial c
// evaluates to c at every point: every slot decodes to c/scale, the mean,
// with no imaginary part.
func keepConstantCoefficient(coeffs []*bignum.Complex) {
	coeffs[0][1].SetInt64(0)
	for _, c := range coeffs[1:] {
		c[0].SetInt64(0)
		c[1].SetInt64(0)
	}
}

// RefreshRequest asks a fixed group of exactly t parties to refresh
// Ciphertexts. The group is fixed before any share is made (each party's
// additive share is valid for this group only): if a member drops out, the
// caller issues a new request, with a new Round or Session, for a new group.
type RefreshRequest struct {
	Session string
	// Round distinguishes the refreshes of one session (one per training
	// iteration): it enters the digest, hence the common reference
	// polynomials. A party must answer a given (Session, Round) once.
	Round     uint32
	Group     []PartyID
	Transform Transform
	// Ciphertexts to refresh, in order, at engine.MinRefreshScale or above
	// and at engine.MinRefreshLevel or above. The aggregator needs them whole.
	// The group needs only c1 (Value[1]) and the metadata, and that is all
	// Marshal writes: half of a ciphertext at its level. The ciphertexts of
	// a request decoded by UnmarshalRefreshRequest have an empty Value[0]
	// (no coefficients: Level() is -1; Value[1].Level() is the level).
	Ciphertexts []*rlwe.Ciphertext
}

// refreshInput is one ciphertext of a request as it travels: its level,
// c1, and its metadata normalised through the wire encoding (every party
// and the aggregator must use the very same scale: the masks are rescaled
// by it on both sides and cancel only if they agree to the last bit).
type refreshInput struct {
	level int
	c1    ring.Poly
	md    *rlwe.MetaData
	mdb   []byte
}

// view is the ciphertext as the group sees it: c0 did not travel. lattigo's
// share generation reads only c1 and the metadata.
func (x refreshInput) view() *rlwe.Ciphertext {
	return &rlwe.Ciphertext{Element: rlwe.Element[ring.Poly]{Value: []ring.Poly{{}, x.c1}, MetaData: x.md}}
}

// wireMetaData returns md as the wire carries it, and its encoding.
// Encoding and decoding once brings the scale to lattigo's 128 bits, after
// which the encoding is stable.
func wireMetaData(p engine.Parameters, md *rlwe.MetaData) (*rlwe.MetaData, []byte, error) {
	if md == nil {
		return nil, nil, errors.New("no metadata")
	}
	b, err := md.MarshalBinary()
	if err != nil {
		return nil, nil, err
	}
	norm, err := decodeRefreshMetaData(p, b)
	if err != nil {
		return nil, nil, err
	}
	if b, err = norm.MarshalBinary(); err != nil {
		return nil, nil, err
	}
	return norm, b, nil
}

// decodeRefreshMetaData decodes ciphertext metadata from the wire and checks
// that it describes a CKKS ciphertext of p: a floating-point scale, NTT
// form, slots within the ring.
func decodeRefreshMetaData(p engine.Parameters, b []byte) (md *rlwe.MetaData, err error) {
	defer decodeGuard(&err)
	md = &rlwe.MetaData{}
	if err := md.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	if md.Scale.Mod != nil {
		return nil, errors.New("metadata: modular scale (not a CKKS ciphertext)")
	}
	if s := md.Scale.Float64(); !(s >= 1) || s > 1e300 {
		return nil, errors.New("metadata: invalid scale")
	}
	dims, maxDims := md.LogDimensions, p.LogMaxDimensions()
	if dims.Rows < 0 || dims.Cols < 0 || dims.Rows > maxDims.Rows || dims.Cols > maxDims.Cols {
		return nil, fmt.Errorf("metadata: dimensions %dx%d exceed the parameters' %dx%d (log2)", dims.Rows, dims.Cols, maxDims.Rows, maxDims.Cols)
	}
	if !md.IsNTT || md.IsMontgomery {
		return nil, errors.New("metadata: ciphertext not in NTT (non-Montgomery) form")
	}
	return md, nil
}

// header encodes everything but the ciphertexts.
func (r RefreshRequest) header() ([]byte, error) {
	if len(r.Session) > maxIDLen {
		return nil, errors.New("refresh request: session id too long")
	}
	if len(r.Group) > maxGroupSize {
		return nil, fmt.Errorf("refresh request: group of %d parties exceeds %d", len(r.Group), maxGroupSize)
	}
	if err := checkGroup("refresh", r.Group); err != nil {
		return nil, fmt.Errorf("refresh request: %w", err)
	}
	if !r.Transform.valid() {
		return nil, fmt.Errorf("refresh request: unknown %v", r.Transform)
	}
	if len(r.Ciphertexts) == 0 || len(r.Ciphertexts) > maxRefreshCiphertexts {
		return nil, fmt.Errorf("refresh request: %d ciphertexts, want 1 to %d", len(r.Ciphertexts), maxRefreshCiphertexts)
	}
	b := appendStr(nil, refreshFormat)
	b = appendStr(b, r.Session)
	b = binary.BigEndian.AppendUint32(b, r.Round)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.Group)))
	for _, id := range r.Group {
		if len(id) > maxIDLen {
			return nil, errors.New("refresh request: party id too long")
		}
		b = appendStr(b, string(id))
	}
	b = append(b, byte(r.Transform))
	return binary.BigEndian.AppendUint16(b, uint16(len(r.Ciphertexts))), nil
}

// inputs checks that every ciphertext has a c1 of p's ring at a level of p
// and valid metadata, and returns them as they travel.
func (r RefreshRequest) inputs(p engine.Parameters) ([]refreshInput, error) {
	in := make([]refreshInput, len(r.Ciphertexts))
	for i, ct := range r.Ciphertexts {
		if ct == nil || len(ct.Value) != 2 {
			return nil, fmt.Errorf("refresh request: ciphertext %d must have degree 1", i)
		}
		c1 := ct.Value[1]
		level := c1.Level()
		if level < 0 || level > p.MaxLevel() {
			return nil, fmt.Errorf("refresh request: ciphertext %d: level %d outside the parameters' 0..%d", i, level, p.MaxLevel())
		}
		for _, c := range c1.Coeffs {
			if len(c) != p.N() {
				return nil, fmt.Errorf("refresh request: ciphertext %d: ring degree does not match the parameters", i)
			}
		}
		md, mdb, err := wireMetaData(p, ct.MetaData)
		if err != nil {
			return nil, fmt.Errorf("refresh request: ciphertext %d: %w", i, err)
		}
		in[i] = refreshInput{level: level, c1: c1, md: md, mdb: mdb}
	}
	return in, nil
}

// write writes the request as it travels: the header, then for each
// ciphertext its level (1 byte), its metadata (u32-length-prefixed, lattigo's
// encoding) and the coefficients of c1, canonical (reduced), as many as the
// level implies.
func (r RefreshRequest) write(p engine.Parameters, in []refreshInput, w io.Writer) error {
	hdr, err := r.header()
	if err != nil {
		return err
	}
	w.Write(hdr)
	params := *p.GetRLWEParameters()
	buf := make([]byte, 1<<16)
	for _, x := range in {
		w.Write([]byte{byte(x.level)})
		w.Write(appendBlob(nil, x.mdb))
		elementShape([]ring.Poly{x.c1}).writeTo(params, w, buf)
	}
	return nil
}

// Marshal encodes the request as it is sent to the group: c1 and metadata
// of each ciphertext, not c0. At the minimum refresh level of ckks-n14
// (level 3) that is 512 KiB per ciphertext instead of 1 MiB, 16 MiB instead
// of 32 for a 31-ciphertext model.
func (r RefreshRequest) Marshal(p engine.Parameters) ([]byte, error) {
	in, err := r.inputs(p)
	if err != nil {
		return nil, err
	}
	size := 1 << 10
	for _, x := range in {
		size += 5 + len(x.mdb) + 8*p.N()*(x.level+1)
	}
	out := bytes.NewBuffer(make([]byte, 0, size))
	if err := r.write(p, in, out); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// UnmarshalRefreshRequest decodes and validates a request as Marshal wrote
// it. The ciphertexts it returns carry c1 and metadata only (Value[0] is
// empty). Whether they can be refreshed (levels, scales, group) is checked by
// RefreshShare.
func UnmarshalRefreshRequest(p engine.Parameters, b []byte) (req RefreshRequest, err error) {
	defer decodeGuard(&err)
	params := *p.GetRLWEParameters()
	rd := &reader{b: b}
	if rd.str(64) != refreshFormat {
		return req, errors.New("not a refresh request")
	}
	req.Session = rd.str(maxIDLen)
	req.Round = uint32(rd.u32())
	n := rd.u16()
	if rd.err == nil && (n < 1 || n > maxGroupSize) {
		return req, fmt.Errorf("refresh request: group of %d parties, want 1 to %d", n, maxGroupSize)
	}
	for i := 0; i < n && rd.err == nil; i++ {
		req.Group = append(req.Group, PartyID(rd.str(maxIDLen)))
	}
	req.Transform = Transform(rd.u8())
	count := rd.u16()
	if rd.err != nil {
		return req, fmt.Errorf("refresh request: %w", rd.err)
	}
	if !req.Transform.valid() {
		return req, fmt.Errorf("refresh request: unknown %v", req.Transform)
	}
	if count < 1 || count > maxRefreshCiphertexts {
		return req, fmt.Errorf("refresh request: %d ciphertexts, want 1 to %d", count, maxRefreshCiphertexts)
	}
	if err := checkGroup("refresh", req.Group); err != nil {
		return req, fmt.Errorf("refresh request: %w", err)
	}
	for i := range count {
		level := rd.u8()
		mdb := rd.blob(maxMetaDataSz)
		if rd.err != nil {
			return req, fmt.Errorf("refresh request: ciphertext %d: %w", i, rd.err)
		}
		if level > params.MaxLevelQ() {
			return req, fmt.Errorf("refresh request: ciphertext %d: level %d exceeds the parameters' %d", i, level, params.MaxLevelQ())
		}
		// Take the coefficients before allocating: the allocation is then
		// bounded by the payload's length.
		coeffs := rd.bytes(8 * params.N() * (level + 1))
		if rd.err != nil {
			return req, fmt.Errorf("refresh request: ciphertext %d: %w", i, rd.err)
		}
		md, err := decodeRefreshMetaData(p, mdb)
		if err != nil {
			return req, fmt.Errorf("refresh request: ciphertext %d: %w", i, err)
		}
		c1 := params.RingQ().AtLevel(level).NewPoly()
		if err := elementShape([]ring.Poly{c1}).decode(params, coeffs); err != nil {
			return req, fmt.Errorf("refresh request: ciphertext %d: c1: %w", i, err)
		}
		req.Ciphertexts = append(req.Ciphertexts, &rlwe.Ciphertext{Element: rlwe.Element[ring.Poly]{Value: []ring.Poly{{}, c1}, MetaData: md}})
	}
	if err := rd.end(); err != nil {
		return req, fmt.Errorf("refresh request: %w", err)
	}
	return req, nil
}

// refreshPlan is what both sides derive from a request before any share:
// the ciphertexts as they travel, the digest, the masks' size and the
// common reference polynomials.
type refreshPlan struct {
	in        []refreshInput
	logBounds []uint
	digest    []byte
	crps      []mhe.KeySwitchCRP
	protocols map[uint]mhefloat.MaskedLinearTransformationProtocol // by logBound
}

// planRefresh validates req for a refresh by its group and derives the plan.
func planRefresh(p engine.Parameters, req RefreshRequest) (*refreshPlan, error) {
	if err := checkGroup("refresh", req.Group); err != nil {
		return nil, err
	}
	in, err := req.inputs(p)
	if err != nil {
		return nil, err
	}
	pl := &refreshPlan{in: in, logBounds: make([]uint, len(in)), protocols: map[uint]mhefloat.MaskedLinearTransformationProtocol{}}
	minScale := engine.MinRefreshScale(p)
	for i, x := range in {
		scale := x.md.Scale.Float64()
		if scale < minScale {
			return nil, fmt.Errorf("refresh: ciphertext %d has scale 2^%.2f, below 2^%.2f: the refresh noise (sigma 2^%.0f) would cost more than engine.RefreshPrecision promises",
				i, math.Log2(scale), math.Log2(minScale), math.Log2(engine.RefreshFloodingSigma(p)))
		}
		minLevel, logBound, err := engine.MinRefreshLevel(p, x.md.Scale, len(req.Group))
		if err != nil {
			return nil, fmt.Errorf("refresh: ciphertext %d: %w", i, err)
		}
		if x.level < minLevel {
			return nil, fmt.Errorf("refresh: ciphertext %d is at level %d, below the minimum %d: the %d masks of 2^%d (128 bits over the scale 2^%.0f) would wrap modulo Q at that level",
				i, x.level, minLevel, len(req.Group), logBound, math.Log2(max(scale, p.DefaultScale().Float64())))
		}
		if req.Transform == TransformSlotMean && !x.md.IsBatched {
			return nil, fmt.Errorf("refresh: ciphertext %d is not slot-encoded: no slot mean to take", i)
		}
		pl.logBounds[i] = logBound
		if _, ok := pl.protocols[logBound]; !ok {
			mltp, err := refreshProtocol(p, logBound)
			if err != nil {
				return nil, fmt.Errorf("refresh: %w", err)
			}
			pl.protocols[logBound] = mltp
		}
	}
	h := sha256.New()
	if err := req.write(p, in, h); err != nil {
		return nil, err
	}
	pl.digest = h.Sum(nil)
	if pl.crps, err = refreshCRPs(p, pl.digest, pl.protocols[pl.logBounds[0]], len(in)); err != nil {
		return nil, err
	}
	return pl, nil
}

// refreshProtocols caches lattigo's protocol by parameter set and mask
// size: building one builds a big-float encoder (2N roots of unity at
// logBound bits, 140 ms at LogN=14, more than the share itself) that the
// coefficient-domain transforms never use.
var refreshProtocols sync.Map // refreshProtocolKey → mhefloat.MaskedLinearTransformationProtocol

type refreshProtocolKey struct {
	params   string
	logBound uint
	sigma    float64
}

// refreshProtocol returns a protocol instance of its own (buffers are not
// shared) for p and masks of logBound bits. The bit length of the masks is
// also the precision of the big-float transform, as in lattigo's tests.
func refreshProtocol(p engine.Parameters, logBound uint) (mhefloat.MaskedLinearTransformationProtocol, error) {
	noise := engine.RefreshFloodingDistribution(p)
	key := refreshProtocolKey{p.Name, logBound, noise.Sigma}
	if v, ok := refreshProtocols.Load(key); ok && p.Name != "" {
		return v.(mhefloat.MaskedLinearTransformationProtocol).ShallowCopy(), nil
	}
	mltp, err := mhefloat.NewMaskedLinearTransformationProtocol(p.Parameters, p.Parameters, logBound, noise)
	if err != nil {
		return mltp, err
	}
	if p.Name != "" {
		refreshProtocols.Store(key, mltp)
		return mltp.ShallowCopy(), nil
	}
	return mltp, nil
}

// refreshCRPs derives the common reference polynomial of each ciphertext,
// in order, from the request's digest. No coordinator chooses them: with a
// chosen a (say zero) the re-encryption share -a*s_i + M_i + e'_i would give
// away the party's mask M_i, and with it s_i*c1 from its decryption share.
// Every party derives them itself from SHA-256 over a domain tag and the
// digest (session, round, group, transform, every c1 and metadata), through
// the AES-CTR stream of the setup's CRS.
func refreshCRPs(p engine.Parameters, digest []byte, mltp mhefloat.MaskedLinearTransformationProtocol, n int) ([]mhe.KeySwitchCRP, error) {
	seed := sha256.Sum256(append([]byte(refreshCRPTag), digest...))
	prng, err := crsStream(seed[:])
	if err != nil {
		return nil, err
	}
	crps := make([]mhe.KeySwitchCRP, n)
	for i := range crps {
		crps[i] = mltp.SampleCRP(p.MaxLevel(), prng)
	}
	return crps, nil
}

// refreshShareShape is the wire shape of one ciphertext's share.
func refreshShareShape(sh *mhe.RefreshShare) shape {
	return elementShape([]ring.Poly{sh.EncToShareShare.Value, sh.ShareToEncShare.Value})
}

// allocRefreshShares returns zero shares shaped for the ciphertexts in,
// carrying their metadata, and the shape of a payload's shares over them.
func allocRefreshShares(p engine.Parameters, in []refreshInput) ([]mhe.RefreshShare, shape) {
	ringQ := p.RingQ()
	shares := make([]mhe.RefreshShare, len(in))
	var s shape
	for i, x := range in {
		shares[i] = mhe.RefreshShare{
			EncToShareShare: mhe.KeySwitchShare{Value: ringQ.AtLevel(x.level).NewPoly()},
			ShareToEncShare: mhe.KeySwitchShare{Value: ringQ.AtLevel(p.MaxLevel()).NewPoly()},
			MetaData:        *x.md,
		}
		s = append(s, refreshShareShape(&shares[i])...)
	}
	return shares, s
}

// RefreshShare computes this party's shares of the refresh of every
// ciphertext of req, in one message addressed to `to` (the aggregator;
// empty to broadcast). members are all N consortium members (they fix the
// Shamir points), share is this party's aggregated Shamir share, and
// req.Group must hold exactly threshold members including self. Each
// ciphertext must be at engine.MinRefreshLevel for the group or above and at
// engine.MinRefreshScale or above. Both halves of each share carry Gaussian
// noise of engine.RefreshFloodingSigma on top of the masks. A party must
// not answer the same (Session, Round) twice: the noise of identical
// requests averages out (engine/refresh.go).
func RefreshShare(p engine.Parameters, self PartyID, members []PartyID, threshold int, share mhe.ShamirSecretShare, req RefreshRequest, to PartyID) (Message, error) {
	params := *p.GetRLWEParameters()
	sk, err := groupSecretKey(params, "refresh", self, members, threshold, share, req.Group)
	if err != nil {
		return Message{}, err
	}
	pl, err := planRefresh(p, req)
	if err != nil {
		return Message{}, err
	}
	shares, s := allocRefreshShares(p, pl.in)
	tf := req.Transform.masked()
	for i, x := range pl.in {
		if err := pl.protocols[pl.logBounds[i]].GenShare(sk, sk, pl.logBounds[i], x.view(), pl.crps[i], tf, &shares[i]); err != nil {
			return Message{}, fmt.Errorf("refresh: ciphertext %d: %w", i, err)
		}
	}
	payload := make([]byte, 0, sha256.Size+s.size())
	payload = s.encode(params, append(payload, pl.digest...))
	return Message{Session: req.Session, Kind: KindRefreshShare, From: self, To: to, Payload: payload}, nil
}

// DecodeRefreshShare decodes a share payload for req, whose digest is
// reqDigest: one share per ciphertext, strictly (exact length, reduced
// coefficients), after checking that it was made for this request.
func DecodeRefreshShare(p engine.Parameters, req RefreshRequest, reqDigest []byte, b []byte) (shares []mhe.RefreshShare, err error) {
	defer decodeGuard(&err)
	if len(b) < sha256.Size {
		return nil, errors.New("truncated payload")
	}
	if !bytes.Equal(b[:sha256.Size], reqDigest) {
		return nil, errors.New("share made for another refresh request")
	}
	in, err := req.inputs(p)
	if err != nil {
		return nil, err
	}
	shares, s := allocRefreshShares(p, in)
	if err := s.addEncoded(*p.GetRLWEParameters(), b[sha256.Size:]); err != nil { // into zero: the aggregation path
		return nil, err
	}
	return shares, nil
}

// RefreshAggregator collects the group's shares and refreshes the
// ciphertexts.
type RefreshAggregator struct {
	p      engine.Parameters
	req    RefreshRequest
	cts    []*rlwe.Ciphertext // req's, with the metadata as it travels
	plan   *refreshPlan
	agg    []mhe.RefreshShare
	sum    shape // agg's polynomials in payload order
	seen   map[PartyID]bool
	result []*rlwe.Ciphertext
}

// NewRefreshAggregator validates req, whose ciphertexts must be whole (c0
// and c1), and returns an aggregator for it. The aggregator reads the
// ciphertexts when the last share arrives: they must not change until then.
func NewRefreshAggregator(p engine.Parameters, req RefreshRequest) (*RefreshAggregator, error) {
	params := *p.GetRLWEParameters()
	for i, ct := range req.Ciphertexts {
		if err := checkCiphertext(params, ct); err != nil {
			return nil, fmt.Errorf("refresh: ciphertext %d: %w", i, err)
		}
	}
	pl, err := planRefresh(p, req)
	if err != nil {
		return nil, err
	}
	cts := make([]*rlwe.Ciphertext, len(req.Ciphertexts))
	for i, ct := range req.Ciphertexts {
		cts[i] = &rlwe.Ciphertext{Element: rlwe.Element[ring.Poly]{Value: ct.Value, MetaData: pl.in[i].md}}
	}
	agg, sum := allocRefreshShares(p, pl.in)
	return &RefreshAggregator{p: p, req: req, cts: cts, plan: pl, agg: agg, sum: sum, seen: map[PartyID]bool{}}, nil
}

// Step adds one party's shares; done is true once every group member
// contributed and the ciphertexts are refreshed. A rejected message leaves
// the aggregator unchanged.
func (a *RefreshAggregator) Step(m Message) (done bool, err error) {
	if m.Kind != KindRefreshShare {
		return false, perr(m.From, m.Kind, "unknown message kind")
	}
	if !slices.Contains(a.req.Group, m.From) {
		return false, perr(m.From, m.Kind, "sender is not in the refresh group")
	}
	if m.Session != a.req.Session {
		return false, perr(m.From, m.Kind, "message for session %q, not %q", m.Session, a.req.Session)
	}
	if a.seen[m.From] {
		return false, perr(m.From, m.Kind, "duplicate message")
	}
	if a.result != nil {
		return true, perr(m.From, m.Kind, "refresh already complete")
	}
	if len(m.Payload) < sha256.Size {
		return false, perr(m.From, m.Kind, "truncated payload")
	}
	if !bytes.Equal(m.Payload[:sha256.Size], a.plan.digest) {
		return false, perr(m.From, m.Kind, "share made for another refresh request (round %d)", a.req.Round)
	}
	params := *a.p.GetRLWEParameters()
	if err := a.sum.check(params, m.Payload[sha256.Size:]); err != nil {
		return false, wrapErr(m.From, m.Kind, err)
	}
	a.sum.addChecked(params, m.Payload[sha256.Size:])
	a.seen[m.From] = true
	if len(a.seen) < len(a.req.Group) {
		return false, nil
	}
	out, err := a.finalize()
	if err != nil {
		return false, err
	}
	a.result = out
	return true, nil
}

// finalize decrypts the masked plaintexts, transforms and re-encrypts them.
func (a *RefreshAggregator) finalize() ([]*rlwe.Ciphertext, error) {
	tf := a.req.Transform.masked()
	out := make([]*rlwe.Ciphertext, len(a.cts))
	for i, ct := range a.cts {
		out[i] = rlwe.NewCiphertext(a.p.Parameters, 1, a.p.MaxLevel())
		if err := a.plan.protocols[a.plan.logBounds[i]].Transform(ct, tf, a.plan.crps[i], a.agg[i], out[i]); err != nil {
			return nil, fmt.Errorf("refresh: ciphertext %d: %w", i, err)
		}
		if a.req.Transform == TransformSlotMean {
			// lattigo marks a transform without re-encoding as not
			// slot-encoded. The output is the constant polynomial
			// mean*scale, which decodes to the mean in every slot: it is
			// a valid slot encoding, and the evaluator must treat it as
			// one (products act slot-wise on it).
			out[i].IsBatched = true
		}
	}
	return out, nil
}

// Done reports whether every share arrived.
func (a *RefreshAggregator) Done() bool { return a.result != nil }

// Missing lists the group members whose shares have not arrived.
func (a *RefreshAggregator) Missing() []PartyID {
	var out []PartyID
	for _, id := range a.req.Group {
		if !a.seen[id] {
			out = append(out, id)
		}
	}
	return out
}

// Result returns the refreshed ciphertexts once Done (in the request's
// order, at the parameters' top level and default scale), nil before.
func (a *RefreshAggregator) Result() []*rlwe.Ciphertext { return a.result }
