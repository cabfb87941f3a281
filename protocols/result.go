package protocols

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/synod-mpc/synod/engine"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/ring/ringqp"
)

const (
	publicFormat  = "synod/setup-public/v1"
	secretsFormat = "synod/setup-secrets/v1"
	maxGaloisKeys = 1 << 12
)

// MarshalPublic encodes the public outputs of the setup (identical at every
// party): parameter set, members, threshold, CRS seed, keys and digest.
func (r *SetupResult) MarshalPublic() ([]byte, error) {
	params, err := engine.ParametersByName(r.ParamsName)
	if err != nil {
		return nil, err
	}
	rp := *params.GetRLWEParameters()
	b := appendStr(nil, publicFormat)
	b = appendStr(b, r.ParamsName)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.Parties)))
	for _, p := range r.Parties {
		b = appendStr(b, string(p))
	}
	b = binary.BigEndian.AppendUint16(b, uint16(r.Threshold))
	b = appendBlob(b, r.CRSSeed)
	b = appendBlob(b, r.Digest)
	size := 0
	if err := r.walkPublicKeys(rp, func(p []byte) { size += len(p) },
		func(prefix []byte, sh shape) { size += 4 + len(prefix) + sh.size() }); err != nil {
		return nil, err
	}
	b = slices.Grow(b, size) // one allocation for tens of MB of keys
	r.walkPublicKeys(rp, func(p []byte) { b = append(b, p...) }, func(prefix []byte, sh shape) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(prefix)+sh.size()))
		b = sh.encode(rp, append(b, prefix...))
	})
	return b, nil
}

// walkPublicKeys goes through r's public keys in the order MarshalPublic
// stores them and computeDigest hashes them: blob gets the public key, the
// relinearization key and each Galois key (prefixed by its element), each
// to be written as one length-prefixed blob; raw gets the 2-byte count of
// Galois keys that precedes them.
func (r *SetupResult) walkPublicKeys(params rlwe.Parameters, raw func([]byte), blob func(prefix []byte, s shape)) error {
	if err := checkPublicKey(params, r.PublicKey); err != nil {
		return err
	}
	if r.RelinearizationKey == nil {
		return errors.New("no relinearization key")
	}
	blob(nil, publicKeyShape(r.PublicKey))
	blob(nil, gadgetShape(&r.RelinearizationKey.GadgetCiphertext))
	raw(binary.BigEndian.AppendUint16(nil, uint16(len(r.GaloisKeys))))
	for _, gk := range r.GaloisKeys {
		blob(binary.BigEndian.AppendUint64(nil, gk.GaloisElement), gadgetShape(&gk.GadgetCiphertext))
	}
	return nil
}

// UnmarshalPublic decodes the output of MarshalPublic into r, checking it
// against the parameter set p and recomputing the digest.
func (r *SetupResult) UnmarshalPublic(p engine.Parameters, b []byte) (err error) {
	defer decodeGuard(&err)
	params := *p.GetRLWEParameters()
	rd := &reader{b: b}
	if rd.str(64) != publicFormat {
		return errors.New("not a Synod setup public record")
	}
	name := rd.str(maxIDLen)
	if rd.err == nil && name != p.Name {
		return fmt.Errorf("record is for parameter set %q, not %q", name, p.Name)
	}
	np := rd.u16()
	if np < 1 || np > maxGroupSize {
		rd.fail("invalid member count %d", np)
	}
	var parties []PartyID
	for i := 0; i < np && rd.err == nil; i++ {
		parties = append(parties, PartyID(rd.str(maxIDLen)))
	}
	if rd.err == nil && !slices.IsSorted(parties) {
		rd.fail("members not sorted")
	}
	thr := rd.u16()
	seed := rd.blob(64)
	digest := rd.blob(sha256.Size)
	pkb := rd.blob(1 << 30)
	rlkb := rd.blob(1 << 30)
	ng := rd.u16()
	if ng > maxGaloisKeys {
		rd.fail("too many Galois keys")
	}
	var gkbs [][]byte
	for i := 0; i < ng && rd.err == nil; i++ {
		gkbs = append(gkbs, rd.blob(1<<30))
	}
	if err := rd.end(); err != nil {
		return err
	}
	if thr < 1 || thr > np {
		return fmt.Errorf("threshold %d out of range", thr)
	}
	out := SetupResult{
		ParamsName: name, Parties: parties, Threshold: thr,
		CRSSeed: bytes.Clone(seed), Self: r.Self, SecretKey: r.SecretKey, ThresholdShare: r.ThresholdShare,
	}
	if out.PublicKey, err = decodePublicKey(params, pkb); err != nil {
		return err
	}
	out.RelinearizationKey = rlwe.NewRelinearizationKey(params)
	if err := gadgetShape(&out.RelinearizationKey.GadgetCiphertext).decode(params, rlkb); err != nil {
		return fmt.Errorf("relinearization key: %w", err)
	}
	for _, gb := range gkbs {
		gk, err := decodeGaloisKey(params, gb)
		if err != nil {
			return err
		}
		if n := len(out.GaloisKeys); n > 0 && out.GaloisKeys[n-1].GaloisElement >= gk.GaloisElement {
			return errors.New("galois keys not sorted")
		}
		out.GaloisKeys = append(out.GaloisKeys, gk)
	}
	d, err := out.computeDigest(params)
	if err != nil {
		return err
	}
	if !bytes.Equal(d, digest) {
		return errors.New("setup record digest mismatch")
	}
	out.Digest = d
	*r = out
	return nil
}

