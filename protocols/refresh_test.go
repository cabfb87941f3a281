package protocols

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/synod-mpc/synod/engine"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
)

// refreshTolerance is the error promised on each refreshed slot: the
// refresh's own bound (engine.RefreshPrecision: the Gaussian noise of the
// t shares, 2^16 at ckks-n13/n14, at 8 standard deviations) plus the
// decryption noise the input already had (a fresh public-key encryption,
// standard deviation 3.2*sqrt(4N/3+1) per coefficient, also at 8 standard
// deviations, spread over the slots by sqrt(N/2)).
func refreshTolerance(p engine.Parameters, groupSize int, scale float64) float64 {
	fresh := rlwe.DefaultNoise * math.Sqrt(4*float64(p.N())/3+1)
	return engine.RefreshPrecision(p, groupSize, scale) + 8*fresh*math.Sqrt(float64(p.N())/2)/scale
}

// refreshValues returns two real vectors for a request: the test values and
// a shifted copy, so that the ciphertexts of a request differ.
func refreshValues(p engine.Parameters) [][]float64 {
	a := testValues(p)
	b := make([]float64, len(a))
	for i := range b {
		b[i] = math.Cos(float64(i)/7)*3 + 1
	}
	return [][]float64{a, b}
}

// minLevelCiphertexts encrypts values at the lowest level a group of
// groupSize can refresh from, at the default scale.
func minLevelCiphertexts(t *testing.T, p engine.Parameters, pk *rlwe.PublicKey, groupSize int, values [][]float64) []*rlwe.Ciphertext {
	t.Helper()
	level, _, err := engine.MinRefreshLevel(p, p.DefaultScale(), groupSize)
	if err != nil {
		t.Fatal(err)
	}
	cts := make([]*rlwe.Ciphertext, len(values))
	for i, v := range values {
		cts[i] = encryptAt(t, p, pk, v, level, p.LogDefaultScale())
	}
	return cts
}

