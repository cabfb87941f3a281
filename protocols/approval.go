package protocols

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"go.dedis.ch/kyber/v3"
	"go.dedis.ch/kyber/v3/share"
	"go.dedis.ch/kyber/v3/sign/bls"
	"go.dedis.ch/kyber/v3/sign/tbls"
)

// KindApproval is the kind under which collector errors are reported: a
// party's threshold-BLS partial signature over an approval message.
const KindApproval Kind = "approval.partial"

// partialSize is the size of a tbls partial signature: index (u16) then a
// G1 point.
const partialSize = 2 + g1PointSize

// ApprovalMessage returns the canonical bytes that parties sign to approve
// an analyst's query: a domain tag, then the session id, the analyst's name
// and the digest of the query specification, each u32-length-prefixed.
func ApprovalMessage(session string, analyst string, specDigest []byte) []byte {
	b := appendStr(nil, "synod/approval/v1")
	b = appendBlob(b, []byte(session))
	b = appendBlob(b, []byte(analyst))
	return appendBlob(b, specDigest)
}

// SignApproval returns this party's threshold-BLS partial signature on msg
// (kyber sign/tbls: share index as u16, then a G1 point).
func SignApproval(res *DKGResult, msg []byte) (sig []byte, err error) {
	defer decodeGuard(&err)
	if res == nil || res.Share == nil || res.Share.V == nil {
		return nil, errors.New("approval: no DKG share")
	}
	if res.Share.I < 0 || res.Share.I >= maxGroupSize {
		return nil, fmt.Errorf("approval: share index %d out of range", res.Share.I)
	}
	return tbls.Sign(bnSuite, res.Share, msg)
}

// ApprovalCollector verifies partial signatures on one message as they
// arrive and recovers the BLS certificate once threshold of them are valid.
type ApprovalCollector struct {
	pub       *share.PubPoly
	threshold int
	n         int
	msg       []byte
	parties   []PartyID // sorted; nil when not bound
	byParty   map[PartyID][]byte
	byIndex   map[int]PartyID
	cert      []byte
}

// NewApprovalCollector returns a collector for partial signatures on msg
// under the public polynomial pub (DKGResult.Public) of an n-party,
// threshold-of-n key.
func NewApprovalCollector(pub *share.PubPoly, threshold, n int, msg []byte) (*ApprovalCollector, error) {
	if pub == nil {
		return nil, errors.New("approval: no public polynomial")
	}
	if n < 1 || n > maxGroupSize || threshold < 1 || threshold > n {
		return nil, fmt.Errorf("approval: threshold %d of %d out of range", threshold, n)
	}
	if pub.Threshold() != threshold {
		return nil, fmt.Errorf("approval: public polynomial has threshold %d, not %d", pub.Threshold(), threshold)
	}
	return &ApprovalCollector{
		pub:       pub,
		threshold: threshold,
		n:         n,
		msg:       bytes.Clone(msg),
		byParty:   map[PartyID][]byte{},
		byIndex:   map[int]PartyID{},
	}, nil
}

// ExpectParties binds share indices to members: the party at position i of
// the sorted list must sign with share index i (its ShamirPoint minus one),
// as the DKG assigns them. Without it the collector only checks that no
// party signs twice and no index is used by two parties. Call it before Add.
func (c *ApprovalCollector) ExpectParties(parties []PartyID) error {
	sorted := slices.Clone(parties)
	slices.Sort(sorted)
	if len(sorted) != c.n {
		return fmt.Errorf("approval: %d parties, want %d", len(sorted), c.n)
	}
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			return fmt.Errorf("approval: party %s listed twice", sorted[i])
		}
	}
	if len(c.byParty) > 0 {
		return errors.New("approval: parties must be bound before the first partial")
	}
	c.parties = sorted
	return nil
}