// MarshalSecrets encodes this party's secret material (own additive share
// and aggregated Shamir share), bound to the setup digest. The caller
// encrypts it at rest.
func (r *SetupResult) MarshalSecrets() ([]byte, error) {
	params, err := engine.ParametersByName(r.ParamsName)
	if err != nil {
		return nil, err
	}
	rp := *params.GetRLWEParameters()
	if r.SecretKey == nil || r.ThresholdShare.Q.Coeffs == nil {
		return nil, errors.New("no secret material")
	}
	if err := checkQPShape(rp, r.SecretKey.Value); err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	if err := checkQPShape(rp, r.ThresholdShare.Poly); err != nil {
		return nil, fmt.Errorf("threshold share: %w", err)
	}
	b := appendStr(nil, secretsFormat)
	b = appendStr(b, string(r.Self))
	b = appendBlob(b, r.Digest)
	b = qpPoly(r.SecretKey.Value).encode(rp, b)
	return qpPoly(r.ThresholdShare.Poly).encode(rp, b), nil
}

// UnmarshalSecrets decodes the output of MarshalSecrets into r. When r
// already holds the public record, the secrets must belong to it.
func (r *SetupResult) UnmarshalSecrets(p engine.Parameters, b []byte) (err error) {
	defer decodeGuard(&err)
	params := *p.GetRLWEParameters()
	rd := &reader{b: b}
	if rd.str(64) != secretsFormat {
		return errors.New("not a Synod setup secrets record")
	}
	self := PartyID(rd.str(maxIDLen))
	digest := rd.blob(sha256.Size)
	if rd.err != nil {
		return rd.err
	}
	if r.Digest != nil && !bytes.Equal(r.Digest, digest) {
		return errors.New("secrets belong to another setup")
	}
	if r.Parties != nil && !slices.Contains(r.Parties, self) {
		return fmt.Errorf("secrets of %s, not a member", self)
	}
	sk := rlwe.NewSecretKey(params)
	tsk := mhe.NewThresholdizer(params).AllocateThresholdSecretShare()
	both := append(qpPoly(sk.Value), qpPoly(tsk.Poly)...)
	if err := both.decode(params, rd.b); err != nil {
		return err
	}
	r.Self, r.SecretKey, r.ThresholdShare = self, sk, tsk
	if r.Digest == nil {
		r.Digest = bytes.Clone(digest)
	}
	return nil
}

func checkQPShape(params rlwe.Parameters, p ringqp.Poly) error {
	if p.Q.N() != params.N() || p.Q.Level() != params.MaxLevelQ() {
		return errors.New("shape does not match the parameters")
	}
	if params.RingP() != nil && (p.P.N() != params.N() || p.P.Level() != params.MaxLevelP()) {
		return errors.New("shape does not match the parameters")
	}
	return nil
}