// refreshShares has every member of req.Group compute its shares from the
// request as the group receives it (c1 and metadata, round-tripped through
// Marshal).
func refreshShares(t *testing.T, p engine.Parameters, res map[PartyID]*SetupResult, req RefreshRequest) []Message {
	t.Helper()
	b, err := req.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	sent, err := UnmarshalRefreshRequest(p, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range sent.Ciphertexts {
		if ct.Value[0].Coeffs != nil {
			t.Fatal("c0 travelled to the group")
		}
	}
	var msgs []Message
	for _, id := range req.Group {
		r := res[id]
		m, err := RefreshShare(p, id, r.Parties, r.Threshold, r.ThresholdShare, sent, "coordinator")
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// aggregate feeds msgs to a fresh aggregator for req and returns its result.
func aggregate(t *testing.T, p engine.Parameters, req RefreshRequest, msgs []Message) []*rlwe.Ciphertext {
	t.Helper()
	agg, err := NewRefreshAggregator(p, req)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		done, err := agg.Step(m)
		if err != nil {
			t.Fatal(err)
		}
		if done != (i == len(msgs)-1) {
			t.Fatalf("done=%v after %d of %d shares", done, i+1, len(msgs))
		}
	}
	if !agg.Done() || len(agg.Missing()) != 0 {
		t.Fatalf("aggregator not done, missing %v", agg.Missing())
	}
	return agg.Result()
}

// checkRefreshed checks that out are at the top level and the default scale,
// slot-encoded, and decrypt under the collective key to want within tol.
func checkRefreshed(t *testing.T, p engine.Parameters, sk *rlwe.SecretKey, out []*rlwe.Ciphertext, want [][]float64, tol float64) {
	t.Helper()
	if len(out) != len(want) {
		t.Fatalf("%d ciphertexts refreshed, want %d", len(out), len(want))
	}
	for i, ct := range out {
		if ct.Level() != p.MaxLevel() {
			t.Fatalf("ciphertext %d at level %d, want the top level %d", i, ct.Level(), p.MaxLevel())
		}
		if ct.Scale.Cmp(p.DefaultScale()) != 0 {
			t.Fatalf("ciphertext %d at scale 2^%.3f, want the default 2^%d", i, math.Log2(ct.Scale.Float64()), p.LogDefaultScale())
		}
		if !ct.IsBatched {
			t.Fatalf("ciphertext %d not marked slot-encoded", i)
		}
		e := maxErr(want[i], decryptWith(t, p, sk, ct))
		t.Logf("ciphertext %d: max slot error %.3g (tolerance %.3g)", i, e, tol)
		if e > tol {
			t.Fatalf("ciphertext %d: max slot error %g > %g", i, e, tol)
		}
	}
}

func testRefresh(t *testing.T, name string, n, thr int, groups [][]PartyID) {
	p := testParams(t, name)
	res := cachedSetup(t, p, n, thr)
	sk := idealSecret(p, res)
	values := refreshValues(p)
	cts := minLevelCiphertexts(t, p, res["party-1"].PublicKey, thr, values)
	tol := refreshTolerance(p, thr, p.DefaultScale().Float64())
	for round, group := range groups {
		req := RefreshRequest{Session: "train-1", Round: uint32(round), Group: group, Ciphertexts: cts}
		out := aggregate(t, p, req, refreshShares(t, p, res, req))
		t.Logf("group %v: refreshed from level %d", group, cts[0].Level())
		checkRefreshed(t, p, sk, out, values, tol)
	}
}

func TestRefreshN3T2(t *testing.T) {
	testRefresh(t, "ckks-n13", 3, 2, subsets(partyIDs(3), 2))
}

func TestRefreshN5T3(t *testing.T) {
	testRefresh(t, "ckks-n13", 5, 3, [][]PartyID{{"party-1", "party-2", "party-3"}, {"party-2", "party-4", "party-5"}})
}

func TestRefreshN3T2CKKSN14(t *testing.T) {
	if testing.Short() {
		t.Skip("LogN=14 setup in -short mode")
	}
	testRefresh(t, "ckks-n14", 3, 2, [][]PartyID{{"party-3", "party-1"}})
}

// TestRefreshSlotMean checks the slot-mean transform against the plaintext
// mean of each input, and that its output evaluates like any slot-encoded
// ciphertext (a product with a plaintext vector acts slot-wise).
func TestRefreshSlotMean(t *testing.T) {
	p := testParams(t, "ckks-n13")
	res := cachedSetup(t, p, 3, 2)
	sk := idealSecret(p, res)
	values := refreshValues(p)
	cts := minLevelCiphertexts(t, p, res["party-2"].PublicKey, 2, values)
	req := RefreshRequest{Session: "train-1", Round: 7, Group: []PartyID{"party-2", "party-3"}, Transform: TransformSlotMean, Ciphertexts: cts}
	out := aggregate(t, p, req, refreshShares(t, p, res, req))
	want := make([][]float64, len(values))
	for i, v := range values {
		mean := 0.0
		for _, x := range v {
			mean += x
		}
		mean /= float64(len(v))
		t.Logf("ciphertext %d: plaintext mean %.6f", i, mean)
		want[i] = slices.Repeat([]float64{mean}, len(v))
	}
	checkRefreshed(t, p, sk, out, want, refreshTolerance(p, 2, p.DefaultScale().Float64()))
}

func TestRefreshRefuses(t *testing.T) {
	p := testParams(t, "ckks-n13")
	res := cachedSetup(t, p, 3, 2)
	r := res["party-1"]
	cts := minLevelCiphertexts(t, p, r.PublicKey, 2, refreshValues(p)[:1])
	share := func(req RefreshRequest) error {
		_, err := RefreshShare(p, "party-1", r.Parties, r.Threshold, r.ThresholdShare, req, "")
		return err
	}
	wantErr := func(err error, contains ...string) {
		t.Helper()
		if err == nil {
			t.Fatalf("accepted, want an error mentioning %q", contains)
		}
		for _, c := range contains {
			if !strings.Contains(err.Error(), c) {
				t.Fatalf("error %q does not mention %q", err, c)
			}
		}
	}
	req := RefreshRequest{Session: "s", Group: []PartyID{"party-1"}, Ciphertexts: cts}
	wantErr(share(req), "need exactly t=2")
	req.Group = []PartyID{"party-1", "party-2", "party-3"}
	wantErr(share(req), "need exactly t=2")
	req.Group = []PartyID{"party-2", "party-3"}
	wantErr(share(req), "party-1 is not in the group")
	req.Group = []PartyID{"party-1", "mallory"}
	wantErr(share(req), "not a consortium member")
	req.Group = []PartyID{"party-1", "party-1"}
	wantErr(share(req), "repeated")

	// Below the minimum level (3 on ckks-n13): refused by the party and by
	// the aggregator, naming the level and the minimum.
	low := encryptAt(t, p, r.PublicKey, testValues(p), 2, p.LogDefaultScale())
	req = RefreshRequest{Session: "s", Group: []PartyID{"party-1", "party-2"}, Ciphertexts: []*rlwe.Ciphertext{cts[0], low}}
	wantErr(share(req), "ciphertext 1 is at level 2, below the minimum 3")
	_, err := NewRefreshAggregator(p, req)
	wantErr(err, "level 2, below the minimum 3")

	// Below the minimum scale.
	small := encryptAt(t, p, r.PublicKey, testValues(p), 3, 30)
	req.Ciphertexts = []*rlwe.Ciphertext{small}
	wantErr(share(req), "scale 2^30.00, below 2^39.00")

	// No level of ckks-n13 has room for the masks of 5 parties.
	_, _, err = engine.MinRefreshLevel(p, p.DefaultScale(), 5)
	wantErr(err, "ckks-n13 has no level with room for the refresh masks of 5 parties")

	// The slot mean of a coefficient-encoded ciphertext.
	coeffs := cts[0].CopyNew()
	coeffs.IsBatched = false
	req = RefreshRequest{Session: "s", Group: []PartyID{"party-1", "party-2"}, Transform: TransformSlotMean, Ciphertexts: []*rlwe.Ciphertext{coeffs}}
	wantErr(share(req), "not slot-encoded")
	req.Transform = 9
	wantErr(share(req), "unknown transform(9)")

	// The aggregator needs whole ciphertexts.
	b, err := RefreshRequest{Session: "s", Group: []PartyID{"party-1", "party-2"}, Ciphertexts: cts}.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	sent, err := UnmarshalRefreshRequest(p, b)
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewRefreshAggregator(p, sent)
	wantErr(err, "ciphertext 0")
}

// TestRefreshAggregatorRejects checks every rejection names the sender and
// leaves the aggregator unchanged: after them, the valid shares give the
// very same ciphertexts as on a fresh aggregator, in either order.
func TestRefreshAggregatorRejects(t *testing.T) {
	p := testParams(t, "ckks-n13")
	res := cachedSetup(t, p, 3, 2)
	sk := idealSecret(p, res)
	values := refreshValues(p)
	cts := minLevelCiphertexts(t, p, res["party-1"].PublicKey, 2, values)
	req := RefreshRequest{Session: "train", Round: 1, Group: []PartyID{"party-1", "party-2"}, Ciphertexts: cts}
	good := refreshShares(t, p, res, req)
	m1, m2 := good[0], good[1]
	agg, err := NewRefreshAggregator(p, req)
	if err != nil {
		t.Fatal(err)
	}
	// Truncated shares.
	bad := m1
	bad.Payload = m1.Payload[:len(m1.Payload)-8]
	_, err = agg.Step(bad)
	asProtocolError(t, err, "party-1", KindRefreshShare, "bytes")
	bad.Payload = m1.Payload[:20]
	_, err = agg.Step(bad)
	asProtocolError(t, err, "party-1", KindRefreshShare, "truncated")
	// An unreduced coefficient in the last ciphertext's share: checked
	// before anything is added.
	bad.Payload = bytes.Clone(m1.Payload)
	for i := len(bad.Payload) - 8; i < len(bad.Payload); i++ {
		bad.Payload[i] = 0xff
	}
	_, err = agg.Step(bad)
	asProtocolError(t, err, "party-1", KindRefreshShare, "reduced")
	// Shares for another request: another round of the same session, and
	// another group holding the sender.
	other := req
	other.Round = 2
	_, err = agg.Step(refreshShares(t, p, res, other)[0])
	asProtocolError(t, err, "party-1", KindRefreshShare, "another refresh request")
	other = req
	other.Group = []PartyID{"party-1", "party-3"}
	shares13 := refreshShares(t, p, res, other)
	_, err = agg.Step(shares13[0])
	asProtocolError(t, err, "party-1", KindRefreshShare, "another refresh request")
	// A party outside the group.
	_, err = agg.Step(shares13[1])
	asProtocolError(t, err, "party-3", KindRefreshShare, "not in the refresh group")
	// Wrong kind, wrong session.
	k := m1
	k.Kind = "refresh.bogus"
	_, err = agg.Step(k)
	asProtocolError(t, err, "party-1", "refresh.bogus", "unknown")
	k = m1
	k.Session = "other"
	_, err = agg.Step(k)
	asProtocolError(t, err, "party-1", KindRefreshShare, "session")
	// Good, then duplicate.
	if done, err := agg.Step(m1); err != nil || done {
		t.Fatalf("first share: done=%v err=%v", done, err)
	}
	_, err = agg.Step(m1)
	asProtocolError(t, err, "party-1", KindRefreshShare, "duplicate")
	if got := agg.Missing(); len(got) != 1 || got[0] != "party-2" {
		t.Fatalf("missing %v", got)
	}
	if agg.Result() != nil {
		t.Fatal("result before every share arrived")
	}
	if done, err := agg.Step(m2); err != nil || !done {
		t.Fatalf("second share: done=%v err=%v", done, err)
	}
	_, err = agg.Step(m2)
	asProtocolError(t, err, "party-2", KindRefreshShare, "")
	checkRefreshed(t, p, sk, agg.Result(), values, refreshTolerance(p, 2, p.DefaultScale().Float64()))

	// Order independence, and no trace of the rejected messages.
	for _, order := range [][]Message{{m1, m2}, {m2, m1}} {
		out := aggregate(t, p, req, order)
		for i := range out {
			if !out[i].Equal(agg.Result()[i]) {
				t.Fatalf("ciphertext %d differs with order %s, %s", i, order[0].From, order[1].From)
			}
		}
	}
}

// TestRefreshCRP checks that the refreshed ciphertexts' c1 are the common
// reference polynomials each party derives from the request's digest, one
// per ciphertext, and that another round derives others: there is nothing a
// coordinator could choose.
func TestRefreshCRP(t *testing.T) {
	p := testParams(t, "ckks-n13")
	res := cachedSetup(t, p, 3, 2)
	cts := minLevelCiphertexts(t, p, res["party-1"].PublicKey, 2, refreshValues(p))
	req := RefreshRequest{Session: "train", Round: 4, Group: []PartyID{"party-1", "party-3"}, Ciphertexts: cts}
	out := aggregate(t, p, req, refreshShares(t, p, res, req))
	plan, err := planRefresh(p, req)
	if err != nil {
		t.Fatal(err)
	}
	if !out[0].Value[1].Equal(&plan.crps[0].Value) || !out[1].Value[1].Equal(&plan.crps[1].Value) {
		t.Fatal("refreshed c1 is not the CRP derived from the digest")
	}
	if plan.crps[0].Value.Equal(&plan.crps[1].Value) {
		t.Fatal("two ciphertexts share a CRP")
	}
	req.Round = 5
	plan5, err := planRefresh(p, req)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(plan.digest, plan5.digest) || plan.crps[0].Value.Equal(&plan5.crps[0].Value) {
		t.Fatal("another round derives the same CRP")
	}
	// The digest the group derives from what it receives is the
	// aggregator's.
	b, err := req.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	sent, err := UnmarshalRefreshRequest(p, b)
	if err != nil {
		t.Fatal(err)
	}
	planSent, err := planRefresh(p, sent)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(planSent.digest, plan5.digest) {
		t.Fatal("digest of the request as received differs")
	}
}

// TestRefreshRequestWire checks that the request carries c1 and metadata
// only, and that its decoder names what is wrong.
func TestRefreshRequestWire(t *testing.T) {
	p := testParams(t, "ckks-n13")
	res := cachedSetup(t, p, 3, 2)
	cts := minLevelCiphertexts(t, p, res["party-1"].PublicKey, 2, refreshValues(p))
	req := RefreshRequest{Session: "train", Round: 1, Group: []PartyID{"party-1", "party-2"}, Ciphertexts: cts}
	b, err := req.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	whole := 0
	for _, ct := range cts {
		whole += ct.BinarySize()
	}
	c1 := len(cts) * 8 * p.N() * (cts[0].Level() + 1)
	t.Logf("request %d bytes for %d ciphertexts of %d bytes (c1: %d)", len(b), len(cts), whole/len(cts), c1/len(cts))
	if len(b) < c1 || len(b) > c1+1024 {
		t.Fatalf("request of %d bytes, want c1 (%d bytes) and a header", len(b), c1)
	}
	sent, err := UnmarshalRefreshRequest(p, b)
	if err != nil {
		t.Fatal(err)
	}
	if sent.Session != req.Session || sent.Round != req.Round || !slices.Equal(sent.Group, req.Group) || sent.Transform != req.Transform {
		t.Fatalf("decoded header %+v", sent)
	}
	for i, ct := range sent.Ciphertexts {
		if !ct.Value[1].Equal(&cts[i].Value[1]) || !ct.MetaData.Equal(cts[i].MetaData) {
			t.Fatalf("ciphertext %d: c1 or metadata differs", i)
		}
	}
	b2, err := sent.Marshal(p)
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("decoded request re-encodes differently (err %v)", err)
	}

	// Offsets: tag (2+16), session (2+5), round (4), group (2+2*(2+7)),
	// transform (1), count (2), then the first ciphertext's level.
	hdr := 2 + len(refreshFormat) + 2 + len(req.Session) + 4 + 2 + 2*(2+7)
	mutate := func(at int, v byte) []byte {
		c := bytes.Clone(b)
		c[at] = v
		return c
	}
	cases := []struct {
		name     string
		b        []byte
		contains string
	}{
		{"trailing", append(bytes.Clone(b), 0), "trailing"},
		{"truncated", b[:len(b)-1], "truncated"},
		{"format", mutate(2, 'x'), "not a refresh request"},
		{"transform", mutate(hdr, 5), "unknown transform(5)"},
		{"no ciphertexts", func() []byte {
			c := bytes.Clone(b[:hdr+3])
			c[hdr+1], c[hdr+2] = 0, 0
			return c
		}(), "0 ciphertexts"},
		{"level", mutate(hdr+3, byte(p.MaxLevel()+1)), fmt.Sprintf("level %d exceeds", p.MaxLevel()+1)},
		{"unreduced", func() []byte {
			c := bytes.Clone(b)
			for i := len(c) - 8; i < len(c); i++ {
				c[i] = 0xff
			}
			return c
		}(), "ciphertext 1: c1: coefficient not reduced"},
	}
	for _, c := range cases {
		if _, err := UnmarshalRefreshRequest(p, c.b); err == nil || !strings.Contains(err.Error(), c.contains) {
			t.Errorf("%s: got %v, want an error mentioning %q", c.name, err, c.contains)
		}
	}
}
