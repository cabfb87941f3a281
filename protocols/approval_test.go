package protocols

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"testing"

	"go.dedis.ch/kyber/v3/share"
	"go.dedis.ch/kyber/v3/sign/tbls"
)

func partials(t *testing.T, res map[PartyID]*DKGResult, msg []byte) map[PartyID][]byte {
	t.Helper()
	out := map[PartyID][]byte{}
	for id, r := range res {
		sig, err := SignApproval(r, msg)
		if err != nil {
			t.Fatal(err)
		}
		out[id] = sig
	}
	return out
}

func newCollector(t *testing.T, res map[PartyID]*DKGResult, n, thr int, msg []byte) *ApprovalCollector {
	t.Helper()
	c, err := NewApprovalCollector(res["party-1"].Public, thr, n, msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ExpectParties(dkgIDs(n)); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestApprovalThreshold(t *testing.T) {
	for _, tc := range dkgCases {
		t.Run(fmt.Sprintf("N%d_t%d", tc.n, tc.t), func(t *testing.T) {
			res := cachedDKG(t, tc.n, tc.t)
			ids := dkgIDs(tc.n)
			groupKey := res[ids[0]].GroupKey
			digest := sha256.Sum256([]byte("SELECT avg(age) FROM cohort"))
			msg := ApprovalMessage("query-42", "analyst@lab", digest[:])
			sigs := partials(t, res, msg)

			var cert0 []byte
			for _, sub := range dkgSubsets(ids, tc.t) {
				c := newCollector(t, res, tc.n, tc.t, msg)
				for i, id := range sub {
					done, err := c.Add(id, sigs[id])
					if err != nil {
						t.Fatal(err)
					}
					if done != (i == tc.t-1) {
						t.Fatalf("subset %v: done=%v after %d partials", sub, done, i+1)
					}
					if !done && c.Certificate() != nil {
						t.Fatal("certificate before threshold")
					}
				}
				cert := c.Certificate()
				if err := VerifyCertificate(groupKey, msg, cert); err != nil {
					t.Fatalf("subset %v: %v", sub, err)
				}
				if cert0 == nil {
					cert0 = cert
				} else if !bytes.Equal(cert, cert0) {
					t.Fatalf("subset %v recovers another signature", sub)
				}
				if got := c.Signers(); fmt.Sprint(got) != fmt.Sprint(sub) {
					t.Fatalf("signers %v, want %v", got, sub)
				}
			}
			// The certificate is bound to the message.
			other := ApprovalMessage("query-43", "analyst@lab", digest[:])
			if err := VerifyCertificate(groupKey, other, cert0); err == nil {
				t.Fatal("certificate verifies another message")
			}

			// t-1 partials: the collector is not done, and interpolating
			// them (as if the threshold were t-1) gives no valid signature.
			for _, sub := range dkgSubsets(ids, tc.t-1) {
				c := newCollector(t, res, tc.n, tc.t, msg)
				for _, id := range sub {
					if done, err := c.Add(id, sigs[id]); err != nil || done {
						t.Fatalf("subset %v: done=%v err=%v", sub, done, err)
					}
				}
				if c.Certificate() != nil {
					t.Fatal("certificate from t-1 partials")
				}
				var few [][]byte
				for _, id := range sub {
					few = append(few, sigs[id])
				}
				if _, err := tbls.Recover(bnSuite, res[ids[0]].Public, msg, few, tc.t, tc.n); err == nil {
					t.Fatal("tbls recovered from t-1 partials")
				}
				forged, err := tbls.Recover(bnSuite, res[ids[0]].Public, msg, few, tc.t-1, tc.n)
				if err == nil && VerifyCertificate(groupKey, msg, forged) == nil {
					t.Fatalf("subset %v: t-1 partials make a valid certificate", sub)
				}
			}
		})
	}
}

func TestApprovalRejectsBadPartials(t *testing.T) {
	const n, thr = 4, 3
	res := cachedDKG(t, n, thr)
	ids := dkgIDs(n)
	msg := ApprovalMessage("s", "a", []byte{1, 2, 3})
	sigs := partials(t, res, msg)

	// A partial made with a wrong key share (right index) names its sender.
	g := g2()
	wrong := &DKGResult{Index: 1, Share: &share.PriShare{I: 1, V: g.Scalar().SetInt64(12345)}}
	bad, err := SignApproval(wrong, msg)
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector(t, res, n, thr, msg)
	if _, err := c.Add(ids[0], sigs[ids[0]]); err != nil {
		t.Fatal(err)
	}
	_, err = c.Add(ids[1], bad)
	wantProtocolError(t, err, ids[1], KindApproval)

	// A partial on another message.
	otherSigs := partials(t, res, ApprovalMessage("s", "a", []byte{1, 2, 4}))
	_, err = c.Add(ids[1], otherSigs[ids[1]])
	wantProtocolError(t, err, ids[1], KindApproval)

	// Someone else's partial, claimed by another party.
	_, err = c.Add(ids[3], sigs[ids[2]])
	wantProtocolError(t, err, ids[3], KindApproval)

	// Malformed partials.
	for name, p := range map[string][]byte{
		"empty":     nil,
		"short":     sigs[ids[1]][:10],
		"long":      append(bytes.Clone(sigs[ids[1]]), 0),
		"bad-point": append([]byte{0, 1}, bytes.Repeat([]byte{0xff}, g1PointSize)...),
		"flipped":   func() []byte { b := bytes.Clone(sigs[ids[1]]); b[20] ^= 1; return b }(),
	} {
		if _, err := c.Add(ids[1], p); err == nil {
			t.Fatalf("%s partial accepted", name)
		} else {
			wantProtocolError(t, err, ids[1], KindApproval)
		}
	}
	// Duplicates and non-members.
	_, err = c.Add(ids[0], sigs[ids[0]])
	wantProtocolError(t, err, ids[0], KindApproval)
	_, err = c.Add("mallory", sigs[ids[1]])
	wantProtocolError(t, err, "mallory", KindApproval)

	// Rejections leave the collector usable.
	for i, id := range ids[1:3] {
		done, err := c.Add(id, sigs[id])
		if err != nil {
			t.Fatal(err)
		}
		if done != (i == 1) {
			t.Fatalf("done=%v after %d partials", done, i+2)
		}
	}
	if err := VerifyCertificate(res[ids[0]].GroupKey, msg, c.Certificate()); err != nil {
		t.Fatal(err)
	}
	// A late valid partial is accepted, a late bad one still named.
	if done, err := c.Add(ids[3], sigs[ids[3]]); err != nil || !done {
		t.Fatalf("late partial: done=%v err=%v", done, err)
	}

	// Without ExpectParties, index reuse is still caught.
	c2, err := NewApprovalCollector(res[ids[0]].Public, thr, n, msg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Add(ids[0], sigs[ids[0]]); err != nil {
		t.Fatal(err)
	}
	_, err = c2.Add(ids[1], sigs[ids[0]])
	wantProtocolError(t, err, ids[1], KindApproval)

	if _, err := NewApprovalCollector(res[ids[0]].Public, thr-1, n, msg); err == nil {
		t.Fatal("threshold mismatch accepted")
	}
}

func TestApprovalMessageCanonical(t *testing.T) {
	a := ApprovalMessage("ab", "c", []byte("d"))
	b := ApprovalMessage("a", "bc", []byte("d"))
	if bytes.Equal(a, b) {
		t.Fatal("field boundaries are ambiguous")
	}
	if bytes.Equal(ApprovalMessage("s", "", nil), BeaconMessage("s")) {
		t.Fatal("approval and beacon messages collide")
	}
}

func TestApprovalGroupKeyMarshal(t *testing.T) {
	res := cachedDKG(t, 3, 2)
	gk := res["party-1"].GroupKey
	b, err := MarshalGroupKey(gk)
	if err != nil {
		t.Fatal(err)
	}
	p, err := UnmarshalGroupKey(b)
	if err != nil || !p.Equal(gk) {
		t.Fatalf("round trip: %v", err)
	}
	for name, bad := range map[string][]byte{
		"short":    b[:len(b)-1],
		"long":     append(bytes.Clone(b), 0),
		"flipped":  func() []byte { c := bytes.Clone(b); c[7] ^= 1; return c }(),
		"identity": make([]byte, g2PointSize),
	} {
		if _, err := UnmarshalGroupKey(bad); err == nil {
			t.Errorf("%s group key accepted", name)
		}
	}
	if _, err := MarshalGroupKey(bnSuite.G1().Point().Base()); err == nil {
		t.Fatal("G1 point accepted as group key")
	}
}
