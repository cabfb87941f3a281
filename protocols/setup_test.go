package protocols

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/synod-mpc/synod/engine"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"go.dedis.ch/kyber/v3"
	"go.dedis.ch/kyber/v3/group/edwards25519"
)

func testParams(t testing.TB, name string) engine.Parameters {
	t.Helper()
	p, err := engine.ParametersByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func partyIDs(n int) []PartyID {
	ids := make([]PartyID, n)
	for i := range ids {
		ids[i] = PartyID(fmt.Sprintf("party-%d", i+1))
	}
	return ids
}

// subsets returns every k-subset of ids.
func subsets(ids []PartyID, k int) [][]PartyID {
	if k == 0 {
		return [][]PartyID{{}}
	}
	if len(ids) < k {
		return nil
	}
	var out [][]PartyID
	for _, rest := range subsets(ids[1:], k-1) {
		out = append(out, append([]PartyID{ids[0]}, rest...))
	}
	return append(out, subsets(ids[1:], k)...)
}

var (
	setupCacheMu sync.Mutex
	setupCache   = map[string]map[PartyID]*SetupResult{}
)

func cachedSetup(t *testing.T, params engine.Parameters, n, thr int) map[PartyID]*SetupResult {
	t.Helper()
	setupCacheMu.Lock()
	defer setupCacheMu.Unlock()
	key := fmt.Sprintf("%s/%d/%d", params.Name, n, thr)
	if r, ok := setupCache[key]; ok {
		return r
	}
	res, err := RunSetupInProcess(params, partyIDs(n), thr, []uint64{params.GaloisElement(1)})
	if err != nil {
		t.Fatal(err)
	}
	setupCache[key] = res
	return res
}

// idealSecret is the collective secret, sum of all additive shares.
func idealSecret(params engine.Parameters, res map[PartyID]*SetupResult) *rlwe.SecretKey {
	sk := rlwe.NewSecretKey(params.Parameters)
	for _, r := range res {
		params.RingQP().Add(sk.Value, r.SecretKey.Value, sk.Value)
	}
	return sk
}

func testValues(params engine.Parameters) []float64 {
	v := make([]float64, params.MaxSlots())
	for i := range v {
		v[i] = math.Sin(float64(i)) * 10
	}
	return v
}

func encryptAt(t testing.TB, params engine.Parameters, pk *rlwe.PublicKey, values []float64, level int, logScale int) *rlwe.Ciphertext {
	t.Helper()
	pt := hefloat.NewPlaintext(params.Parameters, level)
	pt.Scale = rlwe.NewScale(math.Exp2(float64(logScale)))
	if err := hefloat.NewEncoder(params.Parameters).Encode(values, pt); err != nil {
		t.Fatal(err)
	}
	ct, err := rlwe.NewEncryptor(params.Parameters, pk).EncryptNew(pt)
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

func decryptWith(t *testing.T, params engine.Parameters, sk *rlwe.SecretKey, ct *rlwe.Ciphertext) []float64 {
	t.Helper()
	pt := rlwe.NewDecryptor(params.Parameters, sk).DecryptNew(ct)
	out := make([]float64, params.MaxSlots())
	if err := hefloat.NewEncoder(params.Parameters).Decode(pt, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func maxErr(a, b []float64) float64 {
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(a[i]-b[i]))
	}
	return m
}

func checkSetupConsistent(t *testing.T, params engine.Parameters, res map[PartyID]*SetupResult, n int) {
	t.Helper()
	if len(res) != n {
		t.Fatalf("%d results, want %d", len(res), n)
	}
	var ref *SetupResult
	for _, r := range res {
		if ref == nil {
			ref = r
			continue
		}
		if !bytes.Equal(r.Digest, ref.Digest) || !bytes.Equal(r.CRSSeed, ref.CRSSeed) {
			t.Fatal("parties disagree on the setup outputs")
		}
		if !r.PublicKey.Equal(ref.PublicKey) || !r.RelinearizationKey.Equal(ref.RelinearizationKey) {
			t.Fatal("parties disagree on the keys")
		}
	}
	// The collective public key encrypts under the sum of the secrets.
	sk := idealSecret(params, res)
	vals := testValues(params)
	ct := encryptAt(t, params, ref.PublicKey, vals, params.MaxLevel(), 40)
	if e := maxErr(vals, decryptWith(t, params, sk, ct)); e > 1e-5 {
		t.Fatalf("public key decryption error %g", e)
	}
}

// keySwitchGroup runs the threshold key switch with group and returns the
// decrypted values under a fresh receiver key.
func keySwitchGroup(t *testing.T, params engine.Parameters, res map[PartyID]*SetupResult, group []PartyID, ct *rlwe.Ciphertext, sigma float64) []float64 {
	t.Helper()
	kgen := rlwe.NewKeyGenerator(params.Parameters)
	rsk, rpk := kgen.GenKeyPairNew()
	req := KeySwitchRequest{Session: "ks-1", Group: group, Target: rpk, Ciphertext: ct}
	// Round trip the request as the parties would receive it.
	b, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req2, err := UnmarshalKeySwitchRequest(params, b)
	if err != nil {
		t.Fatal(err)
	}
	agg, err := NewKeySwitchAggregator(params, req)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range group {
		r := res[id]
		m, err := KeySwitchShare(params, id, r.Parties, r.Threshold, r.ThresholdShare, req2, sigma, "coordinator")
		if err != nil {
			t.Fatal(err)
		}
		done, err := agg.Step(m)
		if err != nil {
			t.Fatal(err)
		}
		if done != (i == len(group)-1) {
			t.Fatalf("done=%v after %d shares", done, i+1)
		}
	}
	return decryptWith(t, params, rsk, agg.Result())
}

// Tolerance of the threshold key switch at the aggregate level and scale
// (2^60) with the parameter set's flooding (sigma = 2^40): the flooding
// noise contributes about sqrt(t*N)*sigma/scale ~ 2^-13 per slot; we allow 1e-3.
const keySwitchTolerance = 1e-3

func testThresholdKeySwitch(t *testing.T, n, thr int) {
	params := testParams(t, "ckks-n13")
	res := cachedSetup(t, params, n, thr)
	checkSetupConsistent(t, params, res, n)
	vals := testValues(params)
	ct := encryptAt(t, params, res["party-1"].PublicKey, vals, params.AggregateLevel, params.AggregateLogScale)
	for _, group := range subsets(partyIDs(n), thr) {
		got := keySwitchGroup(t, params, res, group, ct, params.FloodingSigma)
		e := maxErr(vals, got)
		t.Logf("group %v: max slot error %.3g", group, e)
		if e > keySwitchTolerance {
			t.Fatalf("group %v: max error %g > %g", group, e, keySwitchTolerance)
		}
	}
}

func TestThresholdKeySwitchN3T2(t *testing.T) { testThresholdKeySwitch(t, 3, 2) }
func TestThresholdKeySwitchN5T3(t *testing.T) { testThresholdKeySwitch(t, 5, 3) }

func TestEvaluationKeys(t *testing.T) {
	params := testParams(t, "ckks-n13")
	res := cachedSetup(t, params, 3, 2)
	r := res["party-2"]
	sk := idealSecret(params, res)
	vals := testValues(params)
	ct := encryptAt(t, params, r.PublicKey, vals, params.MaxLevel(), params.LogDefaultScale())
	eval := hefloat.NewEvaluator(params.Parameters, rlwe.NewMemEvaluationKeySet(r.RelinearizationKey, r.GaloisKeys...))

	sq, err := eval.MulRelinNew(ct, ct)
	if err != nil {
		t.Fatal(err)
	}
	if sq.Degree() != 1 {
		t.Fatalf("relinearized degree %d", sq.Degree())
	}
	if err := eval.Rescale(sq, sq); err != nil {
		t.Fatal(err)
	}
	want := make([]float64, len(vals))
	for i, v := range vals {
		want[i] = v * v
	}
	if e := maxErr(want, decryptWith(t, params, sk, sq)); e > 1e-3 {
		t.Fatalf("mul+relin error %g", e)
	}

	rot, err := eval.RotateNew(ct, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		want[i] = vals[(i+1)%len(vals)]
	}
	if e := maxErr(want, decryptWith(t, params, sk, rot)); e > 1e-4 {
		t.Fatalf("rotation error %g", e)
	}
}

func TestSetupN3CKKSN14(t *testing.T) {
	if testing.Short() {
		t.Skip("LogN=14 setup in -short mode")
	}
	params := testParams(t, "ckks-n14")
	res, err := RunSetupInProcess(params, partyIDs(3), 2, []uint64{params.GaloisElement(1)})
	if err != nil {
		t.Fatal(err)
	}
	checkSetupConsistent(t, params, res, 3)
	vals := testValues(params)
	ct := encryptAt(t, params, res["party-3"].PublicKey, vals, params.AggregateLevel, params.AggregateLogScale)
	got := keySwitchGroup(t, params, res, []PartyID{"party-1", "party-3"}, ct, params.FloodingSigma)
	if e := maxErr(vals, got); e > keySwitchTolerance {
		t.Fatalf("max error %g", e)
	}
}

func TestKeySwitchGroupTooSmall(t *testing.T) {
	params := testParams(t, "ckks-n13")
	res := cachedSetup(t, params, 3, 2)
	r := res["party-1"]
	_, rpk := rlwe.NewKeyGenerator(params.Parameters).GenKeyPairNew()
	ct := encryptAt(t, params, r.PublicKey, testValues(params), params.AggregateLevel, params.AggregateLogScale)
	req := KeySwitchRequest{Session: "ks", Group: []PartyID{"party-1"}, Target: rpk, Ciphertext: ct}
	_, err := KeySwitchShare(params, "party-1", r.Parties, r.Threshold, r.ThresholdShare, req, params.FloodingSigma, "")
	if err == nil || !strings.Contains(err.Error(), "need exactly t=2") {
		t.Fatalf("group of 1 with t=2: got %v", err)
	}
	// Not a member of the group.
	req.Group = []PartyID{"party-2", "party-3"}
	if _, err := KeySwitchShare(params, "party-1", r.Parties, r.Threshold, r.ThresholdShare, req, params.FloodingSigma, ""); err == nil {
		t.Fatal("share from a party outside the group accepted")
	}
	// Unknown party in the group.
	req.Group = []PartyID{"party-1", "mallory"}
	if _, err := KeySwitchShare(params, "party-1", r.Parties, r.Threshold, r.ThresholdShare, req, params.FloodingSigma, ""); err == nil {
		t.Fatal("group with a non-member accepted")
	}
}

func asProtocolError(t *testing.T, err error, party PartyID, kind Kind, contains string) {
	t.Helper()
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("want *ProtocolError naming %s, got %v", party, err)
	}
	if pe.Party != party || (kind != "" && pe.Kind != kind) {
		t.Fatalf("error names %s/%s, want %s/%s: %v", pe.Party, pe.Kind, party, kind, err)
	}
	if contains != "" && !strings.Contains(err.Error(), contains) {
		t.Fatalf("error %q does not mention %q", err, contains)
	}
}

func TestKeySwitchAggregatorRejects(t *testing.T) {
	params := testParams(t, "ckks-n13")
	res := cachedSetup(t, params, 3, 2)
	_, rpk := rlwe.NewKeyGenerator(params.Parameters).GenKeyPairNew()
	ct := encryptAt(t, params, res["party-1"].PublicKey, testValues(params), params.AggregateLevel, params.AggregateLogScale)
	req := KeySwitchRequest{Session: "ks", Group: []PartyID{"party-1", "party-2"}, Target: rpk, Ciphertext: ct}
	share := func(id PartyID, rq KeySwitchRequest) Message {
		r := res[id]
		m, err := KeySwitchShare(params, id, r.Parties, r.Threshold, r.ThresholdShare, rq, params.FloodingSigma, "")
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m1 := share("party-1", req)
	agg, err := NewKeySwitchAggregator(params, req)
	if err != nil {
		t.Fatal(err)
	}
	// Truncated share.
	bad := m1
	bad.Payload = m1.Payload[:len(m1.Payload)-8]
	_, err = agg.Step(bad)
	asProtocolError(t, err, "party-1", KindKeySwitchShare, "bytes")
	// Unreduced coefficient.
	bad.Payload = bytes.Clone(m1.Payload)
	for i := 40; i < 48; i++ {
		bad.Payload[i] = 0xff
	}
	_, err = agg.Step(bad)
	asProtocolError(t, err, "party-1", KindKeySwitchShare, "reduced")
	// Share for another request (other ciphertext).
	other := req
	other.Ciphertext = encryptAt(t, params, res["party-1"].PublicKey, testValues(params), params.AggregateLevel, params.AggregateLogScale)
	_, err = agg.Step(share("party-1", other))
	asProtocolError(t, err, "party-1", KindKeySwitchShare, "another")
	// Non-member of the group.
	m3 := share("party-3", KeySwitchRequest{Session: "ks", Group: []PartyID{"party-1", "party-3"}, Target: rpk, Ciphertext: ct})
	_, err = agg.Step(m3)
	asProtocolError(t, err, "party-3", KindKeySwitchShare, "not in the key switch group")
	// Wrong kind, wrong session.
	k := m1
	k.Kind = "keyswitch.bogus"
	_, err = agg.Step(k)
	asProtocolError(t, err, "party-1", "keyswitch.bogus", "unknown")
	k = m1
	k.Session = "other"
	_, err = agg.Step(k)
	asProtocolError(t, err, "party-1", KindKeySwitchShare, "session")
	// Good, then duplicate.
	if done, err := agg.Step(m1); err != nil || done {
		t.Fatalf("first share: done=%v err=%v", done, err)
	}
	_, err = agg.Step(m1)
	asProtocolError(t, err, "party-1", KindKeySwitchShare, "duplicate")
	if got := agg.Missing(); len(got) != 1 || got[0] != "party-2" {
		t.Fatalf("missing %v", got)
	}
	// Wrong parameters: a share computed at LogN=14 is the wrong size.
	p14 := testParams(t, "ckks-n14")
	if _, err := DecodeKeySwitchShare(*params.GetRLWEParameters(), ct.Level(), agg.digest, make([]byte, 32+2*3*8*p14.N())); err == nil {
		t.Fatal("LogN=14 sized share accepted at LogN=13")
	}
	if done, err := agg.Step(share("party-2", req)); err != nil || !done {
		t.Fatalf("second share: done=%v err=%v", done, err)
	}
}

// manualSetup builds the N instances without running them.
func manualSetup(t *testing.T, params engine.Parameters, n, thr int) (map[PartyID]*Setup, []Message) {
	t.Helper()
	suite := edwards25519.NewBlakeSHA256Ed25519()
	ids := partyIDs(n)
	priv := map[PartyID]kyber.Scalar{}
	pub := map[PartyID]kyber.Point{}
	for _, id := range ids {
		priv[id] = suite.Scalar().Pick(suite.RandomStream())
		pub[id] = suite.Point().Mul(priv[id], nil)
	}
	setups := map[PartyID]*Setup{}
	var queue []Message
	for _, id := range ids {
		s, out, err := NewSetup(SetupConfig{Params: params, Session: "s1", Self: id, Parties: ids, Threshold: thr,
			GaloisElements: []uint64{params.GaloisElement(1)}, Identity: priv[id], PeerKeys: pub, Rand: rand.Reader})
		if err != nil {
			t.Fatal(err)
		}
		if s.Stage() != StageCRSCommit {
			t.Fatalf("stage %s", s.Stage())
		}
		setups[id] = s
		queue = append(queue, out...)
	}
	return setups, queue
}

func TestSetupRejects(t *testing.T) {
	cases := []struct {
		name     string
		tamper   func(m *Message) bool // returns true when it altered m
		party    PartyID
		kind     Kind
		contains string
	}{
		{"reveal does not match commit", func(m *Message) bool {
			if m.Kind == KindCRSReveal && m.From == "party-2" {
				m.Payload = bytes.Clone(m.Payload)
				m.Payload[0] ^= 1
				return true
			}
			return false
		}, "party-2", KindCRSReveal, "does not match"},
		{"short commit", func(m *Message) bool {
			if m.Kind == KindCRSCommit && m.From == "party-3" {
				m.Payload = m.Payload[:31]
				return true
			}
			return false
		}, "party-3", KindCRSCommit, "bytes"},
		{"truncated ckg share", func(m *Message) bool {
			if m.Kind == KindCKGShare && m.From == "party-1" {
				m.Payload = m.Payload[:len(m.Payload)-1]
				return true
			}
			return false
		}, "party-1", KindCKGShare, "bytes"},
		{"unreduced rkg coefficient", func(m *Message) bool {
			if m.Kind == KindRKGRound1 && m.From == "party-3" {
				m.Payload = bytes.Clone(m.Payload)
				copy(m.Payload[800:808], bytes.Repeat([]byte{0xff}, 8))
				return true
			}
			return false
		}, "party-3", KindRKGRound1, "reduced"},
		{"oversized rkg round 2", func(m *Message) bool {
			if m.Kind == KindRKGRound2 && m.From == "party-2" {
				m.Payload = append(bytes.Clone(m.Payload), 0)
				return true
			}
			return false
		}, "party-2", KindRKGRound2, "bytes"},
		{"unrequested galois element", func(m *Message) bool {
			if m.Kind == KindGKGShare && m.From == "party-1" {
				m.Payload = bytes.Clone(m.Payload)
				m.Payload[7] = 3 // a valid but unrequested element (5 is GaloisElement(1))
				return true
			}
			return false
		}, "party-1", KindGKGShare, "not requested"},
		{"corrupted encrypted shamir share", func(m *Message) bool {
			if m.Kind == KindTSKShare && m.From == "party-2" {
				m.Payload = bytes.Clone(m.Payload)
				m.Payload[len(m.Payload)-1] ^= 1
				return true
			}
			return false
		}, "party-2", KindTSKShare, "decrypt"},
		{"shamir share redirected", func(m *Message) bool {
			if m.Kind == KindTSKShare && m.From == "party-2" && m.To == "party-1" {
				m.To = "party-3"
				return true
			}
			return false
		}, "party-2", KindTSKShare, ""},
		{"digest mismatch", func(m *Message) bool {
			if m.Kind == KindSetupDone && m.From == "party-3" {
				m.Payload = bytes.Clone(m.Payload)
				m.Payload[5] ^= 1
				return true
			}
			return false
		}, "party-3", KindSetupDone, "differs"},
		{"non-member", func(m *Message) bool {
			if m.Kind == KindCRSCommit && m.From == "party-1" {
				m.From = "mallory"
				return true
			}
			return false
		}, "mallory", KindCRSCommit, "not a participant"},
		{"unknown kind", func(m *Message) bool {
			if m.Kind == KindCKGShare && m.From == "party-1" {
				m.Kind = "setup.bogus"
				return true
			}
			return false
		}, "party-1", "setup.bogus", "unknown"},
		{"wrong session", func(m *Message) bool {
			if m.Kind == KindCRSCommit && m.From == "party-2" {
				m.Session = "s2"
				return true
			}
			return false
		}, "party-2", KindCRSCommit, "session"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			params := testParams(t, "ckks-n13")
			setups, queue := manualSetup(t, params, 3, 2)
			fired := false
			err := relaySetup(setups, queue, func(to PartyID, m *Message) bool {
				if !fired && c.tamper(m) {
					fired = true
				}
				return true
			})
			if !fired {
				t.Fatal("tamper never fired")
			}
			asProtocolError(t, err, c.party, c.kind, c.contains)
		})
	}
}

func TestSetupRejectsDuplicates(t *testing.T) {
	params := testParams(t, "ckks-n13")
	for _, kind := range []Kind{KindCRSCommit, KindCRSReveal, KindCKGShare, KindRKGRound1, KindRKGRound2, KindGKGShare, KindTSKShare} {
		t.Run(string(kind), func(t *testing.T) {
			// Deliver party-2's message twice to party-1: the second copy is
			// rejected naming party-2 and the run still completes.
			setups2, queue2 := manualSetup(t, params, 3, 2)
			var replayed bool
			err := relaySetup(setups2, queue2, func(to PartyID, m *Message) bool {
				if !replayed && m.Kind == kind && m.From == "party-2" && to == "party-1" {
					replayed = true
					if _, err := setups2["party-1"].Step(*m); err != nil {
						t.Fatalf("first copy rejected: %v", err)
					}
					_, err := setups2["party-1"].Step(*m)
					asProtocolError(t, err, "party-2", kind, "duplicate")
					return false // already delivered
				}
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
			if !replayed {
				t.Fatal("no message to replay")
			}
		})
	}
}

func TestSetupResultPersistence(t *testing.T) {
	params := testParams(t, "ckks-n13")
	res := cachedSetup(t, params, 3, 2)
	r := res["party-2"]
	pub, err := r.MarshalPublic()
	if err != nil {
		t.Fatal(err)
	}
	sec, err := r.MarshalSecrets()
	if err != nil {
		t.Fatal(err)
	}
	var got SetupResult
	if err := got.UnmarshalPublic(params, pub); err != nil {
		t.Fatal(err)
	}
	if err := got.UnmarshalSecrets(params, sec); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Digest, r.Digest) || got.Self != "party-2" || got.Threshold != 2 || len(got.Parties) != 3 {
		t.Fatalf("round trip lost fields: %+v", got)
	}
	if !got.PublicKey.Equal(r.PublicKey) || !got.RelinearizationKey.Equal(r.RelinearizationKey) || !got.GaloisKeys[0].Equal(r.GaloisKeys[0]) {
		t.Fatal("keys differ after round trip")
	}
	if !got.SecretKey.Value.Equal(&r.SecretKey.Value) || !got.ThresholdShare.Poly.Equal(&r.ThresholdShare.Poly) {
		t.Fatal("secrets differ after round trip")
	}
	// Tampering with a key is caught by the digest.
	bad := bytes.Clone(pub)
	bad[len(bad)-100] ^= 1
	if err := new(SetupResult).UnmarshalPublic(params, bad); err == nil {
		t.Fatal("tampered public record accepted")
	}
	if err := new(SetupResult).UnmarshalPublic(testParams(t, "ckks-n14"), pub); err == nil {
		t.Fatal("record accepted under another parameter set")
	}
	// Secrets of another setup are refused.
	other := SetupResult{Digest: bytes.Repeat([]byte{1}, 32)}
	if err := other.UnmarshalSecrets(params, sec); err == nil {
		t.Fatal("secrets accepted for another setup")
	}
	// The restored share still key-switches.
	vals := testValues(params)
	ct := encryptAt(t, params, got.PublicKey, vals, params.AggregateLevel, params.AggregateLogScale)
	res2 := map[PartyID]*SetupResult{"party-1": res["party-1"], "party-2": &got}
	if e := maxErr(vals, keySwitchGroup(t, params, res2, []PartyID{"party-1", "party-2"}, ct, params.FloodingSigma)); e > keySwitchTolerance {
		t.Fatalf("restored share: error %g", e)
	}
}

func TestNewSetupValidates(t *testing.T) {
	params := testParams(t, "ckks-n13")
	suite := edwards25519.NewBlakeSHA256Ed25519()
	sk := suite.Scalar().Pick(suite.RandomStream())
	pub := map[PartyID]kyber.Point{"b": suite.Point().Mul(sk, nil)}
	base := SetupConfig{Params: params, Session: "s", Self: "a", Parties: []PartyID{"a", "b"}, Threshold: 2, Identity: sk, PeerKeys: pub, Rand: rand.Reader}
	for name, mod := range map[string]func(*SetupConfig){
		"threshold 0":      func(c *SetupConfig) { c.Threshold = 0 },
		"threshold > N":    func(c *SetupConfig) { c.Threshold = 3 },
		"self not member":  func(c *SetupConfig) { c.Self = "z" },
		"duplicate member": func(c *SetupConfig) { c.Parties = []PartyID{"a", "b", "b"} },
		"missing peer key": func(c *SetupConfig) { c.PeerKeys = nil },
		"even galois el":   func(c *SetupConfig) { c.GaloisElements = []uint64{4} },
		"no session":       func(c *SetupConfig) { c.Session = "" },
	} {
		c := base
		mod(&c)
		if _, _, err := NewSetup(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, msgs, err := NewSetup(base); err != nil || len(msgs) != 1 || msgs[0].Kind != KindCRSCommit {
		t.Fatalf("valid config: %v %v", msgs, err)
	}
}

func TestDecodeWrongParams(t *testing.T) {
	p13 := *testParams(t, "ckks-n13").GetRLWEParameters()
	p14 := *testParams(t, "ckks-n14").GetRLWEParameters()
	ckg := mhe.NewPublicKeyGenProtocol(p14)
	sh := ckg.AllocateShare()
	if _, err := DecodeCKGShare(p13, EncodeCKGShare(p14, sh)); err == nil {
		t.Fatal("LogN=14 CKG share accepted at LogN=13")
	}
	_, r1, _ := mhe.NewRelinearizationKeyGenProtocol(p14).AllocateShare()
	if _, err := DecodeRKGShare(p13, EncodeRKGShare(p14, r1)); err == nil {
		t.Fatal("LogN=14 RKG share accepted at LogN=13")
	}
}

// Lattigo leaves some shares lazily reduced (round 2 of the relinearization
// key is in [0, 2q)); the encoder must canonicalize so receivers accept them.
func TestEncodeCanonicalizesLazyShares(t *testing.T) {
	params := *testParams(t, "ckks-n13").GetRLWEParameters()
	_, r2, _ := mhe.NewRelinearizationKeyGenProtocol(params).AllocateShare()
	q := params.RingQ().ModuliChain()[0]
	r2.Value[0][0][0].Q.Coeffs[0][0] = q + 7
	got, err := DecodeRKGShare(params, EncodeRKGShare(params, r2))
	if err != nil {
		t.Fatal(err)
	}
	if v := got.Value[0][0][0].Q.Coeffs[0][0]; v != 7 {
		t.Fatalf("coefficient %d, want 7", v)
	}
}