// Add verifies from's partial signature and records it. It returns done once
// threshold valid partials have been recorded and the certificate has been
// recovered. An invalid partial is rejected, naming from, and leaves the
// collector unchanged; partials that arrive after done are still verified.
func (c *ApprovalCollector) Add(from PartyID, partial []byte) (done bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = perr(from, KindApproval, "malformed partial signature: %v", r)
		}
	}()
	if _, dup := c.byParty[from]; dup {
		return c.cert != nil, perr(from, KindApproval, "duplicate partial signature")
	}
	if len(partial) != partialSize {
		return c.cert != nil, perr(from, KindApproval, "partial signature has %d bytes, want %d", len(partial), partialSize)
	}
	idx, err := tbls.SigShare(partial).Index()
	if err != nil {
		return c.cert != nil, wrapErr(from, KindApproval, err)
	}
	if idx >= c.n {
		return c.cert != nil, perr(from, KindApproval, "share index %d out of range 0..%d", idx, c.n-1)
	}
	if c.parties != nil {
		want := slices.Index(c.parties, from)
		if want < 0 {
			return c.cert != nil, perr(from, KindApproval, "signer is not a member")
		}
		if idx != want {
			return c.cert != nil, perr(from, KindApproval, "partial signed with share index %d, the party's is %d", idx, want)
		}
	}
	if other, taken := c.byIndex[idx]; taken {
		return c.cert != nil, perr(from, KindApproval, "share index %d already used by %s", idx, other)
	}
	if _, err := decodeG1Point(partial[2:]); err != nil {
		return c.cert != nil, wrapErr(from, KindApproval, err)
	}
	if err := tbls.Verify(bnSuite, c.pub, c.msg, partial); err != nil {
		return c.cert != nil, perr(from, KindApproval, "partial signature does not verify under the party's public key share: %v", err)
	}
	c.byParty[from] = bytes.Clone(partial)
	c.byIndex[idx] = from
	if c.cert != nil || len(c.byParty) < c.threshold {
		return c.cert != nil, nil
	}
	// Recover from the first threshold partials by index: deterministic, and
	// any threshold of valid partials gives the same (unique) BLS signature.
	idxs := make([]int, 0, len(c.byIndex))
	for i := range c.byIndex {
		idxs = append(idxs, i)
	}
	slices.Sort(idxs)
	sigs := make([][]byte, 0, c.threshold)
	for _, i := range idxs[:c.threshold] {
		sigs = append(sigs, c.byParty[c.byIndex[i]])
	}
	cert, err := tbls.Recover(bnSuite, c.pub, c.msg, sigs, c.threshold, c.n)
	if err != nil {
		return false, fmt.Errorf("approval: recovering the certificate: %w", err)
	}
	if err := VerifyCertificate(c.pub.Commit(), c.msg, cert); err != nil {
		return false, fmt.Errorf("approval: recovered certificate: %w", err)
	}
	c.cert = cert
	return true, nil
}

// Certificate returns the recovered BLS signature (a G1 point, 64 bytes), or
// nil before Add reported done.
func (c *ApprovalCollector) Certificate() []byte { return bytes.Clone(c.cert) }

// Signers returns the parties whose partial signatures were accepted,
// sorted.
func (c *ApprovalCollector) Signers() []PartyID {
	ids := make([]PartyID, 0, len(c.byParty))
	for id := range c.byParty {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// VerifyCertificate checks that cert is the BLS signature of msg under the
// group key (kyber sign/bls on bn256: key on G2, signature on G1).
func VerifyCertificate(groupKey kyber.Point, msg, cert []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("certificate: malformed input: %v", r)
		}
	}()
	if err := checkGroupKey(groupKey); err != nil {
		return err
	}
	if _, err := decodeG1Point(cert); err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	if err := bls.Verify(bnSuite, groupKey, msg, cert); err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	return nil
}

func checkGroupKey(p kyber.Point) error {
	if p == nil {
		return errors.New("group key: missing")
	}
	b, err := p.MarshalBinary()
	if err != nil {
		return fmt.Errorf("group key: %w", err)
	}
	_, err = UnmarshalGroupKey(b)
	return err
}

// MarshalGroupKey encodes the consortium's group key (a bn256 G2 point,
// 128 bytes) for the consortium record.
func MarshalGroupKey(p kyber.Point) ([]byte, error) {
	if err := checkGroupKey(p); err != nil {
		return nil, err
	}
	return p.MarshalBinary()
}

// UnmarshalGroupKey decodes a group key written by MarshalGroupKey: a
// canonical G2 point of the prime-order subgroup, not the identity.
func UnmarshalGroupKey(b []byte) (kyber.Point, error) {
	p, err := decodeG2Point(b)
	if err != nil {
		return nil, fmt.Errorf("group key: %w", err)
	}
	if p.Equal(g2().Point().Null()) {
		return nil, errors.New("group key: identity point")
	}
	return p, nil
}
